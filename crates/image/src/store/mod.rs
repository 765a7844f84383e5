//! The content-addressed image store under `<engine root>/image`. Owns every
//! file below that directory; nothing else may write there.
//!
//! ```text
//! image/blobs/sha256/<hex>          every blob once (manifests, configs, layers)
//! image/layers/<diff hex>/diff/     every unpacked layer once, overlayfs-ready
//! image/layers/<diff hex>/layer.json
//! image/images/<id hex>.json        image records (manifest, layers, repo digests)
//! image/repositories.json           tags: "registry/repo:tag" -> image id
//! image/snapshots/<key>/            per-container rootfs (upper, work, rootfs)
//! image/build-cache/<key hex>.json  what a build step left (config, layers)
//! image/tmp/                        temp files and dirs, renamed into place when whole
//! image/locks/                      flock files: one per layer, one for metadata
//! ```
//!
//! Writes are temp + fsync + rename, so a crash leaves either the old or the
//! new file. Unpacking a layer holds that layer's lock; image records, tags,
//! snapshot records and garbage collection hold the metadata lock.

mod build_cache;
mod changes;
mod commit;
mod disks;
mod gc;
mod layer_out;
mod records;
mod snapshot;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

pub use crate::error::Error;
pub use build_cache::CachedStep;
pub use changes::{tree_size, Change, ChangeKind};
pub use disks::{ImageView, SnapshotDisks, IMAGE_DISK_BYTES, WRITABLE_DISK_BYTES};
pub use gc::PruneReport;
pub use layer_out::{DiffOptions, LayerSink, LayerWriter, NewLayer};
pub use records::Image;
pub use snapshot::{copy_tree, Snapshot, SnapshotDriver};

use crate::digest::{self, DigestingReader};

/// The image store. Cheap to open; every call reads what it needs from disk,
/// so several processes may use the same store at once.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Creates `path` 0700, or makes it so if it exists with looser
/// permissions, whatever the umask. (The runtime crate has the same for its
/// state root; this crate does not depend on it.)
pub(crate) fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    if fs::metadata(path)?.permissions().mode() & 0o7777 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// An exclusive flock held until dropped.
pub(crate) struct LockGuard {
    _lock: Flock<File>,
}

impl Store {
    /// Opens (creating if needed) the store under `<engine_root>/image`.
    /// The store's root is 0700 (made so if looser): its layers and
    /// snapshots hold images' setuid binaries, which no other host user may
    /// run (moby's CVE-2021-41091).
    pub fn open(engine_root: &Path) -> Result<Store, Error> {
        let root = engine_root.join("image");
        private_dir(&root).map_err(|e| Error::io("creating", &root, e))?;
        for d in [
            "blobs/sha256",
            "layers",
            "images",
            "snapshots",
            "tmp",
            "locks",
        ] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| Error::io("creating", &p, e))?;
        }
        Ok(Store { root })
    }

    /// `<engine root>/image`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when the blob is in the store.
    pub fn has_blob(&self, digest: &str) -> bool {
        digest::hex_of(digest).is_ok() && self.blob_path(digest).is_file()
    }

    /// Where the blob is (or would be) stored. `digest` should be valid;
    /// an invalid one maps to a path that never exists.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        match digest::hex_of(digest) {
            Ok(hex) => self.root.join("blobs/sha256").join(hex),
            Err(_) => self.root.join("blobs/invalid"),
        }
    }

    /// Streams `reader` into the store as blob `expected_digest`, checking
    /// its digest and (if given) size. The content goes to a temp file,
    /// is fsynced, and is renamed into place only when it verifies, so a
    /// reader can never see a partial or wrong blob; concurrent writers of
    /// the same digest each rename identical content. On a mismatch the temp
    /// file is deleted and the error names both digests.
    pub fn write_blob(
        &self,
        expected_digest: &str,
        expected_size: Option<u64>,
        reader: &mut dyn Read,
    ) -> Result<PathBuf, Error> {
        digest::hex_of(expected_digest)?;
        let (tmp, actual, size) = self.spool(reader)?;
        if let Some(expected) = expected_size {
            if expected != size {
                return Err(Error::SizeMismatch {
                    digest: expected_digest.to_string(),
                    expected,
                    actual: size,
                });
            }
        }
        if actual != expected_digest {
            return Err(Error::DigestMismatch {
                expected: expected_digest.to_string(),
                actual,
            });
        }
        self.persist_blob(tmp, expected_digest)
    }

    /// Streams `reader` into the store whatever its digest; returns
    /// `(digest, size)`. For content made or received without a digest
    /// (`import`, archive files).
    pub fn ingest_blob(&self, reader: &mut dyn Read) -> Result<(String, u64), Error> {
        let (tmp, digest, size) = self.spool(reader)?;
        self.persist_blob(tmp, &digest)?;
        Ok((digest, size))
    }

    /// Writes `data` as a blob; returns its digest.
    pub fn put_blob(&self, data: &[u8]) -> Result<String, Error> {
        let digest = digest::sha256(data);
        if !self.has_blob(&digest) {
            self.write_blob(&digest, Some(data.len() as u64), &mut &data[..])?;
        }
        Ok(digest)
    }

    /// Reads a whole (small) blob: manifests and configs.
    pub fn read_blob(&self, digest: &str, what: &str) -> Result<Vec<u8>, Error> {
        digest::hex_of(digest)?;
        fs::read(self.blob_path(digest)).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::MissingBlob {
                    digest: digest.to_string(),
                    what: what.to_string(),
                }
            } else {
                Error::BlobRead {
                    digest: digest.to_string(),
                    source: e,
                }
            }
        })
    }

    /// Streams `reader` into a temp file under `tmp/`; returns it with its
    /// digest and size. Nothing is in the store until [`Store::persist_blob`].
    pub(crate) fn spool(
        &self,
        reader: &mut dyn Read,
    ) -> Result<(tempfile::NamedTempFile, String, u64), Error> {
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| Error::io("creating a temp file in", &tmp_dir, e))?;
        let mut hashing = DigestingReader::new(reader);
        io::copy(&mut hashing, tmp.as_file_mut()).map_err(|e| Error::BlobRead {
            digest: "(incoming)".to_string(),
            source: e,
        })?;
        let (digest, size) = hashing.finish().map_err(|e| Error::BlobRead {
            digest: "(incoming)".to_string(),
            source: e,
        })?;
        Ok((tmp, digest, size))
    }

    /// Fsyncs a spooled temp file and renames it to blob `digest` (already
    /// computed by [`Store::spool`]).
    pub(crate) fn persist_blob(
        &self,
        tmp: tempfile::NamedTempFile,
        digest: &str,
    ) -> Result<PathBuf, Error> {
        let path = self.blob_path(digest);
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io("syncing", tmp.path(), e))?;
        // Renaming over an existing blob is fine: same digest, same bytes.
        tmp.persist(&path)
            .map_err(|e| Error::io("renaming a temp file to", &path, e.error))?;
        Ok(path)
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, Error> {
        Ok(self.root.join("layers").join(digest::hex_of(diff_id)?))
    }

    /// The unpacked contents of layer `diff_id` (an overlayfs lower dir).
    pub fn layer_diff_dir(&self, diff_id: &str) -> Result<PathBuf, Error> {
        Ok(self.layer_dir(diff_id)?.join("diff"))
    }

    /// The file under `locks/` that lock `name` is taken on, and its path.
    fn lock_file(&self, name: &str) -> Result<(File, PathBuf), Error> {
        let path = self.root.join("locks").join(format!("{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("opening lock file", &path, e))?;
        Ok((file, path))
    }

    /// An exclusive lock named `name` (a file under `locks/`).
    pub(crate) fn lock(&self, name: &str) -> Result<LockGuard, Error> {
        let (file, path) = self.lock_file(name)?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| Error::Lock {
                path,
                source: errno,
            })?;
        Ok(LockGuard { _lock: lock })
    }

    /// The lock named `name` if nobody holds it now.
    pub(crate) fn try_lock(&self, name: &str) -> Result<Option<LockGuard>, Error> {
        let (file, path) = self.lock_file(name)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(LockGuard { _lock: lock })),
            Err((_, nix::Error::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(Error::Lock {
                path,
                source: errno,
            }),
        }
    }

    pub(crate) fn meta_lock(&self) -> Result<LockGuard, Error> {
        self.lock("meta")
    }
}

/// Reads the JSON record at `path`, `None` if there is none; `what` and
/// `name` say which record a parse error is about.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
    name: &str,
) -> Result<Option<T>, Error> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| Error::BadJson {
                what,
                digest: name.to_string(),
                source,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

/// Writes `data` to `path` atomically: temp file in the same dir, fsync, rename.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temp file in", dir, e))?;
    tmp.write_all(data)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Error::io("writing", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("renaming a temp file to", path, e.error))?;
    Ok(())
}
