//! The files of an archive being loaded. The tar is read once, as a
//! stream: each regular file is spooled into the store's temp dir while it
//! is hashed, and symlinks/hardlinks are kept as lexical aliases (never
//! created on disk, never followed outside the archive). Blobs are then
//! moved into the store by rename, without a second copy. Whatever was not
//! adopted is deleted when this is dropped.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use tempfile::NamedTempFile;

use crate::progress::{LayerProgress, Progress};
use crate::unpack::{clean_path, decompress, expect_tar, Compression};
use crate::{Error, Store};

/// Files at least this big get a progress bar.
const PROGRESS_MIN: u64 = 1 << 20;

struct Spooled {
    tmp: Option<NamedTempFile>,
    digest: String,
    size: u64,
}

pub(crate) struct Contents {
    store: Store,
    files: HashMap<String, Spooled>,
    links: HashMap<String, String>,
    adopted: Vec<String>,
}

impl Contents {
    /// Reads the whole archive (tar, maybe gzip/zstd-compressed).
    pub fn read(
        store: &Store,
        input: &mut dyn Read,
        progress: &Progress,
    ) -> Result<Contents, Error> {
        let (_, stream) = decompress(input).map_err(|source| Error::ArchiveRead { source })?;
        let stream = expect_tar(stream)
            .map_err(|source| Error::ArchiveRead { source })?
            .ok_or(Error::NotATar {
                expected: "a docker-archive or OCI image layout tar (plain, gzip or zstd)",
            })?;
        let mut archive = tar::Archive::new(stream);
        let mut contents = Contents {
            store: store.clone(),
            files: HashMap::new(),
            links: HashMap::new(),
            adopted: Vec::new(),
        };
        for entry in archive
            .entries()
            .map_err(|source| Error::ArchiveRead { source })?
        {
            let mut entry = entry.map_err(|source| Error::ArchiveRead { source })?;
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw).into_owned();
            let reject = |reason: String| Error::ArchiveEntry {
                entry: name.clone(),
                reason,
            };
            let Some(rel) = clean_path(&raw).map_err(reject)? else {
                continue;
            };
            let key = rel.to_string_lossy().into_owned();
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.size();
                    let bar = (size >= PROGRESS_MIN).then(|| {
                        let b = progress.layer(&label(&rel), Some(size));
                        b.set_status("Loading");
                        b
                    });
                    let mut reader = Counting {
                        inner: &mut entry,
                        bar: bar.as_ref(),
                    };
                    let (tmp, digest, size) = store.spool(&mut reader).map_err(|e| match e {
                        Error::BlobRead { source, .. } => Error::ArchiveRead { source },
                        other => other,
                    })?;
                    if let Some(b) = bar {
                        b.finish("Loaded");
                    }
                    contents.files.insert(
                        key,
                        Spooled {
                            tmp: Some(tmp),
                            digest,
                            size,
                        },
                    );
                }
                kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| reject("link without a target".into()))?
                        .into_owned();
                    let target = Path::new(
                        std::str::from_utf8(&target)
                            .map_err(|_| reject("link target is not UTF-8".into()))?,
                    )
                    .to_path_buf();
                    // A symlink is relative to its directory; a hardlink
                    // to the archive root.
                    let base = if kind == tar::EntryType::Symlink {
                        rel.parent().map(Path::to_path_buf).unwrap_or_default()
                    } else {
                        PathBuf::new()
                    };
                    let resolved = normalize(&base.join(&target)).ok_or_else(|| {
                        reject(format!(
                            "link target \"{}\" is outside the archive",
                            target.display()
                        ))
                    })?;
                    contents.links.insert(key, resolved);
                }
                _ => {}
            }
        }
        Ok(contents)
    }

    /// Follows aliases (at most 16) to a spooled file's key.
    fn resolve(&self, path: &str) -> Option<String> {
        let mut p = normalize(Path::new(path))?;
        for _ in 0..16 {
            if self.files.contains_key(&p) {
                return Some(p);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }

    pub fn has(&self, path: &str) -> bool {
        self.resolve(path).is_some()
    }

    fn get(&self, path: &str) -> Result<(&Spooled, String), Error> {
        let key = self.resolve(path).ok_or_else(|| Error::ArchiveEntry {
            entry: path.to_string(),
            reason: "missing from the archive".into(),
        })?;
        Ok((&self.files[&key], key))
    }

    fn location(&self, s: &Spooled) -> PathBuf {
        match &s.tmp {
            Some(t) => t.path().to_path_buf(),
            None => self.store.blob_path(&s.digest),
        }
    }

    /// Reads a small file (JSON) of the archive.
    pub fn read_small(&self, path: &str) -> Result<Vec<u8>, Error> {
        let (s, _) = self.get(path)?;
        if s.size > 64 << 20 {
            return Err(Error::ArchiveEntry {
                entry: path.to_string(),
                reason: format!("{} bytes is too big for a JSON document", s.size),
            });
        }
        let loc = self.location(s);
        std::fs::read(&loc).map_err(|e| Error::io("reading", loc, e))
    }

    /// The compression of a file of the archive.
    pub fn compression(&self, path: &str) -> Result<Compression, Error> {
        let (s, _) = self.get(path)?;
        let loc = self.location(s);
        super::sniff_file(&loc).map_err(|e| Error::io("reading", loc, e))
    }

    /// Moves a file of the archive into the store as a blob; checks it is
    /// `expected` if given. Returns `(digest, size)`.
    pub fn adopt(
        &mut self,
        store: &Store,
        path: &str,
        expected: Option<&str>,
    ) -> Result<(String, u64), Error> {
        let (s, key) = self.get(path)?;
        let (digest, size) = (s.digest.clone(), s.size);
        if let Some(expected) = expected {
            crate::digest::hex_of(expected)?;
            if expected != digest {
                return Err(Error::DigestMismatch {
                    expected: expected.to_string(),
                    actual: digest,
                });
            }
        }
        let s = self.files.get_mut(&key).expect("resolved key exists");
        if let Some(tmp) = s.tmp.take() {
            if store.has_blob(&digest) {
                drop(tmp);
            } else {
                store.persist_blob(tmp, &digest)?;
                self.adopted.push(digest.clone());
            }
        }
        Ok((digest, size))
    }

    /// Records a blob this load created itself (the manifest it writes for
    /// a docker-archive image), to delete it if the load fails.
    pub fn note_adopted(&mut self, digest: &str) {
        self.adopted.push(digest.to_string());
    }

    /// Blobs this load put in the store.
    pub fn adopted(&self) -> Vec<String> {
        self.adopted.clone()
    }
}

/// What to call a big file of the archive in progress lines: its digest
/// (`blobs/sha256/<hex>`, `<hex>.tar`, `<hex>/layer.tar`).
fn label(rel: &Path) -> String {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let last = name(rel).unwrap_or_default();
    let stem = if last == "layer.tar" {
        rel.parent().and_then(name).unwrap_or(last)
    } else {
        last.strip_suffix(".tar")
            .map(str::to_string)
            .unwrap_or(last)
    };
    format!("sha256:{stem}")
}

/// Lexically normalizes a relative path; `None` if it climbs out.
fn normalize(p: &Path) -> Option<String> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    let joined: PathBuf = parts.iter().collect();
    Some(joined.to_string_lossy().into_owned())
}

struct Counting<'a, R> {
    inner: R,
    bar: Option<&'a LayerProgress>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }
}
