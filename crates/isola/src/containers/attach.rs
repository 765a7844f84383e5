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
    /// The keys that detach from the container, leaving it running
    /// (docker's syntax: `ctrl-<x>` or a letter, comma-separated).
    #[arg(long, default_value = DEFAULT_DETACH_KEYS)]
    pub detach_keys: String,
    pub container: String,
}

/// docker's default: Ctrl-P then Ctrl-Q.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// The bytes of a `--detach-keys` value (`ctrl-p,ctrl-q` is 0x10 0x11).
pub fn parse_detach_keys(keys: &str) -> anyhow::Result<Vec<u8>> {
    let bad = || {
        anyhow::anyhow!("invalid --detach-keys {keys:?}: use ctrl-<a-z@[\\]^_> or single characters, comma-separated")
    };
    keys.split(',')
        .map(|k| {
            let k = k.trim();
            match k.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => {
                    let b = c.as_bytes()[0].to_ascii_uppercase();
                    if (b'@'..=b'_').contains(&b) {
                        Ok(b & 0x1f)
                    } else {
                        Err(bad())
                    }
                }
                Some(_) => Err(bad()),
                None if k.len() == 1 && k.is_ascii() => Ok(k.as_bytes()[0]),
                None => Err(bad()),
            }
        })
        .collect()
}

/// Watches typed input for the detach sequence: bytes that may start it are
/// held back until it completes (detach) or breaks (they are passed on).
struct DetachWatch {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachWatch {
    /// What of `input` to forward, and whether the sequence completed.
    fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
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

/// How an attach session ended.
pub enum Outcome {
    /// The container exited with this code.
    Exited(u8),
    /// The user typed the detach keys: the container runs on.
    Detached,
}

impl Outcome {
    /// The exit code of the command that attached (0 for a detach).
    pub fn code(&self) -> u8 {
        match self {
            Outcome::Exited(c) => *c,
            Outcome::Detached => 0,
        }
    }
}

/// Runs an attach session on a connected monitor stream until the container
/// exits or the user detaches.
pub fn session(
    engine: &Engine,
    rec: &ContainerRecord,
    mut stream: AttachStream,
    stdin: bool,
    tty: bool,
    detach_keys: &[u8],
) -> anyhow::Result<Outcome> {
    // With a terminal, as docker's client does: a binary stdin stream is
    // never cut short by bytes that happen to match.
    let detached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut watch = DetachWatch {
        keys: if tty {
            detach_keys.to_vec()
        } else {
            Vec::new()
        },
        matched: 0,
    };
    let _raw = if tty { RawTerminal::enter() } else { None };
    let input = stream.input();
    if tty {
        if let Some((rows, cols)) = terminal_size() {
            input.resize(rows, cols)?;
        }
    }
    forward_signals(engine.clone(), rec.clone(), input.clone(), tty)?;
    if stdin {
        let flag = detached.clone();
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
                        let (pass, detach) = watch.feed(&buf[..n]);
                        if !pass.is_empty() && input.stdin(&pass).is_err() {
                            break;
                        }
                        if detach {
                            flag.store(true, std::sync::atomic::Ordering::SeqCst);
                            input.detach();
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
            Some(AttachEvent::Exit(code)) => return Ok(Outcome::Exited(code.clamp(0, 255) as u8)),
            Some(AttachEvent::Failed(message)) => bail!("{message}"),
            None if detached.load(std::sync::atomic::Ordering::SeqCst) => {
                return Ok(Outcome::Detached)
            }
            None => {
                // The monitor went away without an exit frame: ask the store.
                let id = &rec.config.id;
                match engine.exit_code_after_disconnect(id)? {
                    Some(code) => return Ok(Outcome::Exited(code.clamp(0, 255) as u8)),
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
    let keys = parse_detach_keys(&args.detach_keys)?;
    Ok(session(engine, &rec, stream, stdin, rec.config.tty, &keys)?.code())
}
