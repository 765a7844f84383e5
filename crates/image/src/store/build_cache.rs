//! The build cache and images made by a build or a commit. A cache entry
//! (`build-cache/<key hex>.json`) is the state a build step left: the
//! image config it produced, byte for byte, and its layers. The key is
//! the caller's (docker's: parent state, instruction, build args, copied
//! content). Entries keep their layers from garbage collection until
//! `builder prune`; an entry whose layers were deleted anyway reads as a
//! miss.

use std::fs;

use serde::{Deserialize, Serialize};

use super::records::Image;
use super::{read_json, write_atomic, Error, Store};
use crate::digest;
use crate::manifest::{Descriptor, Manifest, OCI_CONFIG};
use crate::reference::Reference;

/// What one build step left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedStep {
    /// The image config after the step, exactly as it will be stored.
    pub config: String,
    /// Layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
    /// Their diff ids, in the same order.
    pub diff_ids: Vec<String>,
}

impl Store {
    fn cache_path(&self, key: &str) -> Result<std::path::PathBuf, Error> {
        let hex = digest::hex_of(key)?;
        Ok(self.root.join("build-cache").join(format!("{hex}.json")))
    }

    /// The cached result of step `key` (`sha256:<hex>`), if every layer it
    /// names is still in the store.
    pub fn cached_step(&self, key: &str) -> Result<Option<CachedStep>, Error> {
        let path = self.cache_path(key)?;
        let Some(step): Option<CachedStep> = read_json(&path, "build cache entry", key)? else {
            return Ok(None);
        };
        let whole = step.layers.iter().all(|l| self.has_blob(&l.digest))
            && step.diff_ids.iter().all(|d| {
                self.read_layer_info(d)
                    .map(|i| i.is_some())
                    .unwrap_or(false)
            });
        Ok(whole.then_some(step))
    }

    /// Records what step `key` left.
    pub fn cache_step(&self, key: &str, step: &CachedStep) -> Result<(), Error> {
        let path = self.cache_path(key)?;
        let dir = self.root.join("build-cache");
        fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        write_atomic(
            &path,
            &serde_json::to_vec(step).expect("cache entries serialize"),
        )
    }

    /// Every cache entry: what garbage collection must keep.
    pub(crate) fn cache_entries(&self) -> Result<Vec<CachedStep>, Error> {
        let dir = self.root.join("build-cache");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", &dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let path = e.map_err(|e| Error::io("listing", &dir, e))?.path();
            // Unreadable debris keeps nothing alive.
            if let Ok(bytes) = fs::read(&path) {
                if let Ok(step) = serde_json::from_slice::<CachedStep>(&bytes) {
                    out.push(step);
                }
            }
        }
        Ok(out)
    }

    /// `builder prune`: forgets every cache entry, then deletes the layers
    /// and blobs no image uses. Returns the entries' keys and the report.
    pub fn prune_build_cache(&self) -> Result<(Vec<String>, super::PruneReport), Error> {
        let _lock = self.meta_lock()?;
        let dir = self.root.join("build-cache");
        let keys: Vec<String> = fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        Some(format!("sha256:{}", name.strip_suffix(".json")?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", &dir, e)),
        }
        Ok((keys, self.collect_garbage(None)?))
    }

    /// The image's config blob, byte for byte.
    pub fn config_bytes(&self, image: &Image) -> Result<Vec<u8>, Error> {
        self.read_blob(&image.id, "image config")
    }

    /// The image's layer descriptors (media types and sizes), bottom first.
    pub fn layer_descriptors(&self, image: &Image) -> Result<Vec<Descriptor>, Error> {
        Ok(self.read_manifest(&image.manifest_digest)?.layers)
    }

    /// Records an image made here (a build, a commit) from its config
    /// bytes and layers already in the store, tagged `name` if given.
    pub fn commit_new(
        &self,
        config: &[u8],
        layers: &[Descriptor],
        name: Option<&Reference>,
    ) -> Result<Image, Error> {
        let config_digest = self.put_blob(config)?;
        let manifest = Manifest::oci(
            Descriptor::new(OCI_CONFIG, config_digest, config.len() as u64),
            layers.to_vec(),
        );
        let manifest_digest =
            self.put_blob(&serde_json::to_vec(&manifest).expect("manifests serialize"))?;
        self.commit_local(&manifest_digest, name)
    }
}
