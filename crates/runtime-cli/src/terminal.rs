//! terminal: `run` and `exec` with a pty and no --console-socket: copies
//! between our stdio and the pty master, puts our terminal (if stdin is one)
//! in raw mode so keys reach the container unchanged, and keeps the pty's
//! window size equal to ours (SIGWINCH). Restores the terminal when done.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// The pty master whose size follows ours; -1 when none.
static RESIZE_MASTER: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_winch(_: libc::c_int) {
    copy_window_size(RESIZE_MASTER.load(Ordering::Relaxed));
}

fn copy_window_size(master: i32) {
    if master < 0 {
        return;
    }
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: both ioctls take a pointer to a winsize that lives on this
    // stack frame; ioctl is async-signal-safe (this runs in a handler).
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws as *mut libc::winsize) == 0 {
            libc::ioctl(master, libc::TIOCSWINSZ, &ws as *const libc::winsize);
        }
    }
}

/// A running copy between our stdio and a pty.
pub struct Proxy {
    output: JoinHandle<()>,
    saved: Option<Termios>,
    _master: OwnedFd,
}

/// Starts copying; `None` if the master cannot be duplicated.
pub fn proxy(master: OwnedFd) -> Option<Proxy> {
    // Duplicated first: a failure must not leave our terminal raw.
    let mut m_read = std::fs::File::from(master.try_clone().ok()?);
    let mut m_write = m_read.try_clone().ok()?;
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RESIZE_MASTER.store(master.as_raw_fd(), Ordering::Relaxed);
        copy_window_size(master.as_raw_fd());
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        let act = SigAction::new(
            SigHandler::Handler(on_winch),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handler only makes two ioctls, which are async-signal-safe.
        let _ = unsafe { sigaction(Signal::SIGWINCH, &act) };
    }
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || m_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let output = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdout = std::io::stdout();
        // Ends with EIO once the last process holding the pty's slave exits.
        while let Ok(n) = m_read.read(&mut buf) {
            if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = stdout.flush();
        }
    });
    Some(Proxy {
        output,
        saved,
        _master: master,
    })
}

impl Proxy {
    /// Waits for the pty's output to drain, then restores our terminal.
    pub fn finish(self) {
        let _ = self.output.join();
        RESIZE_MASTER.store(-1, Ordering::Relaxed);
        if let Some(t) = &self.saved {
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, t);
        }
    }
}
