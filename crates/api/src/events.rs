//! events: `GET /events`, the engine's event log as docker streams it (one
//! JSON object after another, each on its own line), with `since`, `until`
//! and `filters`. Without `until` it follows the log until the client goes
//! away; it holds nothing but the reader of the log.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use engine::events::{EventFilter, EventLog, Query as EventQuery};

use crate::{ApiError, AppState};

/// How often a follower looks at the log (see `isola events`: a poll of
/// one small file, which other processes append to and rotate).
const POLL: Duration = Duration::from_millis(100);

fn bad(e: engine::events::EventError) -> ApiError {
    ApiError::bad_request(crate::error::chain(&e))
}

/// `GET /events`.
pub async fn events(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let now = SystemTime::now();
    let time = |key: &str| {
        q.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| engine::events::parse_time(v, now))
            .transpose()
            .map_err(bad)
    };
    let pairs = crate::containers::filters(&q)?;
    let query = EventQuery {
        since: time("since")?,
        until: time("until")?,
        filter: EventFilter::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(bad)?,
    };
    let mut sub = EventLog::open(state.engine.root()).subscribe(query);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    // A thread of its own: the reads are file system calls, and the loop
    // sleeps between them; it ends with `until` or when the client goes.
    tokio::task::spawn_blocking(move || loop {
        let last = sub.ended();
        match sub.poll() {
            Ok(evs) => {
                for ev in evs {
                    let Ok(mut line) = serde_json::to_vec(&ev) else {
                        continue;
                    };
                    line.push(b'\n');
                    if tx.blocking_send(Ok(line.into())).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let msg = crate::error::chain(&e);
                let _ = tx.blocking_send(Err(std::io::Error::other(msg)));
                return;
            }
        }
        if last || tx.is_closed() {
            return;
        }
        std::thread::sleep(sub.remaining().map_or(POLL, |r| r.min(POLL)));
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}
