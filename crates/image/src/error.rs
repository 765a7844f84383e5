//! The image library's error type (also reachable as `image::store::Error`).
//! Each variant names what it happened to (digest, path, entry, image) and
//! says what the user can do where there is something to do.

use std::io;
use std::path::PathBuf;

use crate::reference::ReferenceError;
use crate::unpack::UnpackError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    #[error("invalid digest \"{0}\" (expected sha256:<64 lowercase hex digits>)")]
    InvalidDigest(String),

    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("blob {expected} rejected: its content has digest {actual}; discarded")]
    DigestMismatch { expected: String, actual: String },

    #[error("blob {digest} rejected: expected {expected} bytes, got {actual}; discarded")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },

    #[error("reading blob {digest}")]
    BlobRead {
        digest: String,
        #[source]
        source: io::Error,
    },

    #[error("blob {digest} ({what}) is missing from the store: pull or load the image again")]
    MissingBlob { digest: String, what: String },

    #[error("{what} {digest} is not valid")]
    BadJson {
        what: &'static str,
        digest: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("manifest {digest}: {reason}")]
    BadManifest { digest: String, reason: String },

    #[error("image \"{0}\" not found (pull it first, or check the tag)")]
    NotFound(String),

    #[error(
        "image id prefix \"{prefix}\" is ambiguous: it matches {count} images (give more digits)"
    )]
    Ambiguous { prefix: String, count: usize },

    #[error("unpacking layer {layer}")]
    Unpack {
        layer: String,
        #[source]
        source: Box<UnpackError>,
    },

    #[error("{0}")]
    DiffIdMismatch(Box<DiffIdMismatch>),

    #[error("image {image} is in use by snapshot(s) {snapshots} (remove the containers first, or force)")]
    InUse { image: String, snapshots: String },

    #[error("image {image} has several names ({names}): remove them by name, or force")]
    MultipleNames { image: String, names: String },

    #[error("snapshot \"{0}\" not found")]
    SnapshotNotFound(String),
    #[error("snapshot {0} is a plain copy of its image (no overlayfs here): it has no record of what changed")]
    NoUpperDir(String),

    #[error("snapshot \"{0}\" already exists")]
    SnapshotExists(String),

    #[error("invalid snapshot key \"{0}\": use letters, digits, '.', '_' and '-' only")]
    InvalidSnapshotKey(String),

    #[error("mounting the overlay of snapshot \"{key}\" at {target}")]
    Mount {
        key: String,
        target: PathBuf,
        #[source]
        source: nix::Error,
    },

    #[error("mounting {target}: mount(8) failed: {stderr}")]
    MountCommand { target: PathBuf, stderr: String },

    #[error("snapshot \"{key}\": {count} layers are more than one overlay mount can stack")]
    TooManyLayers { key: String, count: usize },

    #[error("{tool} making {path}: {message}")]
    DiskTool {
        tool: &'static str,
        path: PathBuf,
        message: String,
    },

    #[error("snapshot \"{0}\" is on disks its VM holds: its files cannot be reached from the host while the VM runs")]
    DiskInUse(String),

    #[error("snapshot \"{key}\" is in use on the host ({target} is busy)")]
    SnapshotBusy { key: String, target: PathBuf },

    #[error("snapshot \"{0}\" is not on disks")]
    NotADiskSnapshot(String),

    #[error("unmounting {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },

    #[error("copying the image layers into snapshot \"{key}\" at {path}")]
    SnapshotCopy {
        key: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("locking {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },

    #[error(
        "no command specified: the image has no Entrypoint or Cmd (give one after the image name)"
    )]
    NoCommand,

    #[error("invalid working directory \"{0}\": it must be an absolute path")]
    RelativeWorkdir(String),

    #[error("not a tar archive: expected {expected}")]
    NotATar { expected: &'static str },

    #[error("reading the archive")]
    ArchiveRead {
        #[source]
        source: io::Error,
    },

    #[error("archive: a legacy docker archive (\"repositories\" without \"manifest.json\") is not supported; save it again with a newer docker")]
    LegacyDockerArchive,

    #[error(
        "archive: neither a docker archive (manifest.json) nor an OCI image layout (index.json)"
    )]
    UnknownArchiveFormat,

    #[error("archive entry \"{entry}\": {reason}")]
    ArchiveEntry { entry: String, reason: String },

    #[error("writing the archive")]
    ArchiveWrite {
        #[source]
        source: io::Error,
    },
}

/// A layer whose content does not match the diff id its image config lists.
#[derive(Debug, thiserror::Error)]
#[error("layer {layer} unpacked to diff id {actual}, but the image config says {expected}; layer discarded")]
pub struct DiffIdMismatch {
    pub layer: String,
    pub expected: String,
    pub actual: String,
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the error means "no such image".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }
}
