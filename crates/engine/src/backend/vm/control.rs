//! backend::vm::control: the VM control socket. The monitor owns the VM and
//! the only connection to its agent, so the monitor serves this socket and
//! every other `isola` process (kill, top, stats, pause, exec) asks it.
//! A request is one JSON line, its answer one JSON line; after a successful
//! `exec` the connection carries that process's stdio in the monitor's
//! attach frames ([`crate::monitor::protocol`]). It owns no VM state itself.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{mpsc, Arc};

use runtime::error_chain as chain;
use serde::{Deserialize, Serialize};

use super::Shared;
use crate::monitor::protocol;
use vm::stdio::Ending;

/// Requests from other isola processes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Kill {
        signal: i32,
        all: bool,
    },
    Pause,
    Resume,
    Top,
    Stats,
    Exec {
        process: Box<oci_spec::runtime::Process>,
        tty: bool,
    },
    Update {
        resources: Box<oci_spec::runtime::LinuxResources>,
    },
}

/// QEMU's own footprint on the host.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct HostProcess {
    pub cpu_ns: u64,
    pub rss_bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Done,
    Processes(Vec<vm::ProcessInfo>),
    Stats {
        guest: vm::ContainerStats,
        qemu: HostProcess,
    },
    Executed {
        pid: i32,
    },
    /// An update's memory limit is above the guest's memory.
    MemoryAbove {
        guest_mib: u64,
    },
    Error(String),
}

/// QEMU's CPU time and resident memory from /proc.
pub fn host_process(pid: u32) -> HostProcess {
    let tick_ns = 1_000_000_000
        / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as u64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // After the comm: state is field 3, utime 14, stime 15, rss 24 (1-based).
    let at = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    HostProcess {
        cpu_ns: (at(14).unwrap_or(0) + at(15).unwrap_or(0)) * tick_ns,
        rss_bytes: at(24).unwrap_or(0) * page,
    }
}

/// Serves the control socket at `path` until the process exits.
pub fn serve(listener: UnixListener, shared: Arc<Shared>) {
    std::thread::spawn(move || {
        for conn in crate::socket::allowed_incoming(&listener) {
            let shared = shared.clone();
            std::thread::spawn(move || {
                if let Err(e) = handle(conn, &shared) {
                    tracing::debug!("VM control connection: {e}");
                }
            });
        }
    });
}

fn handle(conn: UnixStream, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(());
    }
    let answer = |w: &mut UnixStream, r: &Response| -> std::io::Result<()> {
        let mut text = serde_json::to_string(r).map_err(std::io::Error::other)?;
        text.push('\n');
        w.write_all(text.as_bytes())
    };
    let req: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => return answer(&mut writer, &Response::Error(format!("bad request: {e}"))),
    };
    let client = &shared.client;
    let id = &shared.id;
    let resp = match req {
        Request::Kill { signal, all } => {
            // A frozen guest cannot answer: thaw it for the call. After
            // SIGKILL it stays thawed, so that the container can die.
            let thawed = Thawed::new(shared, signal != libc::SIGKILL);
            let r = client.signal(id, signal, all);
            drop(thawed);
            match r {
                Ok(()) => Response::Done,
                Err(e) => Response::Error(chain(&e)),
            }
        }
        Request::Pause | Request::Resume => {
            let vm = shared.vm.lock().unwrap_or_else(|e| e.into_inner());
            let r = match (&*vm, matches!(req, Request::Pause)) {
                (Some(vm), true) => vm.pause().inspect(|_| shared.set_paused(true)),
                (Some(vm), false) => vm.resume().inspect(|_| shared.set_paused(false)),
                (None, _) => {
                    return answer(&mut writer, &Response::Error("the VM has stopped".into()))
                }
            };
            match r {
                Ok(()) => Response::Done,
                Err(e) => Response::Error(chain(&e)),
            }
        }
        Request::Update { resources } => {
            if super::memory_limit(&resources).is_some_and(|m| m > shared.guest_memory_mib << 20) {
                return answer(
                    &mut writer,
                    &Response::MemoryAbove {
                        guest_mib: shared.guest_memory_mib,
                    },
                );
            }
            match Thawed::new(shared, true).run(|| client.update(id, &resources)) {
                Ok(()) => Response::Done,
                Err(e) => Response::Error(chain(&e)),
            }
        }
        Request::Top => match Thawed::new(shared, true).run(|| client.top(id)) {
            Ok(p) => Response::Processes(p),
            Err(e) => Response::Error(chain(&e)),
        },
        Request::Stats => match Thawed::new(shared, true).run(|| client.stats(id)) {
            Ok(guest) => Response::Stats {
                guest,
                qemu: host_process(shared.qemu_pid),
            },
            Err(e) => Response::Error(chain(&e)),
        },
        Request::Exec { process, tty } => match client.exec(id, &process, tty) {
            Ok((pid, io)) => {
                answer(&mut writer, &Response::Executed { pid })?;
                return relay(reader, writer, io);
            }
            Err(e) => Response::Error(chain(&e)),
        },
    };
    answer(&mut writer, &resp)
}

/// A paused VM thawed for one agent call (a frozen guest cannot answer);
/// frozen again on drop when `refreeze`.
struct Thawed<'a> {
    shared: &'a Shared,
    thawed: bool,
    refreeze: bool,
}

impl<'a> Thawed<'a> {
    fn new(shared: &'a Shared, refreeze: bool) -> Thawed<'a> {
        let mut thawed = false;
        if shared.is_paused() {
            let vm = shared.vm.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(vm) = vm.as_ref() {
                thawed = vm.resume().is_ok();
            }
        }
        if thawed && !refreeze {
            shared.set_paused(false);
        }
        Thawed {
            shared,
            thawed,
            refreeze,
        }
    }

    fn run<T>(self, f: impl FnOnce() -> T) -> T {
        f()
    }
}

impl Drop for Thawed<'_> {
    fn drop(&mut self) {
        if self.thawed && self.refreeze {
            let vm = self.shared.vm.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(vm) = vm.as_ref() {
                let _ = vm.pause();
            }
        }
    }
}

/// Carries one exec'd process's stdio over the connection: output and exit
/// to the client, stdin, end of stdin and resizes from it.
fn relay(
    mut reader: BufReader<UnixStream>,
    writer: UnixStream,
    io: vm::ProcessIo,
) -> std::io::Result<()> {
    let input = io.input();
    std::thread::spawn(move || {
        let mut w = writer;
        while let Some(out) = io.recv() {
            let sent = match out {
                vm::Output::Stdout(d) => protocol::write_frame(&mut w, protocol::STDOUT, &d),
                vm::Output::Stderr(d) => protocol::write_frame(&mut w, protocol::STDERR, &d),
                vm::Output::Eof(_) => Ok(()),
                vm::Output::Exit(code) => {
                    let _ = protocol::write_frame(&mut w, protocol::EXIT, &code.to_be_bytes());
                    let _ = w.shutdown(std::net::Shutdown::Both);
                    return;
                }
            };
            // A detached exec's client has gone: keep draining, stop writing.
            if sent.is_err() {
                while io.recv().is_some() {}
                return;
            }
        }
        let _ = protocol::write_frame(&mut w, protocol::ERROR, b"the VM went away");
        let _ = w.shutdown(std::net::Shutdown::Both);
    });
    while let Ok(Some(frame)) = protocol::read_frame(&mut reader) {
        let r = match frame.kind {
            protocol::STDIN => input.write_stdin(&frame.payload),
            protocol::STDIN_CLOSE => input.close_stdin(),
            protocol::RESIZE => match protocol::parse_resize(&frame.payload) {
                Some((rows, cols)) => input.resize(rows, cols),
                None => Ok(()),
            },
            _ => Ok(()),
        };
        if r.is_err() {
            break;
        }
    }
    Ok(())
}

/// How long the client waits for the monitor's answer.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The client side: one request, one answer, on a fresh connection.
pub fn call(socket: &Path, req: &Request) -> std::io::Result<(Response, UnixStream)> {
    let dir = File::open(socket.parent().unwrap_or(Path::new("/")))?;
    // Through /proc/self/fd, so that long paths fit sun_path.
    let path = format!(
        "/proc/self/fd/{}/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dir),
        socket
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let mut conn = UnixStream::connect(path)?;
    let mut text = serde_json::to_string(req).map_err(std::io::Error::other)?;
    text.push('\n');
    conn.write_all(text.as_bytes())?;
    // A guest that stopped answering must not hang the CLI.
    conn.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let line = read_answer_line(&mut conn)?;
    conn.set_read_timeout(None)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the monitor closed the VM control connection",
        ));
    }
    let resp = serde_json::from_slice(&line).map_err(std::io::Error::other)?;
    // Nothing past the answer's newline was read: the stream is in step.
    Ok((resp, conn))
}

/// Reads the answer line one byte at a time, not through a buffered reader:
/// after an exec's answer the monitor sends its attach frames at once, and a
/// buffer dropped here would swallow them (the exit frame included).
fn read_answer_line(conn: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match conn.read(&mut byte) {
            Ok(0) => return Ok(line),
            Ok(_) if byte[0] == b'\n' => return Ok(line),
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Client side of an exec's stdio: copies `stdin` into frames and frames
/// into `stdout`/`stderr`; sends the exit.
pub fn exec_pipes(
    conn: UnixStream,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    done: mpsc::Sender<Ending>,
) -> std::io::Result<()> {
    let mut to = conn.try_clone()?;
    std::thread::spawn(move || {
        let mut from = File::from(stdin);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if protocol::write_frame(&mut to, protocol::STDIN, &buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = protocol::write_frame(&mut to, protocol::STDIN_CLOSE, &[]);
    });
    std::thread::spawn(move || {
        let mut conn = conn;
        let mut out = File::from(stdout);
        let mut err = File::from(stderr);
        let ending = relay_until_exit(&mut conn, |kind, data| {
            let _ = if kind == protocol::STDERR {
                err.write_all(data)
            } else {
                out.write_all(data)
            };
        });
        let _ = done.send(ending);
    });
    Ok(())
}

/// Client side of an exec with a terminal: a host pty whose master the
/// caller gets; input and window sizes go to the guest as frames.
pub fn exec_terminal(conn: UnixStream, done: mpsc::Sender<Ending>) -> std::io::Result<OwnedFd> {
    let mut to_input = conn.try_clone()?;
    let to_resize = Arc::new(std::sync::Mutex::new(conn.try_clone()?));
    let resize = to_resize.clone();
    let (master, mut output) = vm::stdio::pty_bridge(
        move |d| protocol::write_frame(&mut to_input, protocol::STDIN, d).is_ok(),
        move |rows, cols| {
            let mut w = resize.lock().unwrap_or_else(|e| e.into_inner());
            let _ = protocol::write_frame(
                &mut *w,
                protocol::RESIZE,
                &protocol::resize_payload(rows, cols),
            );
        },
    )?;
    std::thread::spawn(move || {
        let mut conn = conn;
        let ending = relay_until_exit(&mut conn, |_, data| {
            let _ = output.write_all(data);
        });
        drop(output);
        drop(to_resize);
        let _ = done.send(ending);
    });
    Ok(master)
}

/// Reads an exec's attach frames until its end: each STDOUT or STDERR
/// payload goes to `output` with its kind; EXIT gives the status, ERROR the
/// guest's message, and a closed or broken socket means the VM went away.
fn relay_until_exit(conn: &mut UnixStream, mut output: impl FnMut(u8, &[u8])) -> Ending {
    loop {
        match protocol::read_frame(conn) {
            Ok(Some(f)) => match f.kind {
                protocol::STDOUT | protocol::STDERR => output(f.kind, &f.payload),
                protocol::EXIT if f.payload.len() == 4 => {
                    let b = [f.payload[0], f.payload[1], f.payload[2], f.payload[3]];
                    break Ok(i32::from_be_bytes(b));
                }
                protocol::ERROR => break Err(String::from_utf8_lossy(&f.payload).into()),
                _ => {}
            },
            Ok(None) | Err(_) => break Err("the VM went away".into()),
        }
    }
}
