//! proto: the one protocol between isola on the host and the agent in the
//! utility VM, carried over any byte stream (a virtio-serial port backed by a
//! host unix socket today, vsock later).
//!
//! It owns the wire format and the message types, nothing else: no sockets,
//! no threads, no processes. [`frame`] is the framing (kind, stream id, length,
//! payload); [`message`] the control calls (JSON payloads) and stdio kinds.
//!
//! One connection multiplexes:
//! - control: [`Request`] frames from the host, each answered by one
//!   [`Response`] frame with the same id (a `Wait` is answered when the
//!   process exits, so answers may come out of order);
//! - stdio: per process *stream* (an id the host picks in `CreateContainer`
//!   and `Exec`): `Stdin`, `Resize` and `Eof` to the guest; `Stdout`, `Stderr`,
//!   `Eof` and `Exit` from it. `Exit` is sent unasked when the process ends.
//!   Output is flow-controlled per stream: `Credit` frames from the host give
//!   the agent room to send more (see [`frame`]).

pub mod frame;
pub mod message;

pub use frame::{
    output_cost, Decoder, Frame, FrameError, Kind, HEADER_LEN, MAX_PAYLOAD, OUTPUT_FRAME_COST,
    OUTPUT_WINDOW,
};
pub use message::{
    share_path, CompiledSeccomp, ContainerStats, ProcessInfo, Request, Response, RootfsSource,
    StdioFd, WindowSize, GUEST_ROOTFS, IMAGE_DISK_SERIAL, PROTOCOL_VERSION, WRITABLE_DISK_SERIAL,
};
