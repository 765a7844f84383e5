//! sys: the few raw system calls the engine needs that neither std nor nix
//! wraps: setting a pty's window size, the SIGPIPE
//! disposition its children inherit, the bytes waiting on a descriptor, and
//! handing back the executable's pages a long-lived monitor no longer uses.
//! Every unsafe block of the engine is here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Drops this process's mappings of its own executable's pages (they stay
/// in the page cache and fault back in on use). A monitor runs for the
/// container's lifetime but needs only its small steady-state loop after
/// start-up: without this, the start-up code it touched once counts in its
/// memory (PSS) for as long as the container runs.
pub fn release_executable_pages() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let exe = exe.to_string_lossy();
    // (start, end) of the current mapping while it qualifies so far.
    let mut current: Option<(usize, usize)> = None;
    let mut ranges = Vec::new();
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or_default();
        if let Some((start, end)) = first.split_once('-') {
            // A mapping's header: range, perms, offset, dev, inode, path.
            let perms = f.next().unwrap_or_default();
            let ours = !perms.contains('w') && f.nth(3) == Some(&*exe);
            current = match (
                ours,
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                (true, Ok(s), Ok(e)) => Some((s, e)),
                _ => None,
            };
        } else if first == "Anonymous:" {
            // Pages written since mapping (relocated RELRO data made
            // read-only again) must stay: DONTNEED would reset them to the
            // file's contents. Only mappings with none are released.
            if let (Some(r), Some("0")) = (current.take(), f.next()) {
                ranges.push(r);
            }
        }
    }
    for (start, end) in ranges {
        // SAFETY: a read-only, file-backed private mapping of our executable
        // with no privately written (anonymous) pages, page aligned as
        // /proc/self/smaps reports it: MADV_DONTNEED only drops page table
        // entries; the next access maps the same, unchanged file pages.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// Sets a terminal's window size.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize we own from a valid descriptor.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A terminal's window size, if `fd` is one (the vm crate has the ioctl).
pub use vm::stdio::window_size;

/// Runs `f` with SIGPIPE at its default disposition, so that processes forked
/// inside (the container's) do not inherit Rust's "ignore SIGPIPE".
pub fn with_default_sigpipe<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: changing a signal disposition to SIG_DFL/SIG_IGN has no memory effects.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let r = f();
    // SAFETY: as above; restores what the Rust runtime set.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    r
}

/// Makes `cmd` start in its own session with each `(fd, number)` of `fds`
/// at that number in the child (the monitor's readiness pipe at 3, its
/// attach socket at 4).
pub fn detach_with_fds(cmd: &mut std::process::Command, fds: Vec<(std::os::fd::RawFd, i32)>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe calls (close_range or fcntl, dup2, close, setsid) on
    // a fixed array.
    unsafe {
        cmd.pre_exec(move || {
            // Nothing else the caller holds (its own caller's descriptors
            // included) reaches the monitor, nor through it the container
            // or QEMU; dup2 below clears the flag on the placed numbers.
            runtime::close_on_exec_from(3).map_err(io::Error::from)?;
            // Move every source out of the way first, so that no dup2 below
            // overwrites a source that is still to be placed.
            let mut moved = [(-1, -1); 4];
            for (slot, (src, dst)) in moved.iter_mut().zip(fds.iter()) {
                let tmp = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 64);
                if tmp < 0 {
                    return Err(io::Error::last_os_error());
                }
                *slot = (tmp, *dst);
            }
            for (tmp, dst) in moved.iter().filter(|(t, _)| *t >= 0) {
                if libc::dup2(*tmp, *dst) < 0 {
                    return Err(io::Error::last_os_error());
                }
                libc::close(*tmp);
            }
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Forks; the parent exits at once, the child goes on (orphaned, so the CLI
/// that started it never has to reap it).
pub fn daemonize() -> io::Result<()> {
    // SAFETY: called while the process has a single thread; the child goes on
    // with a copy of it, the parent only calls _exit.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(()),
        // SAFETY: _exit ends the process without running destructors, which
        // belong to the child now.
        _ => unsafe { libc::_exit(0) },
    }
}

/// Takes ownership of a descriptor inherited at a known number (the
/// readiness pipe and attach socket that [`crate::monitor::spawn`] places
/// at fds 3 and 4), and makes it close-on-exec: it is the monitor's alone,
/// not for the processes the monitor starts (the container, QEMU).
pub fn inherited_fd(fd: i32) -> OwnedFd {
    // SAFETY: the fd was placed at this number by our parent for this process
    // alone; nothing else in the process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    fd
}
