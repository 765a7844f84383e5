//! netns: persistent network namespaces, as `ip netns` and CNI runtimes
//! keep them: a new namespace bind-mounted on a file, so that it outlives
//! the processes in it and plugins, runtimes and QEMU can join it by path.
//! Each namespace is made and entered on a thread of its own, since a
//! network namespace belongs to a thread, and that thread ends right after.

use std::fs::File;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::{sys, Error};

/// Runs `f` on a new thread that has joined the network namespace `ns`
/// (a /proc/<pid>/ns/net or a bind-mounted namespace file).
pub fn in_namespace<T: Send>(
    ns: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send,
) -> Result<T, Error> {
    let target = File::open(ns).map_err(Error::io("opening network namespace", ns))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(&target, CloneFlags::CLONE_NEWNET).map_err(|source| Error::Netns {
                op: "joining",
                path: ns.to_path_buf(),
                source,
            })?;
            f().map_err(Error::io("working in network namespace", ns))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Io {
                op: "a thread panicked in network namespace",
                path: ns.to_path_buf(),
                source: std::io::Error::other("panic"),
            })
        })
    })
}

/// Brings `lo` up in the namespace `ns` (docker gives every container a
/// loopback interface that is up).
pub fn loopback_up(ns: &Path) -> Result<(), Error> {
    in_namespace(ns, sys::loopback_up_here)
}

/// Makes a new network namespace, bind-mounted on `path` (created; its
/// directory must exist), with `lo` up. On error nothing is left at `path`.
pub fn create(path: &Path) -> Result<(), Error> {
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(Error::io("creating", path))?;
    let made = std::thread::scope(|s| {
        s.spawn(|| -> Result<(), Error> {
            let err = |op| {
                move |source| Error::Netns {
                    op,
                    path: path.to_path_buf(),
                    source,
                }
            };
            unshare(CloneFlags::CLONE_NEWNET).map_err(err("making"))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(err("bind-mounting"))?;
            sys::loopback_up_here().map_err(Error::io("bringing up lo in", path))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Io {
                op: "a thread panicked making",
                path: path.to_path_buf(),
                source: std::io::Error::other("panic"),
            })
        })
    });
    if made.is_err() {
        let _ = remove(path);
    }
    made
}

/// Unmounts and removes the namespace file at `path`; the namespace goes
/// away with its last user. Absent already is not an error.
pub fn remove(path: &Path) -> Result<(), Error> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(source) => {
            return Err(Error::Netns {
                op: "unmounting",
                path: path.to_path_buf(),
                source,
            })
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path)(e)),
    }
}

/// Whether `path` is a mounted namespace (not only the empty file left by
/// a crash between create and mount, or after a reboot).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    // An nsfs inode lives on the nsfs device, not on the file system of the
    // directory holding the file.
    let dir = path.parent().and_then(|p| std::fs::metadata(p).ok());
    use std::os::unix::fs::MetadataExt;
    dir.is_some_and(|d| d.dev() != meta.dev())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_join_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns1");
        create(&path).unwrap();
        assert!(is_mounted(&path));
        // A namespace of its own: only lo, and it is up.
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(["ip", "-br", "link"])
            .output()
            .unwrap();
        let links = String::from_utf8(out.stdout).unwrap();
        assert_eq!(links.lines().count(), 1, "{links}");
        assert!(
            links.starts_with("lo ") && !links.contains("DOWN"),
            "{links}"
        );
        let own = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let theirs =
            in_namespace(&path, || std::fs::read_link("/proc/thread-self/ns/net")).unwrap();
        assert_ne!(own, theirs);
        assert!(create(&path).is_err(), "a second create at the same path");
        remove(&path).unwrap();
        assert!(!path.exists());
        remove(&path).unwrap();
    }
}
