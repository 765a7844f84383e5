//! system: `/_ping`, `/version` and `/info`, what clients ask first to
//! negotiate a version and to learn the host (the engine's docker-shaped
//! `info` and `version`, which `isola info`/`version --format` read too).

use axum::extract::State;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::{blocking, ApiError, AppState, API_VERSION, MIN_API_VERSION};

/// `GET|HEAD /_ping`: "OK"; the version headers are the middleware's.
pub async fn ping(method: Method) -> Response {
    let mut resp = if method == Method::HEAD {
        ().into_response()
    } else {
        "OK".into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("builder-version", HeaderValue::from_static("1"));
    resp
}

/// `GET /version`.
pub async fn version() -> Json<Value> {
    Json(engine::inspect::server_version(
        API_VERSION,
        MIN_API_VERSION,
    ))
}

/// `GET /info`: counts, the host, and `Isolation`, the host's default.
pub async fn info(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    blocking(move || Ok(Json(engine::inspect::system_info(&engine)?))).await
}
