//! vmmode::wire: the keeper's socket. One request per connection, a JSON
//! message with the descriptors it hands over (stdio) attached by
//! SCM_RIGHTS; one answer, with the descriptor it hands back (a terminal's
//! master) attached the same way. A `Wait` keeps its connection until the
//! process exits. It decides nothing: the keeper and the commands do.
//! Hand-written rather than a framework: the messages are few, local, and
//! carry descriptors, which no RPC crate here passes.

use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The largest message either side sends (a spec with its mounts and env).
const MAX_MESSAGE: usize = 4 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Create container `id` from its spec; fds: stdin, stdout, stderr
    /// unless `terminal` (then the answer carries the pty master).
    Create {
        id: String,
        bundle: std::path::PathBuf,
        spec: Box<serde_json::Value>,
        terminal: bool,
    },
    Start {
        id: String,
    },
    /// Answered with `Exited` when the process ends. A connection that
    /// closes first means its stand-in died: the process is killed.
    Wait {
        id: String,
        exec: Option<u32>,
    },
    Signal {
        id: String,
        exec: Option<u32>,
        signal: i32,
        all: bool,
    },
    /// Another process in container `id`; fds as for `Create`.
    Exec {
        id: String,
        process: Box<oci_spec::runtime::Process>,
        terminal: bool,
    },
    Pause,
    Resume,
    Update {
        id: String,
        resources: Box<oci_spec::runtime::LinuxResources>,
    },
    /// Forget container `id`; the VM's own container takes the VM with it.
    Delete {
        id: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Done,
    Executed { exec: u32 },
    Exited { code: i32 },
    Error { message: String },
}

/// Sends `msg` with `fds` on `conn`: a 4-byte length, then the JSON; the
/// descriptors ride on the first bytes (a stream socket keeps no message
/// boundaries, so the length says where the message ends).
pub fn send<T: Serialize>(conn: &UnixStream, msg: &T, fds: &[RawFd]) -> std::io::Result<()> {
    use std::io::Write;
    let data = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    if data.len() > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("a message of {} bytes (at most {MAX_MESSAGE})", data.len()),
        ));
    }
    let len = (data.len() as u32).to_be_bytes();
    runtime::records::send_with_fds(conn.as_fd(), &len, fds).map_err(std::io::Error::from)?;
    (&*conn).write_all(&data)
}

/// Receives one message and the descriptors sent with it; None at EOF.
pub fn recv<T: for<'de> Deserialize<'de>>(
    conn: &UnixStream,
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    use std::io::Read;
    let mut len = [0u8; 4];
    let (n, fds) =
        runtime::records::recv_with_fds(conn.as_fd(), &mut len).map_err(std::io::Error::from)?;
    if n == 0 {
        return Ok(None);
    }
    (&*conn).read_exact(&mut len[n..])?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a message of {len} bytes (at most {MAX_MESSAGE})"),
        ));
    }
    let mut buf = vec![0u8; len];
    (&*conn).read_exact(&mut buf)?;
    let msg = serde_json::from_slice(&buf).map_err(std::io::Error::other)?;
    Ok(Some((msg, fds)))
}

/// One request to the keeper at `socket` and its answer (with any fds).
pub fn call(
    socket: &Path,
    req: &Request,
    fds: &[RawFd],
) -> std::io::Result<(Response, Vec<OwnedFd>, UnixStream)> {
    let conn = UnixStream::connect(socket)?;
    send(&conn, req, fds)?;
    match recv(&conn)? {
        Some((resp, fds)) => Ok((resp, fds, conn)),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the VM keeper closed the connection without an answer",
        )),
    }
}
