//! jail: where, and as whom, a utility VM's QEMU runs, set up between fork
//! and exec in the order Firecracker's jailer uses. It owns the jail's
//! policy (namespaces, the capabilities kept and why, rlimits) and the
//! per-VM jail directory; [`crate::sys::enter_jail`] performs the steps.
//! It must not know about containers or the agent protocol.
//!
//! What QEMU gets, and nothing else:
//! - its own mount namespace, pivoted into `<run dir>/jail`, a read-only
//!   directory holding the guest kernel, the initramfs, the container's
//!   rootfs and shares (each bind `nosuid,nodev`; read-only ones read-only
//!   here too), `/dev/null`, `/dev/urandom`, `/dev/kvm` under KVM, and
//!   `/usr` read-only (QEMU is dynamically linked and `dlopen`s its TCG
//!   accelerator and device modules from there; `/usr` holds only software
//!   every host user can read), and a `/proc` of its own PID namespace with
//!   processes only (`subset=pid`; 9p reaches files through
//!   `/proc/self/fd`). No `/sys`, `/etc` (but the loader's cache), `/var`,
//!   `/home`, no other device. Its sockets and the console are
//!   descriptors the host opened, so QEMU writes no file of its own;
//! - its own PID (QEMU is its init), IPC, UTS, cgroup and network
//!   namespaces: the network one is empty (the guest's NIC is a tap the host
//!   opened in the container's namespace, which QEMU inherits);
//! - the VM's host cgroup before its first instruction (memory and pids
//!   limits), no descriptor but its stdio and those named, `RLIMIT_NOFILE`
//!   and `RLIMIT_CORE` limits, `no_new_privs`;
//! - an unprivileged uid and gid ([`JailUser`]) with only the capabilities
//!   its 9p file server needs ([`KEPT_CAPABILITIES`]) in its effective,
//!   permitted and ambient sets and its bounding set, then QEMU's own
//!   seccomp filter (`-sandbox`, see [`crate::cmdline`]).

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::Error;

/// The uid and gid QEMU runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct JailUser {
    pub uid: u32,
    pub gid: u32,
}

/// The system user QEMU runs as, made (`useradd --system`) when missing.
pub const USER: &str = "isola-vm";

impl JailUser {
    /// [`USER`]'s uid and gid, the user and its group made first if missing.
    pub fn ensure() -> Result<JailUser, Error> {
        if let Some(user) = JailUser::lookup(USER)? {
            return Ok(user);
        }
        let out = std::process::Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
            .arg(USER)
            .output()
            .map_err(|source| Error::Spawn {
                binary: "useradd".into(),
                source,
            })?;
        // Another VM's start may have made it meanwhile (useradd exits 9).
        match JailUser::lookup(USER)? {
            Some(user) => Ok(user),
            None => Err(Error::JailUser {
                user: USER.into(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }),
        }
    }

    /// `name`'s uid and primary gid from /etc/passwd.
    fn lookup(name: &str) -> Result<Option<JailUser>, Error> {
        let passwd = Path::new("/etc/passwd");
        let text = fs::read_to_string(passwd).map_err(Error::io("read", passwd))?;
        Ok(text.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() >= 4 && f[0] == name).then(|| {
                Some(JailUser {
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                })
            })?
        }))
    }
}

/// The capabilities QEMU keeps, each for its 9p server (virtio-9p's `local`
/// backend, `security_model=passthrough` for the rootfs): the guest's root
/// owns and manages every file of its rootfs, which on the host belong to
/// the image's users. Everything else (CAP_SYS_ADMIN, CAP_NET_ADMIN,
/// CAP_SETUID, CAP_KILL, ...) is gone, from the bounding set too.
pub const KEPT_CAPABILITIES: &[(u32, &str, &str)] = &[
    (
        0, // CAP_CHOWN in linux/capability.h
        "CAP_CHOWN",
        "give files the guest creates the guest's owner",
    ),
    (
        1, // CAP_DAC_OVERRIDE in linux/capability.h
        "CAP_DAC_OVERRIDE",
        "read and write the image's files whatever their mode, as the guest's root may",
    ),
    (
        2, // CAP_DAC_READ_SEARCH in linux/capability.h
        "CAP_DAC_READ_SEARCH",
        "search directories whatever their mode",
    ),
    (
        3, // CAP_FOWNER in linux/capability.h
        "CAP_FOWNER",
        "chmod, utimes and xattrs on files QEMU's uid does not own",
    ),
    (
        4, // CAP_FSETID in linux/capability.h
        "CAP_FSETID",
        "keep the setuid/setgid bits the guest sets in its own rootfs (never on volumes: mapped-xattr)",
    ),
    (
        27, // CAP_MKNOD in linux/capability.h
        "CAP_MKNOD",
        "device nodes the guest makes in its rootfs (nodev: QEMU cannot open them)",
    ),
];

/// QEMU's descriptor limit: the 9p server keeps files open for the guest
/// and closes the least used above a share of this.
pub const NOFILE_LIMIT: u64 = 4096;
/// The pids limit of the VM's host cgroup (QEMU's threads: vCPUs, the 9p
/// worker pool, I/O; and the monitor's).
pub const PIDS_LIMIT: i64 = 512;
/// The jail's hostname.
pub const HOSTNAME: &str = "isola-vm";

/// The namespaces QEMU gets of its own.
pub const NAMESPACES: &[&str] = &["mount", "pid", "ipc", "uts", "net", "cgroup"];

/// The capability mask of [`KEPT_CAPABILITIES`].
pub fn kept_mask() -> u64 {
    KEPT_CAPABILITIES
        .iter()
        .fold(0, |m, (cap, _, _)| m | (1u64 << cap))
}

/// How a path is bound into the jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    ReadOnly,
    ReadWrite,
    /// A device node (`/dev/null`, `/dev/kvm`): `nodev` would make it useless.
    Device,
    /// Read-write, and what the host mounts under it later reaches the jail
    /// (a slave of the host's mount: nothing goes the other way).
    Live,
}

/// One bind mount into the jail, prepared for the child (no allocation
/// happens between fork and exec).
pub(crate) struct JailMount {
    pub source: CString,
    pub target: CString,
    pub access: Access,
}

/// A jail ready to enter: every path as a C string, computed before fork.
pub(crate) struct Jail {
    pub root: CString,
    pub mounts: Vec<JailMount>,
    pub user: JailUser,
    pub keep: u64,
    pub last_cap: u32,
    /// `cgroup.procs` of each of the VM's host cgroup directories, joined first.
    pub cgroup_procs: Vec<CString>,
    pub hostname: CString,
}

/// What [`Jail::prepare`] binds.
pub(crate) struct JailParts<'a> {
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub rootfs: &'a crate::Rootfs,
    /// (host directory, read-only, only these files of it, live): a share.
    pub shares: Vec<(&'a Path, bool, Option<&'a [String]>, bool)>,
    pub kvm: bool,
    pub user: JailUser,
    pub cgroup_dirs: Vec<PathBuf>,
}

/// Where things are inside the jail, as QEMU's command line names them.
pub(crate) const KERNEL: &str = "/kernel";
pub(crate) const INITRD: &str = "/initrd";
pub(crate) const ROOTFS: &str = "/rootfs";
/// The image disk and the writable-layer disk ([`crate::Rootfs::Disks`]).
pub(crate) const IMAGE_DISK: &str = "/image.disk";
pub(crate) const WRITABLE_DISK: &str = "/writable.disk";

/// A share's directory inside the jail.
pub(crate) fn share_dir(i: usize) -> String {
    format!("/share{i}")
}

fn cstring(p: &Path) -> Result<CString, Error> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| {
        Error::io("jail", p)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has a NUL byte",
        ))
    })
}

impl Jail {
    /// Makes the jail directory `dir` (emptied first) with a mount point
    /// for each part, and everything [`crate::sys::enter_jail`] needs.
    pub(crate) fn prepare(dir: &Path, parts: &JailParts<'_>) -> Result<Jail, Error> {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(Error::io("remove", dir))?;
        }
        // 0755 root: QEMU's uid may look, never write (the bind of the
        // directory onto itself is made read-only).
        fs::DirBuilder::new()
            .mode(0o755)
            .recursive(true)
            .create(dir)
            .map_err(Error::io("create", dir))?;
        let mut mounts = Vec::new();
        let mut bind = |source: &Path, inside: &str, access: Access| -> Result<(), Error> {
            let target = dir.join(inside.trim_start_matches('/'));
            let is_dir = fs::metadata(source)
                .map_err(Error::io("find", source))?
                .is_dir();
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
            }
            if is_dir {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&target)
                    .map_err(Error::io("create", &target))?;
            } else {
                fs::File::create(&target).map_err(Error::io("create", &target))?;
            }
            mounts.push(JailMount {
                source: cstring(source)?,
                target: cstring(&target)?,
                access,
            });
            Ok(())
        };
        // The mount point of the jail's own proc (see sys::enter_jail).
        let proc_dir = dir.join("proc");
        fs::DirBuilder::new()
            .mode(0o555)
            .create(&proc_dir)
            .map_err(Error::io("create", &proc_dir))?;
        bind(Path::new("/usr"), "/usr", Access::ReadOnly)?;
        // The loader's cache, so QEMU's libraries are found as on the host.
        let ld_cache = Path::new("/etc/ld.so.cache");
        if ld_cache.is_file() {
            bind(ld_cache, "/etc/ld.so.cache", Access::ReadOnly)?;
        }
        bind(Path::new("/dev/null"), "/dev/null", Access::Device)?;
        bind(Path::new("/dev/urandom"), "/dev/urandom", Access::Device)?;
        if parts.kvm {
            bind(Path::new("/dev/kvm"), "/dev/kvm", Access::Device)?;
        }
        bind(parts.kernel, KERNEL, Access::ReadOnly)?;
        bind(parts.initrd, INITRD, Access::ReadOnly)?;
        match parts.rootfs {
            crate::Rootfs::Share(dir) => bind(dir, ROOTFS, Access::ReadWrite)?,
            crate::Rootfs::Disks { image, writable } => {
                bind(image, IMAGE_DISK, Access::ReadOnly)?;
                bind(writable, WRITABLE_DISK, Access::ReadWrite)?;
            }
        }
        for (i, (host, read_only, files, live)) in parts.shares.iter().enumerate() {
            let access = match (*read_only, *live) {
                (true, _) => Access::ReadOnly,
                (false, true) => Access::Live,
                (false, false) => Access::ReadWrite,
            };
            match files {
                // The whole directory.
                None => bind(host, &share_dir(i), access)?,
                // Only these files of it, each bound into a directory of
                // their own: the guest sees none of their siblings.
                Some(files) => {
                    let staging = dir.join(share_dir(i).trim_start_matches('/'));
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&staging)
                        .map_err(Error::io("create", &staging))?;
                    for name in files.iter() {
                        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                            return Err(Error::io("share", host.join(name))(std::io::Error::new(
                                std::io::ErrorKind::InvalidInput,
                                "not a file name",
                            )));
                        }
                        bind(
                            &host.join(name),
                            &format!("{}/{name}", share_dir(i)),
                            access,
                        )?;
                    }
                }
            }
        }
        // Merged-/usr hosts have these as links into /usr; others, as
        // directories of their own (bound read-only).
        for top in ["bin", "sbin", "lib", "lib64", "lib32", "libx32"] {
            let host = Path::new("/").join(top);
            match fs::symlink_metadata(&host) {
                Ok(m) if m.file_type().is_symlink() => {
                    let to = fs::read_link(&host).map_err(Error::io("read", &host))?;
                    let link = dir.join(top);
                    std::os::unix::fs::symlink(&to, &link).map_err(Error::io("create", &link))?;
                }
                Ok(m) if m.is_dir() && top.starts_with("lib") => {
                    bind(&host, &format!("/{top}"), Access::ReadOnly)?;
                }
                _ => {}
            }
        }
        let last_cap = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        let cgroup_procs = parts
            .cgroup_dirs
            .iter()
            .map(|d| cstring(&d.join("cgroup.procs")))
            .collect::<Result<_, _>>()?;
        Ok(Jail {
            root: cstring(dir)?,
            mounts,
            user: parts.user,
            keep: kept_mask(),
            last_cap,
            cgroup_procs,
            hostname: CString::new(HOSTNAME).expect("no NUL"),
        })
    }
}

/// The jail's policy, for `isola info`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JailPolicy {
    pub user: String,
    pub namespaces: Vec<String>,
    pub capabilities: Vec<String>,
    pub root: String,
    pub seccomp: String,
    pub no_new_privs: bool,
    pub nofile: u64,
    pub pids_limit: i64,
    pub memory_limit: String,
    pub shares: String,
}

/// The policy every VM's QEMU runs under, as user `user`.
pub fn policy(user: &str) -> JailPolicy {
    JailPolicy {
        user: user.to_string(),
        namespaces: NAMESPACES.iter().map(|s| s.to_string()).collect(),
        capabilities: KEPT_CAPABILITIES
            .iter()
            .map(|(_, name, _)| name.to_string())
            .collect(),
        root: "a per-VM directory: kernel, initramfs, rootfs disks (the image's read-only) or directory, and shares (nosuid,nodev), /dev/null, /dev/urandom, /dev/kvm under KVM, /usr read-only".into(),
        seccomp: format!("QEMU -sandbox {}", crate::cmdline::SANDBOX),
        no_new_privs: true,
        nofile: NOFILE_LIMIT,
        pids_limit: PIDS_LIMIT,
        memory_limit: format!(
            "guest memory + TCG translation cache + {} MiB, QEMU and the monitor together",
            crate::cmdline::QEMU_HOST_OVERHEAD_MIB
        ),
        shares: "rootfs: the image's disk (EROFS, read-only) and the container's writable disk (ext4) on virtio-blk, or a directory over 9p passthrough under containerd (the image's owners and modes, as in process mode); volumes and bind mounts: 9p mapped-xattr (modes, owners, setuid bits and device nodes the guest makes stay in xattrs, never on the host), single files without their siblings, read-only ones read-only at the device".into(),
    }
}

/// What a running QEMU's jail looks like from the host, read from /proc
/// (`isola inspect`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JailObserved {
    pub pid: u32,
    pub uid: String,
    pub gid: String,
    pub cap_eff: String,
    pub cap_bnd: String,
    pub no_new_privs: bool,
    /// 2: a seccomp filter.
    pub seccomp: u32,
    /// Its cgroup (the v2 or first v1 line of /proc/<pid>/cgroup).
    pub cgroup: String,
    /// The namespaces it does not share with the host's init.
    pub own_namespaces: Vec<String>,
}

/// The jail of the process `pid`, as /proc shows it (None once it is gone).
pub fn observe(pid: u32) -> Option<JailObserved> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("0::") || l.contains(":memory:"))
        .and_then(|l| l.splitn(3, ':').nth(2))
        .unwrap_or_default()
        .to_string();
    let own_namespaces = ["mnt", "pid", "ipc", "uts", "net", "cgroup"]
        .iter()
        .filter(|ns| {
            let theirs = fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok();
            let hosts = fs::read_link(format!("/proc/1/ns/{ns}")).ok();
            theirs.is_some() && theirs != hosts
        })
        .map(|ns| ns.to_string())
        .collect();
    Some(JailObserved {
        pid,
        uid: field("Uid"),
        gid: field("Gid"),
        cap_eff: field("CapEff"),
        cap_bnd: field("CapBnd"),
        no_new_privs: field("NoNewPrivs") == "1",
        seccomp: field("Seccomp").parse().unwrap_or(0),
        cgroup,
        own_namespaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_file_share_binds_only_that_file() {
        let host = tempfile::tempdir().unwrap();
        fs::write(host.path().join("app.conf"), b"x").unwrap();
        fs::write(host.path().join("secret"), b"s").unwrap();
        let kernel = host.path().join("app.conf");
        let run = tempfile::tempdir().unwrap();
        let files = vec!["app.conf".to_string()];
        let jail = Jail::prepare(
            &run.path().join("jail"),
            &JailParts {
                kernel: &kernel,
                initrd: &kernel,
                rootfs: &crate::Rootfs::Share(host.path().into()),
                shares: vec![(host.path(), true, Some(&files), false)],
                kvm: false,
                user: JailUser { uid: 1, gid: 1 },
                cgroup_dirs: vec![],
            },
        )
        .unwrap();
        let targets: Vec<String> = jail
            .mounts
            .iter()
            .map(|m| m.target.to_string_lossy().into_owned())
            .collect();
        let staged = run.path().join("jail/share0/app.conf");
        assert!(
            targets.contains(&staged.display().to_string()),
            "{targets:?}"
        );
        assert!(!run.path().join("jail/share0/secret").exists());
        assert!(jail.keep & (1 << 21) == 0, "CAP_SYS_ADMIN kept");
        assert!(jail.keep & 1 != 0, "CAP_CHOWN dropped");
        let bad = vec!["../secret".to_string()];
        assert!(Jail::prepare(
            &run.path().join("jail2"),
            &JailParts {
                kernel: &kernel,
                initrd: &kernel,
                rootfs: &crate::Rootfs::Share(host.path().into()),
                shares: vec![(host.path(), true, Some(&bad), false)],
                kvm: false,
                user: JailUser { uid: 1, gid: 1 },
                cgroup_dirs: vec![],
            },
        )
        .is_err());
    }
}
