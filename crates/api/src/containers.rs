//! containers: docker's container endpoints other than the streams (create,
//! list, inspect, start, stop, restart, kill, pause, unpause, rename,
//! resize, top, stats, prune, remove), each one engine call.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use engine::state::Status;
use engine::store::ContainerRecord;
use engine::Engine;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::streams::flag;
use crate::{blocking, ApiError, AppState};

type Q = Query<HashMap<String, String>>;

/// `POST /containers/create?name=`.
pub async fn create(
    State(state): State<AppState>,
    Query(q): Q,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let parsed = crate::create::parse(&body, q.get("name").filter(|n| !n.is_empty()).cloned())?;
    let engine = state.engine.clone();
    let rec = blocking(move || Ok(engine.create(&parsed.request)?)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": rec.config.id, "Warnings": []})),
    ))
}

/// docker's `filters` query: `{"key": ["value", ...]}` (or the old
/// `{"key": {"value": true}}`).
pub fn filters(q: &HashMap<String, String>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(raw) = q.get("filters").filter(|f| !f.is_empty()) else {
        return Ok(Vec::new());
    };
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filters: {e}")))?;
    let mut out = Vec::new();
    for (k, vals) in v.as_object().into_iter().flatten() {
        match vals {
            Value::Array(a) => {
                for x in a {
                    out.push((k.clone(), x.as_str().unwrap_or_default().to_string()));
                }
            }
            Value::Object(o) => {
                for (x, on) in o {
                    if on.as_bool() != Some(false) {
                        out.push((k.clone(), x.clone()));
                    }
                }
            }
            _ => return Err(ApiError::bad_request(format!("invalid filter {k:?}"))),
        }
    }
    Ok(out)
}

fn label_matches(labels: &std::collections::BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(want),
    }
}

fn container_matches(rec: &ContainerRecord, filters: &[(String, String)]) -> bool {
    // docker: values of one key OR, keys AND; but every label must match
    // (compose asks for its project's label and its service's together).
    let keys: std::collections::BTreeSet<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.into_iter().all(|key| {
        let matches = |v: &String| match key {
            "status" => rec.state.status.as_str() == v,
            "name" => rec.config.name.contains(v.trim_start_matches('/')),
            "id" => rec.config.id.starts_with(v.as_str()),
            "label" => label_matches(&rec.config.labels, v),
            "isolation" => {
                crate::create::isolation(v).ok().and_then(|c| match c {
                    engine::isolation::IsolationChoice::Explicit(m) => Some(m),
                    engine::isolation::IsolationChoice::Default => None,
                }) == Some(rec.config.isolation)
            }
            "ancestor" => rec.config.image == *v || rec.config.image_id.starts_with(v),
            _ => false,
        };
        let mut values = filters.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
        if key == "label" {
            values.all(matches)
        } else {
            values.any(matches)
        }
    })
}

const FILTERS: &[&str] = &["status", "name", "id", "label", "isolation", "ancestor"];

/// One container in docker's list shape.
fn summary(rec: &ContainerRecord) -> Value {
    let c = &rec.config;
    let ports: Vec<Value> = rec
        .state
        .network
        .iter()
        .flat_map(|n| n.ports.iter())
        .map(|m| {
            json!({
                "IP": m.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                "PrivatePort": m.container_port,
                "PublicPort": m.host_port,
                "Type": m.protocol.as_str(),
            })
        })
        .collect();
    let mut networks = serde_json::Map::new();
    for held in rec.state.attachments() {
        let name = if held.network == engine::state::DEFAULT_NETWORK {
            "bridge".to_string()
        } else {
            held.network.clone()
        };
        networks.insert(
            name,
            json!({
                "NetworkID": held.network,
                "IPAddress": held.attachment.ip.to_string(),
                "IPPrefixLen": held.attachment.prefix_len,
                "Gateway": held.attachment.gateway.map(|g| g.to_string()).unwrap_or_default(),
                "MacAddress": held.attachment.mac,
            }),
        );
    }
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": c.args.join(" "),
        "Created": c.created.timestamp(),
        "Ports": ports,
        "Labels": c.labels,
        "State": rec.state.status.as_str(),
        "Status": rec.state.describe(Utc::now()),
        "HostConfig": { "NetworkMode": c.network.as_docker(), "Isolation": c.isolation.to_string() },
        "NetworkSettings": { "Networks": networks },
        "Mounts": c.mounts,
    })
}

/// `GET /containers/json?all=&limit=&filters=`.
pub async fn list(State(state): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let filters = filters(&q)?;
    if let Some((k, _)) = filters.iter().find(|(k, _)| !FILTERS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "invalid filter {k:?}: isola filters containers on {}",
            FILTERS.join(", ")
        )));
    }
    let limit: Option<usize> = q
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .and_then(|l| usize::try_from(l).ok())
        .filter(|l| *l > 0);
    let all = flag(&q, "all") || limit.is_some();
    let engine = state.engine.clone();
    blocking(move || {
        let list: Vec<Value> = engine
            .list()?
            .iter()
            .filter(|r| all || r.state.status.is_active())
            .filter(|r| container_matches(r, &filters))
            .take(limit.unwrap_or(usize::MAX))
            .map(summary)
            .collect();
        Ok(Json(Value::Array(list)))
    })
    .await
}

/// Runs `f` on the container `id` names.
async fn with_container<T, F>(state: &AppState, id: String, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&Engine, ContainerRecord) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let engine = state.engine.clone();
    blocking(move || {
        let rec = engine.lookup(&id)?;
        f(&engine, rec)
    })
    .await
}

/// `GET /containers/{id}/json`.
pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    with_container(&state, id, |e, rec| {
        Ok(Json(engine::inspect::container(e, &rec)))
    })
    .await
}

/// Undoes a container whose start failed and that `--rm` should remove.
fn cleanup_failed_start(engine: &Engine, rec: &ContainerRecord) {
    if rec.config.auto_remove {
        if let Err(e) = engine.remove(rec, true) {
            tracing::warn!(
                "removing container {}: {}",
                rec.config.id,
                crate::error::chain(&e)
            );
        }
    }
}

/// Starts `rec`: through its feed when clients wait on it (see `live`).
fn start_container(state: &AppState, rec: &ContainerRecord) -> Result<StatusCode, ApiError> {
    let engine = &state.engine;
    if rec.state.status == Status::Running {
        return Ok(StatusCode::NOT_MODIFIED);
    }
    let id = &rec.config.id;
    if let Some(feed) = state.live.get(id).filter(|f| f.begin_start()) {
        return match engine.start_attached(rec, None) {
            Ok(stream) => {
                state.live.run(engine.clone(), feed, stream);
                Ok(StatusCode::NO_CONTENT)
            }
            Err(e) => {
                let err = ApiError::from(e);
                cleanup_failed_start(engine, rec);
                feed.fail(err.message.clone());
                state.live.remove(id, &feed);
                Err(err)
            }
        };
    }
    let started = engine
        .start(rec, false, None)
        .and_then(|mut ready| Ok(ready.report()?));
    match started {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(engine::Error::AlreadyRunning { .. }) => Ok(StatusCode::NOT_MODIFIED),
        Err(e) => {
            cleanup_failed_start(engine, rec);
            Err(e.into())
        }
    }
}

/// `POST /containers/{id}/start`: 204, or 304 when it runs already.
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let st = state.clone();
    with_container(&state, id, move |_, rec| start_container(&st, &rec)).await
}

/// `?t=`: seconds; the container's own stop timeout when absent.
fn stop_timeout(q: &HashMap<String, String>) -> Result<Option<Duration>, ApiError> {
    match q.get("t").map(String::as_str) {
        None | Some("") => Ok(None),
        Some(t) => t
            .parse::<i64>()
            .map(|s| Some(Duration::from_secs(s.max(0) as u64)))
            .map_err(|_| ApiError::bad_request(format!("invalid t {t:?}: expected seconds"))),
    }
}

/// `POST /containers/{id}/stop?t=`: 204, or 304 when it was not running.
pub async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let timeout = stop_timeout(&q)?;
    with_container(&state, id, move |e, rec| {
        if !rec.state.status.is_active() {
            return Ok(StatusCode::NOT_MODIFIED);
        }
        e.stop(&rec, timeout)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// `POST /containers/{id}/restart?t=`.
pub async fn restart(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let timeout = stop_timeout(&q)?;
    let st = state.clone();
    with_container(&state, id, move |e, rec| {
        e.restart(&rec, timeout, |rec| start_container(&st, rec))?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// `POST /containers/{id}/kill?signal=`.
pub async fn kill(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let signal = match q.get("signal").filter(|s| !s.is_empty()) {
        Some(s) => {
            engine::units::parse_signal(s).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        None => libc::SIGKILL,
    };
    with_container(&state, id, move |e, rec| {
        e.kill(&rec, signal)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    with_container(&state, id, |e, rec| {
        e.pause(&rec)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

pub async fn unpause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    with_container(&state, id, |e, rec| {
        e.unpause(&rec)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// `POST /containers/{id}/update`: docker's resource fields the engine can
/// change (Memory, MemorySwap, NanoCpus, CpuQuota, CpuPeriod, CpuShares,
/// PidsLimit) and RestartPolicy; another field set to something is refused
/// with 400 naming it, never ignored.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
    let change = update_request(&v)?;
    with_container(&state, id, move |e, rec| {
        if !change.is_empty() {
            e.update(&rec, &change)?;
        }
        Ok(Json(json!({"Warnings": []})))
    })
    .await
}

/// docker's UpdateConfig body as the engine's change; docker's zero values
/// (0, "", the empty policy) leave a setting as it is.
fn update_request(v: &Value) -> Result<engine::LimitsUpdate, ApiError> {
    use engine::units;
    let int = |k: &str| v[k].as_i64().unwrap_or(0);
    let bad = |field: &str, e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!("invalid {field}: {e}"))
    };
    let mut change = engine::LimitsUpdate::default();
    match int("Memory") {
        0 => {}
        m if m < 6 << 20 => {
            return Err(ApiError::bad_request(
                "Memory: Minimum memory limit allowed is 6MB",
            ))
        }
        m => change.memory = Some(m as u64),
    }
    match int("MemorySwap") {
        0 => {}
        s if s < -1 => return Err(bad("MemorySwap", &s)),
        s => change.memory_swap = Some(s),
    }
    match int("NanoCpus") {
        0 => {}
        n if n < 0 => return Err(bad("NanoCpus", &n)),
        n => change.cpu_quota = Some((n / 10_000) as u64),
    }
    change.cfs_quota = Some(int("CpuQuota")).filter(|q| *q != 0);
    match int("CpuPeriod") {
        0 => {}
        p if p < 0 => return Err(bad("CpuPeriod", &p)),
        p => change.cfs_period = Some(p as u64),
    }
    match int("CpuShares") {
        0 => {}
        s if s < 0 => return Err(bad("CpuShares", &s)),
        s => change.cpu_shares = Some(s as u64),
    }
    if let Some(p) = v["PidsLimit"].as_i64() {
        change.pids_limit = Some((p > 0).then_some(p));
    }
    let policy = &v["RestartPolicy"];
    let name = policy["Name"].as_str().unwrap_or_default();
    if !name.is_empty() {
        let text = match (name, policy["MaximumRetryCount"].as_u64().unwrap_or(0)) {
            ("on-failure", n) if n > 0 => format!("on-failure:{n}"),
            (name, _) => name.to_string(),
        };
        change.restart = Some(
            text.parse()
                .map_err(|e: units::ValueError| bad("RestartPolicy", &e))?,
        );
    }
    for field in [
        "MemoryReservation",
        "KernelMemory",
        "BlkioWeight",
        "CpuRealtimePeriod",
        "CpuRealtimeRuntime",
    ] {
        if int(field) != 0 {
            return Err(ApiError::bad_request(format!(
                "{field}: isola's update does not change it (only Memory, MemorySwap, NanoCpus, CpuQuota, CpuPeriod, CpuShares, PidsLimit and RestartPolicy)"
            )));
        }
    }
    for field in ["CpusetCpus", "CpusetMems"] {
        if v[field].as_str().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request(format!(
                "{field}: isola's update does not change it (only Memory, MemorySwap, NanoCpus, CpuQuota, CpuPeriod, CpuShares, PidsLimit and RestartPolicy)"
            )));
        }
    }
    Ok(change)
}

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("rename needs a name"))?
        .trim_start_matches('/')
        .to_string();
    with_container(&state, id, move |e, rec| {
        e.rename(&rec, &name)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// `DELETE /containers/{id}?force=&v=`.
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let force = flag(&q, "force");
    // `v`: the container's anonymous volumes go with it (`docker rm -v`).
    let volumes = flag(&q, "v");
    let execs = state.execs.clone();
    with_container(&state, id, move |e, rec| {
        let removed = if volumes {
            e.remove_with_volumes(&rec, force)
        } else {
            e.remove(&rec, force)
        };
        removed.map_err(|err| match err {
            engine::Error::RemoveRunning { .. } => ApiError::conflict(format!(
                "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                rec.config.id
            )),
            other => other.into(),
        })?;
        execs.forget_container(&rec.config.id);
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// `POST /containers/prune`.
pub async fn prune(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    blocking(move || {
        let removed = engine.prune()?;
        Ok(Json(
            json!({"ContainersDeleted": removed, "SpaceReclaimed": 0}),
        ))
    })
    .await
}

fn size_param(q: &HashMap<String, String>, key: &str) -> Result<u16, ApiError> {
    q.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::bad_request(format!("resize needs {key} (a number)")))
}

/// `POST /containers/{id}/resize?h=&w=`: the monitor sizes the terminal.
pub async fn resize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let (h, w) = (size_param(&q, "h")?, size_param(&q, "w")?);
    with_container(&state, id, move |e, rec| {
        let stream = e.attach(&rec)?;
        stream
            .input()
            .resize(h, w)
            .map_err(|err| ApiError::internal(format!("resizing: {err}")))?;
        stream.shutdown();
        Ok(StatusCode::OK)
    })
    .await
}

/// `GET /containers/{id}/top?ps_args=`.
pub async fn top(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<engine::backend::Top>, ApiError> {
    let args: Vec<String> = q
        .get("ps_args")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    with_container(&state, id, move |e, rec| Ok(Json(e.top(&rec, &args)?))).await
}

/// The host's CPU time, in nanoseconds (docker's `system_cpu_usage`).
fn system_cpu_ns() -> u64 {
    // USER_HZ is 100 on every Linux ABI isola runs on.
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let first = s.lines().next()?.strip_prefix("cpu ")?.to_string();
            Some(
                first
                    .split_whitespace()
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum::<u64>()
                    * 10_000_000,
            )
        })
        .unwrap_or(0)
}

fn stats_json(
    rec: &ContainerRecord,
    now: &engine::backend::Usage,
    before: &engine::backend::Usage,
    sys: (u64, u64),
) -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpu = |u: &engine::backend::Usage, system: u64| {
        json!({
            "cpu_usage": {"total_usage": u.cpu_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": system,
            "online_cpus": cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        })
    };
    json!({
        "read": engine::monitor::log::format_time(&Utc::now()),
        "preread": "0001-01-01T00:00:00Z",
        "id": rec.config.id,
        "name": format!("/{}", rec.config.name),
        "pids_stats": {"current": now.pids},
        "cpu_stats": cpu(now, sys.1),
        "precpu_stats": cpu(before, sys.0),
        "memory_stats": {"usage": now.memory_bytes, "limit": now.memory_limit, "stats": {}},
        "networks": {},
        "blkio_stats": {},
    })
}

/// `GET /containers/{id}/stats?stream=`: docker's JSON, one sample (two
/// readings half a second apart, for the CPU share) or one a second.
pub async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let stream = q
        .get("stream")
        .is_none_or(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let one_shot = flag(&q, "one-shot");
    let engine = state.engine.clone();
    let rec = {
        let e = engine.clone();
        blocking(move || Ok(e.lookup(&id)?)).await?
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let first = {
        let (e, r) = (engine.clone(), rec.clone());
        blocking(move || Ok(e.usage(&r)?)).await?
    };
    tokio::task::spawn_blocking(move || {
        let mut before = first;
        let mut sys_before = system_cpu_ns();
        loop {
            if !one_shot {
                std::thread::sleep(Duration::from_millis(if stream { 1000 } else { 500 }));
            }
            let Ok(now) = engine.usage(&rec) else {
                break;
            };
            let sys_now = system_cpu_ns();
            let mut line = stats_json(&rec, &now, &before, (sys_before, sys_now)).to_string();
            line.push('\n');
            if tx.blocking_send(Ok(Bytes::from(line))).is_err() || !stream {
                break;
            }
            before = now;
            sys_before = sys_now;
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}
