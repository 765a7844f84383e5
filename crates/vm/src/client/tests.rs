//! The real client against a real socket: the test plays the agent on the
//! far end of a UnixStream pair, writing frames by hand, including the ones
//! a compromised agent might send.

use super::*;
use std::io::Write;

use proto::MAX_PAYLOAD;

fn pair() -> (AgentClient, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let client = AgentClient::new(ours, PathBuf::from("/test/console.log")).unwrap();
    (client, theirs)
}

fn respond(agent: &mut UnixStream, id: u32, resp: &Response) {
    Frame::json(Kind::Response, id, resp)
        .write_to(agent)
        .unwrap();
}

/// The next frame from the client that is not a Credit.
fn next_request(agent: &mut UnixStream) -> Frame {
    loop {
        let f = Frame::read_from(agent).unwrap();
        if f.kind != Kind::Credit {
            return f;
        }
    }
}

/// A call on another thread, answered by the far end.
fn call_in_background(client: &AgentClient) -> std::thread::JoinHandle<Result<Response, Error>> {
    let c = client.clone();
    std::thread::spawn(move || c.call(&Request::Shutdown, Some(Duration::from_secs(20))))
}

fn wait_closed(client: &AgentClient) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.is_connected() {
        assert!(Instant::now() < deadline, "the channel was not ended");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn answers_to_unknown_or_repeated_request_ids_are_dropped_not_kept() {
    let (client, mut agent) = pair();
    // Two requests in flight, answered only after the agent has replied to
    // both: the repeat of the first comes while its answer waits, unread.
    let first = client.request(&Request::Shutdown).unwrap();
    let second = client.request(&Request::Shutdown).unwrap();
    let (id1, id2) = (next_request(&mut agent).id, next_request(&mut agent).id);
    assert_eq!((id1, id2), (first.id, second.id));
    respond(&mut agent, id2 + 1000, &Response::Ok);
    let answer = |message: &str| Response::Error {
        message: message.into(),
    };
    respond(&mut agent, id1, &answer("first"));
    respond(&mut agent, id1, &answer("second"));
    respond(&mut agent, id2, &Response::Ok);
    // Frames are handled in order: once the second is answered, the reader
    // has been through the stray answers.
    assert!(matches!(client.answer(second, None), Ok(Response::Ok)));
    assert_eq!(client.held(), (1, 0), "only the first's answer is held");
    assert_eq!(client.answer(first, None).unwrap(), answer("first"));
    assert_eq!(client.held(), (0, 0), "stray answers were kept");
    assert!(
        client.is_connected(),
        "stray answers are dropped, not fatal"
    );
}

#[test]
fn a_caller_that_gives_up_leaves_no_slot_for_a_late_answer() {
    let (client, mut agent) = pair();
    let err = client
        .call(&Request::Shutdown, Some(Duration::from_millis(50)))
        .unwrap_err();
    assert!(matches!(err, Error::BootTimeout { .. }), "{err}");
    let req = next_request(&mut agent);
    respond(&mut agent, req.id, &Response::Ok);
    let call = call_in_background(&client);
    let req2 = next_request(&mut agent);
    respond(&mut agent, req2.id, &Response::Ok);
    call.join().unwrap().unwrap();
    assert_eq!(client.held(), (0, 0));
}

/// Plays a well-behaved agent: writes `total` bytes of stdout on `stream` in
/// 64 KiB frames, never more outstanding than the window, taking credit
/// and answering requests as they come, then the Exit. Returns the most it
/// ever had outstanding.
fn honest_flood(mut agent: UnixStream, stream: u32, total: usize) -> u32 {
    let mut window = OUTPUT_WINDOW;
    let mut sent = 0;
    let mut worst = 0;
    let chunk = vec![b'x'; 64 * 1024];
    while sent < total {
        let n = chunk.len().min(total - sent);
        if window >= output_cost(n) {
            Frame::new(Kind::Stdout, stream, chunk[..n].to_vec())
                .write_to(&mut agent)
                .unwrap();
            window -= output_cost(n);
            worst = worst.max(OUTPUT_WINDOW - window);
            sent += n;
            continue;
        }
        let f = Frame::read_from(&mut agent).unwrap();
        match f.kind {
            Kind::Credit => window += f.credit_amount().unwrap(),
            Kind::Request => respond(&mut agent, f.id, &Response::Ok),
            other => panic!("unexpected {other:?} from the host"),
        }
    }
    Frame::exit(stream, 0).write_to(&mut agent).unwrap();
    worst
}

#[test]
fn a_flood_to_a_slow_consumer_stays_within_the_window_and_holds_up_nothing_else() {
    let (client, agent) = pair();
    let io = client.open_stream();
    let total = 8 * OUTPUT_WINDOW as usize;
    let stream = io.stream();
    let flood = std::thread::spawn(move || honest_flood(agent, stream, total));

    // The consumer does not read: the agent fills its window and stops.
    let deadline = Instant::now() + Duration::from_secs(20);
    while io.outstanding() + output_cost(64 * 1024) <= OUTPUT_WINDOW {
        assert!(Instant::now() < deadline, "the window never filled");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(io.outstanding() <= OUTPUT_WINDOW, "{}", io.outstanding());
    // A full stream does not hold up the answers.
    let answered = client.call(&Request::Shutdown, Some(Duration::from_secs(10)));
    assert!(matches!(answered, Ok(Response::Ok)), "{answered:?}");

    // A slow reader gets everything, in order, never more queued than the window.
    let mut got = 0;
    let code = loop {
        assert!(io.outstanding() <= OUTPUT_WINDOW, "{}", io.outstanding());
        match io.recv_timeout(Duration::from_secs(20)).unwrap() {
            Some(Output::Stdout(d)) => {
                assert!(d.iter().all(|&b| b == b'x'));
                got += d.len();
                if got % (1 << 20) == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Some(Output::Exit(code)) => break code,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!((got, code), (total, 0));
    assert!(flood.join().unwrap() <= OUTPUT_WINDOW);
}

#[test]
fn output_beyond_the_window_ends_the_channel_instead_of_being_buffered() {
    let (client, mut agent) = pair();
    let io = client.open_stream();
    let frame = Frame::new(Kind::Stdout, io.stream(), vec![b'x'; 64 * 1024]);
    // Ignoring flow control, as a compromised agent would; the client stops
    // reading, so the far end's writes may fail: that is fine.
    let mut ok = 0;
    for _ in 0..64 {
        if frame.write_to(&mut agent).is_err() {
            break;
        }
        ok += 1;
    }
    wait_closed(&client);
    assert!(ok > 0);
    assert!(io.outstanding() <= OUTPUT_WINDOW, "{}", io.outstanding());
    let m = client.malformed().expect("ended for a malformed frame");
    assert!(matches!(m, Malformed::OverWindow { .. }), "{m:?}");
    let text = client
        .call(&Request::Shutdown, None)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("malformed frame") && text.contains("beyond its window"),
        "{text}"
    );
    // What was within the window is still delivered, then the end.
    let mut got = 0;
    while let Some(Output::Stdout(d)) = io.recv() {
        got += d.len();
    }
    assert!(got <= OUTPUT_WINDOW as usize);
    let gone = io.wait().unwrap_err().to_string();
    assert!(gone.contains("malformed frame"), "{gone}");
}

#[test]
fn output_nobody_reads_any_more_is_dropped() {
    let (client, mut agent) = pair();
    let io = client.open_stream();
    let stream = io.stream();
    drop(io);
    for _ in 0..100 {
        Frame::new(Kind::Stdout, stream, vec![b'x'; 60 * 1024])
            .write_to(&mut agent)
            .unwrap();
    }
    let call = call_in_background(&client);
    let req = next_request(&mut agent);
    respond(&mut agent, req.id, &Response::Ok);
    call.join().unwrap().unwrap();
    assert_eq!(client.held(), (0, 0));
    assert!(client.is_connected());
}

/// Sends `bytes` as the agent and returns the error a waiting caller gets.
fn malformed_after(bytes: &[u8]) -> (Malformed, String) {
    let (client, mut agent) = pair();
    let call = call_in_background(&client);
    let _req = next_request(&mut agent);
    agent.write_all(bytes).unwrap();
    let err = call.join().unwrap().unwrap_err();
    wait_closed(&client);
    (
        client.malformed().expect("ended as malformed"),
        err.to_string(),
    )
}

fn header(kind: u8, id: u32, len: u32) -> Vec<u8> {
    let mut h = vec![kind];
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&len.to_be_bytes());
    h
}

#[test]
fn a_malformed_frame_ends_the_channel_with_an_error_naming_it() {
    let (m, text) = malformed_after(&header(0x7f, 1, 0));
    assert_eq!(m, Malformed::UnknownKind { kind: 0x7f });
    assert!(
        text.contains("malformed frame") && text.contains("unknown frame kind 127"),
        "{text}"
    );

    // Refused on the header, before waiting for (or allocating) 1 MiB.
    let (m, text) = malformed_after(&header(Kind::Exit as u8, 1, 1 << 20));
    assert_eq!(
        m,
        Malformed::TooLarge {
            kind: Kind::Exit,
            len: 1 << 20,
            limit: 4
        }
    );
    assert!(text.contains("Exit frame of 1048576 bytes"), "{text}");
    let (m, _) = malformed_after(&header(Kind::Response as u8, 1, MAX_PAYLOAD + 1));
    assert!(
        matches!(
            m,
            Malformed::TooLarge {
                kind: Kind::Response,
                ..
            }
        ),
        "{m:?}"
    );

    let mut bad_json = header(Kind::Response as u8, 1, 9);
    bad_json.extend_from_slice(b"{not json");
    let (m, text) = malformed_after(&bad_json);
    assert!(
        matches!(
            m,
            Malformed::BadPayload {
                kind: Kind::Response,
                id: 1,
                ..
            }
        ),
        "{m:?}"
    );
    assert!(text.contains("does not decode"), "{text}");

    let mut bad_eof = header(Kind::Eof as u8, 1, 1);
    bad_eof.push(9);
    let (m, _) = malformed_after(&bad_eof);
    assert!(
        matches!(
            m,
            Malformed::BadPayload {
                kind: Kind::Eof,
                ..
            }
        ),
        "{m:?}"
    );

    let (m, text) = malformed_after(&header(Kind::Request as u8, 1, 2));
    assert_eq!(
        m,
        Malformed::WrongDirection {
            kind: Kind::Request
        }
    );
    assert!(text.contains("only the host sends"), "{text}");
}

#[test]
fn a_closed_channel_is_not_called_malformed() {
    let (client, agent) = pair();
    let call = call_in_background(&client);
    drop(agent);
    let err = call.join().unwrap().unwrap_err();
    assert!(matches!(err, Error::VmExited { .. }), "{err}");
    assert_eq!(client.malformed(), None);
}

#[test]
fn the_exit_is_seen_while_output_before_it_waits_unread() {
    let (client, mut agent) = pair();
    let io = client.open_stream();
    let exit = io.exit_watch();
    for _ in 0..4 {
        Frame::new(Kind::Stdout, io.stream(), vec![b'x'; 64 * 1024])
            .write_to(&mut agent)
            .unwrap();
    }
    Frame::exit(io.stream(), 3).write_to(&mut agent).unwrap();
    // Nobody reads the output, yet the exit is known.
    assert_eq!(exit.wait().unwrap(), 3);
    // And the output is all there, in order, before the Exit.
    let mut got = 0;
    loop {
        match io.recv().unwrap() {
            Output::Stdout(d) => got += d.len(),
            Output::Exit(code) => break assert_eq!(code, 3),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, 4 * 64 * 1024);

    // A channel that ends first ends the wait too, saying why.
    let io = client.open_stream();
    let exit = io.exit_watch();
    drop(agent);
    let err = exit.wait().unwrap_err();
    assert!(matches!(err, Error::VmExited { .. }), "{err}");
}
