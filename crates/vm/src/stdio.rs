//! stdio: moves a guest process's stdio between the agent's streams
//! ([`crate::ProcessIo`]) and host file descriptors: pipes for plain stdio,
//! or a host pty whose master the caller gets, bridged to the guest's
//! terminal (its size forwarded). It only copies bytes; the exit is waited
//! for apart from them ([`crate::ExitWatch`]), so a reader of the output that
//! stalls does not hide it. It knows nothing of containers.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::poll::{poll, PollFd, PollFlags};

use crate::{Output, ProcessInput, ProcessIo};
use proto::StdioFd;

/// How a guest process ended: its exit code, or why it is unknown (the VM went away).
pub type Ending = Result<i32, String>;

/// Copies `from` into the guest process's stdin until EOF, then closes it.
pub fn feed_stdin(mut from: File, input: ProcessInput) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if input.write_stdin(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = input.close_stdin();
    });
}

/// Writes the process's output to `stdout`/`stderr`, each closed at its end
/// (or when the process exits, or the VM goes away).
pub fn drain_output(io: ProcessIo, stdout: Option<File>, stderr: Option<File>) {
    let boxed = |f: File| Box::new(f) as Box<dyn Write + Send>;
    drain_output_to(io, stdout.map(boxed), stderr.map(boxed));
}

fn drain_output_to(
    io: ProcessIo,
    mut stdout: Option<Box<dyn Write + Send>>,
    mut stderr: Option<Box<dyn Write + Send>>,
) {
    std::thread::spawn(move || {
        while let Some(out) = io.recv() {
            match out {
                Output::Stdout(d) => {
                    if let Some(f) = stdout.as_mut() {
                        let _ = f.write_all(&d);
                    }
                }
                Output::Stderr(d) => {
                    if let Some(f) = stderr.as_mut() {
                        let _ = f.write_all(&d);
                    }
                }
                Output::Eof(StdioFd::Stderr) => stderr = None,
                Output::Eof(_) => stdout = None,
                Output::Exit(_) => return,
            }
        }
    });
}

/// The host end of a guest terminal: a fresh pty whose master the caller
/// gets (as with process isolation), its slave in raw mode, bridged to the
/// guest. What the caller types into the master goes to `on_input`; a size
/// set on the master (TIOCSWINSZ) reaches `on_resize` within [`POLL_MS`].
/// Writes to the returned [`PtyOutput`] appear on the master; dropping it
/// closes the slave, so the caller reads EIO (the end) on the master.
pub fn pty_bridge(
    mut on_input: impl FnMut(&[u8]) -> bool + Send + 'static,
    mut on_resize: impl FnMut(u16, u16) + Send + 'static,
) -> std::io::Result<(OwnedFd, PtyOutput)> {
    use nix::sys::termios;
    let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
    // openpty(3) gives no close-on-exec: the monitor's pty is not QEMU's.
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(std::io::Error::from)?;
    }
    let mut t = termios::tcgetattr(&pty.slave).map_err(std::io::Error::from)?;
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(&pty.slave, termios::SetArg::TCSANOW, &t).map_err(std::io::Error::from)?;
    let stop = Arc::new(AtomicBool::new(false));
    let output = PtyOutput {
        slave: File::from(pty.slave.try_clone()?),
        stop: stop.clone(),
    };
    let slave = File::from(pty.slave);
    let watch = pty.master.try_clone()?;
    std::thread::spawn(move || {
        let mut reader = slave;
        let mut buf = vec![0u8; 16 * 1024];
        let mut size = None;
        while !stop.load(Ordering::Relaxed) {
            let readable = {
                let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
                matches!(poll(&mut fds, POLL_MS), Ok(n) if n > 0)
            };
            if readable {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if !on_input(&buf[..n]) {
                            break;
                        }
                    }
                }
            }
            let now = crate::sys::window_size(reader.as_fd()).filter(|&(r, c)| r > 0 && c > 0);
            if now.is_some() && now != size {
                size = now;
                if let Some((rows, cols)) = now {
                    on_resize(rows, cols);
                }
            }
        }
        // The caller reads EIO once the slave closes, and Linux may drop
        // what it has not read yet: wait (bounded) until it has read it all.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while crate::sys::unread_bytes(watch.as_fd()) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    Ok((pty.master, output))
}

/// A terminal's window size (rows, columns), if `fd` is one.
pub fn window_size(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u16, u16)> {
    crate::sys::window_size(fd)
}

/// How often the pty bridge looks for a stop or a new window size, ms.
pub const POLL_MS: u16 = 100;

/// The writing end of a [`pty_bridge`].
pub struct PtyOutput {
    slave: File,
    stop: Arc<AtomicBool>,
}

impl Write for PtyOutput {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.slave.write(data)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for PtyOutput {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A guest terminal for the caller: a pty master carrying the process's
/// terminal, its size forwarded to the guest.
pub fn terminal(io: ProcessIo) -> std::io::Result<OwnedFd> {
    let input = io.input();
    let resize = io.input();
    let (master, output) = pty_bridge(
        move |d| input.write_stdin(d).is_ok(),
        move |rows, cols| {
            let _ = resize.resize(rows, cols);
        },
    )?;
    let out = Box::new(output) as Box<dyn Write + Send>;
    drain_output_to(io, Some(out), None);
    Ok(master)
}
