//! exec: docker's two-step exec (create a record, then start it on a
//! hijacked connection), `resize` and `json`. The records live in the
//! service's memory only, as docker's do in the daemon's; the process runs
//! through [`engine::Engine::exec`] with pipes (or a terminal) whose ends
//! the session copies to and from the client. The records are bounded
//! (see [`Execs::insert`]): a service that runs for months must not keep
//! every exec it ever made.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::attach::AttachEvent;
use engine::backend::ContainerIo;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::create::StrSlice;
use crate::streams::{self, Session, StdinTarget};
use crate::{blocking, ApiError, ApiVersion, AppState};

/// One exec, as `GET /exec/{id}/json` shows it.
struct ExecRecord {
    container_id: String,
    opts: engine::ExecOptions,
    attach_stdout: bool,
    attach_stderr: bool,
    started: bool,
    running: bool,
    exit_code: Option<i32>,
    pid: Option<i32>,
    /// The terminal master (with a TTY), for resizes.
    console: Option<File>,
    created_at: Instant,
    /// When it stopped running (or failed to start).
    finished_at: Option<Instant>,
}

impl ExecRecord {
    /// It ran (or failed to) and is over: only its exit code is left.
    fn finish(&mut self, code: i32) {
        self.running = false;
        self.exit_code = Some(code);
        self.console = None;
        self.finished_at = Some(Instant::now());
    }
}

/// How many finished execs keep their records, newest first; a client reads
/// an exit code right after the exit (the docker CLI, compose, docker-py),
/// so the last hundred are plenty.
const FINISHED_KEPT: usize = 100;

/// How long a finished exec's record, or one never started, is kept: as
/// moby's exec garbage collector did (5 minutes). moby now keeps them until
/// the container goes, which a service that outlives its containers' CLI
/// removals would never see.
const RECORD_TTL: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct Execs {
    records: Mutex<HashMap<String, Arc<Mutex<ExecRecord>>>>,
}

impl Execs {
    /// Adds a record, first dropping the ones no client will ask for:
    /// finished or never started for longer than [`RECORD_TTL`], and the
    /// finished ones past the newest [`FINISHED_KEPT`]. Running execs
    /// always keep theirs (their number is bounded by their processes).
    fn insert(&self, id: String, record: ExecRecord) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let mut finished = Vec::new();
        records.retain(|_, r| {
            let r = lock(r);
            let since = match (r.started, r.finished_at) {
                (_, Some(t)) => t,
                (false, None) => r.created_at,
                (true, None) => return true,
            };
            if since.elapsed() >= RECORD_TTL {
                return false;
            }
            if let Some(t) = r.finished_at {
                finished.push(t);
            }
            true
        });
        if finished.len() > FINISHED_KEPT {
            finished.sort_unstable_by(|a, b| b.cmp(a));
            let oldest_kept = finished[FINISHED_KEPT - 1];
            records.retain(|_, r| lock(r).finished_at.is_none_or(|t| t >= oldest_kept));
        }
        records.insert(id, Arc::new(Mutex::new(record)));
    }

    /// Drops the records of a removed container's execs (as moby does).
    pub fn forget_container(&self, container_id: &str) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, r| lock(r).container_id != container_id);
    }

    fn get(&self, id: &str) -> Result<Arc<Mutex<ExecRecord>>, ApiError> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }
}

fn lock(r: &Mutex<ExecRecord>) -> std::sync::MutexGuard<'_, ExecRecord> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    env: Option<Vec<String>>,
    cmd: Option<StrSlice>,
    privileged: bool,
    user: Option<String>,
    working_dir: Option<String>,
    detach_keys: Option<String>,
    console_size: Option<Vec<u16>>,
}

fn parse_body<T: for<'de> Deserialize<'de> + Default>(raw: &[u8]) -> Result<T, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ApiError::bad_request(format!("invalid field {}: {}", e.path(), e.inner())))
}

/// `POST /containers/{id}/exec`.
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let b: CreateBody = parse_body(&body)?;
    if b.privileged {
        return Err(ApiError::bad_request(
            "isola does not support Privileged execs (it cannot honour it): leave it unset",
        ));
    }
    let args = match b.cmd {
        Some(c) => match c {
            StrSlice::One(s) => vec![s],
            StrSlice::Many(v) => v,
        },
        None => Vec::new(),
    };
    if args.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let _ = (b.detach_keys, b.console_size);
    let engine = state.engine.clone();
    let rec = blocking(move || Ok(engine.lookup(&id)?)).await?;
    if rec.state.status != engine::state::Status::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            rec.config.id
        )));
    }
    let exec_id =
        engine::ids::new_id().map_err(|e| ApiError::internal(format!("making an exec id: {e}")))?;
    let record = ExecRecord {
        container_id: rec.config.id.clone(),
        opts: engine::ExecOptions {
            args,
            env: b.env.unwrap_or_default(),
            user: b.user.filter(|u| !u.is_empty()),
            workdir: b.working_dir.filter(|w| !w.is_empty()),
            tty: b.tty,
            interactive: b.attach_stdin,
            detach: false,
        },
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        started: false,
        running: false,
        exit_code: None,
        pid: None,
        console: None,
        created_at: Instant::now(),
        finished_at: None,
    };
    state.execs.insert(exec_id.clone(), record);
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    tty: bool,
    console_size: Option<Vec<u16>>,
}

fn devnull() -> std::io::Result<OwnedFd> {
    Ok(File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into())
}

fn pipe() -> std::io::Result<(File, OwnedFd)> {
    let (r, w) = std::io::pipe()?;
    Ok((File::from(OwnedFd::from(r)), OwnedFd::from(w)))
}

/// docker's exit codes for an exec that could not start (126 unless the
/// command is missing).
fn exec_failure_code(message: &str) -> i32 {
    match streams::start_failure_code(message) {
        127 => 127,
        _ => 126,
    }
}

/// Copies `from` into `tx` as `kind` events until EOF.
fn pump(mut from: File, err: bool, tx: mpsc::Sender<AttachEvent>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let data = buf[..n].to_vec();
                let ev = if err {
                    AttachEvent::Stderr(data)
                } else {
                    AttachEvent::Stdout(data)
                };
                if tx.blocking_send(ev).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO: the terminal's last user closed it.
            Err(_) => break,
        }
    }
}

/// `POST /exec/{id}/start`.
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let version = req
        .extensions()
        .get::<ApiVersion>()
        .copied()
        .unwrap_or(ApiVersion(1, 43));
    let (parts, body) = req.into_parts();
    let raw = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
    let b: StartBody = parse_body(&raw)?;
    let req = Request::from_parts(parts, axum::body::Body::empty());
    let record = state.execs.get(&id)?;
    let (container, mut opts, out, err) = {
        let mut r = lock(&record);
        if r.started {
            return Err(ApiError::conflict(format!(
                "Exec {id} has already been started"
            )));
        }
        r.started = true;
        r.running = true;
        (
            r.container_id.clone(),
            r.opts.clone(),
            r.attach_stdout,
            r.attach_stderr,
        )
    };
    opts.tty = opts.tty || b.tty;
    let tty = opts.tty;
    let interactive = opts.interactive;
    let detach = b.detach;
    let console_size = match b.console_size.as_deref() {
        Some([r, c]) if *r > 0 && *c > 0 => Some((*r, *c)),
        _ => None,
    };
    let engine = state.engine.clone();
    let rec2 = record.clone();
    // Start it: the pipes' far ends go to the process, ours come back.
    let start_it = move || {
        blocking(move || {
            let rec = engine.lookup(&container)?;
            let (mut stdin_w, mut readers) = (None, Vec::new());
            let io = if detach || tty {
                let null = devnull().map_err(|e| ApiError::internal(e.to_string()))?;
                Some(ContainerIo::Pipes {
                    stdin: null
                        .try_clone()
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                    stdout: null
                        .try_clone()
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                    stderr: null,
                })
            } else {
                let io_err =
                    |e: std::io::Error| ApiError::internal(format!("making exec pipes: {e}"));
                let stdin = if opts.interactive {
                    let (r, w) = std::io::pipe().map_err(io_err)?;
                    stdin_w = Some(File::from(OwnedFd::from(w)));
                    OwnedFd::from(r)
                } else {
                    devnull().map_err(io_err)?
                };
                let (out_r, out_w) = pipe().map_err(io_err)?;
                let (err_r, err_w) = pipe().map_err(io_err)?;
                readers.push((out_r, false));
                readers.push((err_r, true));
                Some(ContainerIo::Pipes {
                    stdin,
                    stdout: out_w,
                    stderr: err_w,
                })
            };
            match engine.exec(&rec, &opts, io) {
                Ok(p) => {
                    let console = p.console.map(File::from);
                    if let (Some(c), Some((rows, cols))) = (&console, console_size) {
                        let _ = engine::sys::set_window_size(c.as_fd(), rows, cols);
                    }
                    let mut r = lock(&rec2);
                    r.pid = p.pid;
                    r.console = console.as_ref().and_then(|c| c.try_clone().ok());
                    Ok(Ok((p.wait, console, stdin_w, readers)))
                }
                Err(e) => {
                    let message = crate::error::chain(&e);
                    lock(&rec2).finish(exec_failure_code(&message));
                    Ok(Err(message))
                }
            }
        })
    };
    let failed_to_start = {
        let record = record.clone();
        move |e: &ApiError| {
            lock(&record).finish(126);
            tracing::debug!(error = ?e, "exec start");
        }
    };
    let record_exit = {
        let record = record.clone();
        move |code: i32| lock(&record).finish(code)
    };
    if detach {
        let started = match start_it().await {
            Ok(s) => s,
            Err(e) => {
                failed_to_start(&e);
                return Err(e);
            }
        };
        if let Ok((wait, _, _, _)) = started {
            std::thread::spawn(move || record_exit(wait().unwrap_or(255)));
        }
        return Ok(StatusCode::OK.into_response());
    }
    let (ready_tx, ready_rx) = oneshot::channel::<()>();
    let (tx, rx) = mpsc::channel(64);
    let (stdin_tx, stdin_rx) = oneshot::channel::<Box<dyn StdinTarget>>();
    let (finish_tx, finish_rx) = oneshot::channel();
    // Started once the client has the connection (see Session::ready).
    tokio::spawn(async move {
        if ready_rx.await.is_err() {
            // The client went away before the stream began: never run.
            let mut r = lock(&record);
            r.running = false;
            r.finished_at = Some(Instant::now());
            return;
        }
        let started = match start_it().await {
            Ok(s) => s,
            Err(e) => {
                failed_to_start(&e);
                Err(e.message.clone())
            }
        };
        match started {
            Err(message) => {
                // docker shows why on the stream; the exit code is in the record.
                let mut line = message.into_bytes();
                line.push(b'\n');
                let _ = tx.try_send(AttachEvent::Stderr(line));
                let _ = finish_tx.send(());
            }
            Ok((wait, console, stdin_w, readers)) => {
                std::thread::spawn(move || {
                    let mut pumps = Vec::new();
                    match console {
                        Some(master) => {
                            if interactive {
                                if let Ok(w) = master.try_clone() {
                                    let _ = stdin_tx.send(Box::new(Some(w)));
                                }
                            }
                            let tx = tx.clone();
                            pumps.push(std::thread::spawn(move || pump(master, false, tx)));
                        }
                        None => {
                            if let Some(w) = stdin_w {
                                let _ = stdin_tx.send(Box::new(Some(w)));
                            }
                            for (r, is_err) in readers {
                                let keep = if is_err { err } else { out };
                                let tx = tx.clone();
                                pumps.push(std::thread::spawn(move || {
                                    if keep {
                                        pump(r, is_err, tx)
                                    } else {
                                        std::io::copy(&mut { r }, &mut std::io::sink())
                                            .map(|_| ())
                                            .unwrap_or(())
                                    }
                                }));
                            }
                        }
                    }
                    drop(tx);
                    let code = wait().unwrap_or(255);
                    for p in pumps {
                        let _ = p.join();
                    }
                    record_exit(code);
                    let _ = finish_tx.send(());
                });
            }
        }
    });
    let session = Session {
        tty,
        preamble: Vec::new(),
        events: Some(rx),
        stdin: interactive.then_some(stdin_rx),
        finish: Some(finish_rx),
        ready: Some(ready_tx),
    };
    Ok(streams::respond(
        req,
        version,
        session,
        state.activity.guard(),
    ))
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let record = state.execs.get(&id)?;
    let size = |k: &str| -> Result<u16, ApiError> {
        q.get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ApiError::bad_request(format!("resize needs {k} (a number)")))
    };
    let (h, w) = (size("h")?, size("w")?);
    let r = lock(&record);
    if let Some(c) = &r.console {
        engine::sys::set_window_size(c.as_fd(), h, w)
            .map_err(|e| ApiError::internal(format!("resizing exec {id}: {e}")))?;
    }
    Ok(StatusCode::CREATED)
}

/// `GET /exec/{id}/json`.
pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = state.execs.get(&id)?;
    let r = lock(&record);
    Ok(Json(json!({
        "ID": id,
        "Running": r.running,
        "ExitCode": r.exit_code,
        "Pid": r.pid.unwrap_or(0),
        "ContainerID": r.container_id,
        "OpenStdin": r.opts.interactive,
        "OpenStdout": r.attach_stdout,
        "OpenStderr": r.attach_stderr,
        "CanRemove": false,
        "DetachKeys": "",
        "ProcessConfig": {
            "tty": r.opts.tty,
            "entrypoint": r.opts.args.first(),
            "arguments": r.opts.args.iter().skip(1).collect::<Vec<_>>(),
            "privileged": false,
            "user": r.opts.user.clone().unwrap_or_default(),
        },
    })))
}
