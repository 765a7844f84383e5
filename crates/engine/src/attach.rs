//! attach: a client's connection to a running container's monitor, in typed
//! form. The CLI (`run`, `start -a`, `attach`) and the API service (docker's
//! attach, wait and `run`) both read the container's output and exit code
//! from it and send stdin, end-of-stdin and terminal sizes through it, so
//! that the monitor's frame protocol is spoken in one place. It owns neither
//! a terminal nor a socket of the client's: callers copy the events where
//! their user is.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::lifecycle::{Engine, Error};
use crate::monitor::{self, protocol};
use crate::state::Status;
use crate::store::ContainerRecord;

/// What the monitor says on an attach connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The container exited with this code (128+signal if killed).
    Exit(i32),
    /// The container could not start: the monitor's message (a whole chain).
    Failed(String),
}

/// The reading half of an attach connection.
pub struct AttachStream {
    id: String,
    reader: BufReader<UnixStream>,
    input: AttachInput,
}

/// The writing half: stdin, end of stdin, resizes. Clones share one socket,
/// written one frame at a time, so threads may send side by side.
#[derive(Clone)]
pub struct AttachInput(Arc<Mutex<UnixStream>>);

impl AttachInput {
    fn frame(&self, kind: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        protocol::write_frame(&mut *s, kind, payload)?;
        s.flush()
    }

    pub fn stdin(&self, data: &[u8]) -> std::io::Result<()> {
        self.frame(protocol::STDIN, data)
    }

    /// Ends the container's stdin (its reads see EOF).
    pub fn close_stdin(&self) -> std::io::Result<()> {
        self.frame(protocol::STDIN_CLOSE, &[])
    }

    /// Leaves the container as it is (its stdin stays open) and ends this
    /// connection both ways: a client detaching (docker's Ctrl-P Ctrl-Q).
    pub fn detach(&self) {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = s.shutdown(std::net::Shutdown::Both);
    }

    /// Sets the container's terminal size (no effect without a terminal).
    pub fn resize(&self, rows: u16, cols: u16) -> std::io::Result<()> {
        self.frame(protocol::RESIZE, &protocol::resize_payload(rows, cols))
    }
}

impl AttachStream {
    fn new(id: &str, stream: UnixStream) -> Result<AttachStream, Error> {
        let writer = stream.try_clone().map_err(|source| Error::AttachIo {
            id: id.into(),
            source,
        })?;
        Ok(AttachStream {
            id: id.into(),
            reader: BufReader::new(stream),
            input: AttachInput(Arc::new(Mutex::new(writer))),
        })
    }

    pub fn input(&self) -> AttachInput {
        self.input.clone()
    }

    /// The next event; `None` when the monitor closed the connection
    /// without an exit (it died, or the container was removed meanwhile):
    /// then [`Engine::exit_code_after_disconnect`] asks the store.
    pub fn next_event(&mut self) -> std::io::Result<Option<AttachEvent>> {
        loop {
            let Some(f) = protocol::read_frame(&mut self.reader)? else {
                return Ok(None);
            };
            return Ok(Some(match f.kind {
                protocol::STDOUT => AttachEvent::Stdout(f.payload),
                protocol::STDERR => AttachEvent::Stderr(f.payload),
                protocol::EXIT => AttachEvent::Exit(
                    f.payload
                        .get(..4)
                        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(255),
                ),
                protocol::ERROR => AttachEvent::Failed(String::from_utf8_lossy(&f.payload).into()),
                // Kinds a newer monitor may add: not ours to act on.
                _ => continue,
            }));
        }
    }

    pub fn container_id(&self) -> &str {
        &self.id
    }

    /// Ends the connection both ways (a client that goes away).
    pub fn shutdown(&self) {
        let _ = self.reader.get_ref().shutdown(std::net::Shutdown::Both);
    }
}

impl Engine {
    /// Attaches to a running container's monitor. Output from before the
    /// connection is in the log, not here.
    pub fn attach(&self, rec: &ContainerRecord) -> Result<AttachStream, Error> {
        if rec.state.status != Status::Running {
            return Err(Error::NotRunning {
                id: rec.config.id.clone(),
            });
        }
        let stream = monitor::connect(&rec.dir, &rec.config.id)?;
        crate::events::container(self.root(), &rec.config, "attach", &[]);
        AttachStream::new(&rec.config.id, stream)
    }

    /// Starts `rec` with its monitor connected to the returned stream from
    /// the first byte of output; `console_size` (rows, columns) sizes a
    /// terminal first. A start failure is an error here, not an event.
    pub fn start_attached(
        &self,
        rec: &ContainerRecord,
        console_size: Option<(u16, u16)>,
    ) -> Result<AttachStream, Error> {
        // Attached before it starts (docker's order: attach, then start).
        crate::events::container(self.root(), &rec.config, "attach", &[]);
        let mut ready = self.start(rec, true, console_size)?;
        ready.report()?;
        let stream = ready.take_attach().ok_or_else(|| Error::AttachIo {
            id: rec.config.id.clone(),
            source: std::io::Error::from(std::io::ErrorKind::NotConnected),
        })?;
        AttachStream::new(&rec.config.id, stream)
    }

    /// The exit code of container `id` once its monitor closed an attach
    /// connection without an exit frame: what the store recorded, waiting
    /// a little for the monitor's last write. `None`: not known (the
    /// record is gone, or it is still running).
    pub fn exit_code_after_disconnect(&self, id: &str) -> Result<Option<i32>, Error> {
        let last = self.wait_inactive(id, Some(Duration::from_secs(10)))?;
        Ok(last
            .filter(|r| !r.state.status.is_active())
            .and_then(|r| r.state.exit_code))
    }
}
