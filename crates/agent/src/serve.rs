//! serve: the agent's single-threaded event loop over the host channel, the
//! processes' stdio and SIGCHLD. It decodes requests, dispatches them to
//! containers.rs, pumps stdio both ways and reports exits. Single-threaded on
//! purpose: the runtime forks, and a fork from a threaded process is fragile.
//! Output goes to the host only as far as each stream's window allows
//! ([`proto::OUTPUT_WINDOW`]): the host bounds what it holds per stream, and
//! one stream whose reader is slow never holds up the others or the answers.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::wait::{waitpid, WaitPidFlag};
use proto::{Decoder, Frame, Kind, Request, Response, StdioFd, WindowSize, PROTOCOL_VERSION};

use crate::containers::Containers;
use crate::procs::{self, ProcTable};
use crate::{guest, top};

/// Poll interval while the host end of the port is not connected (the port
/// reports POLLHUP continuously then, so it cannot stay in the poll set).
const HUP_BACKOFF_MS: i32 = 20;

/// How long a reaped process's remaining output waits for the host to take
/// some (to give credit) before it is dropped and the exit reported anyway:
/// a host consumer that stalled (an attached client that stopped reading)
/// must not keep the host from learning of the exit. The monitor gives its
/// own output pumps the same time after an exit.
const EXIT_DRAIN_GRACE: Duration = Duration::from_secs(2);

pub struct Agent {
    port: File,
    decoder: Decoder,
    sigchld: File,
    /// Guest uptime when serving began, for the Hello answer.
    serving_at_ms: u64,
    procs: ProcTable,
    containers: Containers,
    /// The stream of the VM's own container's init (the first created):
    /// its exit powers the VM off. A pod's other containers come and go.
    main_stream: Option<u32>,
    power_off_at: Option<Instant>,
    host_gone: bool,
    /// Guest paths of the shares mounted so far.
    shares: Vec<String>,
}

enum Token {
    Port,
    Sigchld,
    Stdout(u32),
    Stderr(u32),
    Stdin(u32),
}

impl Agent {
    /// `serving_at_ms`: the guest uptime now, for the Hello answer.
    pub fn new(port: File, sigchld: OwnedFd, serving_at_ms: u64) -> Agent {
        Agent {
            serving_at_ms,
            port,
            decoder: Decoder::new(),
            sigchld: File::from(sigchld),
            procs: ProcTable::default(),
            containers: Containers::default(),
            main_stream: None,
            power_off_at: None,
            host_gone: false,
            shares: Vec::new(),
        }
    }

    /// Serves until it is time to power off.
    pub fn run(&mut self) -> Result<()> {
        loop {
            if self.power_off_at.is_some_and(|t| Instant::now() >= t) {
                return Ok(());
            }
            let (mut fds, tokens) = self.poll_set();
            let wake = self
                .procs
                .by_stream
                .values()
                .filter_map(|p| p.drain_until)
                .chain(self.power_off_at)
                .min();
            let mut timeout = wake.map_or(-1, |t| {
                t.saturating_duration_since(Instant::now()).as_millis() as i32 + 1
            });
            if self.host_gone {
                timeout = if timeout < 0 {
                    HUP_BACKOFF_MS
                } else {
                    timeout.min(HUP_BACKOFF_MS)
                };
            }
            crate::sys::poll(&mut fds, timeout).context("poll")?;
            self.host_gone = false;
            let now = Instant::now();
            let overdue: Vec<u32> = (self.procs.by_stream.iter())
                .filter(|(_, p)| p.drain_until.is_some_and(|t| t <= now))
                .map(|(&s, _)| s)
                .collect();
            for s in overdue {
                self.complete(s)?;
            }
            for (fd, token) in fds.iter().zip(tokens) {
                if fd.revents == 0 {
                    continue;
                }
                match token {
                    Token::Port => self.on_port(fd.revents)?,
                    Token::Sigchld => self.on_sigchld()?,
                    Token::Stdout(s) => self.pump_output(s, StdioFd::Stdout)?,
                    Token::Stderr(s) => self.pump_output(s, StdioFd::Stderr)?,
                    Token::Stdin(s) => {
                        if let Some(p) = self.procs.by_stream.get_mut(&s) {
                            p.flush_stdin();
                        }
                    }
                }
            }
        }
    }

    fn poll_set(&self) -> (Vec<libc::pollfd>, Vec<Token>) {
        let pfd = |fd: i32, events: i16| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let mut fds = vec![pfd(self.sigchld.as_raw_fd(), libc::POLLIN)];
        let mut tokens = vec![Token::Sigchld];
        if !self.host_gone {
            fds.push(pfd(self.port.as_raw_fd(), libc::POLLIN));
            tokens.push(Token::Port);
        }
        for (&s, p) in &self.procs.by_stream {
            // A full window leaves the pipes unread until the host gives
            // credit; a reaped process's rest is drained by `complete`.
            let output = p.sendable() > 0 && !p.has_exited();
            if let (Some(f), true) = (&p.stdout, output) {
                fds.push(pfd(f.as_raw_fd(), libc::POLLIN));
                tokens.push(Token::Stdout(s));
            }
            if let (Some(f), true) = (&p.stderr, output) {
                fds.push(pfd(f.as_raw_fd(), libc::POLLIN));
                tokens.push(Token::Stderr(s));
            }
            if let (Some(f), false) = (&p.stdin, p.stdin_buf.is_empty()) {
                fds.push(pfd(f.as_raw_fd(), libc::POLLOUT));
                tokens.push(Token::Stdin(s));
            }
        }
        (fds, tokens)
    }

    fn send(&mut self, frame: Frame) -> Result<()> {
        self.port
            .write_all(&frame.encode())
            .context("write to the host channel")
    }

    fn respond(&mut self, id: u32, resp: &Response) -> Result<()> {
        self.send(Frame::json(Kind::Response, id, resp))
    }

    fn on_port(&mut self, revents: i16) -> Result<()> {
        if revents & libc::POLLIN == 0 {
            // POLLHUP alone: the host end is not connected (yet, or any more).
            self.host_gone = true;
            return Ok(());
        }
        let mut buf = vec![0u8; 256 * 1024];
        let n = match self.port.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e).context("read the host channel"),
        };
        if n == 0 {
            self.host_gone = true;
            return Ok(());
        }
        self.decoder.push(&buf[..n]);
        while let Some(frame) = self
            .decoder
            .next_frame()
            .context("decode a frame from the host")?
        {
            self.on_frame(frame)?;
        }
        Ok(())
    }

    fn on_frame(&mut self, frame: Frame) -> Result<()> {
        match frame.kind {
            Kind::Request => {
                let req: Request = match frame.parse("request") {
                    Ok(r) => r,
                    Err(e) => {
                        let message = format!("{:#}", anyhow::Error::new(e));
                        return self.respond(frame.id, &Response::Error { message });
                    }
                };
                self.on_request(frame.id, req)
            }
            Kind::Stdin => {
                if let Some(p) = self.procs.by_stream.get_mut(&frame.id) {
                    p.stdin_buf.extend_from_slice(&frame.payload);
                    p.flush_stdin();
                }
                Ok(())
            }
            Kind::Eof => {
                if let Some(p) = self.procs.by_stream.get_mut(&frame.id) {
                    p.stdin_eof = true;
                    p.flush_stdin();
                }
                Ok(())
            }
            Kind::Resize => {
                if let (Some(p), Ok(ws)) = (
                    self.procs.by_stream.get(&frame.id),
                    frame.parse::<WindowSize>("window size"),
                ) {
                    let _ = p.resize(ws.rows, ws.cols);
                }
                Ok(())
            }
            Kind::Credit => {
                if let (Some(p), Ok(amount)) = (
                    self.procs.by_stream.get_mut(&frame.id),
                    frame.credit_amount(),
                ) {
                    p.credit(amount);
                    if p.exited.is_some() {
                        // The host is taking output: a fresh grace period.
                        p.drain_until = None;
                        return self.complete(frame.id);
                    }
                }
                Ok(())
            }
            // Guest → host kinds arriving here are a confused host: ignore.
            Kind::Response | Kind::Stdout | Kind::Stderr | Kind::Exit => Ok(()),
        }
    }

    fn on_request(&mut self, id: u32, req: Request) -> Result<()> {
        let result = match req {
            Request::Hello { .. } => Ok(Response::Hello {
                version: PROTOCOL_VERSION,
                kernel_release: guest::kernel_release(),
                serving_at_ms: self.serving_at_ms,
            }),
            Request::CreateContainer {
                id: cid,
                spec,
                rootfs,
                terminal,
                stream,
                seccomp,
            } => self
                .containers
                .create(&cid, *spec, &rootfs, terminal, seccomp)
                .map(|p| {
                    let pid = p.pid;
                    self.procs.by_stream.insert(stream, p);
                    self.main_stream.get_or_insert(stream);
                    Response::Created { pid }
                }),
            Request::Init {
                entropy,
                unix_time_ns,
                rootfs,
            } => guest::init(&entropy, unix_time_ns, rootfs).map(|()| Response::Ok),
            Request::Network {
                mac,
                address,
                prefix_len,
                gateway,
                mtu,
            } => guest::configure_network(&mac, address, prefix_len, gateway, mtu)
                .map(|()| Response::Ok),
            Request::RegisterBinfmt { tag, line } => self
                .mount_share(&tag, true)
                .and_then(|_| guest::register_binfmt(&line))
                .map(|()| Response::Ok),
            Request::Start { container } => {
                self.containers.start(&container).map(|()| Response::Ok)
            }
            Request::Exec {
                container,
                process,
                terminal,
                stream,
            } => self
                .containers
                .exec(&container, *process, terminal)
                .map(|p| {
                    let pid = p.pid;
                    self.procs.by_stream.insert(stream, p);
                    Response::Executed { pid }
                }),
            Request::Signal {
                container,
                stream,
                signal,
                all,
            } => self
                .signal(&container, stream, signal, all)
                .map(|()| Response::Ok),
            Request::Wait { stream } => match self.procs.by_stream.get_mut(&stream) {
                Some(p) => match p.exit {
                    Some(code) => Ok(Response::Exit { code }),
                    None => {
                        p.waiters.push(id);
                        return Ok(());
                    }
                },
                None => Err(anyhow::anyhow!("no process on stream {stream}")),
            },
            Request::Top { container } => {
                self.containers
                    .pids(&container)
                    .map(|pids| Response::Processes {
                        processes: top::describe(&pids),
                    })
            }
            Request::Stats { container } => {
                self.containers
                    .cgroup_stats(&container)
                    .map(|cg| Response::Stats {
                        stats: top::stats(cg),
                    })
            }
            Request::Update {
                container,
                resources,
            } => self
                .containers
                .update(&container, &resources)
                .map(|()| Response::Ok),
            Request::MountShare { tag, read_only } => self.mount_share(&tag, read_only),
            Request::Shutdown => {
                self.power_off_at = Some(Instant::now());
                Ok(Response::Ok)
            }
        };
        let resp = result.unwrap_or_else(|e| Response::Error {
            message: format!("{e:#}"),
        });
        self.respond(id, &resp)
    }

    fn mount_share(&mut self, tag: &str, read_only: bool) -> Result<Response> {
        let valid = !tag.is_empty()
            && tag.len() <= 31
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            anyhow::bail!("invalid share tag {tag:?} (1-31 of A-Z a-z 0-9 - _)");
        }
        let path = proto::share_path(tag);
        if !self.shares.contains(&path) {
            guest::mount_9p(tag, &path, read_only)?;
            self.shares.push(path.clone());
        }
        Ok(Response::Mounted { path })
    }

    fn signal(&self, container: &str, stream: Option<u32>, signal: i32, all: bool) -> Result<()> {
        match stream {
            Some(s) => {
                let p = self
                    .procs
                    .by_stream
                    .get(&s)
                    .with_context(|| format!("no process on stream {s}"))?;
                if p.has_exited() {
                    anyhow::bail!("the process on stream {s} has exited");
                }
                let sig = nix::sys::signal::Signal::try_from(signal)
                    .with_context(|| format!("invalid signal {signal}"))?;
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), sig)
                    .with_context(|| format!("kill {} with {sig}", p.pid))
            }
            None => self.containers.kill(container, signal, all),
        }
    }

    /// Sends what is ready on one output, as much as the window allows; at
    /// its end, an Eof frame.
    fn pump_output(&mut self, stream: u32, which: StdioFd) -> Result<()> {
        let Some(p) = self.procs.by_stream.get_mut(&stream) else {
            return Ok(());
        };
        let max = p.sendable();
        if max == 0 {
            return Ok(());
        }
        let window = &mut p.window;
        let slot = match which {
            StdioFd::Stderr => &mut p.stderr,
            _ => &mut p.stdout,
        };
        let Some(f) = slot.as_mut() else {
            return Ok(());
        };
        match procs::read_ready(f, max) {
            None => Ok(()),
            Some(data) if data.is_empty() => {
                *slot = None;
                self.send(Frame::new(Kind::Eof, stream, vec![which as u8]))
            }
            Some(data) => {
                let kind = if which == StdioFd::Stderr {
                    Kind::Stderr
                } else {
                    Kind::Stdout
                };
                *window = window.saturating_sub(proto::output_cost(data.len()));
                self.send(Frame::new(kind, stream, data))
            }
        }
    }

    /// Reaps every exited child; for a tracked process, drains its output,
    /// then reports the exit (Eof frames, Exit frame, pending Waits).
    fn on_sigchld(&mut self) -> Result<()> {
        let mut sink = [0u8; 64];
        while matches!(self.sigchld.read(&mut sink), Ok(n) if n > 0) {}
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(_) => return Ok(()),
                Ok(s) => s,
            };
            let Some((pid, code)) = procs::exit_code(status) else {
                continue;
            };
            if let Some(stream) = self.procs.stream_of(pid) {
                if let Some(p) = self.procs.by_stream.get_mut(&stream) {
                    p.exited = Some(code);
                }
                self.complete(stream)?;
            }
        }
    }

    /// Reports the end of a reaped process: what its pipes still hold goes
    /// first, as far as the window allows (the rest when the host gives
    /// credit, which calls this again; dropped if none comes within
    /// [`EXIT_DRAIN_GRACE`]), then Eof frames, Exit and Waits.
    fn complete(&mut self, stream: u32) -> Result<()> {
        let Some(code) = self.procs.by_stream.get(&stream).and_then(|p| p.exited) else {
            return Ok(());
        };
        // The process is gone, so everything it wrote is in the pipe already.
        for which in [StdioFd::Stdout, StdioFd::Stderr] {
            loop {
                let Some(p) = self.procs.by_stream.get(&stream) else {
                    return Ok(());
                };
                let open = match which {
                    StdioFd::Stderr => p.stderr.is_some(),
                    _ => p.stdout.is_some(),
                };
                if !open {
                    break;
                }
                let room = p.sendable() > 0;
                if !self.pending_output(stream, which) {
                    // Nothing more now: a descendant may still hold the pipe;
                    // the process itself is done, so report its end here.
                    let p = self
                        .procs
                        .by_stream
                        .get_mut(&stream)
                        .expect("checked above");
                    match which {
                        StdioFd::Stderr => p.stderr = None,
                        _ => p.stdout = None,
                    }
                    self.send(Frame::new(Kind::Eof, stream, vec![which as u8]))?;
                    break;
                }
                if !room {
                    let p = self
                        .procs
                        .by_stream
                        .get_mut(&stream)
                        .expect("checked above");
                    let until = *p
                        .drain_until
                        .get_or_insert_with(|| Instant::now() + EXIT_DRAIN_GRACE);
                    if Instant::now() < until {
                        return Ok(());
                    }
                    // The host took nothing for the whole grace: drop the rest.
                    match which {
                        StdioFd::Stderr => p.stderr = None,
                        _ => p.stdout = None,
                    }
                    self.send(Frame::new(Kind::Eof, stream, vec![which as u8]))?;
                    break;
                }
                self.pump_output(stream, which)?;
            }
        }
        let waiters = match self.procs.by_stream.get_mut(&stream) {
            Some(p) => {
                p.exited = None;
                p.drain_until = None;
                p.exit = Some(code);
                p.stdin = None;
                p.pty = None;
                std::mem::take(&mut p.waiters)
            }
            None => Vec::new(),
        };
        self.send(Frame::exit(stream, code))?;
        for w in waiters {
            self.respond(w, &Response::Exit { code })?;
        }
        // The VM's own container is done, and so is the VM: power off now, without
        // waiting for the host's Shutdown. The port is written with blocking
        // writes, which return once QEMU has taken the bytes, so the exit
        // code is already in the host's socket.
        if self.main_stream == Some(stream) && self.power_off_at.is_none() {
            self.power_off_at = Some(Instant::now());
        }
        Ok(())
    }

    /// Whether the output has bytes (or its end) ready to read now.
    fn pending_output(&self, stream: u32, which: StdioFd) -> bool {
        let Some(p) = self.procs.by_stream.get(&stream) else {
            return false;
        };
        let f = match which {
            StdioFd::Stderr => p.stderr.as_ref(),
            _ => p.stdout.as_ref(),
        };
        let Some(f) = f else { return false };
        let mut fds = [libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        matches!(crate::sys::poll(&mut fds, 0), Ok(1))
    }
}
