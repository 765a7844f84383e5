//! rootfs: turns the bundle's rootfs into the container's "/" inside the new
//! mount namespace: propagation, the rootfs bind, the OCI mounts, /dev,
//! pivot_root, then what must happen after it (read-only root, masked and
//! read-only paths). Only called in the container's init process, but for
//! the unmount that delete does for a container without a mount namespace.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::init::SetupError;
use crate::mounts::{self, fd_path, open_or_create_in_root, remount_bind};
use crate::{devices, spec, sys};

/// Everything before pivot_root that needs the host's view: propagation,
/// rootfs bind, mounts, devices. Returns an fd of the rootfs.
pub fn prepare(spec: &Spec, rootfs: &Path, bundle: &Path) -> Result<OwnedFd, SetupError> {
    if own_mount_namespace(spec) {
        // Nothing we mount may propagate back to the host.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| SetupError::mount("make / a recursive slave", Path::new("/"), e))?;
    }
    // pivot_root needs the new root to be a mount point; without a mount
    // namespace it holds every mount we make, for delete to detach at once.
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| SetupError::mount("bind the rootfs onto itself", rootfs, e))?;
    let root: OwnedFd = File::open(rootfs)
        .map_err(|e| SetupError::Io {
            op: "open rootfs",
            path: rootfs.to_path_buf(),
            source: e,
        })?
        .into();

    let linux = spec.linux().as_ref();
    let namespaces = linux
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let new_ns = |t| {
        namespaces
            .iter()
            .any(|n| n.typ() == t && n.path().is_none())
    };
    let new_cgroupns = new_ns(LinuxNamespaceType::Cgroup);
    let userns = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User);

    let mut dev_is_bind = false;
    for m in spec.mounts().iter().flatten() {
        if m.destination() == Path::new("/dev") {
            let o = mounts::parse_options(m.options().as_deref().unwrap_or(&[]));
            dev_is_bind = o.is_bind() || m.typ().as_deref() == Some("bind");
        }
        mounts::mount_one(root.as_fd(), m, bundle, new_cgroupns)?;
    }

    if !dev_is_bind {
        for d in devices::default_devices() {
            devices::create(root.as_fd(), &d, userns)?;
        }
        devices::create_links(root.as_fd())?;
    }
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        devices::create(root.as_fd(), &devices::from_spec(d), userns)?;
    }

    // The process's cwd must exist; create it as root like runc does.
    if let Some(p) = spec.process() {
        open_or_create_in_root(root.as_fd(), p.cwd(), true)?;
    }
    Ok(root)
}

/// Makes the rootfs "/" with pivot_root, detaching the old root. With
/// `no_pivot` (for ramfs roots where pivot_root fails) it moves the rootfs
/// over "/" and chroots instead.
pub fn pivot(rootfs: &Path, no_pivot: bool, own_mount_ns: bool) -> Result<(), SetupError> {
    if !own_mount_ns {
        // In the caller's mount namespace neither pivot_root nor MS_MOVE
        // over "/" may happen: chroot, as runc does there.
        nix::unistd::chdir(rootfs).map_err(|e| SetupError::path("chdir", rootfs, e))?;
        nix::unistd::chroot(".").map_err(|e| SetupError::path("chroot", rootfs, e))?;
        return nix::unistd::chdir("/").map_err(|e| SetupError::path("chdir", "/", e));
    }
    if no_pivot {
        nix::unistd::chdir(rootfs).map_err(|e| SetupError::path("chdir", rootfs, e))?;
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(|e| SetupError::mount("move the rootfs over", Path::new("/"), e))?;
        nix::unistd::chroot(".").map_err(|e| SetupError::path("chroot", rootfs, e))?;
        return nix::unistd::chdir("/").map_err(|e| SetupError::path("chdir", "/", e));
    }
    let old = File::open("/").map_err(|e| SetupError::Io {
        op: "open",
        path: "/".into(),
        source: e,
    })?;
    let new = File::open(rootfs).map_err(|e| SetupError::Io {
        op: "open",
        path: rootfs.into(),
        source: e,
    })?;
    nix::unistd::fchdir(&new).map_err(|e| SetupError::path("chdir", rootfs, e))?;
    sys::pivot_root_dot().map_err(|e| SetupError::path("pivot_root to", rootfs, e))?;
    // The old root is now stacked under "."; detach it without letting the
    // unmount propagate anywhere.
    nix::unistd::fchdir(&old).map_err(|e| SetupError::path("chdir", "old root", e))?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| SetupError::mount("make old root a slave", Path::new("/"), e))?;
    umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| SetupError::path("detach the old root", "/", e))?;
    nix::unistd::chdir("/").map_err(|e| SetupError::path("chdir", "/", e))
}

/// Whether the spec asks for a mount namespace (new or joined): without
/// one the container's mounts are made in the caller's.
pub fn own_mount_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Mount))
}

/// Detaches the rootfs bind and every mount below it, which a container
/// without a mount namespace made in the caller's (runc leaves them).
pub fn unmount_in_callers_namespace(rootfs: &Path) -> Result<(), Errno> {
    match umount2(rootfs, MntFlags::MNT_DETACH) {
        // Not a mount point: the setup failed before the bind.
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// After pivot_root: root propagation, read-only root.
pub fn finalize(spec: &Spec) -> Result<(), SetupError> {
    let linux = spec.linux().as_ref();
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        let flags = mounts::propagation_flag(p).ok_or_else(|| {
            spec::invalid(
                "linux.rootfsPropagation",
                format!("{p:?} is not a propagation mode"),
            )
        })?;
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(|e| SetupError::mount("set propagation of", Path::new("/"), e))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        remount_bind(Path::new("/"), Path::new("/"), MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

/// maskedPaths: /dev/null over files, an empty read-only tmpfs over directories.
pub fn mask_paths(paths: &[String]) -> Result<(), SetupError> {
    for_existing_paths(paths, "masked", |_, path, fd| {
        let is_dir = nix::sys::stat::fstat(&fd)
            .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .unwrap_or(false);
        let target = fd_path(fd.as_fd());
        let r = if is_dir {
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some("/dev/null"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        r.map_err(|e| SetupError::mount("mask", path, e))
    })
}

/// readonlyPaths: bind each onto itself, then remount read-only.
pub fn readonly_paths(paths: &[String]) -> Result<(), SetupError> {
    for_existing_paths(paths, "read-only", |root, path, fd| {
        let target = fd_path(fd.as_fd());
        mount(
            Some(&target),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| SetupError::mount("bind", path, e))?;
        // Reopen: the fd points below the new mount.
        let fd = sys::open_in_root(root, path, libc::O_PATH)
            .map_err(|e| SetupError::path("open read-only path", path, e))?;
        remount_bind(
            &fd_path(fd.as_fd()),
            path,
            MsFlags::MS_RDONLY | MsFlags::MS_REC,
        )
    })
}

/// Calls `f` with the root, each of `paths` (`kind` paths, for errors)
/// and an O_PATH fd of it opened without leaving the root; paths that do
/// not exist are skipped, as the runtime spec allows.
fn for_existing_paths(
    paths: &[String],
    kind: &str,
    mut f: impl FnMut(BorrowedFd<'_>, &Path, OwnedFd) -> Result<(), SetupError>,
) -> Result<(), SetupError> {
    let root = File::open("/").map_err(|e| SetupError::Io {
        op: "open",
        path: "/".into(),
        source: e,
    })?;
    for p in paths {
        let path = Path::new(p);
        let fd = match sys::open_in_root(root.as_fd(), path, libc::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(SetupError::path(format!("open {kind} path"), path, e)),
        };
        f(root.as_fd(), path, fd)?;
    }
    Ok(())
}
