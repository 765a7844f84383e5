//! The protocol over a real unix socketpair: frames written by one end are
//! read whole and in order by the other, however the bytes are split.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::thread;

use proto::{Decoder, Frame, FrameError, Kind, Request, Response, StdioFd, MAX_PAYLOAD};

fn sample_spec() -> oci_spec::runtime::Spec {
    let mut spec = oci_spec::runtime::Spec::default();
    let mut process = oci_spec::runtime::Process::default();
    process.set_args(Some(vec!["sh".into(), "-c".into(), "exit 7".into()]));
    spec.set_process(Some(process));
    spec
}

#[test]
fn requests_and_stdio_cross_a_socketpair_in_order() {
    let (mut host, mut guest) = UnixStream::pair().unwrap();
    let create = Request::CreateContainer {
        id: "c1".into(),
        spec: Box::new(sample_spec()),
        rootfs: "/run/isola/rootfs".into(),
        terminal: false,
        stream: 5,
        seccomp: Some(proto::CompiledSeccomp {
            filter: vec![6, 0, 0, 0, 0, 0, 0xff, 0x7f],
            flags: 0,
        }),
    };
    let sent = vec![
        Frame::json(Kind::Request, 1, &Request::Hello { version: 1 }),
        Frame::json(Kind::Request, 2, &create),
        Frame::new(Kind::Stdin, 5, b"echo hi\n".to_vec()),
        Frame::new(Kind::Eof, 5, vec![StdioFd::Stdin as u8]),
        // A payload far bigger than a socket buffer: must not be cut or interleaved.
        Frame::new(Kind::Stdin, 5, vec![0xAB; 1 << 20]),
    ];
    let to_send = sent.clone();
    let writer = thread::spawn(move || {
        for f in &to_send {
            f.write_to(&mut host).unwrap();
        }
        host
    });
    let mut got = Vec::new();
    for _ in 0..sent.len() {
        got.push(Frame::read_from(&mut guest).unwrap());
    }
    let host = writer.join().unwrap();
    assert_eq!(got, sent);
    match got[1].parse::<Request>("request").unwrap() {
        Request::CreateContainer { spec, stream, .. } => {
            assert_eq!(stream, 5);
            let args = spec.process().as_ref().unwrap().args().clone().unwrap();
            assert_eq!(args, ["sh", "-c", "exit 7"]);
        }
        other => panic!("wrong request {other:?}"),
    }
    drop(host);
    assert!(matches!(
        Frame::read_from(&mut guest),
        Err(FrameError::Closed)
    ));
}

#[test]
fn responses_and_exit_codes_round_trip() {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let resp = Response::Error {
        message: "container c1: not found".into(),
    };
    Frame::json(Kind::Response, 9, &resp)
        .write_to(&mut a)
        .unwrap();
    Frame::exit(3, -1).write_to(&mut a).unwrap();
    Frame::exit(3, 137).write_to(&mut a).unwrap();
    let f = Frame::read_from(&mut b).unwrap();
    assert_eq!((f.kind, f.id), (Kind::Response, 9));
    assert_eq!(f.parse::<Response>("response").unwrap(), resp);
    assert_eq!(Frame::read_from(&mut b).unwrap().exit_code().unwrap(), -1);
    assert_eq!(Frame::read_from(&mut b).unwrap().exit_code().unwrap(), 137);
}

#[test]
fn decoder_reassembles_frames_split_at_any_byte() {
    let frames = vec![
        Frame::new(Kind::Stdout, 1, b"hello".to_vec()),
        Frame::new(Kind::Stderr, 2, Vec::new()),
        Frame::exit(1, 0),
    ];
    let bytes: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
    for chunk in [1, 2, 7, 9, 10, bytes.len()] {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk) {
            d.push(piece);
            while let Some(f) = d.next_frame().unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, frames, "chunk size {chunk}");
        assert_eq!(d.pending(), 0);
    }
}

#[test]
fn corrupt_streams_are_refused_not_misread() {
    let mut d = Decoder::new();
    d.push(&[0x7f, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert!(matches!(
        d.next_frame(),
        Err(FrameError::UnknownKind { kind: 0x7f })
    ));

    let mut d = Decoder::new();
    let mut header = vec![Kind::Stdout as u8, 0, 0, 0, 1];
    header.extend_from_slice(&(MAX_PAYLOAD + 1).to_be_bytes());
    d.push(&header);
    assert!(matches!(d.next_frame(), Err(FrameError::TooLarge { .. })));

    // A peer that dies mid-frame is a truncation, not a clean close.
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let encoded = Frame::new(Kind::Stdout, 1, b"abcdef".to_vec()).encode();
    a.write_all(&encoded[..12]).unwrap();
    drop(a);
    assert!(matches!(
        Frame::read_from(&mut b),
        Err(FrameError::Truncated)
    ));

    // A malformed JSON payload names what it was meant to be.
    let f = Frame::new(Kind::Request, 1, b"{not json".to_vec());
    let err = f.parse::<Request>("request").unwrap_err();
    assert!(err.to_string().contains("request"), "{err}");
}

#[test]
fn a_per_kind_limit_refuses_the_header_before_any_payload_arrives() {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    // Only the header: a reader that waited for the payload would block.
    let mut header = vec![Kind::Exit as u8, 0, 0, 0, 1];
    header.extend_from_slice(&(1u32 << 20).to_be_bytes());
    a.write_all(&header).unwrap();
    let limit = |k| if k == Kind::Exit { 4 } else { MAX_PAYLOAD };
    assert!(matches!(
        Frame::read_limited(&mut b, limit),
        Err(FrameError::TooLarge {
            kind: Kind::Exit,
            len: 1048576,
            limit: 4
        })
    ));

    Frame::credit(3, 65600).write_to(&mut a).unwrap();
    let f = Frame::read_limited(&mut b, limit).unwrap();
    assert_eq!(
        (f.kind, f.id, f.credit_amount().unwrap()),
        (Kind::Credit, 3, 65600)
    );
}
