//! image: OCI images for isola. A content-addressed store under the engine
//! root (blobs once, unpacked layers once, image records and tags), safe
//! layer unpacking, snapshots (a container rootfs per container), archives
//! (`load`, `save`, `import`), image config to runtime defaults, and the
//! registry client. Knows nothing of containers beyond snapshot keys.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod archive;
pub mod defaults;
pub mod digest;
mod error;
pub mod manifest;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

pub use defaults::{runtime_defaults, Overrides, ProcessDefaults};
pub use error::{DiffIdMismatch, Error};
pub use reference::{Reference, ReferenceError};
pub use store::{Image, PruneReport, Snapshot, SnapshotDriver, Store};
