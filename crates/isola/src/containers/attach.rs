//! `attach` and the attached half of `run`/`start -a`: copies the monitor's
//! stdout/stderr frames to ours, our stdin to the container, our terminal size
//! to its pty, and returns the exit code the monitor reports.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use anyhow::bail;
use engine::monitor::{self, protocol};
use engine::store::ContainerRecord;
use engine::sys;
use engine::Engine;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::termios::{self, SetArg, Termios};

/// A shared socket written one frame at a time.
struct Locked(Arc<Mutex<UnixStream>>);

impl Write for Locked {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        // protocol::write_frame writes a whole frame with one write_all.
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Forwards what the terminal sends us, like docker's attach: window size
/// changes become resize frames (with a terminal); without one, the signals
/// a user sends the CLI (Ctrl-C, kill) go to the container (`--sig-proxy`).
/// Called before any other thread starts, so that every thread blocks them.
fn forward_signals(
    engine: Engine,
    rec: ContainerRecord,
    writer: Arc<Mutex<UnixStream>>,
    tty: bool,
) -> anyhow::Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGWINCH);
    if !tty {
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
        ] {
            set.add(s);
        }
    }
    set.thread_block()?;
    std::thread::spawn(move || {
        while let Ok(sig) = set.wait() {
            if sig == Signal::SIGWINCH {
                if let (true, Some((rows, cols))) = (tty, terminal_size()) {
                    let mut w = Locked(writer.clone());
                    let _ = protocol::write_frame(
                        &mut w,
                        protocol::RESIZE,
                        &protocol::resize_payload(rows, cols),
                    );
                }
            } else if let Ok(current) = engine.lookup(&rec.config.id) {
                let _ = engine.kill(&current, sig as i32);
            }
        }
    });
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Do not attach stdin.
    #[arg(long)]
    pub no_stdin: bool,
    pub container: String,
}

/// Puts our terminal in raw mode until dropped.
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    pub fn enter() -> Option<RawTerminal> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Our terminal's size, from stdin or stdout.
pub fn terminal_size() -> Option<(u16, u16)> {
    sys::window_size(std::io::stdin().as_fd())
        .or_else(|| sys::window_size(std::io::stdout().as_fd()))
}

/// Runs an attach session on a connected monitor socket until the container
/// exits; returns its exit code.
pub fn session(
    engine: &Engine,
    rec: &ContainerRecord,
    stream: UnixStream,
    stdin: bool,
    tty: bool,
) -> anyhow::Result<u8> {
    let _raw = if tty { RawTerminal::enter() } else { None };
    // Frames from the stdin and signal threads share one socket: one writer at a time.
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    if tty {
        if let Some((rows, cols)) = terminal_size() {
            let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
            protocol::write_frame(
                &mut *w,
                protocol::RESIZE,
                &protocol::resize_payload(rows, cols),
            )?;
        }
    }
    forward_signals(engine.clone(), rec.clone(), writer.clone(), tty)?;
    if stdin {
        let writer = writer.clone();
        std::thread::spawn(move || {
            let mut writer = Locked(writer);
            let mut buf = vec![0u8; 16 * 1024];
            let mut input = std::io::stdin().lock();
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = protocol::write_frame(&mut writer, protocol::STDIN_CLOSE, &[]);
                        break;
                    }
                    Ok(n) => {
                        if protocol::write_frame(&mut writer, protocol::STDIN, &buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    let mut reader = std::io::BufReader::new(stream);
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    loop {
        match protocol::read_frame(&mut reader)? {
            Some(f) if f.kind == protocol::STDOUT => {
                let mut o = stdout.lock();
                o.write_all(&f.payload)?;
                o.flush()?;
            }
            Some(f) if f.kind == protocol::STDERR => {
                let mut e = stderr.lock();
                e.write_all(&f.payload)?;
                e.flush()?;
            }
            Some(f) if f.kind == protocol::EXIT => {
                let code = f
                    .payload
                    .get(..4)
                    .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(255);
                return Ok(code.clamp(0, 255) as u8);
            }
            Some(f) if f.kind == protocol::ERROR => {
                bail!("{}", String::from_utf8_lossy(&f.payload));
            }
            Some(_) => {}
            None => {
                // The monitor went away without an exit frame: ask the store.
                let id = rec.config.id.clone();
                let last = engine.wait_inactive(&id, Some(std::time::Duration::from_secs(10)))?;
                match last.and_then(|r| r.state.exit_code) {
                    Some(code) => return Ok(code.clamp(0, 255) as u8),
                    None => bail!(
                        "lost the connection to the monitor of container {}",
                        engine::ids::short(&id)
                    ),
                }
            }
        }
    }
}

pub fn attach(engine: &Engine, args: AttachArgs) -> anyhow::Result<u8> {
    let rec = engine.lookup(&args.container)?;
    if rec.state.status != engine::state::Status::Running {
        bail!(
            "cannot attach to container {}: it is not running",
            args.container
        );
    }
    let stream = monitor::connect(&rec.dir, &rec.config.id)?;
    let stdin = rec.config.open_stdin && !args.no_stdin;
    session(engine, &rec, stream, stdin, rec.config.tty)
}
