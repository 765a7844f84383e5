//! Recording an image from blobs already in the store: check the manifest,
//! config and layer blobs, unpack each layer once (under its lock, into a
//! temp dir renamed into place only when whole and matching its diff id),
//! then write the image record and tag under the metadata lock.

use std::fs::{self, File};

use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use super::records::{Image, ImageRecord};
use super::{read_json, write_atomic, Error, Store};
use crate::digest;
use crate::error::DiffIdMismatch;
use crate::manifest::Manifest;
use crate::reference::Reference;
use crate::unpack;

/// What `layers/<hex>/layer.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerInfo {
    pub diff_id: String,
    /// Sum of regular file sizes.
    pub size: u64,
    /// Length of the uncompressed tar stream.
    pub diff_size: u64,
}

impl Store {
    /// Records an image from a manifest blob already in the store; its
    /// config and layer blobs must be there too (the error names a missing
    /// one). Unpacks each layer once, shared by every image using it, and
    /// checks it against the config's diff ids. Tags the image `name` if
    /// given (moving the tag from an older image).
    /// Records `name@manifest_digest` as a repo digest (as a pull does).
    pub fn commit_image(
        &self,
        manifest_digest: &str,
        name: Option<&Reference>,
    ) -> Result<Image, Error> {
        self.commit(manifest_digest, name, true)
    }

    /// [`Store::commit_image`] for images that did not come from a
    /// registry (load, import): no repo digest is recorded.
    pub(crate) fn commit_local(
        &self,
        manifest_digest: &str,
        name: Option<&Reference>,
    ) -> Result<Image, Error> {
        self.commit(manifest_digest, name, false)
    }

    fn commit(
        &self,
        manifest_digest: &str,
        name: Option<&Reference>,
        repo_digest: bool,
    ) -> Result<Image, Error> {
        let manifest = self.read_manifest(manifest_digest)?;
        let config_bytes = self.read_blob(
            &manifest.config.digest,
            &format!("config of manifest {manifest_digest}"),
        )?;
        let config: ImageConfiguration =
            serde_json::from_slice(&config_bytes).map_err(|source| Error::BadJson {
                what: "image config",
                digest: manifest.config.digest.clone(),
                source,
            })?;
        for (i, layer) in manifest.layers.iter().enumerate() {
            digest::hex_of(&layer.digest)?;
            if !self.has_blob(&layer.digest) {
                return Err(Error::MissingBlob {
                    digest: layer.digest.clone(),
                    what: format!("layer {} of manifest {manifest_digest}", i + 1),
                });
            }
        }
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::BadManifest {
                digest: manifest_digest.to_string(),
                reason: format!(
                    "{} layers, but its config lists {} diff ids",
                    manifest.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        let layer_blobs: Vec<String> = manifest.layers.iter().map(|l| l.digest.clone()).collect();

        // A concurrent `rmi`/`prune` may delete a layer between unpacking
        // and recording; then unpack again.
        for _attempt in 0..3 {
            let mut size = 0;
            for (blob, diff_id) in layer_blobs.iter().zip(diff_ids) {
                size += self.ensure_layer(blob, diff_id)?.size;
            }
            let _lock = self.meta_lock()?;
            let mut all_present = true;
            for d in diff_ids {
                all_present &= self.layer_dir(d)?.join("layer.json").is_file();
            }
            if !all_present {
                continue;
            }
            let id = manifest.config.digest.clone();
            let mut rec = self.read_record(&id)?.unwrap_or(ImageRecord {
                id: id.clone(),
                manifest_digest: String::new(),
                layers: Vec::new(),
                layer_blobs: Vec::new(),
                repo_digests: Vec::new(),
                size: 0,
            });
            rec.manifest_digest = manifest_digest.to_string();
            rec.layers = diff_ids.clone();
            rec.layer_blobs = layer_blobs.clone();
            rec.size = size;
            let mut tags = self.read_tags()?;
            if let Some(name) = name {
                let rd = format!("{}@{}", name.name(), manifest_digest);
                if repo_digest && !rec.repo_digests.contains(&rd) {
                    rec.repo_digests.push(rd);
                }
                if name.tag.is_some() {
                    tags.insert(name.without_digest().to_string(), id.clone());
                }
            }
            self.write_record(&rec)?;
            self.write_tags(&tags)?;
            return self.image_of(&rec, &tags);
        }
        Err(Error::BadManifest {
            digest: manifest_digest.to_string(),
            reason: "its layers kept being deleted while it was committed (a concurrent prune?); try again".to_string(),
        })
    }

    /// Reads and checks an image manifest blob.
    pub(crate) fn read_manifest(&self, manifest_digest: &str) -> Result<Manifest, Error> {
        let bytes = self.read_blob(manifest_digest, "manifest")?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|source| Error::BadJson {
                what: "manifest",
                digest: manifest_digest.to_string(),
                source,
            })?;
        if value.get("manifests").is_some() {
            return Err(Error::BadManifest {
                digest: manifest_digest.to_string(),
                reason: "is an index or manifest list, not an image manifest (choose a platform's manifest first)".to_string(),
            });
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|source| Error::BadJson {
                what: "manifest",
                digest: manifest_digest.to_string(),
                source,
            })?;
        if manifest.schema_version != 2 {
            return Err(Error::BadManifest {
                digest: manifest_digest.to_string(),
                reason: format!(
                    "schema version {} (only 2 is supported)",
                    manifest.schema_version
                ),
            });
        }
        digest::hex_of(&manifest.config.digest)?;
        Ok(manifest)
    }

    pub(crate) fn read_layer_info(&self, diff_id: &str) -> Result<Option<LayerInfo>, Error> {
        let path = self.layer_dir(diff_id)?.join("layer.json");
        read_json(&path, "layer record", diff_id)
    }

    /// Unpacks layer blob `blob` as `diff_id` unless already there.
    pub(crate) fn ensure_layer(&self, blob: &str, diff_id: &str) -> Result<LayerInfo, Error> {
        let hex = digest::hex_of(diff_id)?;
        let _lock = self.lock(&format!("layer-{hex}"))?;
        if let Some(info) = self.read_layer_info(diff_id)? {
            return Ok(info);
        }
        let dest = self.layer_dir(diff_id)?;
        if dest.exists() {
            // A layer dir without its record is debris from a crash.
            fs::remove_dir_all(&dest)
                .map_err(|e| Error::io("removing incomplete layer", &dest, e))?;
        }
        let tmp = tempfile::Builder::new()
            .prefix(&format!("layer-{hex}-"))
            .tempdir_in(self.tmp_dir())
            .map_err(|e| Error::io("creating a temp dir in", self.tmp_dir(), e))?;
        let diff = tmp.path().join("diff");
        fs::create_dir(&diff).map_err(|e| Error::io("creating", &diff, e))?;
        let path = self.blob_path(blob);
        let mut file = File::open(&path).map_err(|e| Error::io("opening layer blob", &path, e))?;
        let unpacked = unpack::unpack_layer(&mut file, &diff).map_err(|source| Error::Unpack {
            layer: blob.to_string(),
            source: Box::new(source),
        })?;
        if unpacked.diff_id != diff_id {
            return Err(Error::DiffIdMismatch(Box::new(DiffIdMismatch {
                layer: blob.to_string(),
                expected: diff_id.to_string(),
                actual: unpacked.diff_id,
            })));
        }
        let info = LayerInfo {
            diff_id: diff_id.to_string(),
            size: unpacked.size,
            diff_size: unpacked.diff_size,
        };
        write_atomic(
            &tmp.path().join("layer.json"),
            &serde_json::to_vec_pretty(&info).expect("layer info serializes"),
        )?;
        let kept = tmp.keep();
        if let Err(e) = fs::rename(&kept, &dest) {
            let _ = fs::remove_dir_all(&kept);
            return Err(Error::io("renaming unpacked layer to", dest, e));
        }
        tracing::debug!(layer = blob, diff_id, size = info.size, "unpacked layer");
        Ok(info)
    }
}
