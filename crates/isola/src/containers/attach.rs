//! `attach` and the attached half of `run`/`start -a`: copies the monitor's
//! stdout/stderr (through `engine::attach`) to ours, our stdin to the container, our terminal size
//! to its pty, and returns the exit code the monitor reports.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;

use anyhow::bail;
use engine::attach::{AttachEvent, AttachInput, AttachStream};
use engine::store::ContainerRecord;
use engine::sys;
use engine::Engine;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::termios::{self, SetArg, Termios};

/// Forwards what the terminal sends us, like docker's attach: window size
/// changes become resize frames (with a terminal); without one, the signals
/// a user sends the CLI (Ctrl-C, kill) go to the container (`--sig-proxy`).
/// Called before any other thread starts, so that every thread blocks them.
fn forward_signals(
    engine: Engine,
    rec: ContainerRecord,
    input: AttachInput,
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
                    let _ = input.resize(rows, cols);
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

/// Runs an attach session on a connected monitor stream until the container
/// exits; returns its exit code.
pub fn session(
    engine: &Engine,
    rec: &ContainerRecord,
    mut stream: AttachStream,
    stdin: bool,
    tty: bool,
) -> anyhow::Result<u8> {
    let _raw = if tty { RawTerminal::enter() } else { None };
    let input = stream.input();
    if tty {
        if let Some((rows, cols)) = terminal_size() {
            input.resize(rows, cols)?;
        }
    }
    forward_signals(engine.clone(), rec.clone(), input.clone(), tty)?;
    if stdin {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            let mut from = std::io::stdin().lock();
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = input.close_stdin();
                        break;
                    }
                    Ok(n) => {
                        if input.stdin(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    loop {
        match stream.next_event()? {
            Some(AttachEvent::Stdout(data)) => {
                let mut o = stdout.lock();
                o.write_all(&data)?;
                o.flush()?;
            }
            Some(AttachEvent::Stderr(data)) => {
                let mut e = stderr.lock();
                e.write_all(&data)?;
                e.flush()?;
            }
            Some(AttachEvent::Exit(code)) => return Ok(code.clamp(0, 255) as u8),
            Some(AttachEvent::Failed(message)) => bail!("{message}"),
            None => {
                // The monitor went away without an exit frame: ask the store.
                let id = &rec.config.id;
                match engine.exit_code_after_disconnect(id)? {
                    Some(code) => return Ok(code.clamp(0, 255) as u8),
                    None => bail!(
                        "lost the connection to the monitor of container {}",
                        engine::ids::short(id)
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
    let stream = engine.attach(&rec)?;
    let stdin = rec.config.open_stdin && !args.no_stdin;
    session(engine, &rec, stream, stdin, rec.config.tty)
}
