//! COPY and ADD write their layer directly: the files they copy go into
//! the layer's tar as they are read (the build context, an archive ADD
//! unpacks, another stage's files), under the destination's real path in
//! the image, after its parent directories. Nothing is written into a
//! container's snapshot and read back, so each file is created once, when
//! the layer is unpacked into the store.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use image::store::LayerSink;

/// Owner and mode a COPY gives what it copies.
pub(crate) struct Meta {
    pub owner: (u32, u32),
    pub mode: Option<u32>,
}

/// What one source of a COPY or ADD is.
pub(crate) enum Source {
    /// A context path (relative): a directory's contents, or one file
    /// under `name`.
    Context {
        rel: PathBuf,
        is_dir: bool,
        name: String,
    },
    /// A tar ADD unpacks, entries kept as they are (owners included).
    Archive(Vec<u8>),
    /// `engine.copy_out` of a path in another stage: entries under the
    /// path's own name, made a directory's contents or `name`.
    Stage {
        archive: Vec<u8>,
        is_dir: bool,
        name: String,
    },
}

/// A directory on the way to a COPY's target: its path in the image and,
/// when the image has it, its metadata.
pub(crate) type Parent = (PathBuf, Option<fs::Metadata>);

/// Why an entry could not be written.
#[derive(Debug)]
pub(crate) enum WriteError {
    Io(io::Error),
    /// A directory would replace the image's symlink at this path.
    OverSymlink(String),
    /// An archive entry that climbs out, or a whiteout name.
    BadEntry(String),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> WriteError {
        WriteError::Io(e)
    }
}

/// The tar of a COPY's layer.
pub(crate) struct Writer<'a> {
    tar: &'a mut tar::Builder<LayerSink>,
    /// Directories written, so that a parent is written once.
    dirs: BTreeSet<PathBuf>,
    clamp: Option<u64>,
    /// True when the image has a symlink at this path (absolute).
    is_symlink: &'a dyn Fn(&str) -> bool,
}

fn dir_header(mode: u32, uid: u32, gid: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(mode);
    h.set_uid(uid.into());
    h.set_gid(gid.into());
    h.set_mtime(mtime);
    h.set_size(0);
    h
}

/// `a/./b` → `a/b`; `None` for an absolute path or one with `..`.
fn relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

impl<'a> Writer<'a> {
    pub(crate) fn new(
        tar: &'a mut tar::Builder<LayerSink>,
        clamp: Option<u64>,
        is_symlink: &'a dyn Fn(&str) -> bool,
    ) -> Writer<'a> {
        Writer {
            tar,
            dirs: BTreeSet::new(),
            clamp,
            is_symlink,
        }
    }

    /// Writes one copied entry; `link` is a symlink's or hard link's
    /// target. A directory where the image has a symlink is refused.
    fn put(
        &mut self,
        h: tar::Header,
        path: &Path,
        data: impl Read,
        link: Option<&Path>,
    ) -> Result<(), WriteError> {
        if h.entry_type().is_dir() && (self.is_symlink)(&format!("/{}", path.display())) {
            return Err(WriteError::OverSymlink(format!("/{}", path.display())));
        }
        self.write(h, path, data, link)
    }

    /// Writes one entry, its time clamped, as it is.
    fn write(
        &mut self,
        mut h: tar::Header,
        path: &Path,
        data: impl Read,
        link: Option<&Path>,
    ) -> Result<(), WriteError> {
        if let Some(c) = self.clamp {
            h.set_mtime(h.mtime().unwrap_or(0).min(c));
        }
        if h.entry_type().is_dir() {
            self.dirs.insert(path.to_path_buf());
        }
        if let Some(target) = link {
            h.set_size(0);
            self.tar.append_link(&mut h, path, target)?;
        } else {
            self.tar.append_data(&mut h, path, data)?;
        }
        Ok(())
    }

    /// The directories down to a COPY's target: `(path, metadata)` of
    /// those the image has, `None` for those the COPY makes (root's, 0755).
    pub(crate) fn parents(&mut self, chain: &[Parent], now: u64) -> Result<(), WriteError> {
        for (path, meta) in chain {
            if self.dirs.contains(path) {
                continue;
            }
            let h = match meta {
                Some(m) => dir_header(
                    m.permissions().mode() & 0o7777,
                    m.uid(),
                    m.gid(),
                    m.mtime().max(0) as u64,
                ),
                None => dir_header(0o755, 0, 0, now),
            };
            // The image's own directories, symlinks on the way already
            // followed: nothing to check.
            self.write(h, path, io::empty(), None)?;
        }
        Ok(())
    }

    /// A context file or directory under `target`.
    pub(crate) fn context(
        &mut self,
        root: &Path,
        tree: &[PathBuf],
        target: &Path,
        src: (&Path, bool, &str),
        meta: &Meta,
    ) -> Result<(), WriteError> {
        let (rel, is_dir, name) = src;
        for p in tree {
            let inside = p.strip_prefix(rel).unwrap_or(p);
            let entry = if is_dir {
                target.join(inside)
            } else {
                target.join(name)
            };
            if is_dir && inside.as_os_str().is_empty() {
                continue;
            }
            let full = root.join(p);
            let m = fs::symlink_metadata(&full)?;
            let mut h = tar::Header::new_gnu();
            h.set_metadata_in_mode(&m, tar::HeaderMode::Complete);
            h.set_uid(meta.owner.0.into());
            h.set_gid(meta.owner.1.into());
            h.set_mode(m.permissions().mode() & 0o7777);
            if let Some(mode) = meta.mode {
                if !m.file_type().is_symlink() {
                    h.set_mode(mode);
                }
            }
            if m.file_type().is_symlink() {
                h.set_entry_type(tar::EntryType::Symlink);
                let target = fs::read_link(&full)?;
                self.put(h, &entry, io::empty(), Some(&target))?;
            } else if m.is_file() {
                self.put(h, &entry, fs::File::open(&full)?, None)?;
            } else if m.is_dir() {
                h.set_size(0);
                self.put(h, &entry, io::empty(), None)?;
            }
            // Sockets, fifos and devices in a context are not copied (as docker).
        }
        Ok(())
    }

    /// An archive's entries under `target`: as they are (ADD), or made a
    /// directory's contents or one file, with the COPY's owner and mode
    /// (`COPY --from`).
    pub(crate) fn archive(
        &mut self,
        bytes: &[u8],
        target: &Path,
        stage: Option<(bool, &str, &Meta)>,
    ) -> Result<(), WriteError> {
        let mut a = tar::Archive::new(bytes);
        for e in a.entries()? {
            let mut e = e?;
            let raw = e.path()?.into_owned();
            let bad = || WriteError::BadEntry(raw.display().to_string());
            let mut rel = relative(&raw).ok_or_else(bad)?;
            if let Some((is_dir, name, _)) = stage {
                // `copy_out` names everything under the source's name.
                let rest: PathBuf = rel.components().skip(1).collect();
                rel = if is_dir { rest } else { PathBuf::from(name) };
            }
            if rel.as_os_str().is_empty() {
                continue;
            }
            if rel
                .file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b".wh."))
            {
                return Err(bad());
            }
            let mut h = e.header().clone();
            if let Some((_, _, meta)) = stage {
                h.set_uid(meta.owner.0.into());
                h.set_gid(meta.owner.1.into());
                if let Some(mode) = meta.mode {
                    if h.entry_type() != tar::EntryType::Symlink {
                        h.set_mode(mode);
                    }
                }
            }
            let link = match h.entry_type() {
                t if t.is_hard_link() => {
                    let l = e.link_name()?.map(|l| l.into_owned()).unwrap_or_default();
                    let mut l = relative(&l).ok_or_else(bad)?;
                    if let Some((is_dir, name, _)) = stage {
                        let rest: PathBuf = l.components().skip(1).collect();
                        l = if is_dir { rest } else { PathBuf::from(name) };
                    }
                    Some(target.join(l))
                }
                t if t.is_symlink() => {
                    Some(e.link_name()?.map(|l| l.into_owned()).unwrap_or_default())
                }
                _ => None,
            };
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            self.put(h, &target.join(rel), &data[..], link.as_deref())?;
        }
        Ok(())
    }
}
