//! rootfile: reads a small file that a container controls (its /etc/passwd,
//! /etc/group) from the host side without trusting it. The path is resolved
//! inside the rootfs (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, so
//! neither a symlink nor ".." reaches a host file); the file is opened with
//! O_PATH first and must be a regular file before it is opened for reading
//! (through /proc/self/fd, the same inode), so a FIFO cannot block and a
//! device node is never opened at all; the read stops at a size limit.
//! It knows nothing of users or containers: callers say what they read.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::sys;

/// The default read limit: far above any real passwd or group file.
pub const DEFAULT_LIMIT: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RootFileError {
    #[error("opening {path} in the root filesystem {root}")]
    Open {
        root: PathBuf,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} in the root filesystem {root} is {kind}, not a regular file")]
    NotRegular {
        root: PathBuf,
        path: PathBuf,
        kind: &'static str,
    },
    #[error("{path} in the root filesystem {root} is larger than {limit} bytes")]
    TooLarge {
        root: PathBuf,
        path: PathBuf,
        limit: u64,
    },
    #[error("reading {path} in the root filesystem {root}")]
    Read {
        root: PathBuf,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a plain file"
    }
}

/// Reads `path` (absolute or relative, taken as inside `root`) from the
/// root filesystem `root`, at most `limit` bytes. `Ok(None)` when it does
/// not exist (nor does a directory on its way); a file of another type, a
/// larger one, or a symlink loop is an error naming `path`.
pub fn read(root: &Path, path: &Path, limit: u64) -> Result<Option<Vec<u8>>, RootFileError> {
    let open_err = |source: std::io::Error| RootFileError::Open {
        root: root.to_path_buf(),
        path: path.to_path_buf(),
        source,
    };
    let Some(located) = open(root, path, true)?.map(File::from) else {
        return Ok(None);
    };
    let meta = located.metadata().map_err(open_err)?;
    if !meta.file_type().is_file() {
        return Err(RootFileError::NotRegular {
            root: root.to_path_buf(),
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    let too_large = || RootFileError::TooLarge {
        root: root.to_path_buf(),
        path: path.to_path_buf(),
        limit,
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    // Reopening the O_PATH descriptor opens the very inode checked above,
    // whatever the container renames meanwhile.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(format!("/proc/self/fd/{}", located.as_raw_fd()))
        .map_err(open_err)?;
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|source| RootFileError::Read {
            root: root.to_path_buf(),
            path: path.to_path_buf(),
            source,
        })?;
    if data.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(Some(data))
}

/// An `O_PATH` descriptor of what `path` names inside the root filesystem
/// `root`, resolved as the container would see it (symlinks and ".." stay
/// inside `root`); with `follow_last` false a final symlink is the link
/// itself. `Ok(None)` when it does not exist. What the container renames
/// afterwards does not change what the descriptor is: callers walk from it
/// with `openat(..., O_NOFOLLOW)` (`isola cp`).
pub fn open(
    root: &Path,
    path: &Path,
    follow_last: bool,
) -> Result<Option<std::os::fd::OwnedFd>, RootFileError> {
    let open_err = |source: std::io::Error| RootFileError::Open {
        root: root.to_path_buf(),
        path: path.to_path_buf(),
        source,
    };
    // The root itself is the caller's (a host path it chose), not the container's.
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_PATH)
        .open(root)
        .map_err(open_err)?;
    let flags = libc::O_PATH | if follow_last { 0 } else { libc::O_NOFOLLOW };
    match sys::open_in_root(dir.as_fd(), path, flags) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(open_err(e.into())),
    }
}

/// The host path of the directory `path` names inside the root filesystem
/// `root`, resolved as the container would see it (symlinks and ".." stay
/// inside `root`). `Ok(None)` when it does not exist or is not a
/// directory. The path is good for as long as nothing renames within
/// `root`: for a root filesystem no container runs in yet (a volume's
/// copy-up at create).
pub fn resolve_dir(root: &Path, path: &Path) -> Result<Option<PathBuf>, RootFileError> {
    let open_err = |source: std::io::Error| RootFileError::Open {
        root: root.to_path_buf(),
        path: path.to_path_buf(),
        source,
    };
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_PATH)
        .open(root)
        .map_err(open_err)?;
    let located = match sys::open_in_root(dir.as_fd(), path, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => File::from(fd),
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
        Err(e) => return Err(open_err(e.into())),
    };
    let real =
        std::fs::read_link(format!("/proc/self/fd/{}", located.as_raw_fd())).map_err(open_err)?;
    let real_root =
        std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).map_err(open_err)?;
    if !real.starts_with(&real_root) {
        // Only a rename racing the lookup gets here.
        return Err(open_err(std::io::Error::from_raw_os_error(libc::EXDEV)));
    }
    Ok(Some(real))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        d
    }

    fn read_passwd(r: &Path) -> Result<Option<Vec<u8>>, RootFileError> {
        read(r, Path::new("/etc/passwd"), 1024)
    }

    #[test]
    fn directories_resolve_inside_the_root() {
        let r = root();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(r.path().join("etc/data")).unwrap();
        let found = resolve_dir(r.path(), Path::new("/etc/data")).unwrap();
        assert_eq!(found.unwrap(), r.path().join("etc/data"));
        // A link out of the root lands inside it (where nothing is).
        symlink(outside.path(), r.path().join("out")).unwrap();
        assert!(resolve_dir(r.path(), Path::new("/out")).unwrap().is_none());
        symlink("../../../..", r.path().join("up")).unwrap();
        assert_eq!(
            resolve_dir(r.path(), Path::new("/up/etc"))
                .unwrap()
                .unwrap(),
            r.path().join("etc")
        );
        std::fs::write(r.path().join("file"), "").unwrap();
        assert!(resolve_dir(r.path(), Path::new("/file")).unwrap().is_none());
        assert!(resolve_dir(r.path(), Path::new("/none")).unwrap().is_none());
    }

    #[test]
    fn reads_a_regular_file_and_reports_a_missing_one() {
        let r = root();
        assert!(read_passwd(r.path()).unwrap().is_none());
        assert!(read(r.path(), Path::new("/nodir/passwd"), 10)
            .unwrap()
            .is_none());
        std::fs::write(r.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        assert_eq!(
            read_passwd(r.path()).unwrap().unwrap(),
            b"root:x:0:0::/:/bin/sh\n"
        );
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let r = root();
        let secret = r.path().join("host-secret");
        std::fs::write(&secret, "secret").unwrap();
        // Absolute, and climbing out with "..": both stay inside `r/etc`.
        let inner = r.path().join("etc");
        symlink(&secret, inner.join("passwd")).unwrap();
        assert!(read(&inner, Path::new("passwd"), 100).unwrap().is_none());
        std::fs::remove_file(inner.join("passwd")).unwrap();
        symlink("../../../../host-secret", inner.join("passwd")).unwrap();
        assert!(read(&inner, Path::new("passwd"), 100).unwrap().is_none());
        // A link that stays inside is followed.
        std::fs::write(inner.join("real"), "inside").unwrap();
        std::fs::remove_file(inner.join("passwd")).unwrap();
        symlink("/real", inner.join("passwd")).unwrap();
        assert_eq!(
            read(&inner, Path::new("passwd"), 100).unwrap().unwrap(),
            b"inside"
        );
    }

    #[test]
    fn fifos_devices_directories_and_large_files_are_refused() {
        let r = root();
        let p = r.path().join("etc/passwd");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let e = read_passwd(r.path()).unwrap_err();
        assert!(matches!(e, RootFileError::NotRegular { .. }), "{e:?}");
        assert!(e.to_string().contains("/etc/passwd"), "{e}");
        assert!(e.to_string().contains("FIFO"), "{e}");
        std::fs::remove_file(&p).unwrap();

        symlink("/dev/zero", &p).unwrap();
        std::fs::create_dir(r.path().join("dev")).unwrap();
        nix::sys::stat::mknod(
            &r.path().join("dev/zero"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 5),
        )
        .unwrap();
        let e = read_passwd(r.path()).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        std::fs::remove_file(&p).unwrap();

        std::fs::create_dir(&p).unwrap();
        let e = read_passwd(r.path()).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        std::fs::remove_dir(&p).unwrap();

        std::fs::write(&p, vec![b'x'; 1025]).unwrap();
        let e = read_passwd(r.path()).unwrap_err();
        assert!(matches!(e, RootFileError::TooLarge { .. }), "{e:?}");
        std::fs::write(&p, vec![b'x'; 1024]).unwrap();
        assert_eq!(read_passwd(r.path()).unwrap().unwrap().len(), 1024);
    }

    #[test]
    fn a_symlink_loop_is_an_error_naming_the_file() {
        let r = root();
        symlink("/etc/passwd", r.path().join("etc/passwd")).unwrap();
        let e = read_passwd(r.path()).unwrap_err();
        assert!(matches!(e, RootFileError::Open { .. }), "{e:?}");
        assert!(e.to_string().contains("/etc/passwd"), "{e}");
    }
}
