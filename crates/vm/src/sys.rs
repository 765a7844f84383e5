//! sys: the vm crate's only unsafe code, what QEMU's child process does
//! between fork and exec. Nothing else belongs here.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Has `command`'s child, before it execs, turn transparent huge pages off
/// for itself (`no_thp`), close every descriptor but its stdio, and keep
/// `inherit` open across the exec (for QEMU's `-incoming fd:`), in the
/// child only. QEMU thus gets no descriptor of the monitor's (the
/// container's stdio, a pty, a readiness pipe, the caller's own).
pub(crate) fn in_child_before_exec(command: &mut Command, no_thp: bool, inherit: &[RawFd]) {
    let inherit = inherit.to_vec();
    // SAFETY: between fork and exec the closure calls only prctl(2),
    // close_range(2) or fcntl(2), which are async-signal-safe, on values
    // computed before.
    unsafe {
        command.pre_exec(move || {
            if no_thp && libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// The numbers `ls /proc/self/fd` shows in a child started with
    /// [`in_child_before_exec`], less ls's own directory descriptor.
    fn child_fds(inherit: Option<RawFd>) -> Vec<RawFd> {
        let mut cmd = Command::new("/bin/busybox");
        cmd.args(["ls", "/proc/self/fd"]);
        in_child_before_exec(&mut cmd, false, inherit.as_slice());
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
