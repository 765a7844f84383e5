//! `POST /build`: docker's classic image build (`docker build` without
//! BuildKit, docker-compose's `build:`, the SDKs' `images.build`). The
//! body is the build context as a tar (plain or gzip, as the docker CLI's
//! `--compress` sends it), unpacked into a temporary directory under the
//! engine's root; the build is the `build` crate's, the same as `isola
//! build`, its progress sent as the JSON `stream` lines docker's classic
//! builder writes, the image id as an `aux` line, a failure as an
//! `errorDetail` line with the failing RUN's exit code.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::images::BodyReader;
use crate::{ApiError, AppState};

/// The query, repeated keys kept (`t` is given once per tag).
struct BuildQuery(Vec<(String, String)>);

impl BuildQuery {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }

    /// A JSON object parameter (`buildargs`, `labels`).
    fn map(&self, key: &str) -> Result<BTreeMap<String, Option<String>>, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(BTreeMap::new());
        };
        serde_json::from_str(v)
            .map_err(|e| ApiError::bad_request(format!("invalid {key} {v:?}: {e}")))
    }
}

fn line(v: Value) -> Result<Bytes, std::io::Error> {
    let mut s = v.to_string();
    s.push('\n');
    Ok(Bytes::from(s))
}

/// The build's options from docker's query parameters.
fn options(q: &BuildQuery, context: std::path::PathBuf) -> Result<build::BuildOptions, ApiError> {
    if q.get("remote").is_some() {
        return Err(ApiError::not_implemented(
            "builds from a remote context (git or URL): send the context as the body",
        ));
    }
    let build_args = q.map("buildargs")?;
    let labels = q
        .map("labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    let dockerfile = q.get("dockerfile").unwrap_or("Dockerfile");
    let rel = build::context::clean(dockerfile)
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "dockerfile {dockerfile:?} is not a path inside the build context"
            ))
        })?;
    let network = match q.get("networkmode") {
        None | Some("default") | Some("bridge") => None,
        Some(n) => Some(engine::state::NetworkMode::parse(n)),
    };
    let epoch = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .flatten()
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid SOURCE_DATE_EPOCH {v:?}: expected seconds since 1970"
                ))
            })
        })
        .transpose()?;
    Ok(build::BuildOptions {
        dockerfile: Some(context.join(rel)),
        context,
        tags: q.all("t"),
        build_args,
        target: q.get("target").map(str::to_string),
        isolation: Some(crate::create::isolation(q.get("isolation").unwrap_or(""))?),
        network,
        no_cache: q.flag("nocache"),
        // docker's `pull` is a boolean: always, or when missing.
        pull: if q.flag("pull") {
            engine::images::PullPolicy::Always
        } else {
            engine::images::PullPolicy::Missing
        },
        labels,
        platform: q.get("platform").map(str::to_string),
        source_date_epoch: epoch,
        quiet: true,
    })
}

/// Unpacks the context tar (plain or gzip) into `dir`: entries that
/// would land outside it are refused by the tar crate's `unpack_in`.
fn unpack_context(body: &mut dyn std::io::Read, dir: &std::path::Path) -> std::io::Result<()> {
    let (_, stream) = image::unpack::decompress(body)?;
    let mut a = tar::Archive::new(stream);
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    a.set_unpack_xattrs(false);
    for e in a.entries()? {
        let mut e = e?;
        if !e.unpack_in(dir)? {
            let path = e.path()?.display().to_string();
            return Err(std::io::Error::other(format!(
                "context entry {path:?} leaves the context"
            )));
        }
    }
    Ok(())
}

/// `POST /build`.
pub async fn build(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let q = BuildQuery(
        form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    );
    let quiet = q.flag("q");
    let engine = state.engine.clone();
    let dir = tempfile::Builder::new()
        .prefix("build-context-")
        .tempdir_in(engine.root())
        .map_err(|e| ApiError::internal(format!("a directory for the build context: {e}")))?;
    let opts = options(&q, dir.path().to_path_buf())?;

    let (body_tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let forward = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            if body_tx
                .send(chunk.map_err(std::io::Error::other))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::task::spawn_blocking(move || {
        // The context directory lives until the build is done.
        let context = dir;
        let mut reader = BodyReader::new(body_rx);
        if let Err(e) = unpack_context(&mut reader, context.path()) {
            let m = format!("the build context: {e}");
            let _ = tx.blocking_send(line(json!({"errorDetail": {"message": m}, "error": m})));
            return;
        }
        forward.abort();
        let mut progress = build::ClassicProgress::default();
        let mut on = |e: build::Event<'_>| {
            if quiet {
                return;
            }
            let text = String::from_utf8_lossy(&progress.render(&e)).into_owned();
            if !text.is_empty() {
                let _ = tx.blocking_send(line(json!({ "stream": text })));
            }
        };
        let result = build::build(&engine, &opts, &mut on);
        let msg = match result {
            Ok(built) => {
                let _ = tx.blocking_send(line(json!({"aux": {"ID": built.image.id}})));
                if quiet {
                    json!({ "stream": format!("{}\n", built.image.id) })
                } else {
                    for l in progress.finished(&built) {
                        let _ = tx.blocking_send(line(json!({ "stream": l })));
                    }
                    return;
                }
            }
            Err(e) => {
                let m = crate::error::chain(&e);
                let code = e.run_exit_code().unwrap_or(1);
                json!({"errorDetail": {"code": code, "message": m}, "error": m})
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

/// `POST /build/prune` (`docker builder prune`): forgets the build cache
/// and deletes the layers only it kept.
pub async fn prune(State(state): State<AppState>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let (deleted, report) = crate::blocking(move || {
        let store = image::store::Store::open(engine.root()).map_err(engine::Error::Image)?;
        Ok(store.prune_build_cache().map_err(engine::Error::Image)?)
    })
    .await?;
    Ok(axum::Json(json!({
        "CachesDeleted": deleted,
        "SpaceReclaimed": report.reclaimed_bytes,
    }))
    .into_response())
}
