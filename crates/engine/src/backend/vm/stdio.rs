//! backend::vm::stdio: moves a guest process's stdio between the agent's
//! streams ([`vm::ProcessIo`]) and host file descriptors: pipes for plain
//! stdio, one end of a socket pair standing in for a terminal master (the
//! real terminal is in the guest; resizes are not forwarded). It only copies
//! bytes and reports the exit; it knows nothing of containers.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;

use proto::StdioFd;
use vm::{Output, ProcessInput, ProcessIo};

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

/// Writes the process's output to `stdout`/`stderr` (each closed at its
/// end) and sends how it ended. `gone` explains a VM that went away.
pub fn drain_output(
    io: ProcessIo,
    mut stdout: Option<File>,
    mut stderr: Option<File>,
    done: mpsc::Sender<Ending>,
    gone: impl FnOnce() -> String + Send + 'static,
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
                Output::Exit(code) => {
                    drop((stdout, stderr));
                    let _ = done.send(Ok(code));
                    return;
                }
            }
        }
        drop((stdout, stderr));
        let _ = done.send(Err(gone()));
    });
}

/// A stand-in terminal master: the caller reads the guest terminal's output
/// from the returned fd and writes its input to it; it reads end-of-file when
/// the process has exited.
pub fn terminal(
    io: ProcessIo,
    done: mpsc::Sender<Ending>,
    gone: impl FnOnce() -> String + Send + 'static,
) -> std::io::Result<OwnedFd> {
    let (ours, theirs) = UnixStream::pair()?;
    let input = io.input();
    let reader = ours.try_clone()?;
    feed_stdin(File::from(OwnedFd::from(reader)), input);
    let writer = ours.try_clone()?;
    let out = File::from(OwnedFd::from(writer));
    let err = File::from(OwnedFd::from(ours.try_clone()?));
    let (tx, rx) = mpsc::channel();
    drain_output(io, Some(out), Some(err), tx, gone);
    std::thread::spawn(move || {
        let ending = rx
            .recv()
            .unwrap_or_else(|_| Err("the output pump stopped".into()));
        // End-of-file for the caller's reads, and for our stdin reader.
        let _ = ours.shutdown(std::net::Shutdown::Both);
        let _ = done.send(ending);
    });
    Ok(theirs.into())
}
