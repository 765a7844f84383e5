//! error: how the service answers a failure, docker's way: an HTTP status
//! and `{"message": ...}`, which the docker CLI prints after "Error response
//! from daemon: ". The engine's typed errors are mapped here, in one place:
//! not found is 404, a conflict 409, a bad request 400, the rest 500 with
//! the whole error chain.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use engine::isolation::IsolationError;
use engine::networks::NetworkError;
use engine::store::StoreError;
use engine::volumes::VolumeError;

/// A failed request: its status and docker's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// An endpoint isola has not built: said plainly, never a hang.
    pub fn not_implemented(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("isola does not implement {what} yet"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

/// The whole chain of `e`, outermost first, a repeated cause said once.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) && !text.is_empty() {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

fn status_of_store(e: &StoreError) -> StatusCode {
    match e {
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::NameInUse { .. } => StatusCode::CONFLICT,
        StoreError::InvalidName(_) | StoreError::Ambiguous { .. } => StatusCode::BAD_REQUEST,
        StoreError::Io { .. } | StoreError::Parse { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn status_of_network(e: &NetworkError) -> StatusCode {
    match e {
        NetworkError::NotFound(_) => StatusCode::NOT_FOUND,
        NetworkError::Exists(_)
        | NetworkError::InUse { .. }
        | NetworkError::AlreadyConnected { .. }
        | NetworkError::Overlap { .. } => StatusCode::CONFLICT,
        NetworkError::DefaultNetwork(_)
        | NetworkError::Reserved(_)
        | NetworkError::PrimaryNetwork { .. } => StatusCode::FORBIDDEN,
        NetworkError::InvalidName(_)
        | NetworkError::InvalidValue { .. }
        | NetworkError::NotConnected { .. }
        | NetworkError::NotConnectable { .. } => StatusCode::BAD_REQUEST,
        NetworkError::Store(s) => status_of_store(s),
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// docker's words for a volume's failures (the docker CLI and SDKs show
/// them, and compose matches "no such volume").
fn of_volume(e: &VolumeError) -> ApiError {
    match e {
        VolumeError::NotFound(name) => ApiError::not_found(format!("get {name}: no such volume")),
        VolumeError::InUse { name, containers } => {
            ApiError::conflict(format!("remove {name}: volume is in use - [{containers}]"))
        }
        VolumeError::Conflict { .. } => ApiError::conflict(chain(e)),
        VolumeError::InvalidName(_)
        | VolumeError::UnsupportedDriver(_)
        | VolumeError::UnsupportedOption(_)
        | VolumeError::InvalidFilter { .. } => ApiError::bad_request(chain(e)),
        VolumeError::Store(s) => ApiError::new(status_of_store(s), chain(e)),
        _ => ApiError::internal(chain(e)),
    }
}

impl From<VolumeError> for ApiError {
    fn from(e: VolumeError) -> ApiError {
        of_volume(&e)
    }
}

impl From<engine::Error> for ApiError {
    fn from(e: engine::Error) -> ApiError {
        use engine::Error as E;
        let message = chain(&e);
        let status = match &e {
            // docker's own words, which scripts and SDKs match on.
            E::Store(StoreError::NotFound(r)) => {
                return ApiError::not_found(format!("No such container: {r}"))
            }
            E::Store(StoreError::NameInUse { name, id }) => {
                return ApiError::conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
                ))
            }
            E::Store(s) => status_of_store(s),
            E::Volume(v) => return of_volume(v),
            E::Network(n) => status_of_network(n),
            E::ImageNotFound { image } => {
                // The docker CLI pulls on a 404 whose message names the image.
                return ApiError::not_found(format!(
                    "No such image: {}",
                    engine::images::familiar_reference(image)
                ));
            }
            E::Image(i) if i.is_not_found() => StatusCode::NOT_FOUND,
            E::Isolation(IsolationError::Invalid { .. })
            | E::Reference(_)
            | E::Security(_)
            | E::User(_)
            | E::Mount(_)
            | E::IpOutsideSubnet { .. }
            | E::NeedsNetwork { .. }
            | E::VmNetwork { .. }
            | E::VmCpuset
            | E::VmPrivileged
            | E::VmDevice { .. }
            | E::NamespaceMode { .. }
            | E::LogsDisabled { .. }
            | E::VmNamespace { .. }
            | E::SharedVmNamespace { .. }
            | E::SharedVmNetwork { .. }
            | E::InitMissing { .. }
            | E::StopSignal { .. }
            | E::Sysctl { .. }
            | E::Update(_)
            | E::Backend(engine::backend::BackendError::VmMemoryAbove { .. }) => {
                StatusCode::BAD_REQUEST
            }
            E::Isolation(IsolationError::Incompatible { .. }) => StatusCode::BAD_REQUEST,
            E::RemoveRunning { .. }
            | E::Paused { .. }
            | E::NotPaused { .. }
            | E::NotRunning { .. }
            | E::AlreadyRunning { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError { status, message }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        engine::Error::Store(e).into()
    }
}

impl From<NetworkError> for ApiError {
    fn from(e: NetworkError) -> ApiError {
        ApiError::new(status_of_network(&e), chain(&e))
    }
}

impl From<image::Error> for ApiError {
    fn from(e: image::Error) -> ApiError {
        let status = if e.is_not_found() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError::new(status, chain(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_get_dockers_status_codes() {
        let nf = ApiError::from(engine::Error::Store(StoreError::NotFound("web".into())));
        assert_eq!(nf.status, StatusCode::NOT_FOUND);
        assert_eq!(nf.message, "No such container: web");
        let inuse = ApiError::from(engine::Error::Store(StoreError::NameInUse {
            name: "web".into(),
            id: "abc".into(),
        }));
        assert_eq!(inuse.status, StatusCode::CONFLICT);
        let running = ApiError::from(engine::Error::RemoveRunning { id: "abc".into() });
        assert_eq!(running.status, StatusCode::CONFLICT);
        let image = ApiError::from(engine::Error::ImageNotFound {
            image: "docker.io/library/busybox:latest".into(),
        });
        assert_eq!(image.status, StatusCode::NOT_FOUND);
        assert_eq!(image.message, "No such image: busybox:latest");
    }
}
