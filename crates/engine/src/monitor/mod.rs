//! monitor: the per-container process that owns a running container. It is a
//! re-exec of the isola binary (hidden subcommand), detached in its own
//! session with stdio on /dev/null, so the CLI may exit at any time. It
//! creates the container through the backend (before it starts any thread),
//! starts it, copies its output into the log and to attached clients, serves
//! stdin and resizes on a unix socket, waits for the init, records the exit
//! and applies the restart policy. It reports "created"/"started"/"error" to
//! the CLI over a pipe (fd 3). The CLI side of that handshake is [`spawn`].

pub mod log;
pub mod protocol;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use runtime::error_chain as chain;

use crate::backend::{self, BackendPaths, ContainerIo};
use crate::spec::bundle_dir;
use crate::state::{ProcessId, Status};
use crate::store::ContainerStore;
use crate::sys;
use log::{LineBuffer, LogWriter};

/// The hidden subcommand that runs a monitor.
pub const COMMAND: &str = "container-monitor";
/// The monitor's socket in the container directory.
pub const SOCKET: &str = "monitor.sock";
/// The file a running monitor holds locked.
const MONITOR_LOCK: &str = "monitor.lock";

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("starting the monitor of container {id}")]
    Spawn {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the monitor of container {id} exited before reporting (see isola inspect)")]
    Vanished { id: String },
    /// The monitor's own report of why container `id` could not start: a
    /// whole error chain already, shown as it came.
    #[error("{message}")]
    Failed { id: String, message: String },
    #[error("connecting to the monitor of container {id} at {path}")]
    Connect {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the monitor reports over the readiness pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Running, with the init's host pid.
    Started(i32),
}

/// The CLI's end of the readiness pipe, and of the attach connection when
/// the monitor was started for an attaching CLI.
pub struct ReadyPipe {
    id: String,
    reader: BufReader<File>,
    attach: Option<UnixStream>,
    /// The first monitor process, which forks and exits at once: reaped
    /// after the first report rather than waited for before it.
    first: Option<std::process::Child>,
}

impl ReadyPipe {
    /// The next report; an error report or a vanished monitor is an error.
    pub fn report(&mut self) -> Result<Report, MonitorError> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).unwrap_or(0);
        if let Some(mut first) = self.first.take() {
            let _ = first.wait();
        }
        let line = line.trim_end();
        if n == 0 {
            return Err(MonitorError::Vanished {
                id: self.id.clone(),
            });
        }
        if let Some(pid) = line.strip_prefix("started ") {
            return Ok(Report::Started(pid.parse().unwrap_or(0)));
        }
        Err(MonitorError::Failed {
            id: self.id.clone(),
            message: line.strip_prefix("error ").unwrap_or(line).to_string(),
        })
    }

    /// The attach connection made at spawn (once).
    pub fn take_attach(&mut self) -> Option<UnixStream> {
        self.attach.take()
    }
}

/// Starts the monitor of container `id` (whose record and bundle exist).
/// With `attach`, the monitor is handed one end of a connected socket pair
/// (the other is in the returned [`ReadyPipe`]) before it starts anything,
/// so no output is lost and no connect round trip is needed.
pub fn spawn(
    root: &Path,
    id: &str,
    attach: bool,
    console_size: Option<(u16, u16)>,
) -> Result<ReadyPipe, MonitorError> {
    let err = |source| MonitorError::Spawn {
        id: id.into(),
        source,
    };
    let (reader, writer) = std::io::pipe().map_err(err)?;
    let writer: OwnedFd = writer.into();
    let exe = std::env::current_exe().map_err(err)?;
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(root)
        .arg(COMMAND)
        .arg(id)
        .arg("--ready-fd")
        .arg("3")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(debug_log());
    let mut fds = vec![(std::os::fd::AsRawFd::as_raw_fd(&writer), 3)];
    let (ours, theirs) = if attach {
        let (a, b) = UnixStream::pair().map_err(err)?;
        cmd.arg("--attach-fd").arg("4");
        fds.push((std::os::fd::AsRawFd::as_raw_fd(&b), 4));
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    if let Some((rows, cols)) = console_size {
        cmd.arg("--console-size").arg(format!("{rows}x{cols}"));
    }
    sys::detach_with_fds(&mut cmd, fds);
    let child = cmd.spawn().map_err(err)?;
    drop(writer);
    drop(theirs);
    Ok(ReadyPipe {
        id: id.into(),
        reader: BufReader::new(File::from(OwnedFd::from(reader))),
        attach: ours,
        first: Some(child),
    })
}

/// The monitor's stderr: /dev/null, or the file named by `ISOLA_MONITOR_LOG`
/// (for debugging the monitor itself).
fn debug_log() -> Stdio {
    std::env::var_os(DEBUG_LOG_ENV)
        .and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        })
        .map(Stdio::from)
        .unwrap_or_else(Stdio::null)
}

/// Environment variable naming a file for monitors' diagnostics.
pub const DEBUG_LOG_ENV: &str = "ISOLA_MONITOR_LOG";

/// Connects to a container's monitor socket.
pub fn connect(dir: &Path, id: &str) -> Result<UnixStream, MonitorError> {
    let err = |source| MonitorError::Connect {
        id: id.into(),
        path: dir.join(SOCKET),
        source,
    };
    // Through /proc/self/fd so that long roots fit sun_path's 108 bytes.
    let d = File::open(dir).map_err(err)?;
    let path = format!(
        "/proc/self/fd/{}/{SOCKET}",
        std::os::fd::AsRawFd::as_raw_fd(&d)
    );
    UnixStream::connect(path).map_err(err)
}

/// Arguments of the hidden monitor subcommand.
#[derive(Debug, Clone)]
pub struct MonitorArgs {
    pub root: PathBuf,
    pub id: String,
    pub ready_fd: Option<i32>,
    /// A socket connected to the attaching CLI, inherited at this number.
    pub attach_fd: Option<i32>,
    /// The terminal's initial (rows, columns).
    pub console_size: Option<(u16, u16)>,
    /// Re-executed by a monitor for a restart: already detached, and its pid
    /// (recorded in the state) must stay the same.
    pub restarted: bool,
}

struct Ready(Option<File>);

impl Ready {
    fn send(&mut self, line: &str) {
        if let Some(f) = self.0.as_mut() {
            let _ = writeln!(f, "{line}");
        }
    }
    fn close(&mut self) {
        self.0 = None;
    }
}

/// The shared state of a running monitor's threads.
struct Hub {
    clients: Mutex<Vec<UnixStream>>,
    log: Mutex<LogWriter>,
    stdin: Mutex<Option<File>>,
    console: Option<File>,
}

impl Hub {
    fn broadcast(&self, kind: u8, data: &[u8]) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain_mut(|c| protocol::write_frame(c, kind, data).is_ok());
    }

    fn serve_client(&self, mut stream: UnixStream) {
        while let Ok(Some(frame)) = protocol::read_frame(&mut stream) {
            match frame.kind {
                protocol::STDIN => {
                    if let Some(c) = self.console.as_ref() {
                        let _ = (&*c).write_all(&frame.payload);
                    } else if let Some(f) = self
                        .stdin
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .as_mut()
                    {
                        let _ = f.write_all(&frame.payload);
                    }
                }
                protocol::STDIN_CLOSE => {
                    *self.stdin.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
                protocol::RESIZE => {
                    if let (Some(c), Some((rows, cols))) = (
                        self.console.as_ref(),
                        protocol::parse_resize(&frame.payload),
                    ) {
                        let _ = sys::set_window_size(c.as_fd(), rows, cols);
                    }
                }
                _ => {}
            }
        }
    }
}

fn pump(hub: Arc<Hub>, mut from: File, stream: &'static str, kind: u8, done: mpsc::Sender<()>) {
    let mut lines = LineBuffer::new(stream);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hub.broadcast(kind, &buf[..n]);
                let mut log = hub.log.lock().unwrap_or_else(|e| e.into_inner());
                let _ = lines.push(&buf[..n], &mut log);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO: the pty's last slave closed.
            Err(_) => break,
        }
    }
    let mut log = hub.log.lock().unwrap_or_else(|e| e.into_inner());
    let _ = lines.flush(&mut log);
    let _ = done.send(());
}

fn pipe_pair() -> std::io::Result<(File, OwnedFd)> {
    let (r, w) = std::io::pipe()?;
    Ok((File::from(OwnedFd::from(r)), OwnedFd::from(w)))
}

/// Runs a monitor to the end; returns the monitor's exit status.
pub fn run(args: MonitorArgs) -> i32 {
    if !args.restarted && sys::daemonize().is_err() {
        return 1;
    }
    let ready = args.ready_fd.map(sys::inherited_fd).map(File::from);
    let mut ready = Ready(ready);
    match monitor(&args, &mut ready) {
        Ok(()) => 0,
        Err(msg) => {
            ready.send(&format!("error {msg}"));
            1
        }
    }
}

fn monitor(args: &MonitorArgs, ready: &mut Ready) -> Result<(), String> {
    let store = ContainerStore::open(&args.root).map_err(|e| chain(&e))?;
    let record = store
        .read(&args.id)
        .map_err(|e| chain(&e))?
        .ok_or_else(|| format!("no such container: {}", args.id))?;
    if args.restarted && record.state.stopped_by_user {
        // Stopped (or being removed) while this monitor re-executed itself.
        let _ = store.update_state(&args.id, |s| {
            s.status = Status::Exited;
            s.monitor = None;
        });
        return Ok(());
    }
    let config = record.config;
    let dir = record.dir;
    // One monitor per container, held for the monitor's lifetime: a second
    // `start` of the same container fails here instead of racing the first.
    let lock_path = dir.join(MONITOR_LOCK);
    let monitor_lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
    if monitor_lock.try_lock().is_err() {
        return Err(format!("container {} is already running", config.id));
    }
    let me = ProcessId::of(std::process::id() as i32);
    let paths = BackendPaths {
        root: args.root.clone(),
    };
    let backend = backend::open(config.isolation, &paths).map_err(|e| chain(&e))?;
    let fail = |store: &ContainerStore, msg: String| -> String {
        let _ = store.update_state(&config.id, |s| {
            s.status = if s.started_at.is_some() {
                Status::Exited
            } else {
                Status::Created
            };
            s.error = Some(msg.clone());
            s.monitor = None;
            s.init = None;
        });
        msg
    };

    // Leftovers of an earlier run (a restart, or `start` after an exit).
    if record.state.started_at.is_some() || args.restarted {
        let _ = backend.delete(&config.id, true);
    }

    let mut stdin_writer = None;
    let mut outputs = Vec::new();
    let io = if config.tty {
        ContainerIo::Terminal
    } else {
        let stdin: OwnedFd = if config.open_stdin {
            let (r, w) = std::io::pipe().map_err(|e| e.to_string())?;
            stdin_writer = Some(File::from(OwnedFd::from(w)));
            OwnedFd::from(r)
        } else {
            File::open("/dev/null").map_err(|e| e.to_string())?.into()
        };
        let (out_r, out_w) = pipe_pair().map_err(|e| e.to_string())?;
        let (err_r, err_w) = pipe_pair().map_err(|e| e.to_string())?;
        outputs.push((out_r, "stdout", protocol::STDOUT));
        outputs.push((err_r, "stderr", protocol::STDERR));
        ContainerIo::Pipes {
            stdin,
            stdout: out_w,
            stderr: err_w,
        }
    };
    // The network before the container: its bundle names the namespace.
    let release_network = || crate::netattach::release(&args.root, &store, &config);
    if config.netns.is_some() {
        crate::netattach::attach(&args.root, &store, &config).map_err(|e| {
            release_network();
            fail(&store, chain(&e))
        })?;
        crate::events::container_networks(&args.root, &config, "connect");
    }
    let created = sys::with_default_sigpipe(|| backend.create(&config, &bundle_dir(&dir), io))
        .map_err(|e| {
            release_network();
            fail(&store, chain(&e))
        })?;
    let pid = created.pid;
    let wait = created.wait;
    let console = created.console.map(File::from);
    if let (Some(c), Some((rows, cols))) = (&console, args.console_size) {
        let _ = sys::set_window_size(c.as_fd(), rows, cols);
    }
    if let Some(c) = &console {
        outputs.push((
            c.try_clone().map_err(|e| e.to_string())?,
            "stdout",
            protocol::STDOUT,
        ));
    }

    let listener = crate::socket::bind_private(&dir, SOCKET).map_err(|e| {
        fail(
            &store,
            format!("binding {}: {e}", dir.join(SOCKET).display()),
        )
    })?;

    let log = LogWriter::open(&dir, &config.log_config).map_err(|e| e.to_string())?;
    let hub = Arc::new(Hub {
        clients: Mutex::new(Vec::new()),
        log: Mutex::new(log),
        stdin: Mutex::new(stdin_writer),
        console,
    });

    let first_client = args
        .attach_fd
        .map(|fd| UnixStream::from(sys::inherited_fd(fd)));

    if let Err(e) = backend.start(&config.id) {
        let msg = chain(&e);
        if let Some(mut c) = first_client {
            let _ = protocol::write_frame(&mut c, protocol::ERROR, msg.as_bytes());
        }
        let _ = backend.delete(&config.id, true);
        release_network();
        return Err(fail(&store, msg));
    }
    let started = store
        .update_state(&config.id, |s| {
            s.status = Status::Running;
            s.init = ProcessId::of(pid);
            s.monitor = me;
            s.started_at = Some(Utc::now());
            s.finished_at = None;
            s.exit_code = None;
            s.error = None;
        })
        .map_err(|e| chain(&e))?;
    crate::events::container(&args.root, &config, "start", &[]);
    if config.healthcheck.is_some() {
        let _ = store.update_state(&config.id, |s| {
            s.health = Some(crate::health::Health::starting())
        });
    }
    ready.send(&format!("started {pid}"));
    ready.close();
    sys::release_executable_pages();
    tracing::debug!(pid, "container {} started", config.id);

    // Threads from here on: no more forks in this process.
    let (done_tx, done_rx) = mpsc::channel();
    if let Some(c) = first_client {
        let hub2 = hub.clone();
        let reader = c.try_clone().map_err(|e| e.to_string())?;
        hub.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c);
        std::thread::spawn(move || hub2.serve_client(reader));
    }
    let n_outputs = outputs.len();
    for (file, stream, kind) in outputs {
        let hub2 = hub.clone();
        let tx = done_tx.clone();
        std::thread::spawn(move || pump(hub2, file, stream, kind, tx));
    }
    {
        let hub2 = hub.clone();
        std::thread::spawn(move || {
            for stream in crate::socket::allowed_incoming(&listener) {
                let Ok(reader) = stream.try_clone() else {
                    continue;
                };
                hub2.clients
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(stream);
                let hub3 = hub2.clone();
                std::thread::spawn(move || hub3.serve_client(reader));
            }
        });
    }

    // Health probes while it runs, each a process of its own (see health.rs).
    let (health_stop, health_rx) = mpsc::channel::<()>();
    if let Some(check) = config.healthcheck.clone() {
        let (root, id) = (args.root.clone(), config.id.clone());
        std::thread::spawn(move || {
            crate::health::run_checks(&check, &health_rx, || {
                let exe = std::env::current_exe()?;
                std::process::Command::new(exe)
                    .arg("--root")
                    .arg(&root)
                    .arg(crate::health::PROBE_COMMAND)
                    .arg(&id)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
            })
        });
    }
    // A wait that fails (VM mode: QEMU died, the guest panicked) leaves the
    // exit status unknown; the record says why.
    let (code, fault) = match wait() {
        Ok(code) => (code, None),
        Err(e) => (255, Some(chain(&e))),
    };
    let _ = health_stop.send(());
    // The pid namespace is gone with its init, so the output pipes reach EOF
    // promptly; the bound is for a pty whose slave something else still holds.
    for _ in 0..n_outputs {
        if done_rx.recv_timeout(Duration::from_secs(2)).is_err() {
            break;
        }
    }
    // The monitor is the one witness of the exit: `die` comes from here,
    // whoever (CLI, API, nobody) started the container.
    // With its name now (a rename since the start is in the record).
    let named = match store.read(&config.id) {
        Ok(Some(r)) => r.config,
        _ => config.clone(),
    };
    crate::events::container(&args.root, &named, "die", &[("exitCode", code.to_string())]);
    if config.netns.is_some() {
        crate::events::container_networks(&args.root, &config, "disconnect");
    }
    if config.auto_remove {
        // --rm (never combined with a restart policy): remove first, then
        // report the exit, so the attached CLI returns with nothing left.
        // The backend's cleanup (cgroups, runtime state) and the removal of
        // the snapshot and record are independent: side by side.
        let removed = std::thread::scope(|s| {
            s.spawn(|| backend.delete(&config.id, true));
            crate::lifecycle::remove_resources(&args.root, &store, &named, true)
        });
        if let Err(e) = removed {
            tracing::warn!("removing container {}: {}", config.id, chain(&e));
            let _ = store.update_state(&config.id, |s| {
                s.status = Status::Exited;
                s.exit_code = Some(code);
                s.finished_at = Some(Utc::now());
                s.init = None;
                s.monitor = None;
                s.error = Some(format!("removing the container: {}", chain(&e)));
            });
        }
        hub.broadcast(protocol::EXIT, &code.to_be_bytes());
        for c in hub.clients.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        return Ok(());
    }
    let _ = backend.delete(&config.id, true);
    // As docker, an exited container holds no address, port or veth.
    release_network();
    // Exit and restart decision in one write, so no reader sees "exited"
    // for a container that is about to restart.
    let mut restart = false;
    let after = store
        .update_state(&config.id, |s| {
            // The record's policy: `update --restart` may have changed it.
            restart = named
                .restart_policy
                .should_restart(code, s.restart_count, s.stopped_by_user);
            s.status = if restart {
                Status::Restarting
            } else {
                Status::Exited
            };
            if restart {
                s.restart_count += 1;
            }
            s.exit_code = Some(code);
            s.finished_at = Some(Utc::now());
            s.init = None;
            if fault.is_some() {
                s.error = fault.clone();
            }
            if !restart {
                s.monitor = None;
            }
        })
        .map_err(|e| chain(&e))?;
    hub.broadcast(protocol::EXIT, &code.to_be_bytes());
    for c in hub.clients.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = c.shutdown(std::net::Shutdown::Both);
    }
    let _ = std::fs::remove_file(dir.join(SOCKET));

    if restart {
        let ran_for = Utc::now() - started.started_at.unwrap_or_else(Utc::now);
        // docker's back-off: 100 ms doubling, reset after 10 s of running.
        let delay = if ran_for.num_seconds() >= 10 {
            100
        } else {
            (100u64 << after.restart_count.saturating_sub(1).min(8)).min(60_000)
        };
        // Sleep in steps, so that a stop/rm during a long back-off is seen at once.
        let wake = std::time::Instant::now() + Duration::from_millis(delay);
        while std::time::Instant::now() < wake {
            std::thread::sleep(Duration::from_millis(20).min(wake - std::time::Instant::now()));
            match store.read(&config.id) {
                Ok(Some(r)) if !r.state.stopped_by_user => {}
                _ => break,
            }
        }
        // A stop/rm during the back-off wins.
        match store.read(&config.id) {
            Ok(Some(r)) if r.state.status == Status::Restarting && !r.state.stopped_by_user => {}
            _ => {
                let _ = store.update_state(&config.id, |s| {
                    if s.status == Status::Restarting {
                        s.status = Status::Exited;
                    }
                    s.monitor = None;
                });
                return Ok(());
            }
        }
        return Err(reexec(args));
    }
    Ok(())
}

/// Replaces this (multi-threaded) monitor with a fresh one for a restart.
fn reexec(args: &MonitorArgs) -> String {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return e.to_string(),
    };
    // exec keeps our pid; the fresh monitor forks once more and this pid exits.
    let err = Command::new(exe)
        .arg("--root")
        .arg(&args.root)
        .arg(COMMAND)
        .arg(&args.id)
        .arg("--restarted")
        .exec();
    format!("re-executing the monitor: {err}")
}
