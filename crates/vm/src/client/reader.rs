//! client::reader: the reader thread's side of the client. It reads the
//! agent's frames, size-checked by kind before their payload is allocated,
//! and hands each to its waiting caller or its stream's queue, within the
//! stream's window; it drops what nobody waits for, and ends the channel,
//! saying why ([`Malformed`]), on anything the protocol does not allow. It
//! never blocks on a consumer, and never writes to the agent.

use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;

use proto::{
    output_cost, Frame, FrameError, Kind, Response, StdioFd, MAX_PAYLOAD, OUTPUT_FRAME_COST,
    OUTPUT_WINDOW,
};

use super::{lock, Ending, Inner, Output, Slot};

/// How the agent broke the protocol. The channel is ended when it does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("unknown frame kind {kind}")]
    UnknownKind { kind: u8 },
    #[error("{kind:?} frame of {len} bytes, over the limit of {limit} for that kind")]
    TooLarge { kind: Kind, len: u32, limit: u32 },
    #[error("{kind:?} frame, a kind only the host sends")]
    WrongDirection { kind: Kind },
    #[error("{kind:?} frame (id {id}) whose payload does not decode: {detail}")]
    BadPayload { kind: Kind, id: u32, detail: String },
    #[error("{outstanding} bytes of output on stream {stream}, beyond its window of {window} (the agent ignores flow control)")]
    OverWindow {
        stream: u32,
        outstanding: u64,
        window: u32,
    },
}

/// Why the channel to the agent ended.
#[derive(Debug, Clone)]
pub(super) enum ChannelEnd {
    /// The agent closed it (the VM powered off, or went away).
    Closed,
    /// Reading from it failed.
    Broken(String),
    /// The agent sent something this side refuses; the host ended it.
    Malformed(Malformed),
}

/// The largest payload a guest → host frame of `kind` may carry; checked
/// on the header, before the payload is allocated.
fn host_bound_limit(kind: Kind) -> u32 {
    match kind {
        Kind::Response => MAX_PAYLOAD,
        // One output frame can never fit more than the window.
        Kind::Stdout | Kind::Stderr => OUTPUT_WINDOW - OUTPUT_FRAME_COST,
        Kind::Eof => 1,
        Kind::Exit => 4,
        Kind::Request | Kind::Stdin | Kind::Resize | Kind::Credit => 0,
    }
}

fn is_host_to_guest(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Request | Kind::Stdin | Kind::Resize | Kind::Credit
    )
}

/// Reads frames until the channel ends, then says why.
pub(super) fn read_loop(mut stream: UnixStream, inner: &Inner) {
    let why = loop {
        let frame = match Frame::read_limited(&mut stream, host_bound_limit) {
            Ok(f) => f,
            Err(e) => break channel_end(e),
        };
        if let Err(m) = deliver(inner, frame) {
            break ChannelEnd::Malformed(m);
        }
    };
    if let ChannelEnd::Malformed(m) = &why {
        tracing::warn!("the guest agent sent a malformed frame ({m}); closing its channel");
        // Not another byte from this peer; the VM layer decides the rest.
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    let mut st = lock(&inner.state);
    st.closed = Some(why);
    // Dropping the senders ends every ProcessIo's receive loop.
    for (_, s) in st.streams.drain() {
        s.exit.set(Ending::Gone);
    }
    inner.changed.notify_all();
}

fn channel_end(e: FrameError) -> ChannelEnd {
    ChannelEnd::Malformed(match e {
        FrameError::Closed => return ChannelEnd::Closed,
        // A VM that dies mid-write leaves half a frame: broken, not hostile.
        FrameError::Truncated | FrameError::Io { .. } => {
            return ChannelEnd::Broken(format!("{}", ErrorChain(&e)))
        }
        FrameError::UnknownKind { kind } => Malformed::UnknownKind { kind },
        FrameError::TooLarge { kind, .. } if is_host_to_guest(kind) => {
            Malformed::WrongDirection { kind }
        }
        FrameError::TooLarge { kind, len, limit } => Malformed::TooLarge { kind, len, limit },
        // Payload errors come from parsing, in `deliver`, not from reading.
        FrameError::Payload { .. } | FrameError::PayloadSize { .. } => {
            return ChannelEnd::Broken(format!("{}", ErrorChain(&e)))
        }
    })
}

fn bad_payload(frame: &Frame, e: &dyn std::error::Error) -> Malformed {
    Malformed::BadPayload {
        kind: frame.kind,
        id: frame.id,
        detail: format!("{}", ErrorChain(e)),
    }
}

/// Hands one frame to whoever waits for it; drops what nobody waits for.
fn deliver(inner: &Inner, frame: Frame) -> Result<(), Malformed> {
    let out = match frame.kind {
        Kind::Response => {
            let resp = frame
                .parse::<Response>("response")
                .map_err(|e| bad_payload(&frame, &e))?;
            let mut st = lock(&inner.state);
            let stray = match st.responses.get_mut(&frame.id) {
                Some(slot @ Slot::Waiting) => {
                    *slot = Slot::Answered(resp);
                    inner.changed.notify_all();
                    return Ok(());
                }
                Some(Slot::Answered(_)) => "a second answer to one request",
                None => "an answer to a request nobody waits for",
            };
            st.stray_answers += 1;
            // Logged at 1, 2, 4, 8...: an agent that floods them cannot
            // flood the monitor's log too.
            if st.stray_answers.is_power_of_two() {
                tracing::warn!(
                    id = frame.id,
                    "dropped {stray} from the guest agent ({} so far)",
                    st.stray_answers
                );
            }
            return Ok(());
        }
        Kind::Stdout | Kind::Stderr if frame.payload.is_empty() => return Ok(()),
        Kind::Stdout => Output::Stdout(frame.payload),
        Kind::Stderr => Output::Stderr(frame.payload),
        Kind::Eof => match frame.payload.first().copied().and_then(StdioFd::from_byte) {
            Some(fd @ (StdioFd::Stdout | StdioFd::Stderr)) => Output::Eof(fd),
            _ => {
                return Err(Malformed::BadPayload {
                    kind: frame.kind,
                    id: frame.id,
                    detail: format!("{:?} names no output", frame.payload),
                })
            }
        },
        Kind::Exit => Output::Exit(frame.exit_code().map_err(|e| bad_payload(&frame, &e))?),
        kind => return Err(Malformed::WrongDirection { kind }),
    };
    let mut st = lock(&inner.state);
    let Some(s) = st.streams.get_mut(&frame.id) else {
        // Its ProcessIo was dropped (or it never was one): nobody reads it.
        tracing::debug!(
            stream = frame.id,
            "dropping output for a stream nobody reads"
        );
        return Ok(());
    };
    match &out {
        Output::Stdout(d) | Output::Stderr(d) => {
            let cost = output_cost(d.len());
            let held = s.account.outstanding.load(Ordering::SeqCst);
            if u64::from(held) + u64::from(cost) > u64::from(OUTPUT_WINDOW) {
                return Err(Malformed::OverWindow {
                    stream: frame.id,
                    outstanding: u64::from(held) + u64::from(cost),
                    window: OUTPUT_WINDOW,
                });
            }
            s.account.outstanding.fetch_add(cost, Ordering::SeqCst);
        }
        Output::Eof(fd) => {
            let seen = &mut s.eof[usize::from(*fd == StdioFd::Stderr)];
            if std::mem::replace(seen, true) {
                return Ok(());
            }
        }
        Output::Exit(code) => s.exit.set(Ending::Exited(*code)),
    }
    let last = matches!(out, Output::Exit(_));
    if s.tx.send(out).is_err() || last {
        // After the Exit nothing more belongs to the stream; a receiver that
        // is gone wants none of it.
        st.streams.remove(&frame.id);
    }
    Ok(())
}

/// An error and its sources on one line (the engine prints chains the same
/// way; this crate may not depend on it).
pub(super) struct ErrorChain<'a>(pub(super) &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
