//! vmmode::standin: the host process that stands for a guest process. runc's
//! contract gives the shim a PID for the container's init (and each exec):
//! the shim reaps it as its subreaper, takes its exit status for the
//! container's, and signals it. In a VM the real process is out of the
//! host's reach, so a stand-in, forked by `create`/`exec`, waits on the
//! keeper for the guest process's exit and exits with its code, forwarding
//! every signal it gets. SIGKILL cannot be caught: the keeper sees the
//! stand-in's connection close and kills the guest process.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use super::wire::{self, Request, Response};

/// The exit code when the VM went away before the process exited: as if
/// it had been killed (128 + SIGKILL).
pub const VM_GONE: i32 = 137;

/// The write end of the self-pipe the signal handler writes to.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    let b = sig as u8;
    // SAFETY: write(2) is async-signal-safe; the buffer is one byte on the stack.
    unsafe { libc::write(fd, std::ptr::addr_of!(b).cast(), 1) };
}

/// Signals a stand-in forwards (all that can be caught, but those that
/// stop or concern the stand-in's own terminal and children).
const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPIPE,
    Signal::SIGALRM,
    Signal::SIGCONT,
    Signal::SIGWINCH,
    Signal::SIGURG,
    Signal::SIGPWR,
    Signal::SIGSYS,
    Signal::SIGABRT,
];

/// Waits for guest process (`id`, `exec`) through the keeper at `socket`
/// and returns its exit code; signals received meanwhile go to it.
pub fn wait(socket: &Path, id: &str, exec: Option<u32>) -> i32 {
    let Ok((rd, wr)) = nix::unistd::pipe() else {
        return VM_GONE;
    };
    SIGNAL_PIPE.store(wr.as_raw_fd(), Ordering::Relaxed);
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in FORWARDED {
        // SAFETY: the handler only writes one byte to a pipe (async-signal-safe).
        let _ = unsafe { sigaction(*s, &act) };
    }
    let conn = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(c) => c,
        Err(_) => return VM_GONE,
    };
    let req = Request::Wait {
        id: id.to_string(),
        exec,
    };
    if wire::send(&conn, &req, &[]).is_err() {
        return VM_GONE;
    }
    loop {
        let mut fds = [
            PollFd::new(conn.as_fd(), PollFlags::POLLIN),
            PollFd::new(rd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return VM_GONE,
        }
        let readable = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        if readable(&fds[1]) {
            let mut b = [0u8; 1];
            if nix::unistd::read(&rd, &mut b).is_ok() {
                let sig = Request::Signal {
                    id: id.to_string(),
                    exec,
                    signal: b[0] as i32,
                    all: false,
                };
                // A signal the process can no longer get (it is exiting) is lost.
                let _ = wire::call(socket, &sig, &[]);
            }
        }
        if readable(&fds[0]) {
            return match wire::recv::<Response>(&conn) {
                Ok(Some((Response::Exited { code }, _))) => code,
                _ => VM_GONE,
            };
        }
    }
}
