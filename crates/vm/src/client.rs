//! client: the host side of the agent protocol over one connected stream.
//! A reader thread demultiplexes frames: responses to the callers waiting on
//! them, stdio and exits to each process's [`ProcessIo`]. Calls are blocking
//! (the engine's monitor may call them from any thread, or spawn_blocking).
//! It must not know about QEMU: a broken channel is reported with the console
//! log path it was given, and the VM layer decides what else to do.
//!
//! Nothing the guest sends is held without a bound, because a compromised
//! guest must not be able to grow the monitor's memory:
//! - a response is kept only for an id a caller is waiting on; unknown and
//!   duplicate ids are dropped (and logged);
//! - each stream's output is flow-controlled ([`proto::OUTPUT_WINDOW`]): the
//!   agent sends only as much as the host has credited, and the host credits
//!   what the stream's consumer has taken. An agent that sends beyond its
//!   window breaks the protocol and the channel is ended. The reader thread
//!   therefore never blocks on a consumer: a slow reader of one stream holds
//!   up that process's output only (its writes block in the guest, as on a
//!   full pipe), never the answers or the other streams;
//! - frames are size-checked by kind before their payload is allocated, and
//!   any malformed frame ends the channel with a [`Malformed`] saying what
//!   was wrong; output for a stream nobody consumes any more is dropped.
//!
//! The worst case the client holds, then: [`proto::OUTPUT_WINDOW`] (1 MiB)
//! per open stream (a container's init, and each exec running), plus one
//! frame being read (at most [`proto::MAX_PAYLOAD`], 4 MiB, for a response;
//! output frames are limited to the window), plus one response per caller
//! waiting (at most [`proto::MAX_PAYLOAD`] each; callers are the host's own
//! threads, one per control request being served).

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use proto::{
    output_cost, CompiledSeccomp, ContainerStats, Frame, Kind, ProcessInfo, Request, Response,
    StdioFd, WindowSize, OUTPUT_WINDOW, PROTOCOL_VERSION,
};

use crate::Error;

mod reader;

pub use reader::Malformed;
use reader::{read_loop, ChannelEnd, ErrorChain};

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

/// How much consumed output the host gives back in one Credit frame, at
/// most: a frame per quarter window, rather than one per output frame. Less
/// is given back as soon as the consumer has taken everything queued, so the
/// agent is never left waiting for credit the host holds.
const CREDIT_BATCH: u32 = OUTPUT_WINDOW / 4;

/// One stream's flow-control account, shared by the reader thread (which
/// adds what arrives) and the stream's [`ProcessIo`] (which gives back what
/// its owner consumed).
#[derive(Debug, Default)]
struct Account {
    /// Received and not yet credited back: queued, or consumed and not yet
    /// reported. Never above [`OUTPUT_WINDOW`]: the reader refuses more.
    outstanding: AtomicU32,
    /// Consumed by the owner and not yet credited back.
    consumed: AtomicU32,
}

/// How a process ended, as far as the reader knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Running,
    Exited(i32),
    /// The channel ended first.
    Gone,
    /// Its ProcessIo was dropped first: its exit will never be known.
    Abandoned,
}

/// A process's exit, kept apart from its output queue, so that a consumer
/// of the output that stalled does not hide the exit ([`ExitWatch`]).
struct ExitSlot {
    ending: Mutex<Ending>,
    changed: Condvar,
}

impl ExitSlot {
    fn set(&self, ending: Ending) {
        let mut e = lock(&self.ending);
        if *e == Ending::Running {
            *e = ending;
            self.changed.notify_all();
        }
    }
}

/// Where the reader delivers a stream's output.
struct Stream {
    tx: Sender<Output>,
    account: Arc<Account>,
    exit: Arc<ExitSlot>,
    /// Eof seen for stdout, stderr: a repeated one is dropped, so that the
    /// queue holds at most two Eofs and one Exit beyond the window.
    eof: [bool; 2],
}

/// A request's slot: present only while its caller waits (a [`Pending`]).
enum Slot {
    Waiting,
    Answered(Response),
}

#[derive(Default)]
struct State {
    responses: HashMap<u32, Slot>,
    streams: HashMap<u32, Stream>,
    /// Answers dropped because nobody waited for them (unknown or repeated ids).
    stray_answers: u64,
    /// Why the channel is gone, once it is.
    closed: Option<ChannelEnd>,
}

struct Inner {
    writer: Mutex<UnixStream>,
    state: Mutex<State>,
    changed: Condvar,
    next_id: AtomicU32,
    next_stream: AtomicU32,
    console: PathBuf,
}

/// A request sent whose answer is still wanted. Dropping it (a caller that
/// gave up, or an error on the way) frees its slot, so an answer that comes
/// later is dropped rather than kept.
struct Pending<'a> {
    id: u32,
    inner: &'a Inner,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        lock(&self.inner.state).responses.remove(&self.id);
    }
}

/// A connection to one guest agent. Cheap to clone; all clones share it.
#[derive(Clone)]
pub struct AgentClient {
    inner: Arc<Inner>,
}

/// The stdio and exit of one process in the guest (a container's init or an
/// exec). Output is flow-controlled: what is not taken out with `recv` stays
/// in the guest (at most [`proto::OUTPUT_WINDOW`] is queued here), and the
/// process blocks writing once its pipe is full too. Dropping it drops the
/// rest of the process's output.
pub struct ProcessIo {
    stream: u32,
    rx: Receiver<Output>,
    account: Arc<Account>,
    exit: Arc<ExitSlot>,
    client: AgentClient,
}

/// Waits for a process's exit without reading its output: it returns when
/// the Exit arrives, even while output before it is still queued unread.
pub struct ExitWatch {
    slot: Arc<ExitSlot>,
    client: AgentClient,
}

impl ExitWatch {
    /// The exit code, or why it will never come (the channel ended first).
    pub fn wait(&self) -> Result<i32, Error> {
        let mut e = lock(&self.slot.ending);
        loop {
            match *e {
                Ending::Running => e = self.slot.changed.wait(e).unwrap_or_else(|p| p.into_inner()),
                Ending::Exited(code) => return Ok(code),
                Ending::Gone => {
                    drop(e);
                    return Err(self.client.closed_error(self.client.closed()));
                }
                Ending::Abandoned => {
                    return Err(Error::VmExited {
                        status: "the process's stdio was closed before it exited".into(),
                        console: self.client.inner.console.clone(),
                    })
                }
            }
        }
    }
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

    fn closed_error(&self, why: Option<ChannelEnd>) -> Error {
        let console = self.inner.console.clone();
        let status = match why {
            Some(ChannelEnd::Malformed(what)) => return Error::Malformed { what, console },
            Some(ChannelEnd::Broken(why)) => format!("the agent channel broke: {why}"),
            Some(ChannelEnd::Closed) | None => "the agent channel closed".into(),
        };
        Error::VmExited { status, console }
    }

    fn closed(&self) -> Option<ChannelEnd> {
        lock(&self.inner.state).closed.clone()
    }

    fn send(&self, frame: &Frame) -> Result<(), Error> {
        let mut w = lock(&self.inner.writer);
        frame.write_to(&mut *w).map_err(|e| {
            let why = self
                .closed()
                .unwrap_or_else(|| ChannelEnd::Broken(format!("{}", ErrorChain(&e))));
            self.closed_error(Some(why))
        })
    }

    /// What was wrong with the frame that made the client end the channel,
    /// if that is why it ended.
    pub fn malformed(&self) -> Option<Malformed> {
        match self.closed()? {
            ChannelEnd::Malformed(m) => Some(m),
            _ => None,
        }
    }

    /// Sends `req` and waits for its answer (up to `timeout` if given).
    pub fn call(&self, req: &Request, timeout: Option<Duration>) -> Result<Response, Error> {
        let pending = self.request(req)?;
        self.answer(pending, timeout)
    }

    /// Sends `req` without waiting; [`AgentClient::answer`] collects the answer.
    /// The agent serves requests in order, so several can be in flight.
    fn request(&self, req: &Request) -> Result<Pending<'_>, Error> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        // The slot before the request: an answer may come before send returns.
        lock(&self.inner.state).responses.insert(id, Slot::Waiting);
        let pending = Pending {
            id,
            inner: &self.inner,
        };
        self.send(&Frame::json(Kind::Request, id, req))?;
        Ok(pending)
    }

    /// Waits for the answer to a request (up to `timeout` if given).
    fn answer(&self, pending: Pending<'_>, timeout: Option<Duration>) -> Result<Response, Error> {
        let id = pending.id;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = lock(&self.inner.state);
        loop {
            if let Some(Slot::Answered(_)) = st.responses.get(&id) {
                let Some(Slot::Answered(resp)) = st.responses.remove(&id) else {
                    unreachable!("just matched");
                };
                drop(st);
                return Ok(resp);
            }
            if let Some(why) = &st.closed {
                let why = why.clone();
                drop(st);
                return Err(self.closed_error(Some(why)));
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
                        drop(st);
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
    /// host's entropy, the host's clock, the rootfs mounted from `rootfs`.
    pub fn init(&self, rootfs: proto::RootfsSource) -> Result<(), Error> {
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
            rootfs,
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

    /// Registers a new stream before the request that names it goes out, so
    /// that no output is missed. Dropping the [`ProcessIo`] unregisters it.
    fn open_stream(&self) -> ProcessIo {
        let stream = self.inner.next_stream.fetch_add(1, Ordering::Relaxed);
        // Unbounded as a type, bounded by the account: the reader refuses
        // output beyond the window before it queues it, and the queue holds
        // at most two Eofs and an Exit besides.
        let (tx, rx) = mpsc::channel();
        let account = Arc::new(Account::default());
        let exit = Arc::new(ExitSlot {
            ending: Mutex::new(Ending::Running),
            changed: Condvar::new(),
        });
        lock(&self.inner.state).streams.insert(
            stream,
            Stream {
                tx,
                account: account.clone(),
                exit: exit.clone(),
                eof: [false; 2],
            },
        );
        ProcessIo {
            stream,
            rx,
            account,
            exit,
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
        let io = self.open_stream();
        let stream = io.stream;
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
        // On an error, dropping `io` unregisters the stream.
        created.map(|pid| (pid, io))
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
        let io = self.open_stream();
        let req = Request::Exec {
            container: container.to_string(),
            process: Box::new(process.clone()),
            terminal,
            stream: io.stream,
        };
        // On an error, dropping `io` unregisters the stream.
        match self.expect_ok("exec in the container", &req)? {
            Response::Executed { pid } => Ok((pid, io)),
            other => Err(unexpected("exec", &other)),
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

    /// Signals one process of the container: the one whose stdio is `stream`
    /// (an exec), without holding its [`ProcessIo`].
    pub fn signal_stream(&self, container: &str, stream: u32, signal: i32) -> Result<(), Error> {
        let req = Request::Signal {
            container: container.to_string(),
            stream: Some(stream),
            signal,
            all: false,
        };
        self.expect_ok("signal the process", &req).map(drop)
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

    /// Changes the container's cgroup limits in the guest.
    pub fn update(
        &self,
        container: &str,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), Error> {
        let req = Request::Update {
            container: container.to_string(),
            resources: Box::new(resources.clone()),
        };
        self.expect_ok("update the container's resources", &req)
            .map(drop)
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
        self.closed().is_none()
    }

    /// How many responses and streams the client holds (for tests).
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let st = lock(&self.inner.state);
        (st.responses.len(), st.streams.len())
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

    /// A handle that waits for this process's exit apart from its output.
    pub fn exit_watch(&self) -> ExitWatch {
        ExitWatch {
            slot: self.exit.clone(),
            client: self.client.clone(),
        }
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
        let out = self.rx.recv().ok()?;
        self.took(&out);
        Some(out)
    }

    /// Like [`ProcessIo::recv`], giving up after `timeout` (`Ok(None)`); an
    /// error if the VM went away before the process exited.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Output>, Error> {
        match self.rx.recv_timeout(timeout) {
            Ok(o) => {
                self.took(&o);
                Ok(Some(o))
            }
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
        self.client.signal_stream(container, self.stream, signal)
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

    /// Accounts for output taken out: gives it back to the agent in batches
    /// of [`CREDIT_BATCH`], or at once when nothing more is queued.
    fn took(&self, out: &Output) {
        let (Output::Stdout(d) | Output::Stderr(d)) = out else {
            return;
        };
        let a = &self.account;
        let consumed =
            a.consumed.fetch_add(output_cost(d.len()), Ordering::SeqCst) + output_cost(d.len());
        let drained = a.outstanding.load(Ordering::SeqCst) <= consumed;
        if consumed < CREDIT_BATCH && !drained {
            return;
        }
        a.consumed.fetch_sub(consumed, Ordering::SeqCst);
        a.outstanding.fetch_sub(consumed, Ordering::SeqCst);
        // A channel that broke is reported by the next recv.
        let _ = self.client.send(&Frame::credit(self.stream, consumed));
    }

    fn gone(&self) -> Error {
        self.client.closed_error(self.client.closed())
    }

    /// Output received and not yet credited back (for tests).
    #[cfg(test)]
    fn outstanding(&self) -> u32 {
        self.account.outstanding.load(Ordering::SeqCst)
    }
}

impl Drop for ProcessIo {
    fn drop(&mut self) {
        // Output that comes after this is dropped by the reader, not queued.
        lock(&self.client.inner.state).streams.remove(&self.stream);
        self.exit.set(Ending::Abandoned);
    }
}

#[cfg(test)]
mod tests;
