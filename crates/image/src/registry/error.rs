//! Errors of the registry client. Each variant names what failed (registry,
//! reference, digest, file) and, where a user can act, says what to do.
//! Owns no behaviour; `classify` only maps oci-client errors onto these.

use std::path::PathBuf;
use std::time::Duration;

use oci_client::errors::{OciDistributionError, OciErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    InvalidReference(#[from] crate::reference::ReferenceError),

    #[error("invalid platform {platform:?}: expected os/arch[/variant], e.g. linux/amd64")]
    InvalidPlatform { platform: String },

    #[error("registry {registry} did not answer within {}s (is it up? ISOLA_REGISTRY_TIMEOUT raises the limit)", timeout.as_secs_f32())]
    Timeout {
        registry: String,
        timeout: Duration,
        #[source]
        source: Box<OciDistributionError>,
    },

    #[error("cannot reach registry {registry}")]
    Unreachable {
        registry: String,
        #[source]
        source: Box<OciDistributionError>,
    },

    #[error("access to {reference} denied by registry {registry}: authentication required or credentials rejected (run `isola login {registry}`)")]
    Unauthorized {
        registry: String,
        reference: String,
        #[source]
        source: Box<OciDistributionError>,
    },

    #[error("image {reference} not found in {registry} (check the name and tag)")]
    ManifestNotFound {
        registry: String,
        reference: String,
        #[source]
        source: Box<OciDistributionError>,
    },

    #[error(
        "blob {digest} named by the manifest of {reference} is missing from registry {registry}"
    )]
    BlobNotFound {
        registry: String,
        reference: String,
        digest: String,
        #[source]
        source: Box<OciDistributionError>,
    },

    #[error("registry {registry} failed while fetching {what} of {reference}")]
    Registry {
        registry: String,
        reference: String,
        what: String,
        #[source]
        source: Box<OciDistributionError>,
    },

    #[error("manifest {digest} of {reference} is not valid JSON")]
    ManifestParse {
        reference: String,
        digest: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("manifest {digest} of {reference} has unsupported media type {media_type:?} (only Docker schema 2 and OCI manifests and indexes are supported)")]
    UnsupportedManifest {
        reference: String,
        digest: String,
        media_type: String,
    },

    #[error("layer {digest} of {reference} has unsupported media type {media_type:?}")]
    UnsupportedLayer {
        reference: String,
        digest: String,
        media_type: String,
    },

    #[error("{reference} has no image for platform {wanted} (available: {available}; choose one with --platform)")]
    NoMatchingPlatform {
        reference: String,
        wanted: String,
        available: String,
    },

    #[error("blob {digest} of {reference}: downloaded content rejected")]
    Blob {
        reference: String,
        digest: String,
        #[source]
        source: crate::store::Error,
    },

    #[error("cannot record image {reference} (manifest {digest})")]
    Commit {
        reference: String,
        digest: String,
        #[source]
        source: crate::store::Error,
    },

    #[error("cannot read {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write credentials to {path}")]
    WriteAuth {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not a valid docker-style auth file")]
    ParseAuth {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("credentials for {server} in {path} are not base64 of user:password")]
    BadAuthEntry { server: String, path: PathBuf },

    #[error("{path} is not valid TOML")]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },

    #[error("login to {registry} failed: {reason}")]
    LoginRejected { registry: String, reason: String },

    #[error("login to {registry} failed")]
    LoginRequest {
        registry: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("cannot start the async runtime for registry I/O")]
    Runtime(#[source] std::io::Error),
}

/// What a failed request was after, so one oci-client error maps to the
/// variant a user understands.
pub(crate) enum Fetching<'a> {
    Manifest,
    Blob(&'a str),
}

/// Maps an oci-client error onto a user-facing variant.
pub(crate) fn classify(
    source: OciDistributionError,
    registry: &str,
    reference: &str,
    fetching: Fetching<'_>,
    timeout: Duration,
) -> RegistryError {
    enum Kind {
        Timeout,
        Unreachable,
        Unauthorized,
        NotFound,
        Other,
    }
    let codes: Vec<&OciErrorCode> = match &source {
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().map(|e| &e.code).collect()
        }
        _ => Vec::new(),
    };
    let has = |c: OciErrorCode| codes.iter().any(|x| **x == c);
    let kind = match &source {
        OciDistributionError::RequestError(e) if e.is_timeout() => Kind::Timeout,
        OciDistributionError::RequestError(e) if e.is_connect() => Kind::Unreachable,
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => Kind::Unauthorized,
        _ if has(OciErrorCode::Unauthorized) || has(OciErrorCode::Denied) => Kind::Unauthorized,
        OciDistributionError::ImageManifestNotFoundError(_)
        | OciDistributionError::ServerError { code: 404, .. } => Kind::NotFound,
        _ if has(OciErrorCode::ManifestUnknown)
            || has(OciErrorCode::NameUnknown)
            || has(OciErrorCode::BlobUnknown)
            || has(OciErrorCode::NotFound) =>
        {
            Kind::NotFound
        }
        _ => Kind::Other,
    };
    drop(codes);
    // Boxed: the client's error is large and every Result would carry it.
    let source = Box::new(source);
    let registry = registry.to_string();
    let reference = reference.to_string();
    match (kind, fetching) {
        (Kind::Timeout, _) => RegistryError::Timeout {
            registry,
            timeout,
            source,
        },
        (Kind::Unreachable, _) => RegistryError::Unreachable { registry, source },
        (Kind::Unauthorized, _) => RegistryError::Unauthorized {
            registry,
            reference,
            source,
        },
        (Kind::NotFound, Fetching::Manifest) => RegistryError::ManifestNotFound {
            registry,
            reference,
            source,
        },
        (Kind::NotFound, Fetching::Blob(digest)) => RegistryError::BlobNotFound {
            registry,
            reference,
            digest: digest.to_string(),
            source,
        },
        (_, Fetching::Manifest) => RegistryError::Registry {
            registry,
            reference,
            what: "the manifest".into(),
            source,
        },
        (_, Fetching::Blob(digest)) => RegistryError::Registry {
            registry,
            reference,
            what: format!("blob {digest}"),
            source,
        },
    }
}
