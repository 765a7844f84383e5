//! The build context: the directory a build's COPY and ADD read, less
//! what `.dockerignore` leaves out (docker's rules: patterns relative to
//! the context, `*` within one path element, `**` across them, `!` for
//! exceptions, the last matching pattern deciding, and a pattern matching
//! a directory matching everything in it). Sources are resolved here and
//! never leave the context.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use globset::GlobMatcher;
use sha2::{Digest, Sha256};

use crate::BuildError;

struct Pattern {
    matcher: GlobMatcher,
    exclude: bool,
}

/// A context directory and its ignore rules.
pub struct Context {
    root: PathBuf,
    ignore: Vec<Pattern>,
}

fn glob(p: &str) -> Result<GlobMatcher, globset::Error> {
    Ok(globset::GlobBuilder::new(p)
        .literal_separator(true)
        .backslash_escape(true)
        .build()?
        .compile_matcher())
}

/// `./a/../b/` → `b`; `None` when it climbs out.
pub fn clean(p: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => return None,
            _ => {}
        }
    }
    Some(out)
}

impl Context {
    pub fn open(root: &Path) -> Result<Context, BuildError> {
        let meta = fs::metadata(root).map_err(|source| BuildError::Context {
            path: root.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(BuildError::Context {
                path: root.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
            });
        }
        let root = fs::canonicalize(root).map_err(|source| BuildError::Context {
            path: root.to_path_buf(),
            source,
        })?;
        let mut ignore = Vec::new();
        let file = root.join(".dockerignore");
        if let Ok(text) = fs::read_to_string(&file) {
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (exclude, pat) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let cleaned = clean(pat.trim_start_matches('/'))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let matcher = glob(&cleaned).map_err(|e| BuildError::Ignore {
                    line: n + 1,
                    message: e.kind().to_string(),
                })?;
                ignore.push(Pattern { matcher, exclude });
            }
        }
        Ok(Context { root, ignore })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when `.dockerignore` leaves `rel` (or a directory above it) out.
    pub fn is_ignored(&self, rel: &Path) -> bool {
        let mut ignored = false;
        for p in &self.ignore {
            let hit = rel
                .ancestors()
                .filter(|a| !a.as_os_str().is_empty())
                .any(|a| p.matcher.is_match(a));
            if hit {
                ignored = !p.exclude;
            }
        }
        ignored
    }

    /// The context paths (relative) a COPY source names: itself, or what
    /// its wildcard matches; an error naming it when it climbs out of the
    /// context or names nothing.
    pub fn resolve(&self, src: &str, line: usize) -> Result<Vec<PathBuf>, BuildError> {
        let rel = clean(src).ok_or_else(|| BuildError::OutsideContext {
            line,
            path: src.to_string(),
        })?;
        // A symlink on the way would lead out of the context: never followed.
        let mut prefix = self.root.clone();
        for c in rel.parent().into_iter().flat_map(|p| p.components()) {
            prefix.push(c);
            if fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(BuildError::OutsideContext {
                    line,
                    path: src.to_string(),
                });
            }
        }
        let wild = src.contains(['*', '?', '[']);
        let found: Vec<PathBuf> = if wild {
            let m = glob(&rel.to_string_lossy()).map_err(|e| BuildError::Syntax {
                line,
                message: format!("bad pattern {src:?}: {}", e.kind()),
            })?;
            let mut all = Vec::new();
            self.walk(Path::new(""), &mut all);
            all.into_iter().filter(|p| m.is_match(p)).collect()
        } else if (rel.as_os_str().is_empty() || fs::symlink_metadata(self.root.join(&rel)).is_ok())
            && !self.is_ignored(&rel)
        {
            vec![rel]
        } else {
            Vec::new()
        };
        if found.is_empty() {
            return Err(BuildError::SourceMissing {
                line,
                path: src.to_string(),
            });
        }
        Ok(found)
    }

    /// Every path under `rel` not ignored, sorted, directories before
    /// what is in them.
    fn walk(&self, rel: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(self.root.join(rel)) else {
            return;
        };
        let mut names: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for n in names {
            let p = rel.join(n);
            if self.is_ignored(&p) {
                continue;
            }
            let is_dir = fs::symlink_metadata(self.root.join(&p)).is_ok_and(|m| m.is_dir());
            out.push(p.clone());
            if is_dir {
                self.walk(&p, out);
            }
        }
    }

    /// `rel` and, for a directory, everything not ignored under it.
    pub fn tree(&self, rel: &Path) -> Vec<PathBuf> {
        let mut out = vec![rel.to_path_buf()];
        if fs::symlink_metadata(self.root.join(rel)).is_ok_and(|m| m.is_dir()) {
            self.walk(rel, &mut out);
        }
        out
    }

    /// A digest of what `srcs` would copy: names, modes and contents (not
    /// times, as docker's cache ignores them).
    pub fn digest(&self, srcs: &[PathBuf]) -> std::io::Result<String> {
        let mut h = Sha256::new();
        for s in srcs {
            for p in self.tree(s) {
                let full = self.root.join(&p);
                let meta = fs::symlink_metadata(&full)?;
                h.update(p.as_os_str().as_encoded_bytes());
                h.update([0]);
                h.update(meta.mode().to_le_bytes());
                if meta.file_type().is_symlink() {
                    h.update(fs::read_link(&full)?.as_os_str().as_encoded_bytes());
                } else if meta.is_file() {
                    let mut f = fs::File::open(&full)?;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = f.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                }
                h.update([0xff]);
            }
        }
        Ok(image::digest::finish(h)["sha256:".len()..].to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_patterns_and_exceptions() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(".dockerignore"),
            "# comment\nsecret*\nlogs/\n**/*.tmp\n!keep.tmp\n",
        )
        .unwrap();
        let c = Context::open(dir.path()).unwrap();
        assert!(c.is_ignored(Path::new("secret.txt")));
        assert!(c.is_ignored(Path::new("logs/a/b")));
        assert!(c.is_ignored(Path::new("a/b/c.tmp")));
        assert!(!c.is_ignored(Path::new("keep.tmp")));
        assert!(!c.is_ignored(Path::new("a/secret.txt")));
        assert!(!c.is_ignored(Path::new("src/main.rs")));
    }

    #[test]
    fn sources_stay_inside_the_context() {
        assert_eq!(clean("./a/../b/"), Some(PathBuf::from("b")));
        assert_eq!(clean("../x"), None);
        assert_eq!(clean("a/../../x"), None);
        let dir = tempfile::tempdir().unwrap();
        let c = Context::open(dir.path()).unwrap();
        assert!(matches!(
            c.resolve("../etc/passwd", 3),
            Err(BuildError::OutsideContext { line: 3, .. })
        ));
        assert!(matches!(
            c.resolve("missing", 4),
            Err(BuildError::SourceMissing { line: 4, .. })
        ));
    }
}
