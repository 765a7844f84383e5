//! streams: docker's long-lived container streams, `attach`, `logs` and
//! `wait`, and the hijacked-connection session that attach and exec share:
//! `101 UPGRADED` when the client asks for `Connection: Upgrade` (else 200
//! and the raw stream as the body), docker's 8-byte-header multiplexing
//! without a TTY and raw bytes with one, the client's half-close ending
//! the container's stdin.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use engine::attach::{AttachEvent, AttachInput};
use engine::state::Status;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::live::{Ended, Started};
use crate::{blocking, ActiveGuard, ApiError, ApiVersion, AppState};

/// docker's stream types in the multiplexed framing.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// One frame of docker's multiplexed stream: the stream type, three zero
/// bytes, the payload's length (u32, big-endian), the payload.
pub fn frame(kind: u8, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out.into()
}

/// A query flag as docker reads it: `1`, `true` (any case) or present and empty.
pub fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key)
        .is_some_and(|v| v.is_empty() || v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Whether the client asked to take the connection over.
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
}

/// What a stream's output is written to: the hijacked connection, or the
/// body of a plain 200.
enum Sink {
    Upgraded(tokio::io::WriteHalf<TokioIo<hyper::upgrade::Upgraded>>),
    Body(mpsc::Sender<Result<Bytes, std::io::Error>>),
}

impl Sink {
    async fn send(&mut self, data: Bytes) -> bool {
        match self {
            Sink::Upgraded(w) => w.write_all(&data).await.is_ok() && w.flush().await.is_ok(),
            Sink::Body(tx) => tx.send(Ok(data)).await.is_ok(),
        }
    }

    async fn close(self) {
        if let Sink::Upgraded(mut w) = self {
            let _ = w.shutdown().await;
        }
    }
}

/// Where the client's stdin goes.
pub trait StdinTarget: Send + 'static {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()>;
    fn close(&mut self);
}

impl StdinTarget for AttachInput {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.stdin(data)
    }
    fn close(&mut self) {
        let _ = self.close_stdin();
    }
}

impl StdinTarget for Option<std::fs::File> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Some(f) => f.write_all(data),
            None => Ok(()),
        }
    }
    fn close(&mut self) {
        *self = None;
    }
}

/// A session's plan: how to frame, where stdin goes once known.
pub struct Session {
    pub tty: bool,
    /// Output already due (the log, for `attach?logs=1`), sent first.
    pub preamble: Vec<Bytes>,
    pub events: Option<mpsc::Receiver<AttachEvent>>,
    /// Resolves to the stdin target once the container runs (`None`: no stdin).
    pub stdin: Option<tokio::sync::oneshot::Receiver<Box<dyn StdinTarget>>>,
    /// Runs after the output ended, before the connection closes (exec
    /// records its exit code there, so that a client reading it next sees it).
    pub finish: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Told once the connection is the session's (the 101 sent), so that
    /// what produces the output starts only then, as moby starts an exec:
    /// output sent along with the response's headers is lost to clients
    /// that switch to the raw socket after reading them (docker-py).
    pub ready: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The response starting a session, and the session's task: 101 with the
/// connection taken over, or 200 with the output as body.
pub fn respond(
    mut req: Request,
    version: ApiVersion,
    session: Session,
    guard: ActiveGuard,
) -> Response {
    let upgrade = wants_upgrade(req.headers());
    // docker ≥ 1.42 names the multiplexed type; before, both were "raw".
    let content_type = if !session.tty && version >= ApiVersion(1, 42) {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    };
    if upgrade {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let _guard = guard;
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
            run(Sink::Upgraded(writer), Some(reader), session).await;
        });
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
        resp.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(b"UPGRADED"));
        return resp;
    }
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let _guard = guard;
        run(Sink::Body(tx), None, session).await;
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}

async fn run(
    mut sink: Sink,
    reader: Option<tokio::io::ReadHalf<TokioIo<hyper::upgrade::Upgraded>>>,
    session: Session,
) {
    let Session {
        tty,
        preamble,
        events,
        stdin,
        finish,
        ready,
    } = session;
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    if let (Some(mut reader), Some(stdin)) = (reader, stdin) {
        tokio::spawn(async move {
            let Ok(mut target) = stdin.await else {
                return;
            };
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = buf[..n].to_vec();
                        let Ok((t, ok)) = tokio::task::spawn_blocking(move || {
                            let ok = target.write(&data).is_ok();
                            (target, ok)
                        })
                        .await
                        else {
                            return;
                        };
                        target = t;
                        if !ok {
                            break;
                        }
                    }
                }
            }
            // The client's half-close ends the container's stdin.
            let _ = tokio::task::spawn_blocking(move || target.close()).await;
        });
    }
    for p in preamble {
        if !sink.send(p).await {
            return;
        }
    }
    if let Some(mut events) = events {
        while let Some(ev) = events.recv().await {
            let data = match ev {
                AttachEvent::Stdout(d) if tty => Bytes::from(d),
                AttachEvent::Stderr(d) if tty => Bytes::from(d),
                AttachEvent::Stdout(d) => frame(STDOUT, &d),
                AttachEvent::Stderr(d) => frame(STDERR, &d),
                AttachEvent::Exit(_) | AttachEvent::Failed(_) => break,
            };
            if !sink.send(data).await {
                return;
            }
        }
    }
    if let Some(f) = finish {
        let _ = f.await;
    }
    sink.close().await;
}

/// Reads a monitor connection's events into a channel (its socket blocks).
pub fn events_of(mut stream: engine::attach::AttachStream) -> mpsc::Receiver<AttachEvent> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        while let Ok(Some(ev)) = stream.next_event() {
            let end = matches!(ev, AttachEvent::Exit(_) | AttachEvent::Failed(_));
            if tx.blocking_send(ev).is_err() || end {
                break;
            }
        }
        stream.shutdown();
    });
    rx
}

/// The log entries of `rec` as frames (or raw with a TTY).
fn log_frames(
    engine: &engine::Engine,
    rec: &engine::store::ContainerRecord,
    stdout: bool,
    stderr: bool,
    timestamps: bool,
) -> Result<Vec<Bytes>, ApiError> {
    let mut out = Vec::new();
    let tty = rec.config.tty;
    engine.logs(rec, &engine::logs::LogQuery::default(), &mut |e| {
        if let Some(b) = render(e, stdout, stderr, timestamps, tty) {
            out.push(b);
        }
        true
    })?;
    Ok(out)
}

fn render(
    e: &engine::monitor::log::LogEntry,
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    tty: bool,
) -> Option<Bytes> {
    let err = e.stream == "stderr";
    if (err && !stderr) || (!err && !stdout) {
        return None;
    }
    let text = if timestamps {
        format!("{} {}", engine::monitor::log::format_time(&e.time), e.log)
    } else {
        e.log.clone()
    };
    Some(if tty {
        Bytes::from(text)
    } else {
        frame(if err { STDERR } else { STDOUT }, text.as_bytes())
    })
}

/// Copies events to a session, dropping the streams it did not ask for.
async fn forward(
    mut events: mpsc::Receiver<AttachEvent>,
    tx: mpsc::Sender<AttachEvent>,
    stdout: bool,
    stderr: bool,
) {
    while let Some(ev) = events.recv().await {
        let keep = match &ev {
            AttachEvent::Stdout(_) => stdout,
            AttachEvent::Stderr(_) => stderr,
            _ => true,
        };
        if keep && tx.send(ev).await.is_err() {
            break;
        }
    }
}

/// `POST /containers/{id}/attach`.
pub async fn attach(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, ApiError> {
    let version = req
        .extensions()
        .get::<ApiVersion>()
        .copied()
        .unwrap_or(ApiVersion(1, 43));
    let engine = state.engine.clone();
    let rec = {
        let e = engine.clone();
        blocking(move || Ok(e.lookup(&id)?)).await?
    };
    let (stdout, stderr) = (flag(&q, "stdout"), flag(&q, "stderr"));
    let want_stdin = flag(&q, "stdin") && rec.config.open_stdin;
    let preamble = if flag(&q, "logs") {
        let (e, r) = (engine.clone(), rec.clone());
        let ts = false;
        blocking(move || log_frames(&e, &r, stdout, stderr, ts)).await?
    } else {
        Vec::new()
    };
    let mut session = Session {
        tty: rec.config.tty,
        preamble,
        events: None,
        stdin: None,
        finish: None,
        ready: None,
    };
    if flag(&q, "stream") {
        let (stdin_tx, stdin_rx) = tokio::sync::oneshot::channel::<Box<dyn StdinTarget>>();
        let (tx, rx) = mpsc::channel(64);
        if rec.state.status == Status::Running {
            let (e, r) = (engine.clone(), rec.clone());
            let stream = blocking(move || Ok(e.attach(&r)?)).await?;
            let _ = stdin_tx.send(Box::new(stream.input()));
            tokio::spawn(forward(events_of(stream), tx, stdout, stderr));
        } else {
            // Not running yet: docker's `run` attaches before it starts.
            let feed = state.live.feed(&rec.config.id);
            let (events, mut started) = feed.subscribe();
            tokio::spawn(async move {
                loop {
                    let now = started.borrow_and_update().clone();
                    match now {
                        Started::Running(input) => {
                            let _ = stdin_tx.send(Box::new(input));
                            forward(events, tx, stdout, stderr).await;
                            return;
                        }
                        Started::Failed => return,
                        Started::Pending | Started::Starting => {}
                    }
                    match tokio::time::timeout(Duration::from_millis(500), started.changed()).await
                    {
                        Ok(Ok(())) => continue,
                        Ok(Err(_)) => return,
                        Err(_) => {}
                    }
                    // The service is starting it: its output comes here.
                    if !feed.is_pending() {
                        continue;
                    }
                    // Started by another client (the isola CLI): its
                    // monitor, directly.
                    let (e, id) = (engine.clone(), rec.config.id.clone());
                    let direct = blocking(move || Ok(e.attach(&e.lookup(&id)?)?)).await;
                    if let (Ok(stream), true) = (direct, feed.is_pending()) {
                        let _ = stdin_tx.send(Box::new(stream.input()));
                        forward(events_of(stream), tx, stdout, stderr).await;
                        return;
                    }
                }
            });
        }
        session.events = Some(rx);
        session.stdin = want_stdin.then_some(stdin_rx);
    }
    Ok(respond(req, version, session, state.activity.guard()))
}

/// docker's `logs` query.
pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let rec = {
        let e = engine.clone();
        blocking(move || Ok(e.lookup(&id)?)).await?
    };
    let (stdout, stderr) = (flag(&q, "stdout"), flag(&q, "stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let time = |key: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        match q.get(key).map(String::as_str) {
            None | Some("") | Some("0") => Ok(None),
            Some(v) => {
                let secs: f64 = v.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid {key} {v:?}: expected unix seconds"))
                })?;
                Ok(chrono::DateTime::from_timestamp(
                    secs.trunc() as i64,
                    (secs.fract() * 1e9) as u32,
                ))
            }
        }
    };
    let query = engine::logs::LogQuery {
        since: time("since")?,
        until: time("until")?,
        tail: match q.get("tail").map(String::as_str) {
            None | Some("") | Some("all") => None,
            Some(n) => Some(n.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid tail {n:?}: expected a number or all"))
            })?),
        },
        follow: flag(&q, "follow"),
    };
    let timestamps = flag(&q, "timestamps");
    let tty = rec.config.tty;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::task::spawn_blocking(move || {
        let _ = engine.logs(
            &rec,
            &query,
            &mut |e| match render(e, stdout, stderr, timestamps, tty) {
                Some(b) => tx.blocking_send(Ok(b)).is_ok(),
                None => true,
            },
        );
    });
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

/// docker's exit code for a container (or exec) whose process could not
/// start: 127 when the command is missing, 126 when it cannot be run, else
/// 125. The words are the runtime's, as docker's client matches them too.
pub fn start_failure_code(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if m.contains("executable file not found") || m.contains("no such file") {
        127
    } else if m.contains("permission denied") || m.contains("is a directory") {
        126
    } else {
        125
    }
}

/// `wait`'s conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    NotRunning,
    NextExit,
    Removed,
}

/// Waits until a running container exits, through its monitor; its code.
fn exit_of_running(
    engine: &engine::Engine,
    rec: &engine::store::ContainerRecord,
) -> Result<Ended, ApiError> {
    if let Ok(mut stream) = engine.attach(rec) {
        loop {
            match stream.next_event() {
                Ok(Some(AttachEvent::Exit(code))) => return Ok(Ended::Exit(code)),
                Ok(Some(AttachEvent::Failed(m))) => return Ok(Ended::Failed(m)),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    Ok(Ended::Exit(
        engine
            .exit_code_after_disconnect(&rec.config.id)?
            .unwrap_or(255),
    ))
}

/// `POST /containers/{id}/wait?condition=`: answers the headers at once
/// (docker's CLI starts the container only after), the exit later.
pub async fn wait(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let condition = match q.get("condition").map(String::as_str) {
        None | Some("") | Some("not-running") => Condition::NotRunning,
        Some("next-exit") => Condition::NextExit,
        Some("removed") => Condition::Removed,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid condition {other:?}: expected not-running, next-exit or removed"
            )))
        }
    };
    let engine = state.engine.clone();
    let rec = {
        let e = engine.clone();
        blocking(move || Ok(e.lookup(&id)?)).await?
    };
    let id = rec.config.id.clone();
    // Registered before the answer, so that a start that follows is seen.
    let ended = (!rec.state.status.is_active()).then(|| state.live.feed(&id).ended());
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let result: Result<Ended, ApiError> = async {
            let Some(mut ended) = ended else {
                let e = engine.clone();
                return blocking(move || exit_of_running(&e, &rec)).await;
            };
            if condition == Condition::NotRunning {
                return Ok(Ended::Exit(rec.state.exit_code.unwrap_or(0)));
            }
            loop {
                // The service starts it (its feed says how it ended), or
                // another client does: the store, every half second.
                let _ = tokio::time::timeout(Duration::from_millis(500), ended.changed()).await;
                if let Some(e) = ended.borrow().clone() {
                    return Ok(e);
                }
                let (e, i) = (engine.clone(), id.clone());
                let Some(now) = blocking(move || Ok(e.store().read(&i)?)).await? else {
                    // --rm: its monitor removes the record just before it
                    // reports the exit to an attached service; wait for
                    // that report a little before calling the exit unknown.
                    let _ = tokio::time::timeout(Duration::from_secs(2), ended.changed()).await;
                    if let Some(e) = ended.borrow().clone() {
                        return Ok(e);
                    }
                    return Ok(Ended::Exit(0));
                };
                let by_service = state.live.get(&id).is_some_and(|f| !f.is_pending());
                if now.state.status == Status::Running && !by_service {
                    let e = engine.clone();
                    return blocking(move || exit_of_running(&e, &now)).await;
                }
            }
        }
        .await;
        let body = match result {
            Ok(ended) => {
                if condition == Condition::Removed {
                    // The record goes after the exit (at once with --rm).
                    loop {
                        let (e, i) = (engine.clone(), id.clone());
                        match blocking(move || Ok(e.store().read(&i)?)).await {
                            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
                            _ => break,
                        }
                    }
                }
                match ended {
                    Ended::Exit(code) => serde_json::json!({"StatusCode": code, "Error": null}),
                    // It never ran: docker records the start's code
                    // (its client reports the start's error itself).
                    Ended::Failed(m) => {
                        serde_json::json!({"StatusCode": start_failure_code(&m), "Error": null})
                    }
                }
            }
            Err(e) => serde_json::json!({"StatusCode": 255, "Error": {"Message": e.message}}),
        };
        let mut line = body.to_string();
        line.push('\n');
        let _ = tx.send(Ok(Bytes::from(line))).await;
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}
