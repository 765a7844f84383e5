//! `exec`: runs a process in a running container and exits with its code.
//! Without a terminal the process gets our stdio directly; with -t it gets a
//! pty whose master we copy to and from our terminal (raw mode).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use engine::backend::ContainerIo;
use engine::sys;
use engine::{Engine, ExecOptions};

use super::attach::{terminal_size, RawTerminal};
use super::run::{chain, start_failed};

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin attached.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable (KEY=VALUE).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// User: name|uid[:group|gid].
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    pub container: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn dup(fd: std::os::fd::BorrowedFd<'_>) -> anyhow::Result<OwnedFd> {
    Ok(fd.try_clone_to_owned()?)
}

fn devnull() -> anyhow::Result<OwnedFd> {
    Ok(File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into())
}

pub fn exec(engine: &Engine, args: ExecArgs) -> anyhow::Result<u8> {
    let rec = engine.lookup(&args.container)?;
    let mut env = Vec::new();
    for e in &args.env {
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        }
    }
    let opts = ExecOptions {
        args: args.command.clone(),
        env,
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        tty: args.tty && !args.detach,
        interactive: args.interactive,
        detach: args.detach,
    };
    let io = if args.detach {
        Some(ContainerIo::Pipes {
            stdin: devnull()?,
            stdout: devnull()?,
            stderr: devnull()?,
        })
    } else {
        Some(ContainerIo::Pipes {
            stdin: if args.interactive {
                dup(std::io::stdin().as_fd())?
            } else {
                devnull()?
            },
            stdout: dup(std::io::stdout().as_fd())?,
            stderr: dup(std::io::stderr().as_fd())?,
        })
    };
    let executed = match engine.exec(&rec, &opts, io) {
        Ok(e) => e,
        Err(e) => return start_failed(chain(&e.into())),
    };
    if args.detach {
        return Ok(0);
    }
    let Some(master) = executed.console else {
        let code = (executed.wait)()?;
        return Ok(code.clamp(0, 255) as u8);
    };
    let master = File::from(master);
    if let Some((rows, cols)) = terminal_size() {
        let _ = sys::set_window_size(master.as_fd(), rows, cols);
    }
    let raw = RawTerminal::enter();
    // Window size changes follow the terminal, as with docker exec -t.
    let mut winch = nix::sys::signal::SigSet::empty();
    winch.add(nix::sys::signal::Signal::SIGWINCH);
    winch.thread_block()?;
    let sized = master.try_clone()?;
    std::thread::spawn(move || {
        while winch.wait().is_ok() {
            if let Some((rows, cols)) = terminal_size() {
                let _ = sys::set_window_size(sized.as_fd(), rows, cols);
            }
        }
    });
    if args.interactive {
        let mut to = master.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut input = std::io::stdin().lock();
            while let Ok(n) = input.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    let mut from = master;
    let mut buf = [0u8; 16 * 1024];
    let mut out = std::io::stdout();
    // EIO once the process and everything holding the pty slave are gone.
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
    drop(raw);
    let code = (executed.wait)()?;
    Ok(code.clamp(0, 255) as u8)
}
