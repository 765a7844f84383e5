//! monitor::protocol: the frames spoken on a monitor's attach socket. A frame
//! is one kind byte, a big-endian u32 length and the payload. Clients send
//! stdin, end-of-stdin and terminal resizes; the monitor sends stdout,
//! stderr, the exit code and start errors. Hand-written because it is eight
//! message kinds over a unix stream; no crate is worth its weight here.

use std::io::{self, Read, Write};

/// Frames the monitor sends.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// Payload: the exit code, i32 big-endian.
pub const EXIT: u8 = 3;
/// Payload: an error message (the container could not start).
pub const ERROR: u8 = 4;
/// Frames clients send.
pub const STDIN: u8 = 10;
pub const STDIN_CLOSE: u8 = 11;
/// Payload: rows and columns, u16 big-endian each.
pub const RESIZE: u8 = 12;

/// Longest payload accepted.
const MAX_FRAME: u32 = 1 << 20;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub payload: Vec<u8>,
}

pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(5 + payload.len());
    buf.push(kind);
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf)
}

/// Reads one frame; `None` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..])?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("attach frame of {len} bytes is larger than {MAX_FRAME}"),
        ));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    Ok(Some(Frame {
        kind: head[0],
        payload,
    }))
}

pub fn resize_payload(rows: u16, cols: u16) -> [u8; 4] {
    let r = rows.to_be_bytes();
    let c = cols.to_be_bytes();
    [r[0], r[1], c[0], c[1]]
}

pub fn parse_resize(p: &[u8]) -> Option<(u16, u16)> {
    (p.len() == 4).then(|| {
        (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, STDOUT, b"hi").unwrap();
        write_frame(&mut buf, RESIZE, &resize_payload(24, 80)).unwrap();
        write_frame(&mut buf, EXIT, &7i32.to_be_bytes()).unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap().unwrap().payload, b"hi");
        let f = read_frame(&mut r).unwrap().unwrap();
        assert_eq!(parse_resize(&f.payload), Some((24, 80)));
        assert_eq!(read_frame(&mut r).unwrap().unwrap().kind, EXIT);
        assert!(read_frame(&mut r).unwrap().is_none());
        let mut bad = &[STDOUT, 0xff, 0xff, 0xff, 0xff][..];
        assert!(read_frame(&mut bad).is_err());
    }
}
