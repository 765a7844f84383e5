//! api: the Docker Engine API, served on a unix socket for `isola system
//! service`, so that the docker CLI, compose and the Docker SDKs drive
//! isola. A thin layer over the `engine`: each handler turns docker's
//! request into an engine call and the engine's typed result into docker's
//! JSON and status code (errors in [`error`]). It keeps in memory only what
//! docker's protocol needs between requests (exec records, attach sessions
//! waiting for a start); containers never depend on it: their monitors own
//! them, and the CLI sees the same containers. It must not open the socket
//! itself (the caller binds it, with the permissions it chooses) nor print.

#![deny(clippy::undocumented_unsafe_blocks)]

mod builds;
mod containers;
mod create;
pub mod error;
mod events;
mod exec;
mod images;
mod live;
mod networks;
mod streams;
mod system;
mod volumes;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use futures_util::StreamExt;
use tower_layer::Layer;

pub use error::ApiError;

/// The API version isola speaks (docker 24's), and the oldest it accepts.
pub const API_VERSION: &str = "1.43";
pub const MIN_API_VERSION: &str = "1.24";

/// Errors of the service as a whole (a request's errors are [`ApiError`]s).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serving the Docker API")]
    Io(#[from] std::io::Error),
}

/// How the service runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Exit after this long without a request or an open stream; `None`:
    /// never.
    pub idle_timeout: Option<Duration>,
}

/// A `major.minor` API version, as in `/v1.41/...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    fn parse(s: &str) -> Option<ApiVersion> {
        let (a, b) = s.split_once('.')?;
        Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
    }
    fn current() -> ApiVersion {
        ApiVersion::parse(API_VERSION).unwrap_or(ApiVersion(1, 43))
    }
}

/// Requests and streams in flight, and when the last one ended: what the
/// idle timeout watches.
#[derive(Debug)]
pub(crate) struct Activity {
    active: AtomicUsize,
    last: Mutex<Instant>,
}

/// One unit of activity, ended when dropped.
pub(crate) struct ActiveGuard(Arc<Activity>);

impl Activity {
    pub(crate) fn guard(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(self.clone())
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.active.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(
            self.last
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed(),
        )
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub engine: engine::Engine,
    pub live: Arc<live::Live>,
    pub execs: Arc<exec::Execs>,
    pub activity: Arc<Activity>,
}

/// Runs `f` (an engine call: file system work and waits) off the async
/// threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a request's worker failed: {e}")))?
}

/// Serves the API on `listener` (a unix socket; a TCP one only where the
/// user insisted) until the idle timeout (if any) passes.
pub async fn serve<L>(listener: L, engine: engine::Engine, opts: Options) -> Result<(), ServeError>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let activity = Arc::new(Activity {
        active: AtomicUsize::new(0),
        last: Mutex::new(Instant::now()),
    });
    let state = AppState {
        engine,
        live: Arc::new(live::Live::default()),
        execs: Arc::new(exec::Execs::default()),
        activity: activity.clone(),
    };
    let app = axum::middleware::from_fn_with_state(state.clone(), versioned).layer(router(state));
    let idle = opts.idle_timeout;
    let shutdown = async move {
        let Some(limit) = idle else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if activity.idle_for().is_some_and(|d| d >= limit) {
                return;
            }
        }
    };
    axum::serve(listener, axum::ServiceExt::into_make_service(app))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(events::events))
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route("/containers/prune", post(containers::prune))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/update", post(containers::update))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/wait", post(streams::wait))
        .route("/containers/{id}/attach", post(streams::attach))
        .route("/containers/{id}/logs", get(streams::logs))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/stats", get(containers::stats))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/build", post(builds::build))
        .route("/build/prune", post(builds::prune))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::pull))
        .route("/images/get", get(images::save_many))
        .route("/images/load", post(images::load))
        .route("/images/prune", post(images::prune))
        .route("/images/{*rest}", any(images::by_name))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .fallback(unsupported)
        .with_state(state)
}

/// Endpoints isola has not built: a clear answer, never a hang.
async fn unsupported(uri: Uri) -> ApiError {
    let path = uri.path();
    let what = match path.split('/').nth(1).unwrap_or_default() {
        "swarm" | "services" | "nodes" | "tasks" | "secrets" | "configs" => {
            "swarm mode".to_string()
        }
        "plugins" => "plugins".to_string(),
        "session" => "build sessions".to_string(),
        "distribution" => "distribution inspection".to_string(),
        _ => path.to_string(),
    };
    ApiError::not_implemented(&what)
}

/// Strips and checks the `/v1.xx` prefix (moby's rules: older than
/// [`MIN_API_VERSION`] or newer than [`API_VERSION`] is a 400), records the
/// version for the handlers, and counts the request (and its body's
/// lifetime: a log or wait stream) as activity.
async fn versioned(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let guard = state.activity.guard();
    let path = req.uri().path().to_string();
    let mut version = ApiVersion::current();
    if let Some(rest) = path.strip_prefix("/v") {
        let (v, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some(parsed) = ApiVersion::parse(v) {
            let min = ApiVersion::parse(MIN_API_VERSION).unwrap_or(ApiVersion(1, 24));
            if parsed > ApiVersion::current() {
                return ApiError::bad_request(format!(
                    "client version {v} is too new. Maximum supported API version is {API_VERSION}"
                ))
                .into_response();
            }
            if parsed < min {
                return ApiError::bad_request(format!(
                    "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                ))
                .into_response();
            }
            version = parsed;
            let tail = if tail.is_empty() { "/" } else { tail };
            let pq = match req.uri().query() {
                Some(q) => format!("{tail}?{q}"),
                None => tail.to_string(),
            };
            if let Ok(uri) = pq.parse::<Uri>() {
                *req.uri_mut() = uri;
            }
        }
    }
    req.extensions_mut().insert(version);
    let line = format!("{} {}", req.method(), req.uri());
    let mut resp = next.run(req).await;
    // What a client asks, for `--log-level api=debug` when one trips.
    tracing::debug!(
        "{line} (API {}.{}): {}",
        version.0,
        version.1,
        resp.status()
    );
    let headers = resp.headers_mut();
    headers.insert("api-version", HeaderValue::from_static(API_VERSION));
    headers.insert("ostype", HeaderValue::from_static("linux"));
    headers.insert("docker-experimental", HeaderValue::from_static("false"));
    headers.insert(
        "server",
        HeaderValue::from_static(concat!("isola/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    // The guard lives as long as the body does.
    resp.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _ = &guard;
            chunk
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_numbers() {
        assert!(ApiVersion::parse("1.9").unwrap() < ApiVersion::parse("1.24").unwrap());
        assert!(ApiVersion::parse("1.44").unwrap() > ApiVersion::current());
        assert_eq!(ApiVersion::parse("x"), None);
    }
}
