//! cgroupfs: the OCI `cgroup` mount inside a container: how the container
//! sees /sys/fs/cgroup. With a new cgroup namespace each hierarchy is mounted
//! afresh (the kernel shows the namespace root); without one, the container's
//! own cgroup directories are bind mounted. Managing cgroups (limits,
//! membership) is not done here but in `cgroups`.

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::mount::{mount as mount2, MsFlags};

use crate::cgroups::mountinfo;
use crate::init::SetupError;
use crate::mounts::{fd_path, open_or_create_in_root, remount_bind, reopen, MountOptions};

/// The calling process's cgroup path per hierarchy key: "cpu,cpuacct",
/// "name=systemd", or "" for the v2 hierarchy.
fn own_cgroups() -> HashMap<String, String> {
    fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, ':');
            p.next()?;
            Some((p.next()?.to_string(), p.next()?.to_string()))
        })
        .collect()
}

/// Mounts the cgroup filesystem view on `dest` inside `root`.
pub fn mount(
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &MountOptions,
    new_cgroupns: bool,
) -> Result<(), SetupError> {
    // Without mountinfo nothing is known to be mounted: the v1 branch then
    // makes an empty tmpfs.
    let infos = mountinfo::read().unwrap_or_default();
    let own = own_cgroups();
    let flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let base = Path::new("/sys/fs/cgroup");
    let target = open_or_create_in_root(root, dest, true)?;

    if infos
        .iter()
        .any(|m| m.mount_point == base && m.fs_type == "cgroup2")
    {
        // Pure v2: one hierarchy.
        drop(target);
        return mount_hierarchy(
            root,
            dest,
            "cgroup2",
            "",
            base,
            own.get(""),
            flags,
            new_cgroupns,
        );
    }

    // v1 or hybrid: a tmpfs holding one directory per hierarchy.
    mount2(
        Some("tmpfs"),
        &fd_path(target.as_fd()),
        Some("tmpfs"),
        flags & !MsFlags::MS_RDONLY,
        Some("mode=755"),
    )
    .map_err(|e| SetupError::mount("tmpfs", dest, e))?;
    drop(target);
    for m in infos.iter().filter(|m| {
        m.mount_point.parent() == Some(base) && (m.fs_type == "cgroup" || m.fs_type == "cgroup2")
    }) {
        let Some(name) = m.mount_point.file_name() else {
            continue;
        };
        let sub_dest = dest.join(name);
        let (controllers, key) = if m.fs_type == "cgroup2" {
            (String::new(), String::new())
        } else {
            let c: Vec<&str> = m
                .super_options
                .split(',')
                .filter(|o| *o != "rw" && *o != "ro")
                .collect();
            (c.join(","), c.join(","))
        };
        let own_path = own.get(&key).or_else(|| {
            // /proc/self/cgroup lists comounted controllers in kernel order.
            own.iter()
                .find(|(k, _)| {
                    let mut a: Vec<&str> = k.split(',').collect();
                    let mut b: Vec<&str> = key.split(',').collect();
                    a.sort();
                    b.sort();
                    a == b
                })
                .map(|(_, v)| v)
        });
        let path_in_hierarchy = own_path.map(|p| {
            // mountinfo's root is where the host mount starts in the hierarchy.
            let r = m.root.trim_end_matches('/');
            p.strip_prefix(r).unwrap_or(p).to_string()
        });
        mount_hierarchy(
            root,
            &sub_dest,
            &m.fs_type,
            &controllers,
            &m.mount_point,
            path_in_hierarchy.as_ref(),
            flags,
            new_cgroupns,
        )?;
        let name = name.to_string_lossy();
        if name.contains(',') {
            let dir = open_or_create_in_root(root, dest, true)?;
            for part in name.split(',') {
                let _ = nix::unistd::symlinkat(name.as_ref(), &dir, part);
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let target = open_or_create_in_root(root, dest, true)?;
        mount2(
            None::<&str>,
            &fd_path(target.as_fd()),
            None::<&str>,
            MsFlags::MS_REMOUNT | flags,
            Some("mode=755"),
        )
        .map_err(|e| SetupError::mount("remount read-only", dest, e))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn mount_hierarchy(
    root: BorrowedFd<'_>,
    shown: &Path,
    fs_type: &str,
    controllers: &str,
    host_mount: &Path,
    own_path: Option<&String>,
    flags: MsFlags,
    new_cgroupns: bool,
) -> Result<(), SetupError> {
    let target = open_or_create_in_root(root, shown, true)?;
    let target = &fd_path(target.as_fd());
    if new_cgroupns {
        let data = (!controllers.is_empty()).then_some(controllers);
        return mount2(Some(fs_type), target, Some(fs_type), flags, data)
            .map_err(|e| SetupError::mount(fs_type, shown, e));
    }
    let rel = own_path.map(|p| p.trim_start_matches('/')).unwrap_or("");
    let source = host_mount.join(rel);
    mount2(
        Some(&source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| SetupError::mount("bind cgroup", shown, e))?;
    if !flags.is_empty() {
        let mounted = reopen(root, shown)?;
        remount_bind(&fd_path(mounted.as_fd()), shown, flags)?;
    }
    Ok(())
}
