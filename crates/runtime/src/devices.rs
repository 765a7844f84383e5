//! devices: the device nodes and /dev links a container gets: the default
//! set every OCI runtime creates, then `linux.devices`. Runs before
//! pivot_root, under the rootfs; device cgroup rules are the cgroups
//! module's business.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::init::SetupError;
use crate::mounts::{fd_path, open_or_create_in_root};
use crate::{spec, sys};

/// A device node to create.
pub struct DeviceNode {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// /dev/null, zero, full, random, urandom and tty, as runc creates them.
pub fn default_devices() -> Vec<DeviceNode> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, major, minor)| DeviceNode {
        path: p.into(),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

pub fn from_spec(d: &LinuxDevice) -> DeviceNode {
    let kind = match d.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    DeviceNode {
        path: d.path().clone(),
        kind,
        major: d.major().max(0) as u64,
        minor: d.minor().max(0) as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    }
}

/// Creates `dev` under `root`. In a user namespace mknod is not allowed, so
/// the host's node at the same path is bind mounted instead (as runc does).
pub fn create(
    root: BorrowedFd<'_>,
    dev: &DeviceNode,
    bind_from_host: bool,
) -> Result<(), SetupError> {
    let parent = dev.path.parent().unwrap_or(Path::new("/"));
    let name = dev.path.file_name().ok_or_else(|| {
        spec::invalid(
            "linux.devices[].path",
            format!("{} has no file name", dev.path.display()),
        )
    })?;
    let dir = open_or_create_in_root(root, parent, true)?;
    // O_PATH fds work as dirfd for the *at calls, but mknodat needs a real one.
    let dirfd = sys::open_in_root(root, parent, libc::O_DIRECTORY | libc::O_RDONLY)
        .map_err(|e| SetupError::path("open", parent, e))?;
    drop(dir);
    if !bind_from_host {
        let _ = nix::unistd::unlinkat(&dirfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        match mknodat(
            &dirfd,
            name,
            dev.kind,
            Mode::from_bits_truncate(dev.mode),
            makedev(dev.major, dev.minor),
        ) {
            Ok(()) => {
                // mknod applies the umask: set the mode exactly.
                nix::sys::stat::fchmodat(
                    &dirfd,
                    name,
                    Mode::from_bits_truncate(dev.mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| SetupError::path("chmod device", &dev.path, e))?;
                fchownat(
                    &dirfd,
                    name,
                    Some(Uid::from_raw(dev.uid)),
                    Some(Gid::from_raw(dev.gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| SetupError::path("chown device", &dev.path, e))?;
                return Ok(());
            }
            Err(Errno::EPERM) => {}
            Err(e) => return Err(SetupError::path("mknod", &dev.path, e)),
        }
    }
    let target = open_or_create_in_root(root, &dev.path, false)?;
    mount(
        Some(&dev.path),
        &fd_path(target.as_fd()),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| SetupError::mount("bind device", &dev.path, e))
}

/// The /dev links: fd, stdin, stdout, stderr, ptmx → pts/ptmx, core.
pub fn create_links(root: BorrowedFd<'_>) -> Result<(), SetupError> {
    let dev = open_or_create_in_root(root, Path::new("/dev"), true)?;
    let dev = sys::open_in_root(root, Path::new("/dev"), libc::O_DIRECTORY | libc::O_RDONLY)
        .map_err(|e| SetupError::path("open", "/dev", e))
        .inspect(|_| drop(dev))?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match nix::unistd::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(SetupError::path("symlink", Path::new("/dev").join(name), e)),
        }
    }
    match nix::unistd::unlinkat(&dev, "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(SetupError::path("remove", "/dev/ptmx", e)),
    }
    nix::unistd::symlinkat("pts/ptmx", &dev, "ptmx")
        .map_err(|e| SetupError::path("symlink", "/dev/ptmx", e))
}
