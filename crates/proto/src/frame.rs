//! frame: the wire format. A frame is a 9-byte header — kind (u8), stream or
//! request id (u32, big endian), payload length (u32, big endian) — followed by
//! the payload. It knows nothing of what payloads mean.
//!
//! [`Frame::read_from`]/[`Frame::write_to`] suit blocking streams; [`Decoder`]
//! suits an event loop that reads whatever bytes are ready. A frame's length
//! is checked against its limit before any payload is allocated.
//!
//! Output is flow-controlled: a stream's Stdout and Stderr frames together
//! may have at most [`OUTPUT_WINDOW`] of [`output_cost`] outstanding, that
//! is sent and not yet given back by a [`Kind::Credit`] frame. The receiver
//! can then bound what it buffers without ever refusing to read.

use std::io::{self, Read, Write};

/// Bytes before each payload.
pub const HEADER_LEN: usize = 9;
/// Largest payload accepted; bigger frames mean a corrupt or hostile stream.
pub const MAX_PAYLOAD: u32 = 4 << 20;

/// How much output (in [`output_cost`]) one stream may have outstanding: sent
/// by the agent, not yet credited back by the host. 1 MiB keeps 16 of the
/// agent's 64 KiB reads in flight, enough to keep the virtio-serial port
/// busy under TCG, while the host holds at most this much per stream.
pub const OUTPUT_WINDOW: u32 = 1 << 20;

/// What an output frame costs beyond its payload: the receiver's queue entry
/// and allocation. Charging it makes a flood of tiny frames as bounded in
/// memory as a flood of big ones.
pub const OUTPUT_FRAME_COST: u32 = 64;

/// The flow-control cost of an output frame carrying `len` payload bytes.
pub fn output_cost(len: usize) -> u32 {
    (len as u32).saturating_add(OUTPUT_FRAME_COST)
}

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Host → guest: a JSON [`crate::Request`]; the id is the request id.
    Request = 1,
    /// Guest → host: a JSON [`crate::Response`] to the request with this id.
    Response = 2,
    /// Host → guest: bytes for the stream's stdin.
    Stdin = 3,
    /// Guest → host: bytes the stream's process wrote to stdout (or its terminal).
    Stdout = 4,
    /// Guest → host: bytes the stream's process wrote to stderr.
    Stderr = 5,
    /// Either way: one byte, the [`crate::StdioFd`] that reached its end.
    Eof = 6,
    /// Host → guest: the terminal's new size, a JSON [`crate::WindowSize`].
    Resize = 7,
    /// Guest → host: the stream's process exited; payload is the exit code (i32 BE),
    /// 128 + signal for a killed process, as a shell reports it.
    Exit = 8,
    /// Host → guest: the host consumed this much of the stream's output
    /// ([`output_cost`] units, u32 BE): the agent may send that much more.
    Credit = 9,
}

impl TryFrom<u8> for Kind {
    type Error = FrameError;
    fn try_from(b: u8) -> Result<Kind, FrameError> {
        Ok(match b {
            1 => Kind::Request,
            2 => Kind::Response,
            3 => Kind::Stdin,
            4 => Kind::Stdout,
            5 => Kind::Stderr,
            6 => Kind::Eof,
            7 => Kind::Resize,
            8 => Kind::Exit,
            9 => Kind::Credit,
            other => return Err(FrameError::UnknownKind { kind: other }),
        })
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    /// Request id for Request/Response, stream id for everything else.
    pub id: u32,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("unknown frame kind {kind} (the peer speaks another protocol version, or the stream is corrupt)")]
    UnknownKind { kind: u8 },
    #[error("{kind:?} frame payload of {len} bytes exceeds the limit of {limit}")]
    TooLarge { kind: Kind, len: u32, limit: u32 },
    #[error("the peer closed the connection")]
    Closed,
    #[error("the connection ended in the middle of a frame")]
    Truncated,
    #[error("cannot {op} a frame")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("malformed {what} payload")]
    Payload {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{kind:?} frame payload is {len} bytes, expected {expected}")]
    PayloadSize {
        kind: Kind,
        len: usize,
        expected: usize,
    },
}

impl Frame {
    pub fn new(kind: Kind, id: u32, payload: Vec<u8>) -> Frame {
        Frame { kind, id, payload }
    }

    /// A frame whose payload is `value` as JSON.
    pub fn json<T: serde::Serialize>(kind: Kind, id: u32, value: &T) -> Frame {
        // Serializing our own message types to a Vec cannot fail: they hold
        // only strings, numbers, maps with string keys and OCI spec values.
        let payload = serde_json::to_vec(value).expect("protocol messages serialize to JSON");
        Frame { kind, id, payload }
    }

    /// The payload parsed as JSON.
    pub fn parse<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
    ) -> Result<T, FrameError> {
        serde_json::from_slice(&self.payload).map_err(|source| FrameError::Payload { what, source })
    }

    /// An Exit frame's code.
    pub fn exit_code(&self) -> Result<i32, FrameError> {
        self.four_bytes().map(i32::from_be_bytes)
    }

    pub fn exit(stream: u32, code: i32) -> Frame {
        Frame::new(Kind::Exit, stream, code.to_be_bytes().to_vec())
    }

    /// Gives `amount` of output window back to `stream`'s sender.
    pub fn credit(stream: u32, amount: u32) -> Frame {
        Frame::new(Kind::Credit, stream, amount.to_be_bytes().to_vec())
    }

    /// A Credit frame's amount.
    pub fn credit_amount(&self) -> Result<u32, FrameError> {
        self.four_bytes().map(u32::from_be_bytes)
    }

    fn four_bytes(&self) -> Result<[u8; 4], FrameError> {
        self.payload
            .as_slice()
            .try_into()
            .map_err(|_| FrameError::PayloadSize {
                kind: self.kind,
                len: self.payload.len(),
                expected: 4,
            })
    }

    /// Header and payload, ready to write in one call (one write keeps
    /// frames from interleaving when several writers share a lock).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.push(self.kind as u8);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    pub fn write_to(&self, w: &mut impl Write) -> Result<(), FrameError> {
        w.write_all(&self.encode())
            .and_then(|()| w.flush())
            .map_err(|source| FrameError::Io {
                op: "write",
                source,
            })
    }

    /// Reads one frame; [`FrameError::Closed`] at a clean end of stream.
    pub fn read_from(r: &mut impl Read) -> Result<Frame, FrameError> {
        Frame::read_limited(r, |_| MAX_PAYLOAD)
    }

    /// Like [`Frame::read_from`], with the largest payload each kind may
    /// carry (never above [`MAX_PAYLOAD`]): a reader that knows an Exit is 4
    /// bytes allocates no more for one, whatever the header claims.
    pub fn read_limited(
        r: &mut impl Read,
        limit: impl Fn(Kind) -> u32,
    ) -> Result<Frame, FrameError> {
        let mut header = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match r.read(&mut header[got..]) {
                Ok(0) if got == 0 => return Err(FrameError::Closed),
                Ok(0) => return Err(FrameError::Truncated),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(FrameError::Io { op: "read", source }),
            }
        }
        let (kind, id, len) = parse_header(&header, |k| limit(k).min(MAX_PAYLOAD))?;
        let mut payload = vec![0u8; len as usize];
        r.read_exact(&mut payload).map_err(|source| {
            if source.kind() == io::ErrorKind::UnexpectedEof {
                FrameError::Truncated
            } else {
                FrameError::Io { op: "read", source }
            }
        })?;
        Ok(Frame { kind, id, payload })
    }
}

fn parse_header(
    h: &[u8; HEADER_LEN],
    limit: impl Fn(Kind) -> u32,
) -> Result<(Kind, u32, u32), FrameError> {
    let kind = Kind::try_from(h[0])?;
    let id = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
    let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
    let limit = limit(kind);
    if len > limit {
        return Err(FrameError::TooLarge { kind, len, limit });
    }
    Ok((kind, id, len))
}

/// Incremental decoder for an event loop: feed it the bytes a non-blocking
/// read returned, then take whole frames out. It holds at most one partial
/// frame (header checked, so at most [`MAX_PAYLOAD`]) plus the last push, as
/// long as the caller takes every whole frame out after each push.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one has arrived. A bad header is an error the
    /// stream cannot recover from (the caller should drop the connection).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let header: [u8; HEADER_LEN] = self.buf[..HEADER_LEN].try_into().expect("length checked");
        let (kind, id, len) = parse_header(&header, |_| MAX_PAYLOAD)?;
        let end = HEADER_LEN + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let payload = self.buf[HEADER_LEN..end].to_vec();
        self.buf.drain(..end);
        Ok(Some(Frame { kind, id, payload }))
    }

    /// Bytes held that do not make a whole frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}
