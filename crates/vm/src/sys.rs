//! sys: the vm crate's only unsafe code, what QEMU's child process does
//! between fork and exec. Nothing else belongs here.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Has `command`'s child, before it execs, turn transparent huge pages off
/// for itself (`no_thp`) and keep `inherit` open across the exec (for
/// QEMU's `-incoming fd:`), in the child only.
pub(crate) fn in_child_before_exec(command: &mut Command, no_thp: bool, inherit: Option<RawFd>) {
    // SAFETY: between fork and exec the closure calls only prctl(2) and
    // fcntl(2), which are async-signal-safe, on values computed before.
    unsafe {
        command.pre_exec(move || {
            if no_thp && libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}
