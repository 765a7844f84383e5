//! images: docker's image endpoints (list, pull, inspect, tag, remove,
//! history, save, load, prune), each through the engine's image
//! operations, never the image store directly. Image names hold slashes (`127.0.0.1:5000/app`), so
//! `/images/{name}/...` is matched by its last segment here.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::streams::flag;
use crate::{blocking, ApiError, AppState};

type Q = Query<HashMap<String, String>>;

fn summary(img: &image::Image) -> Value {
    let created = img
        .created
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0);
    let labels = img
        .config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default();
    json!({
        "Id": img.id,
        "ParentId": "",
        "RepoTags": img.names.iter().map(image::Reference::familiar).collect::<Vec<_>>(),
        "RepoDigests": img.repo_digests.iter().map(|d| image::Reference::parse(d).map(|r| r.familiar()).unwrap_or_else(|_| d.clone())).collect::<Vec<_>>(),
        "Created": created,
        "Size": img.size,
        "VirtualSize": img.size,
        "SharedSize": -1,
        "Labels": labels,
        "Containers": -1,
    })
}

/// `GET /images/json`.
pub async fn list(State(state): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let filters = crate::containers::filters(&q)?;
    let engine = state.engine.clone();
    blocking(move || {
        let images = engine.list_images()?;
        let list: Vec<Value> = images
            .iter()
            .filter(|img| {
                filters.iter().all(|(k, v)| match k.as_str() {
                    "reference" => img.names.iter().any(|n| {
                        let f = n.familiar();
                        f == *v || f.split(':').next() == Some(v.as_str())
                    }),
                    "dangling" => (v == "true") == img.names.is_empty(),
                    _ => false,
                })
            })
            .map(summary)
            .collect();
        Ok(Json(Value::Array(list)))
    })
    .await
}

/// `POST /images/create?fromImage=&tag=`: a pull, with docker's JSON
/// progress lines (one per stage: isola's pull reports no byte counts).
pub async fn pull(
    State(state): State<AppState>,
    Query(q): Q,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if q.contains_key("fromSrc") {
        return Err(ApiError::not_implemented("image import through the API"));
    }
    let from = q
        .get("fromImage")
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::bad_request("pull needs fromImage"))?;
    let tag = q.get("tag").filter(|t| !t.is_empty());
    let reference = match tag {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.clone(),
    };
    if headers
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.is_empty() && v != "e30=" && v != "e30")
    {
        // Credentials travel through `isola login`'s store, which the
        // engine reads; accepting them per request would need a per-pull
        // auth the engine does not take yet.
        tracing::debug!("X-Registry-Auth given; isola pulls with the credentials of isola login");
    }
    let platform = q.get("platform").filter(|p| !p.is_empty()).cloned();
    let engine = state.engine.clone();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let line = |v: Value| {
        let mut s = v.to_string();
        s.push('\n');
        Ok(Bytes::from(s))
    };
    let shown = engine::images::familiar_reference(&reference);
    let _ = tx
        .send(line(json!({"status": format!("Pulling from {}", shown.split(':').next().unwrap_or(&shown)), "id": shown.rsplit(':').next()})))
        .await;
    tokio::task::spawn_blocking(move || {
        let platform = match platform.as_deref().map(image::registry::Platform::parse) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                let _ = tx.blocking_send(line(
                    json!({"errorDetail": {"message": e.to_string()}, "error": e.to_string()}),
                ));
                return;
            }
            None => None,
        };
        let result = engine.pull(&engine::images::PullRequest {
            reference: reference.clone(),
            platform,
            progress: Some(engine::images::ProgressMode::Quiet),
            ..Default::default()
        });
        let msg = match result {
            Ok(p) => {
                let _ = tx.blocking_send(line(
                    json!({"status": format!("Digest: {}", p.manifest_digest)}),
                ));
                json!({"status": if p.downloaded {
                    format!("Status: Downloaded newer image for {shown}")
                } else {
                    format!("Status: Image is up to date for {shown}")
                }})
            }
            Err(e) => {
                let m = crate::error::chain(&e);
                json!({"errorDetail": {"message": m}, "error": m})
            }
        };
        let _ = tx.blocking_send(line(msg));
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

/// `/images/{name}/json|tag|history` and `DELETE /images/{name}`.
pub async fn by_name(
    State(state): State<AppState>,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let (name, action) = match rest.rsplit_once('/') {
        Some((n, a @ ("json" | "tag" | "history" | "get" | "push"))) => (n.to_string(), a),
        _ => (rest.clone(), ""),
    };
    match (&method, action) {
        (&Method::GET, "json") => {
            blocking(move || {
                let img = engine
                    .find_image(&name)?
                    .ok_or_else(|| ApiError::not_found(format!("No such image: {name}")))?;
                let dirs = engine.image_layer_dirs(&img)?;
                Ok(Json(
                    serde_json::to_value(engine::inspect::image(&img, &dirs)).unwrap_or_default(),
                )
                .into_response())
            })
            .await
        }
        (&Method::POST, "tag") => {
            let repo = q
                .get("repo")
                .filter(|r| !r.is_empty())
                .ok_or_else(|| ApiError::bad_request("tag needs repo"))?;
            let target = match q.get("tag").filter(|t| !t.is_empty()) {
                Some(t) => format!("{repo}:{t}"),
                None => repo.clone(),
            };
            blocking(move || {
                engine.tag_image(&name, &target)?;
                Ok(StatusCode::CREATED.into_response())
            })
            .await
        }
        (&Method::DELETE, "") => {
            let force = flag(&q, "force");
            blocking(move || {
                let lines = engine.remove_image(&name, force).map_err(|e| match e {
                    engine::Error::Image(ref i) if i.is_not_found() => {
                        ApiError::not_found(format!("No such image: {name}"))
                    }
                    engine::Error::Image(ref i @ image::Error::InUse { .. }) => {
                        ApiError::conflict(crate::error::chain(i))
                    }
                    other => other.into(),
                })?;
                let out: Vec<Value> = lines
                    .iter()
                    .map(|l| match l.split_once(": ") {
                        Some(("Untagged", v)) => json!({"Untagged": v}),
                        Some((_, v)) => json!({"Deleted": v}),
                        None => json!({"Deleted": l}),
                    })
                    .collect();
                Ok(Json(Value::Array(out)).into_response())
            })
            .await
        }
        (&Method::GET, "history") => {
            blocking(move || {
                let img = engine
                    .find_image(&name)?
                    .ok_or_else(|| ApiError::not_found(format!("No such image: {name}")))?;
                let rows: Vec<Value> = engine
                    .image_history(&img)?
                    .into_iter()
                    .map(|h| {
                        let created = h
                            .created
                            .as_deref()
                            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                            .map(|t| t.timestamp())
                            .unwrap_or(0);
                        json!({
                            "Id": h.id.unwrap_or_else(|| "<missing>".into()),
                            "Created": created,
                            "CreatedBy": h.created_by,
                            "Tags": if h.tags.is_empty() { Value::Null } else { json!(h.tags) },
                            "Size": h.size,
                            "Comment": h.comment,
                        })
                    })
                    .collect();
                Ok(Json(Value::Array(rows)).into_response())
            })
            .await
        }
        (&Method::GET, "get") => save(&state, vec![name]).await,
        (&Method::POST, "push") => {
            // `docker push name[:tag]`: the tag comes as a parameter.
            let target = match q.get("tag").filter(|t| !t.is_empty()) {
                Some(t) => format!("{name}:{t}"),
                None => name.clone(),
            };
            let pushed = blocking(move || {
                Ok(engine.push(&engine::images::PushRequest {
                    source: target,
                    progress: Some(engine::images::ProgressMode::Quiet),
                    ..Default::default()
                })?)
            })
            .await;
            // docker's client reads a push's outcome from the stream, an
            // error included, after a 200.
            let lines: Vec<Value> = match pushed {
                Ok(p) => {
                    let r = image::Reference::parse(&p.reference).ok();
                    let repo = r.as_ref().map_or(p.reference.clone(), |r| r.name());
                    let tag = r.and_then(|r| r.tag).unwrap_or_else(|| "latest".into());
                    vec![
                        json!({"status": format!("The push refers to repository [{repo}]")}),
                        json!({"status": format!("{tag}: digest: {} size: {}", p.manifest_digest, p.manifest_size)}),
                        json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": p.manifest_digest, "Size": p.manifest_size}}),
                    ]
                }
                Err(e) => vec![json!({"errorDetail": {"message": e.message}, "error": e.message})],
            };
            let mut out = String::new();
            for l in lines {
                out.push_str(&l.to_string());
                out.push('\n');
            }
            Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
        }
        _ => Err(ApiError::not_found(format!(
            "page not found: {method} /images/{rest}"
        ))),
    }
}

/// `GET /images/get?names=a&names=b` (`docker save a b`).
pub async fn save_many(
    State(state): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let names: Vec<String> = q
        .into_iter()
        .filter(|(k, v)| k == "names" && !v.is_empty())
        .map(|(_, v)| v)
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad_request("image save needs names"));
    }
    save(&state, names).await
}

/// Sends what the engine's save writes, chunk by chunk, to the response
/// body: an archive of many layers never sits whole in memory. A client
/// that goes away ends the save (the next write fails).
struct BodyWriter(mpsc::Sender<Result<Bytes, std::io::Error>>);

impl std::io::Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The docker-archive tar of `names` (`docker save`): every name is
/// checked first, so a missing image is a 404, not a broken tar.
async fn save(state: &AppState, names: Vec<String>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let checked = names.clone();
    let engine2 = engine.clone();
    blocking(move || {
        for n in &checked {
            if engine2.find_image(n)?.is_none() {
                return Err(ApiError::not_found(format!("No such image: {n}")));
            }
        }
        Ok(())
    })
    .await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let err_tx = tx.clone();
        let mut w = std::io::BufWriter::with_capacity(256 << 10, BodyWriter(tx));
        let saved = engine
            .save_images(&names, &mut w)
            .map_err(|e| crate::error::chain(&e))
            .and_then(|()| std::io::Write::flush(&mut w).map_err(|e| e.to_string()));
        if let Err(e) = saved {
            // The status is sent: cutting the body short is all that is
            // left to tell the client (its tar reader then fails).
            tracing::warn!("image save of {names:?} failed: {e}");
            let _ = err_tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

/// The request body as a blocking reader, for the engine's load, which
/// reads a tar as it arrives.
pub(crate) struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    chunk: Bytes,
}

impl BodyReader {
    pub(crate) fn new(rx: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> BodyReader {
        BodyReader {
            rx,
            chunk: Bytes::new(),
        }
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// `POST /images/load[?quiet=1]` (`docker load`): the archive in the body;
/// docker's JSON lines name each image loaded.
pub async fn load(
    State(state): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Response, ApiError> {
    // isola's load reports no progress, so quiet changes nothing here.
    let _quiet = flag(&q, "quiet");
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let forward = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    let engine = state.engine.clone();
    let loaded = blocking(move || {
        let mut reader = BodyReader::new(rx);
        let loaded = engine
            .load(&mut reader, engine::images::ProgressMode::Quiet)
            .map_err(|e| match e {
                engine::Error::Image(ref i) if !i.is_not_found() => {
                    ApiError::bad_request(crate::error::chain(i))
                }
                other => other.into(),
            })?;
        Ok(loaded)
    })
    .await;
    forward.abort();
    let mut out = String::new();
    for l in loaded? {
        let names: Vec<String> = l.names.iter().map(|n| n.familiar()).collect();
        let line = match names.is_empty() {
            true => format!("Loaded image ID: {}\n", l.image.id),
            false => names
                .iter()
                .map(|n| format!("Loaded image: {n}\n"))
                .collect(),
        };
        out.push_str(&json!({ "stream": line }).to_string());
        out.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// `POST /images/prune[?filters={"dangling":["false"]}]` (`docker image
/// prune [-a]`): docker's report of what went and the bytes freed.
pub async fn prune(State(state): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let mut all = false;
    for (k, v) in crate::containers::filters(&q)? {
        match (k.as_str(), v.as_str()) {
            ("dangling", "true" | "1") => all = false,
            ("dangling", "false" | "0") => all = true,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter {k:?}={v:?}: isola prunes images on dangling=true|false only"
                )))
            }
        }
    }
    let engine = state.engine.clone();
    blocking(move || {
        let report = engine.prune_images(all)?;
        let deleted: Vec<Value> = report
            .untagged
            .iter()
            .map(|u| json!({ "Untagged": u }))
            .chain(
                report
                    .deleted_images
                    .iter()
                    .map(|d| json!({ "Deleted": d })),
            )
            .chain(
                report
                    .deleted_layers
                    .iter()
                    .map(|d| json!({ "Deleted": d })),
            )
            .collect();
        Ok(Json(json!({
            "ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
            "SpaceReclaimed": report.reclaimed_bytes,
        })))
    })
    .await
}
