//! procs: the processes the agent started for the host (container inits and
//! exec'd processes), one per protocol stream: their stdio ends (pipes, or a
//! pty master for a terminal), buffered stdin, output window, exit status
//! and waiters.
//! It must not parse requests or touch the channel; serve.rs drives it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::OFlag;

use crate::sys;

/// One started process and its stdio.
pub struct Proc {
    pub pid: i32,
    /// Where stdin bytes go (the pipe's write end, or the pty master).
    pub stdin: Option<File>,
    pub stdin_buf: Vec<u8>,
    /// The host closed stdin: close it here once the buffer has drained.
    pub stdin_eof: bool,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    /// The pty master when the process has a terminal (for window sizes).
    pub pty: Option<File>,
    /// How much more output (in [`proto::output_cost`]) the host will take
    /// now; it gives more back with Credit frames. While it is too small
    /// for a frame, the output pipes are not read, so a process whose
    /// output the host does not consume blocks in write(2), as it would on
    /// a full pipe, and the host never buffers more than the window.
    pub window: u32,
    /// Reaped with this code, its exit not reported yet: the output still
    /// in its pipes goes first, as the window allows.
    pub exited: Option<i32>,
    /// When the output a reaped process left behind is dropped if the host
    /// has still given no room for it (see serve.rs).
    pub drain_until: Option<std::time::Instant>,
    /// The exit reported to the host.
    pub exit: Option<i32>,
    /// Wait requests to answer when it exits.
    pub waiters: Vec<u32>,
}

/// The container side and the agent side of a process's stdio.
pub struct StdioPipes {
    pub child: runtime::Stdio3,
    pub stdin: File,
    pub stdout: File,
    pub stderr: File,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// Three pipes; the agent's ends are non-blocking so one stuck process
/// never stalls the loop.
pub fn stdio_pipes() -> io::Result<StdioPipes> {
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    for fd in [&in_w, &out_r, &err_r] {
        set_nonblocking(fd)?;
    }
    Ok(StdioPipes {
        child: runtime::Stdio3 {
            stdin: in_r,
            stdout: out_w,
            stderr: err_w,
        },
        stdin: File::from(in_w),
        stdout: File::from(out_r),
        stderr: File::from(err_r),
    })
}

pub fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

impl Proc {
    pub fn with_pipes(pid: i32, stdin: File, stdout: File, stderr: File) -> Proc {
        Proc {
            pid,
            stdin: Some(stdin),
            stdin_buf: Vec::new(),
            stdin_eof: false,
            stdout: Some(stdout),
            stderr: Some(stderr),
            pty: None,
            window: proto::OUTPUT_WINDOW,
            exited: None,
            drain_until: None,
            exit: None,
            waiters: Vec::new(),
        }
    }

    /// A terminal process: the pty master is its stdin and stdout.
    pub fn with_pty(pid: i32, master: OwnedFd) -> io::Result<Proc> {
        set_nonblocking(&master)?;
        let master = File::from(master);
        Ok(Proc {
            pid,
            stdin: Some(master.try_clone()?),
            stdin_buf: Vec::new(),
            stdin_eof: false,
            stdout: Some(master.try_clone()?),
            stderr: None,
            pty: Some(master),
            window: proto::OUTPUT_WINDOW,
            exited: None,
            drain_until: None,
            exit: None,
            waiters: Vec::new(),
        })
    }

    /// Writes as much buffered stdin as the pipe takes; closes stdin when the
    /// host has ended it and everything is written. A reader that went away
    /// (EPIPE) drops the rest.
    pub fn flush_stdin(&mut self) {
        if let Some(w) = self.stdin.as_mut() {
            while !self.stdin_buf.is_empty() {
                match w.write(&self.stdin_buf) {
                    Ok(n) => {
                        self.stdin_buf.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.stdin_buf.clear();
                        self.stdin = None;
                        return;
                    }
                }
            }
            if self.stdin_eof {
                // A pty has no half-close: send the terminal's EOF character instead.
                if self.pty.is_some() {
                    let _ = w.write(&[4]);
                }
                self.stdin = None;
            }
        }
    }

    /// Whether it has been reaped (its exit reported or about to be).
    pub fn has_exited(&self) -> bool {
        self.exited.is_some() || self.exit.is_some()
    }

    /// The most output bytes one frame may carry now; 0 when the window
    /// has no room for a frame.
    pub fn sendable(&self) -> usize {
        self.window.saturating_sub(proto::OUTPUT_FRAME_COST) as usize
    }

    /// The host consumed `amount` of the output.
    pub fn credit(&mut self, amount: u32) {
        // Never above the window: a confused host must not make this side
        // send more than the protocol lets the host expect.
        self.window = self.window.saturating_add(amount).min(proto::OUTPUT_WINDOW);
    }

    pub fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        match &self.pty {
            Some(m) => sys::set_window_size(m.as_raw_fd(), rows, cols),
            None => Ok(()),
        }
    }
}

/// Reads what is ready from a non-blocking stdio end. `Ok(None)`: nothing
/// now; `Ok(Some(empty))`: end of stream (EIO from a pty master whose
/// terminal closed counts as the end too). At most `max` bytes (≥ 1).
pub fn read_ready(f: &mut File, max: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; max.clamp(1, 64 * 1024)];
    loop {
        match f.read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Some(buf);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(_) => return Some(Vec::new()),
        }
    }
}

/// The agent's processes, by stream id.
#[derive(Default)]
pub struct ProcTable {
    pub by_stream: HashMap<u32, Proc>,
}

impl ProcTable {
    pub fn stream_of(&self, pid: i32) -> Option<u32> {
        self.by_stream
            .iter()
            .find(|(_, p)| p.pid == pid && !p.has_exited())
            .map(|(s, _)| *s)
    }
}

/// Exit code as a shell reports it: the status, or 128 + the signal.
pub fn exit_code(status: nix::sys::wait::WaitStatus) -> Option<(i32, i32)> {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code)),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as i32)),
        _ => None,
    }
}
