//! mounts: performs the OCI `mounts` list inside the container's new mount
//! namespace, before pivot_root. Destinations are opened with openat2
//! RESOLVE_IN_ROOT under the rootfs and mounted through /proc/self/fd, so a
//! symlink in the rootfs can never redirect a mount onto the host.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Mount;

use crate::init::SetupError;
use crate::{spec, sys};

/// Mount flags and the remaining filesystem-specific data of an OCI mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Propagation changes applied after the mount (MS_SHARED, MS_SLAVE, ...).
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes ("rro", "rnosuid", ...): MOUNT_ATTR_* to set and clear
    /// on the mount and everything below it (mount_setattr with AT_RECURSIVE).
    pub recursive_set: u64,
    pub recursive_clear: u64,
    pub data: Vec<String>,
}

impl MountOptions {
    pub fn data(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// Parses OCI/fstab mount options the way runc does.
pub fn parse_options(opts: &[String]) -> MountOptions {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        recursive_set: 0,
        recursive_clear: 0,
        data: Vec::new(),
    };
    for opt in opts {
        let (clear, flag) = match opt.as_str() {
            "defaults" => (false, MsFlags::empty()),
            "ro" => (false, MsFlags::MS_RDONLY),
            "rw" => (true, MsFlags::MS_RDONLY),
            "suid" => (true, MsFlags::MS_NOSUID),
            "nosuid" => (false, MsFlags::MS_NOSUID),
            "dev" => (true, MsFlags::MS_NODEV),
            "nodev" => (false, MsFlags::MS_NODEV),
            "exec" => (true, MsFlags::MS_NOEXEC),
            "noexec" => (false, MsFlags::MS_NOEXEC),
            "sync" => (false, MsFlags::MS_SYNCHRONOUS),
            "async" => (true, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (false, MsFlags::MS_DIRSYNC),
            "remount" => (false, MsFlags::MS_REMOUNT),
            "mand" => (false, MsFlags::MS_MANDLOCK),
            "nomand" => (true, MsFlags::MS_MANDLOCK),
            "atime" => (true, MsFlags::MS_NOATIME),
            "noatime" => (false, MsFlags::MS_NOATIME),
            "diratime" => (true, MsFlags::MS_NODIRATIME),
            "nodiratime" => (false, MsFlags::MS_NODIRATIME),
            "bind" => (false, MsFlags::MS_BIND),
            "rbind" => (false, MsFlags::MS_BIND | MsFlags::MS_REC),
            "relatime" => (false, MsFlags::MS_RELATIME),
            "norelatime" => (true, MsFlags::MS_RELATIME),
            "strictatime" => (false, MsFlags::MS_STRICTATIME),
            "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation
                    .push(propagation_flag(opt).unwrap_or(MsFlags::empty()));
                continue;
            }
            // Options other runtimes understand that change nothing here.
            "tmpcopyup" | "idmap" | "ridmap" => continue,
            r if recursive_attr(r).is_some() => {
                let (set, attr) = recursive_attr(r).unwrap_or((true, 0));
                if set {
                    o.recursive_set |= attr;
                    o.recursive_clear &= !attr;
                } else {
                    o.recursive_clear |= attr;
                    o.recursive_set &= !attr;
                }
                continue;
            }
            _ => {
                o.data.push(opt.clone());
                continue;
            }
        };
        if clear {
            o.flags.remove(flag);
        } else {
            o.flags.insert(flag);
        }
    }
    o
}

/// A recursive mount option: (set or clear, MOUNT_ATTR_* bit).
fn recursive_attr(name: &str) -> Option<(bool, u64)> {
    const RDONLY: u64 = 0x1;
    const NOSUID: u64 = 0x2;
    const NODEV: u64 = 0x4;
    const NOEXEC: u64 = 0x8;
    const NOATIME: u64 = 0x10;
    const STRICTATIME: u64 = 0x20;
    const NODIRATIME: u64 = 0x80;
    const NOSYMFOLLOW: u64 = 0x0020_0000;
    Some(match name {
        "rro" => (true, RDONLY),
        "rrw" => (false, RDONLY),
        "rnosuid" => (true, NOSUID),
        "rsuid" => (false, NOSUID),
        "rnodev" => (true, NODEV),
        "rdev" => (false, NODEV),
        "rnoexec" => (true, NOEXEC),
        "rexec" => (false, NOEXEC),
        "rnoatime" => (true, NOATIME),
        "rstrictatime" => (true, STRICTATIME),
        "rnodiratime" => (true, NODIRATIME),
        "rdiratime" => (false, NODIRATIME),
        "rnosymfollow" => (true, NOSYMFOLLOW),
        "rsymfollow" => (false, NOSYMFOLLOW),
        _ => return None,
    })
}

/// The flags of a propagation name ("rslave", "private", ...).
pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// The path through which mount(2) reaches an opened fd.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Resolves symlinks in `path` as if `root` were "/" (absolute targets and
/// ".." stay inside it), for paths whose tail does not exist yet: the result
/// names, inside the root, what must be created.
fn resolve_in_root(root: BorrowedFd<'_>, path: &Path) -> Result<PathBuf, SetupError> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    // The names still to walk: "." and the root are no steps, ".." is one.
    let steps = |p: &Path| -> VecDeque<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect()
    };
    let mut pending = steps(path);
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let parent = match sys::open_in_root(root, &resolved, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(_) => {
                // Nothing below a missing directory can be a link.
                resolved.push(&c);
                continue;
            }
        };
        match nix::fcntl::readlinkat(&parent, c.as_os_str()) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    return Err(SetupError::path("resolve", path, Errno::ELOOP));
                }
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                let mut front = steps(&target);
                front.extend(pending);
                pending = front;
            }
            Err(_) => resolved.push(&c),
        }
    }
    Ok(resolved)
}

/// Opens (creating it and its parents when missing) `path` inside `root`,
/// as a directory or as an empty file. Never leaves `root`.
pub fn open_or_create_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    as_dir: bool,
) -> Result<OwnedFd, SetupError> {
    match sys::open_in_root(root, path, libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(SetupError::path("open inside the rootfs", path, e)),
    }
    // Part of the path is missing, possibly behind a dangling symlink:
    // resolve the links ourselves (inside the root) to know what to create.
    let path = &resolve_in_root(root, path)?;
    let mut cur = sys::open_in_root(root, Path::new("/"), libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| SetupError::path("open the rootfs", path, e))?;
    let comps: Vec<_> = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut sofar = PathBuf::from("/");
    for (i, c) in comps.iter().enumerate() {
        sofar.push(c);
        let last = i + 1 == comps.len();
        match sys::open_in_root(root, &sofar, libc::O_PATH) {
            Ok(fd) => {
                cur = fd;
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(SetupError::path("open inside the rootfs", &sofar, e)),
        }
        if last && !as_dir {
            let f = nix::fcntl::openat(
                &cur,
                c.as_os_str(),
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o644),
            )
            .map_err(|e| SetupError::path("create mount point", &sofar, e))?;
            let _ = nix::unistd::close(f);
        } else {
            match nix::sys::stat::mkdirat(&cur, c.as_os_str(), Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(SetupError::path("create directory", &sofar, e)),
            }
        }
        cur = sys::open_in_root(root, &sofar, libc::O_PATH)
            .map_err(|e| SetupError::path("open inside the rootfs", &sofar, e))?;
    }
    Ok(cur)
}

/// Mounts one OCI mount under the rootfs (`root` is an fd of the rootfs).
pub fn mount_one(
    root: BorrowedFd<'_>,
    m: &Mount,
    bundle: &Path,
    new_cgroupns: bool,
) -> Result<(), SetupError> {
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = m.destination();
    if opts.is_bind() || typ == "bind" {
        return mount_bind(root, m, bundle, &opts);
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return crate::cgroupfs::mount(root, dest, &opts, new_cgroupns);
    }
    let target = if typ == "proc" || typ == "sysfs" {
        open_ordinary_dir(root, dest, typ)?
    } else {
        open_or_create_in_root(root, dest, true)?
    };
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let data = opts.data();
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    mount(
        Some(&source),
        &fd_path(target.as_fd()),
        Some(typ),
        flags,
        data.as_deref(),
    )
    .map_err(|e| SetupError::mount(typ, dest, e))?;
    apply_recursive(root, dest, &opts)?;
    apply_propagation(root, dest, &opts)
}

/// The destination of a proc or sysfs mount, which must be a directory
/// itself, not a symlink to one (nor a file), as runc requires: procfs
/// mounted through an image's link lands wherever the image chose. Opened
/// with O_NOFOLLOW, so what is checked is what gets mounted on.
fn open_ordinary_dir(root: BorrowedFd<'_>, dest: &Path, typ: &str) -> Result<OwnedFd, SetupError> {
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return open_or_create_in_root(root, dest, true);
    };
    let parent = open_or_create_in_root(root, parent, true)?;
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut created = false;
    loop {
        match nix::fcntl::openat(&parent, name, flags, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) if !created => {
                match nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => created = true,
                    Err(e) => return Err(SetupError::path("create directory", dest, e)),
                }
            }
            Err(Errno::ENOTDIR | Errno::ELOOP) => {
                return Err(SetupError::NotOrdinaryDirectory {
                    fstype: typ.to_string(),
                    dest: dest.to_path_buf(),
                })
            }
            Err(e) => return Err(SetupError::path("open mount point", dest, e)),
        }
    }
}

fn mount_bind(
    root: BorrowedFd<'_>,
    m: &Mount,
    bundle: &Path,
    opts: &MountOptions,
) -> Result<(), SetupError> {
    let dest = m.destination();
    let source = m.source().as_ref().ok_or_else(|| {
        spec::invalid(
            "mounts[].source",
            format!("is missing for the bind mount on {}", dest.display()),
        )
    })?;
    let source = bundle.join(source);
    let meta = fs::metadata(&source).map_err(|e| SetupError::Io {
        op: "bind mount source",
        path: source.clone(),
        source: e,
    })?;
    let target = open_or_create_in_root(root, dest, meta.is_dir())?;
    let tpath = fd_path(target.as_fd());
    let rec = opts.flags & MsFlags::MS_REC;
    mount(
        Some(&source),
        &tpath,
        None::<&str>,
        MsFlags::MS_BIND | rec,
        None::<&str>,
    )
    .map_err(|e| SetupError::mount("bind", dest, e))?;
    let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        // The fd opened before the mount points below it: reopen.
        let mounted = reopen(root, dest)?;
        remount_bind(&fd_path(mounted.as_fd()), dest, extra)?;
    }
    apply_recursive(root, dest, opts)?;
    apply_propagation(root, dest, opts)
}

/// Applies rro/rnosuid/... to the mount at `dest` and all mounts below it.
fn apply_recursive(
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), SetupError> {
    if opts.recursive_set == 0 && opts.recursive_clear == 0 {
        return Ok(());
    }
    let target = reopen(root, dest)?;
    let mut clear = opts.recursive_clear;
    if opts.recursive_set & (0x10 | 0x20) != 0 {
        clear |= 0x70; // MOUNT_ATTR__ATIME: the atime modes are one field
    }
    sys::mount_setattr_recursive(target.as_fd(), opts.recursive_set, clear)
        .map_err(|e| SetupError::mount("set recursive attributes of", dest, e))
}

/// Opens `dest` inside `root` again, reaching what is now mounted there.
pub fn reopen(root: BorrowedFd<'_>, dest: &Path) -> Result<OwnedFd, SetupError> {
    sys::open_in_root(root, dest, libc::O_PATH)
        .map_err(|e| SetupError::path("open inside the rootfs", dest, e))
}

/// Remounts a bind mount with `flags` (ro, nosuid, ...), keeping the flags
/// the kernel locks (those of the source mount) so it works in a user namespace.
pub fn remount_bind(target: &Path, shown: &Path, flags: MsFlags) -> Result<(), SetupError> {
    let locked = nix::sys::statvfs::statvfs(target)
        .map(|s| {
            use nix::sys::statvfs::FsFlags;
            let f = s.flags();
            let mut m = MsFlags::empty();
            for (a, b) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
                (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
            ] {
                if f.contains(a) {
                    m |= b;
                }
            }
            m
        })
        .unwrap_or(MsFlags::empty());
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked,
        None::<&str>,
    )
    .map_err(|e| SetupError::mount("remount", shown, e))
}

fn apply_propagation(
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), SetupError> {
    if opts.propagation.is_empty() {
        return Ok(());
    }
    let target = reopen(root, dest)?;
    let target = target.as_fd();
    for p in &opts.propagation {
        mount(
            None::<&str>,
            &fd_path(target),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .map_err(|e| SetupError::mount("set propagation of", dest, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let o = parse_options(&[
            "nosuid".into(),
            "rbind".into(),
            "ro".into(),
            "mode=755".into(),
            "rslave".into(),
            "size=65536k".into(),
        ]);
        assert!(o.flags.contains(
            MsFlags::MS_NOSUID | MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        ));
        assert_eq!(o.data().as_deref(), Some("mode=755,size=65536k"));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert!(!parse_options(&["ro".into(), "rw".into()])
            .flags
            .contains(MsFlags::MS_RDONLY));
    }
}
