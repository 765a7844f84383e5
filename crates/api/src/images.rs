//! images: docker's image endpoints (list, pull, inspect, tag, remove),
//! each through the engine's image operations, never the image store
//! directly. Image names hold slashes (`127.0.0.1:5000/app`), so
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
        (_, "history") => Err(ApiError::not_implemented("image history")),
        (_, "get") => Err(ApiError::not_implemented("image save through the API")),
        (_, "push") => Err(ApiError::not_implemented("image push")),
        _ => Err(ApiError::not_found(format!(
            "page not found: {method} /images/{rest}"
        ))),
    }
}
