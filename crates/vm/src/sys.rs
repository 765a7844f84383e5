//! sys: the vm crate's only unsafe code, what QEMU's child process does
//! between fork and exec. Nothing else belongs here.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::jail::{Access, Jail};

/// Has `command`'s child, before it execs, turn transparent huge pages off
/// for itself (`no_thp`), enter `jail` (when given), close every descriptor
/// but its stdio, and keep `inherit` open across the exec (QEMU's
/// `-incoming fd:`, its sockets, console and tap), in the child only. QEMU
/// thus gets no descriptor of the monitor's (the container's stdio, a pty,
/// a readiness pipe, the caller's own). A jail step that fails writes its
/// name to the child's stderr (QEMU's log) and fails the spawn.
pub(crate) fn in_child_before_exec(
    command: &mut Command,
    no_thp: bool,
    inherit: &[RawFd],
    jail: Option<Jail>,
) {
    let inherit = inherit.to_vec();
    // SAFETY: between fork and exec the closure makes only async-signal-safe
    // system calls (prctl, open, write, close, unshare, mount, chdir,
    // pivot_root, umount2, sethostname, setrlimit, setgroups, setresgid,
    // setresuid, capset, close_range, fcntl) on values computed before the
    // fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if no_thp && libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(jail) = &jail {
                enter_jail(jail)?;
            }
            runtime::close_on_exec_from(3).map_err(std::io::Error::from)?;
            for fd in &inherit {
                if libc::fcntl(*fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Reports a failed jail step on stderr and returns its error.
fn failed(step: &CStr) -> std::io::Error {
    let err = std::io::Error::last_os_error();
    let prefix = b"isola jail: cannot ";
    // SAFETY: write(2) of two byte buffers that outlive the calls, to fd 2.
    unsafe {
        libc::write(2, prefix.as_ptr().cast(), prefix.len());
        libc::write(2, step.as_ptr().cast(), step.to_bytes().len());
        libc::write(2, b"\n".as_ptr().cast(), 1);
    }
    err
}

/// The steps of [`crate::jail`], in the child, in Firecracker's jailer's
/// order. The caller already put the child in a PID namespace of its own.
///
/// Call only between fork and exec: it changes the calling process's
/// namespaces, root, credentials and capabilities for good.
fn enter_jail(jail: &Jail) -> std::io::Result<()> {
    // SAFETY: system calls only, on NUL-terminated strings the jail owns
    // and on structs that live through each call; none allocates.
    unsafe {
        // Into the VM's host cgroup before anything else runs.
        for procs in &jail.cgroup_procs {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(failed(c"join the VM's cgroup"));
            }
            libc::close(fd);
        }
        let namespaces = libc::CLONE_NEWNS
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWCGROUP;
        if libc::unshare(namespaces) != 0 {
            return Err(failed(c"unshare namespaces"));
        }
        let none = std::ptr::null::<libc::c_char>();
        // Nothing propagates between the host and the jail, but into a
        // live share: then the host's mounts are made slaves here (nothing
        // goes back), and every bind but the live ones private again.
        let live = jail.mounts.iter().any(|m| matches!(m.access, Access::Live));
        let propagation = if live {
            libc::MS_SLAVE
        } else {
            libc::MS_PRIVATE
        };
        if libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | propagation,
            std::ptr::null(),
        ) != 0
        {
            return Err(failed(c"make mounts private"));
        }
        let private = |target: *const libc::c_char| {
            !live || libc::mount(none, target, none, libc::MS_PRIVATE, std::ptr::null()) == 0
        };
        let root = jail.root.as_ptr();
        if libc::mount(root, root, none, libc::MS_BIND, std::ptr::null()) != 0 || !private(root) {
            return Err(failed(c"bind the jail directory"));
        }
        for m in &jail.mounts {
            if libc::mount(
                m.source.as_ptr(),
                m.target.as_ptr(),
                none,
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(failed(c"bind a path into the jail"));
            }
            if !matches!(m.access, Access::Live) && !private(m.target.as_ptr()) {
                return Err(failed(c"make a path in the jail private"));
            }
            let flags = match m.access {
                Access::ReadOnly => libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                Access::ReadWrite | Access::Live => {
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC
                }
                Access::Device => libc::MS_NOSUID | libc::MS_NOEXEC,
            };
            let remount = libc::MS_BIND | libc::MS_REMOUNT | flags;
            if libc::mount(none, m.target.as_ptr(), none, remount, std::ptr::null()) != 0 {
                return Err(failed(c"restrict a path in the jail"));
            }
        }
        let ro =
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
        if libc::mount(none, root, none, ro, std::ptr::null()) != 0 {
            return Err(failed(c"make the jail read-only"));
        }
        // pivot_root(".", "."): the old root ends up on top of the new one,
        // then goes, detached, with every host mount under it.
        if libc::chdir(root) != 0
            || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
        {
            return Err(failed(c"pivot into the jail"));
        }
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
            return Err(failed(c"detach the host's root"));
        }
        // QEMU's 9p server reaches files through /proc/self/fd (chmod and
        // xattrs of what it opened O_PATH): its own PID namespace's proc,
        // processes only (`subset=pid`: no /proc/sys, kcore or the like).
        let ro_flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        if libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            ro_flags,
            c"subset=pid".as_ptr().cast(),
        ) != 0
        {
            return Err(failed(c"mount the jail's /proc"));
        }
        let name = jail.hostname.as_bytes();
        if libc::sethostname(name.as_ptr().cast(), name.len()) != 0 {
            return Err(failed(c"set the jail's hostname"));
        }
        let mut nofile = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut nofile) != 0 {
            return Err(failed(c"read RLIMIT_NOFILE"));
        }
        let n = crate::jail::NOFILE_LIMIT.min(nofile.rlim_max);
        // No RLIMIT_FSIZE: every file the container writes goes through
        // QEMU's 9p server, so a cap would cap the container's files (and
        // SIGXFSZ would kill the VM); QEMU's own output (the console) is a
        // pipe the host caps instead.
        let limits = [
            (libc::RLIMIT_NOFILE, n),
            // A core of QEMU would hold the guest's memory.
            (libc::RLIMIT_CORE, 0),
        ];
        for (resource, value) in limits {
            let lim = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource, &lim) != 0 {
                return Err(failed(c"set an rlimit"));
            }
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(failed(c"set no_new_privs"));
        }
        for cap in 0..=jail.last_cap {
            if jail.keep & (1u64 << cap) == 0
                && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
            {
                return Err(failed(c"drop a capability from the bounding set"));
            }
        }
        let (uid, gid) = (jail.user.uid, jail.user.gid);
        if libc::setgroups(0, std::ptr::null()) != 0 || libc::setresgid(gid, gid, gid) != 0 {
            return Err(failed(c"set the jail's groups"));
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0
            || libc::setresuid(uid, uid, uid) != 0
        {
            return Err(failed(c"set the jail's user"));
        }
        let header = CapHeader {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let (low, high) = (jail.keep as u32, (jail.keep >> 32) as u32);
        let data = [
            CapData {
                effective: low,
                permitted: low,
                inheritable: low,
            },
            CapData {
                effective: high,
                permitted: high,
                inheritable: high,
            },
        ];
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            return Err(failed(c"set the jail's capabilities"));
        }
        // Ambient, so that QEMU (no file capabilities, not setuid) keeps them
        // across exec as a non-root user.
        for cap in 0..=jail.last_cap {
            if jail.keep & (1u64 << cap) != 0
                && libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                ) != 0
            {
                return Err(failed(c"raise an ambient capability"));
            }
        }
        // Killed when the thread that forked it ends (the Vm is dropped, or
        // the whole process dies). Set last: a change of credentials (the
        // setresuid above) clears it.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return Err(failed(c"set the parent-death signal"));
        }
    }
    Ok(())
}

/// capset(2)'s header (`struct __user_cap_header_struct`).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// capset(2)'s data, one per 32 capabilities (`struct __user_cap_data_struct`).
#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Whether the filesystem holding the directory `path` takes `user.`
/// extended attributes, which 9p's mapped-xattr model keeps the guest's
/// file metadata in (tmpfs does not before Linux 6.6). Asking is not
/// enough (tmpfs answers "no such attribute"): this sets one and removes it.
pub(crate) fn user_xattrs_supported(path: &std::ffi::CStr) -> bool {
    let name = c"user.isola.probe";
    // SAFETY: setxattr(2)/removexattr(2) on NUL-terminated strings and a
    // one-byte value, all outliving the calls.
    unsafe {
        let set = libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            b"1".as_ptr().cast(),
            1,
            libc::XATTR_CREATE,
        );
        if set == 0 {
            libc::removexattr(path.as_ptr(), name.as_ptr());
            return true;
        }
        std::io::Error::last_os_error().raw_os_error() != Some(libc::EOPNOTSUPP)
    }
}

/// Has the calling thread put the children it forks from now on into a new
/// PID namespace (their init is the first): call on a thread of its own,
/// which forks once and ends.
pub(crate) fn children_in_new_pid_namespace() -> std::io::Result<()> {
    // SAFETY: unshare(2) with one flag; it changes only where this thread's
    // future children go.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Bytes waiting to be read on `fd` (FIONREAD); 0 if unknown.
pub(crate) fn unread_bytes(fd: BorrowedFd<'_>) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int, which `n` is, for a valid descriptor.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    if r < 0 {
        0
    } else {
        n
    }
}

/// A terminal's window size, if `fd` is one.
pub(crate) fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain old data.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes into the winsize we own.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// The numbers `ls /proc/self/fd` shows in a child started with
    /// [`in_child_before_exec`], less ls's own directory descriptor.
    fn child_fds(inherit: Option<RawFd>) -> Vec<RawFd> {
        let mut cmd = Command::new("/bin/busybox");
        cmd.args(["ls", "/proc/self/fd"]);
        in_child_before_exec(&mut cmd, false, inherit.as_slice(), None);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut fds: Vec<RawFd> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        // ls opens the directory it lists at the lowest free number: 3,
        // unless that is `inherit`, when the child holds nothing else.
        let own = (3..).find(|n| Some(*n) != inherit).unwrap();
        fds.retain(|fd| *fd != own);
        fds.sort();
        fds
    }

    #[test]
    fn the_child_keeps_only_stdio_and_the_inherited_fd() {
        // Descriptors without close-on-exec (dup(2)), as a caller may hold them.
        let leaked = nix::unistd::dup(std::io::stderr()).unwrap();
        let saved = nix::unistd::dup(std::io::stderr()).unwrap();
        let (leaked_n, saved_n) = (leaked.as_raw_fd(), saved.as_raw_fd());
        let fds = child_fds(Some(saved_n));
        assert!(!fds.contains(&leaked_n), "{fds:?} has {leaked_n}");
        assert!(fds.contains(&saved_n), "{fds:?} lacks {saved_n}");
        assert_eq!(fds.len(), 4, "{fds:?}");
        let fds = child_fds(None);
        assert_eq!(fds, [0, 1, 2], "{fds:?}");
    }
}
