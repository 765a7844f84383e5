//! client: the host side of the agent protocol over one connected stream.
//! A reader thread demultiplexes frames: responses to the callers waiting on
//! them, stdio and exits to each process's [`ProcessIo`]. Calls are blocking
//! (the engine's monitor may call them from any thread, or spawn_blocking).
//! It must not know about QEMU: a broken channel is reported with the console
//! log path it was given, and the VM layer decides what else to do.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use proto::{
    CompiledSeccomp, ContainerStats, Frame, Kind, ProcessInfo, Request, Response, StdioFd,
    WindowSize, PROTOCOL_VERSION,
};

use crate::Error;

/// What a process in the guest produced, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// That output reached its end.
    Eof(StdioFd),
    /// The process exited with this code (128 + signal if killed); last item.
    Exit(i32),
}

#[derive(Default)]
struct State {
    responses: HashMap<u32, Response>,
    streams: HashMap<u32, Sender<Output>>,
    /// Why the channel is gone, once it is.
    closed: Option<String>,
}

struct Inner {
    writer: Mutex<UnixStream>,
    state: Mutex<State>,
    changed: Condvar,
    next_id: AtomicU32,
    next_stream: AtomicU32,
    console: PathBuf,
}

/// A connection to one guest agent. Cheap to clone; all clones share it.
#[derive(Clone)]
pub struct AgentClient {
    inner: Arc<Inner>,
}

/// The stdio and exit of one process in the guest (a container's init or an exec).
pub struct ProcessIo {
    stream: u32,
    rx: Receiver<Output>,
    client: AgentClient,
}

/// Everything a finished process wrote, and its exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub code: i32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AgentClient {
    /// Takes over a connected stream and starts the reader thread.
    /// `console` is named in errors when the channel breaks.
    pub fn new(stream: UnixStream, console: PathBuf) -> Result<AgentClient, Error> {
        let reader = stream
            .try_clone()
            .map_err(Error::io("clone", "agent socket"))?;
        let inner = Arc::new(Inner {
            writer: Mutex::new(stream),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            next_id: AtomicU32::new(1),
            next_stream: AtomicU32::new(1),
            console,
        });
        let for_reader = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("isola-agent-rx".into())
            .spawn(move || read_loop(reader, &for_reader))
            .map_err(Error::io("start the reader thread for", "agent socket"))?;
        Ok(AgentClient { inner })
    }

    fn closed_error(&self, why: &str) -> Error {
        Error::VmExited {
            status: why.to_string(),
            console: self.inner.console.clone(),
        }
    }

    fn send(&self, frame: &Frame) -> Result<(), Error> {
        let mut w = lock(&self.inner.writer);
        frame.write_to(&mut *w).map_err(|_| {
            let why = lock(&self.inner.state)
                .closed
                .clone()
                .unwrap_or_else(|| "the agent channel broke".into());
            self.closed_error(&why)
        })
    }

    /// Sends `req` and waits for its answer (up to `timeout` if given).
    pub fn call(&self, req: &Request, timeout: Option<Duration>) -> Result<Response, Error> {
        let id = self.request(req)?;
        self.answer(id, timeout)
    }

    /// Sends `req` without waiting; [`AgentClient::answer`] collects the answer.
    /// The agent serves requests in order, so several can be in flight.
    fn request(&self, req: &Request) -> Result<u32, Error> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(&Frame::json(Kind::Request, id, req))?;
        Ok(id)
    }

    /// Waits for the answer to request `id` (up to `timeout` if given).
    fn answer(&self, id: u32, timeout: Option<Duration>) -> Result<Response, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = lock(&self.inner.state);
        loop {
            if let Some(resp) = st.responses.remove(&id) {
                return Ok(resp);
            }
            if let Some(why) = &st.closed {
                return Err(self.closed_error(why));
            }
            st = match deadline {
                None => self
                    .inner
                    .changed
                    .wait(st)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::BootTimeout {
                            waited: timeout.unwrap_or_default(),
                            console: self.inner.console.clone(),
                        });
                    }
                    self.inner
                        .changed
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    fn expect_ok(&self, call: &'static str, req: &Request) -> Result<Response, Error> {
        match self.call(req, None)? {
            Response::Error { message } => Err(Error::Agent { call, message }),
            other => Ok(other),
        }
    }

    /// Checks the agent's protocol version; returns the guest kernel release
    /// and the guest uptime at which the agent began serving.
    pub fn hello(&self, timeout: Duration) -> Result<(String, Duration), Error> {
        let req = Request::Hello {
            version: PROTOCOL_VERSION,
        };
        match self.call(&req, Some(timeout))? {
            Response::Hello {
                version,
                kernel_release,
                serving_at_ms,
            } if version == PROTOCOL_VERSION => {
                Ok((kernel_release, Duration::from_millis(serving_at_ms)))
            }
            Response::Hello { version, .. } => Err(Error::VersionMismatch {
                host: PROTOCOL_VERSION,
                guest: version,
            }),
            other => Err(unexpected("hello", &other)),
        }
    }

    /// Makes the guest ready for containers (Request::Init): 64 bytes of the
    /// host's entropy, the host's clock, the rootfs share mounted.
    pub fn init(&self) -> Result<(), Error> {
        let mut entropy = vec![0u8; 64];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(Error::io("open", "/dev/urandom"))?,
            &mut entropy,
        )
        .map_err(Error::io("read", "/dev/urandom"))?;
        let unix_time_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let req = Request::Init {
            entropy,
            unix_time_ns,
        };
        self.expect_ok("prepare the guest", &req).map(drop)
    }

    /// Gives the guest's NIC with `mac` its address and default route.
    pub fn configure_network(
        &self,
        mac: &str,
        address: std::net::Ipv4Addr,
        prefix_len: u8,
        gateway: Option<std::net::Ipv4Addr>,
        mtu: u32,
    ) -> Result<(), Error> {
        let req = Request::Network {
            mac: mac.to_string(),
            address,
            prefix_len,
            gateway,
            mtu,
        };
        self.expect_ok("configure the guest's network", &req)
            .map(drop)
    }

    /// Has the guest run `emulator`'s architecture: its share mounted and
    /// the emulator registered with the guest's binfmt_misc.
    pub fn register_emulator(&self, emulator: &crate::emulator::Emulator) -> Result<(), Error> {
        let tag = emulator.tag();
        let req = Request::RegisterBinfmt {
            line: emulator.register_line(&proto::share_path(&tag)),
            tag,
        };
        self.expect_ok("register the image's emulator", &req)
            .map(drop)
    }

    fn open_stream(&self) -> (u32, Receiver<Output>) {
        let stream = self.inner.next_stream.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        lock(&self.inner.state).streams.insert(stream, tx);
        (stream, rx)
    }

    fn process_io(&self, stream: u32, rx: Receiver<Output>) -> ProcessIo {
        ProcessIo {
            stream,
            rx,
            client: self.clone(),
        }
    }

    /// Creates container `id` from `spec` with its rootfs at `rootfs` in the
    /// guest; returns the init's guest pid and its stdio (registered before the
    /// request goes out, so no output is missed).
    pub fn create_container(
        &self,
        id: &str,
        spec: &oci_spec::runtime::Spec,
        rootfs: &str,
        terminal: bool,
    ) -> Result<(i32, ProcessIo), Error> {
        self.mount_shares_and_create(&[], id, spec, rootfs, terminal)
    }

    /// Mounts the VM's 9p shares (tag, read-only) and creates container `id`
    /// in one exchange: the requests go out back to back and the answers are
    /// read after, a round trip per share less than asking one by one. The
    /// spec's bind sources name the shares (see [`crate::Share`]) by their
    /// guest paths, [`crate::share_path`].
    pub fn mount_shares_and_create(
        &self,
        shares: &[(&str, bool)],
        id: &str,
        spec: &oci_spec::runtime::Spec,
        rootfs: &str,
        terminal: bool,
    ) -> Result<(i32, ProcessIo), Error> {
        let mut mounts = Vec::new();
        for (tag, read_only) in shares {
            let req = Request::MountShare {
                tag: tag.to_string(),
                read_only: *read_only,
            };
            mounts.push((*tag, self.request(&req)?));
        }
        // Compiled here, natively: libseccomp in the guest runs emulated.
        let seccomp = compile_seccomp(spec)?;
        let (stream, rx) = self.open_stream();
        let created = self
            .request(&Request::CreateContainer {
                id: id.to_string(),
                spec: Box::new(spec.clone()),
                rootfs: rootfs.to_string(),
                terminal,
                stream,
                seccomp,
            })
            .and_then(|create| {
                // Every answer is collected, the first failure reported: a
                // create that failed because a mount did is explained by the mount.
                let mut first_err = None;
                for (tag, req) in mounts {
                    let err = match self.answer(req, None) {
                        Ok(Response::Mounted { path }) if path == crate::share_path(tag) => None,
                        Ok(Response::Error { message }) => Some(Error::Agent {
                            call: "mount a share",
                            message,
                        }),
                        Ok(other) => Some(unexpected("mount_share", &other)),
                        Err(e) => Some(e),
                    };
                    first_err = first_err.or(err);
                }
                let answer = self.answer(create, None);
                if let Some(e) = first_err {
                    return Err(e);
                }
                match answer? {
                    Response::Created { pid } => Ok(pid),
                    Response::Error { message } => Err(Error::Agent {
                        call: "create the container",
                        message,
                    }),
                    other => Err(unexpected("create", &other)),
                }
            });
        match created {
            Ok(pid) => Ok((pid, self.process_io(stream, rx))),
            Err(e) => {
                lock(&self.inner.state).streams.remove(&stream);
                Err(e)
            }
        }
    }

    pub fn start(&self, container: &str) -> Result<(), Error> {
        let req = Request::Start {
            container: container.to_string(),
        };
        self.expect_ok("start the container", &req).map(drop)
    }

    /// Runs `process` in the container; returns its guest pid and stdio.
    pub fn exec(
        &self,
        container: &str,
        process: &oci_spec::runtime::Process,
        terminal: bool,
    ) -> Result<(i32, ProcessIo), Error> {
        let (stream, rx) = self.open_stream();
        let req = Request::Exec {
            container: container.to_string(),
            process: Box::new(process.clone()),
            terminal,
            stream,
        };
        match self.expect_ok("exec in the container", &req) {
            Ok(Response::Executed { pid }) => Ok((pid, self.process_io(stream, rx))),
            Ok(other) => Err(unexpected("exec", &other)),
            Err(e) => {
                lock(&self.inner.state).streams.remove(&stream);
                Err(e)
            }
        }
    }

    /// Signals the container's init, or every process in it with `all`.
    pub fn signal(&self, container: &str, signal: i32, all: bool) -> Result<(), Error> {
        let req = Request::Signal {
            container: container.to_string(),
            stream: None,
            signal,
            all,
        };
        self.expect_ok("signal the container", &req).map(drop)
    }

    /// The container's processes as the guest sees them.
    pub fn top(&self, container: &str) -> Result<Vec<ProcessInfo>, Error> {
        let req = Request::Top {
            container: container.to_string(),
        };
        match self.expect_ok("list the container's processes", &req)? {
            Response::Processes { processes } => Ok(processes),
            other => Err(unexpected("top", &other)),
        }
    }

    pub fn stats(&self, container: &str) -> Result<ContainerStats, Error> {
        let req = Request::Stats {
            container: container.to_string(),
        };
        match self.expect_ok("report the container's stats", &req)? {
            Response::Stats { stats } => Ok(stats),
            other => Err(unexpected("stats", &other)),
        }
    }

    /// Asks the agent to sync and power the VM off. The channel closing right
    /// after is the expected outcome, not an error.
    pub fn shutdown(&self) -> Result<(), Error> {
        match self.call(&Request::Shutdown, None) {
            Ok(Response::Error { message }) => Err(Error::Agent {
                call: "shut down",
                message,
            }),
            Ok(_) | Err(Error::VmExited { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether the channel is still up (false once the VM has gone).
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.state).closed.is_none()
    }
}

/// The spec's linux.seccomp as the guest's BPF, when this host compiles for
/// the guest's architecture (x86_64, QEMU's); None leaves it to the guest.
fn compile_seccomp(spec: &oci_spec::runtime::Spec) -> Result<Option<CompiledSeccomp>, Error> {
    if !cfg!(target_arch = "x86_64") {
        return Ok(None);
    }
    let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    let program = runtime::seccomp::compile(profile).map_err(|source| Error::Seccomp { source })?;
    let (filter, flags) = program.to_bytes();
    Ok(Some(CompiledSeccomp { filter, flags }))
}

fn unexpected(call: &'static str, got: &Response) -> Error {
    Error::UnexpectedResponse {
        call,
        got: format!("{got:?}"),
    }
}

fn read_loop(mut stream: UnixStream, inner: &Inner) {
    let why = loop {
        let frame = match Frame::read_from(&mut stream) {
            Ok(f) => f,
            Err(proto::FrameError::Closed) => break "the agent channel closed".to_string(),
            Err(e) => break format!("the agent channel broke: {e}"),
        };
        let mut st = lock(&inner.state);
        let out = match frame.kind {
            Kind::Response => match frame.parse::<Response>("response") {
                Ok(resp) => {
                    st.responses.insert(frame.id, resp);
                    inner.changed.notify_all();
                    continue;
                }
                Err(e) => break format!("the agent sent a bad response: {e}"),
            },
            Kind::Stdout => Output::Stdout(frame.payload),
            Kind::Stderr => Output::Stderr(frame.payload),
            Kind::Eof => match frame.payload.first().copied().and_then(StdioFd::from_byte) {
                Some(fd) => Output::Eof(fd),
                None => continue,
            },
            Kind::Exit => match frame.exit_code() {
                Ok(code) => Output::Exit(code),
                Err(e) => break format!("the agent sent a bad exit frame: {e}"),
            },
            // Host → guest kinds never come back; ignore a confused peer.
            Kind::Request | Kind::Stdin | Kind::Resize => continue,
        };
        let last = matches!(out, Output::Exit(_));
        if let Some(tx) = st.streams.get(&frame.id) {
            let _ = tx.send(out);
        }
        if last {
            st.streams.remove(&frame.id);
        }
    };
    let mut st = lock(&inner.state);
    st.closed = Some(why);
    // Dropping the senders ends every ProcessIo's receive loop.
    st.streams.clear();
    inner.changed.notify_all();
}

/// The input side of one guest process (stdin, end of stdin, terminal
/// size), separate from its [`ProcessIo`] so that another thread can feed it
/// while one receives the output.
#[derive(Clone)]
pub struct ProcessInput {
    stream: u32,
    client: AgentClient,
}

impl ProcessInput {
    pub fn write_stdin(&self, data: &[u8]) -> Result<(), Error> {
        for chunk in data.chunks(proto::MAX_PAYLOAD as usize / 2) {
            self.client
                .send(&Frame::new(Kind::Stdin, self.stream, chunk.to_vec()))?;
        }
        Ok(())
    }

    pub fn close_stdin(&self) -> Result<(), Error> {
        self.client.send(&Frame::new(
            Kind::Eof,
            self.stream,
            vec![StdioFd::Stdin as u8],
        ))
    }

    pub fn resize(&self, rows: u16, cols: u16) -> Result<(), Error> {
        self.client.send(&Frame::json(
            Kind::Resize,
            self.stream,
            &WindowSize { rows, cols },
        ))
    }
}

impl ProcessIo {
    pub fn stream(&self) -> u32 {
        self.stream
    }

    /// A handle on this process's input, usable from another thread.
    pub fn input(&self) -> ProcessInput {
        ProcessInput {
            stream: self.stream,
            client: self.client.clone(),
        }
    }

    /// The next output; `None` once the process has exited and everything was
    /// read, or when the VM went away before it exited (see [`ProcessIo::wait`]).
    pub fn recv(&self) -> Option<Output> {
        self.rx.recv().ok()
    }

    /// Like [`ProcessIo::recv`], giving up after `timeout` (`Ok(None)`); an
    /// error if the VM went away before the process exited.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Output>, Error> {
        match self.rx.recv_timeout(timeout) {
            Ok(o) => Ok(Some(o)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(self.gone()),
        }
    }

    pub fn write_stdin(&self, data: &[u8]) -> Result<(), Error> {
        self.input().write_stdin(data)
    }

    pub fn close_stdin(&self) -> Result<(), Error> {
        self.input().close_stdin()
    }

    pub fn resize(&self, rows: u16, cols: u16) -> Result<(), Error> {
        self.input().resize(rows, cols)
    }

    /// Signals this process (not the whole container).
    pub fn signal(&self, container: &str, signal: i32) -> Result<(), Error> {
        let req = Request::Signal {
            container: container.to_string(),
            stream: Some(self.stream),
            signal,
            all: false,
        };
        self.client.expect_ok("signal the process", &req).map(drop)
    }

    /// Reads everything until the process exits. Output is buffered in
    /// memory: for tests and short commands; stream with `recv` otherwise.
    pub fn collect(self) -> Result<Collected, Error> {
        let mut c = Collected::default();
        while let Some(o) = self.recv() {
            match o {
                Output::Stdout(d) => c.stdout.extend(d),
                Output::Stderr(d) => c.stderr.extend(d),
                Output::Eof(_) => {}
                Output::Exit(code) => {
                    c.code = code;
                    return Ok(c);
                }
            }
        }
        Err(self.gone())
    }

    /// Waits for the exit code, discarding output.
    pub fn wait(self) -> Result<i32, Error> {
        while let Some(o) = self.recv() {
            if let Output::Exit(code) = o {
                return Ok(code);
            }
        }
        Err(self.gone())
    }

    fn gone(&self) -> Error {
        let why = lock(&self.client.inner.state)
            .closed
            .clone()
            .unwrap_or_else(|| "the agent channel closed".into());
        self.client.closed_error(&why)
    }
}
