//! copy: `isola cp`, files into and out of a container's filesystem from
//! the host side (both isolation modes: a VM container's rootfs is the same
//! snapshot, shared into its VM), as tar streams. The container may change
//! its files while this runs, so nothing here resolves a container path
//! twice: the starting point is resolved inside the rootfs once
//! (`runtime::rootfile::open`, symlinks and ".." kept inside it), and every
//! step from there is one component, opened without following symlinks,
//! relative to a descriptor already held (through `/proc/self/fd/N/name`,
//! which is `openat(N, name)`). A symlink the container places on the way
//! is therefore never followed out of its rootfs. Host paths are the
//! caller's business.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::lifecycle::{Engine, Error};
use crate::store::ContainerRecord;

/// What went wrong copying, and where.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("no such file or directory in container {id}: {path}")]
    NotFound { id: String, path: String },
    #[error("{path} in container {id} is not a directory")]
    NotADirectory { id: String, path: String },
    #[error("refusing to write through the symbolic link {path} in container {id}")]
    ThroughSymlink { id: String, path: String },
    #[error("the archive's entry {entry:?} leaves the destination")]
    BadEntry { entry: String },
    #[error("copying {path} in container {id}")]
    Io {
        id: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("resolving {path} in container {id}")]
    Resolve {
        id: String,
        path: String,
        #[source]
        source: runtime::rootfile::RootFileError,
    },
}

/// `/proc/self/fd/<fd>/<name>`: `name` looked up in the directory `dir`.
fn at(dir: &File, name: &std::ffi::OsStr) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

fn fd_path(f: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

/// An `O_PATH` handle of `name` in `dir`, the name itself if a symlink.
fn open_nofollow(dir: &File, name: &std::ffi::OsStr) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(at(dir, name))
}

impl Engine {
    /// Writes `path` of the container (a file, a directory and what is in
    /// it, a symlink, a device node) to `out` as a tar stream whose entries
    /// start with its name, as `docker cp CONTAINER:path` archives it;
    /// `follow` follows `path` itself if it is a symlink (`-L`).
    pub fn copy_out(
        &self,
        rec: &ContainerRecord,
        path: &str,
        follow: bool,
        out: &mut dyn Write,
    ) -> Result<(), Error> {
        let id = rec.config.id.clone();
        let rootfs = self.rootfs_of(rec)?;
        let start = runtime::rootfile::open(&rootfs, Path::new(path), follow)
            .map_err(|source| CopyError::Resolve {
                id: id.clone(),
                path: path.into(),
                source,
            })?
            .ok_or_else(|| CopyError::NotFound {
                id: id.clone(),
                path: path.into(),
            })?;
        let name = Path::new(path)
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut tar = tar::Builder::new(out);
        let io = |source| CopyError::Io {
            id: id.clone(),
            path: path.into(),
            source,
        };
        emit(&mut tar, &File::from(start), &name).map_err(io)?;
        tar.finish().map_err(io)?;
        Ok(())
    }

    /// Unpacks the tar stream `archive` at `dest` in the container: into
    /// it when it is a directory there, else as `dest` (its first entry
    /// renamed so, its parent existing), as `docker cp SRC CONTAINER:dest`.
    /// Files belong to the container's root unless `keep_owner` (`-a`).
    pub fn copy_in(
        &self,
        rec: &ContainerRecord,
        dest: &str,
        archive: &mut dyn Read,
        keep_owner: bool,
    ) -> Result<(), Error> {
        let id = rec.config.id.clone();
        let rootfs = self.rootfs_of(rec)?;
        let resolve = |p: &Path| {
            runtime::rootfile::open(&rootfs, p, true).map_err(|source| CopyError::Resolve {
                id: id.clone(),
                path: p.display().to_string(),
                source,
            })
        };
        let dest_path = Path::new(dest);
        let found = resolve(dest_path)?.map(File::from);
        let (dir, rename) = match found {
            Some(f) if f.metadata().is_ok_and(|m| m.is_dir()) => (f, None),
            _ => {
                let parent = dest_path.parent().unwrap_or(Path::new("/"));
                let dir = resolve(parent)?
                    .map(File::from)
                    .ok_or_else(|| CopyError::NotFound {
                        id: id.clone(),
                        path: parent.display().to_string(),
                    })?;
                if !dir.metadata().is_ok_and(|m| m.is_dir()) {
                    return Err(CopyError::NotADirectory {
                        id,
                        path: parent.display().to_string(),
                    }
                    .into());
                }
                let name = dest_path.file_name().ok_or_else(|| CopyError::NotFound {
                    id: id.clone(),
                    path: dest.into(),
                })?;
                (dir, Some(name.to_os_string()))
            }
        };
        let mut tar = tar::Archive::new(archive);
        let io = |path: &str| {
            let id = id.clone();
            let path = path.to_string();
            move |source| CopyError::Io { id, path, source }
        };
        for entry in tar.entries().map_err(io(dest))? {
            let mut entry = entry.map_err(io(dest))?;
            let raw = entry.path().map_err(io(dest))?.into_owned();
            let mut parts: Vec<std::ffi::OsString> = Vec::new();
            for c in raw.components() {
                match c {
                    Component::Normal(n) => parts.push(n.to_os_string()),
                    Component::CurDir => {}
                    _ => {
                        return Err(CopyError::BadEntry {
                            entry: raw.display().to_string(),
                        }
                        .into())
                    }
                }
            }
            if let (Some(first), Some(name)) = (parts.first_mut(), &rename) {
                *first = name.clone();
            }
            let Some(last) = parts.pop() else { continue };
            let shown = format!("{dest}/{}", raw.display());
            let parent = walk_dirs(&dir, &parts, &id, &shown)?;
            unpack_entry(&mut entry, &parent, &last, keep_owner).map_err(io(&shown))?;
        }
        Ok(())
    }
}

impl Engine {
    /// What `path` names in the container, symlinks on the way followed
    /// inside its rootfs (and the last one too with `follow`): its real
    /// path there (`/usr/bin` for `/bin` on a merged-/usr image) and its
    /// metadata; `None` when nothing is there.
    pub fn stat_in(
        &self,
        rec: &ContainerRecord,
        path: &str,
        follow: bool,
    ) -> Result<Option<(String, std::fs::Metadata)>, Error> {
        let rootfs = self.rootfs_of(rec)?;
        let io = |source| CopyError::Io {
            id: rec.config.id.clone(),
            path: path.into(),
            source,
        };
        let Some(fd) =
            runtime::rootfile::open(&rootfs, Path::new(path), follow).map_err(|source| {
                CopyError::Resolve {
                    id: rec.config.id.clone(),
                    path: path.into(),
                    source,
                }
            })?
        else {
            return Ok(None);
        };
        let f = File::from(fd);
        let meta = f.metadata().map_err(io)?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).map_err(io)?;
        let base = std::fs::canonicalize(&rootfs).unwrap_or(rootfs);
        let inside = real.strip_prefix(&base).unwrap_or(Path::new(""));
        Ok(Some((format!("/{}", inside.display()), meta)))
    }

    /// `user[:group]` resolved against the container's /etc/passwd and
    /// /etc/group (a build's `COPY --chown`).
    pub fn resolve_user_in(
        &self,
        rec: &ContainerRecord,
        spec: &str,
    ) -> Result<crate::user::ResolvedUser, Error> {
        Ok(crate::user::resolve(&self.rootfs_of(rec)?, spec)?)
    }
}

/// Descends `parts` from `dir`, one component at a time, making missing
/// directories; a symlink on the way is refused, never followed.
fn walk_dirs(
    dir: &File,
    parts: &[std::ffi::OsString],
    id: &str,
    shown: &str,
) -> Result<File, Error> {
    let mut cur = dir.try_clone().map_err(|source| CopyError::Io {
        id: id.into(),
        path: shown.into(),
        source,
    })?;
    for part in parts {
        let next = match open_nofollow(&cur, part) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(at(&cur, part)).map_err(|source| CopyError::Io {
                    id: id.into(),
                    path: shown.into(),
                    source,
                })?;
                open_nofollow(&cur, part).map_err(|source| CopyError::Io {
                    id: id.into(),
                    path: shown.into(),
                    source,
                })?
            }
            Err(source) => {
                return Err(CopyError::Io {
                    id: id.into(),
                    path: shown.into(),
                    source,
                }
                .into())
            }
        };
        let meta = next.metadata().map_err(|source| CopyError::Io {
            id: id.into(),
            path: shown.into(),
            source,
        })?;
        if meta.file_type().is_symlink() {
            return Err(CopyError::ThroughSymlink {
                id: id.into(),
                path: shown.into(),
            }
            .into());
        }
        if !meta.is_dir() {
            return Err(CopyError::NotADirectory {
                id: id.into(),
                path: shown.into(),
            }
            .into());
        }
        cur = next;
    }
    Ok(cur)
}

/// Writes one archive entry as `name` in `dir` (replacing what is there,
/// but a directory).
fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    dir: &File,
    name: &std::ffi::OsStr,
    keep_owner: bool,
) -> std::io::Result<()> {
    let h = entry.header();
    let mode = h.mode().unwrap_or(0o644) & 0o7777;
    let (uid, gid) = match keep_owner {
        true => (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32),
        false => (0, 0),
    };
    let kind = h.entry_type();
    let path = at(dir, name);
    let existing = std::fs::symlink_metadata(&path).ok();
    let replace = |existing: &Option<std::fs::Metadata>| -> std::io::Result<()> {
        match existing {
            Some(m) if m.is_dir() => Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a directory is in the way",
            )),
            Some(_) => std::fs::remove_file(&path),
            None => Ok(()),
        }
    };
    if kind.is_dir() {
        match &existing {
            Some(m) if m.is_dir() => {}
            other => {
                replace(other)?;
                std::fs::create_dir(&path)?;
            }
        }
        let d = open_nofollow(dir, name)?;
        std::os::unix::fs::lchown(fd_path(&d), Some(uid), Some(gid))?;
        std::fs::set_permissions(fd_path(&d), std::fs::Permissions::from_mode(mode))?;
    } else if kind.is_symlink() {
        let target = entry
            .link_name()?
            .ok_or_else(|| std::io::Error::other("a symlink entry without a target"))?
            .into_owned();
        replace(&existing)?;
        std::os::unix::fs::symlink(&target, &path)?;
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
    } else if kind.is_file() || kind == tar::EntryType::Continuous {
        replace(&existing)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        std::io::copy(entry, &mut f)?;
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    } else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("{kind:?} entries are not copied into containers"),
        ));
    }
    Ok(())
}

/// Appends `f` (an `O_PATH` handle) as `name`, and what a directory holds.
fn emit<W: Write>(tar: &mut tar::Builder<W>, f: &File, name: &Path) -> std::io::Result<()> {
    let meta = f.metadata()?;
    let t = meta.file_type();
    let mut h = tar::Header::new_gnu();
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid().into());
    h.set_gid(meta.gid().into());
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    if t.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        tar.append_data(&mut h, name, std::io::empty())?;
        let mut children: Vec<_> = std::fs::read_dir(fd_path(f))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        children.sort();
        for child in children {
            let c = open_nofollow(f, &child)?;
            emit(tar, &c, &name.join(&child))?;
        }
    } else if t.is_file() {
        // Reopened through the handle: the very inode found, for reading.
        let data = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(fd_path(f))?;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(meta.len());
        tar.append_data(&mut h, name, data.take(meta.len()))?;
    } else if t.is_symlink() {
        let target = nix::fcntl::readlinkat(f, "").map_err(std::io::Error::from)?;
        h.set_entry_type(tar::EntryType::Symlink);
        tar.append_link(&mut h, name, Path::new(&target))?;
    } else {
        let kind = if t.is_fifo() {
            tar::EntryType::Fifo
        } else if t.is_char_device() {
            tar::EntryType::Char
        } else if t.is_block_device() {
            tar::EntryType::Block
        } else {
            // A socket: nothing to archive.
            return Ok(());
        };
        h.set_entry_type(kind);
        let rdev = meta.rdev();
        h.set_device_major(libc::major(rdev))?;
        h.set_device_minor(libc::minor(rdev))?;
        tar.append_data(&mut h, name, std::io::empty())?;
    }
    Ok(())
}
