//! Garbage collection: deleting blobs and unpacked layers that no image
//! record references, no snapshot uses and no build cache entry keeps, and `image prune`. Runs under
//! the metadata lock; each layer is deleted under its own lock, and moved
//! aside first so that no half-deleted layer ever looks present.
//!
//! Known limit: a blob written by a pull that has not yet committed its
//! image is unreferenced, so a concurrent `image prune` may delete it; that
//! pull then fails with a missing-blob error and can be retried.

use std::collections::BTreeSet;
use std::fs;

use super::records::names_of;
use super::{Error, Store};
use crate::digest;
use crate::reference::Reference;

/// What `prune` removed.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    /// Names removed, familiar form.
    pub untagged: Vec<String>,
    /// Image ids deleted.
    pub deleted_images: Vec<String>,
    /// Unpacked layers (diff ids) deleted.
    pub deleted_layers: Vec<String>,
    /// Number of blobs deleted.
    pub deleted_blobs: usize,
    /// Bytes freed (blobs plus unpacked layers).
    pub reclaimed_bytes: u64,
}

impl Store {
    /// Deletes the given blobs unless an image record references them:
    /// clean-up after a failed load or import.
    pub(crate) fn discard_blobs(&self, digests: &[String]) -> Result<(), Error> {
        let _lock = self.meta_lock()?;
        self.collect_garbage(Some((digests.to_vec(), Vec::new())))?;
        Ok(())
    }

    /// Deletes unreferenced content. With `only`, just those blobs and
    /// layers (e.g. of a record just deleted); otherwise everything
    /// unreferenced. Call with the metadata lock held.
    pub(crate) fn collect_garbage(
        &self,
        only: Option<(Vec<String>, Vec<String>)>,
    ) -> Result<PruneReport, Error> {
        let records = self.all_records()?;
        let mut blobs_in_use = BTreeSet::new();
        let mut layers_in_use = BTreeSet::new();
        for r in &records {
            blobs_in_use.insert(r.id.clone());
            blobs_in_use.insert(r.manifest_digest.clone());
            blobs_in_use.extend(r.layer_blobs.iter().cloned());
            layers_in_use.extend(r.layers.iter().cloned());
        }
        layers_in_use.extend(self.snapshot_layers()?);
        for step in self.cache_entries()? {
            blobs_in_use.extend(step.layers.into_iter().map(|l| l.digest));
            layers_in_use.extend(step.diff_ids);
        }

        let (blob_candidates, layer_candidates): (Vec<String>, Vec<String>) = match only {
            Some(candidates) => candidates,
            None => (self.list_hex("blobs/sha256")?, self.list_hex("layers")?),
        };

        self.prune_image_disks(&records)?;

        let mut report = PruneReport::default();
        for d in blob_candidates {
            if blobs_in_use.contains(&d) {
                continue;
            }
            let path = self.blob_path(&d);
            if let Ok(meta) = fs::symlink_metadata(&path) {
                match fs::remove_file(&path) {
                    Ok(()) => {
                        report.deleted_blobs += 1;
                        report.reclaimed_bytes += meta.len();
                    }
                    Err(e) => return Err(Error::io("removing blob", path, e)),
                }
            }
        }
        for diff_id in layer_candidates {
            if layers_in_use.contains(&diff_id) {
                continue;
            }
            if let Some(bytes) = self.delete_layer(&diff_id)? {
                report.reclaimed_bytes += bytes;
                report.deleted_layers.push(diff_id);
            }
        }
        Ok(report)
    }

    /// `sha256:<hex>` of every `<hex>` entry in a store directory.
    fn list_hex(&self, sub: &str) -> Result<Vec<String>, Error> {
        let dir = self.root.join(sub);
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))? {
            let e = e.map_err(|e| Error::io("listing", &dir, e))?;
            if let Some(name) = e.file_name().to_str() {
                if digest::is_hex64(name) {
                    out.push(format!("sha256:{name}"));
                }
            }
        }
        Ok(out)
    }

    /// Deletes one unpacked layer; returns its size if it existed.
    fn delete_layer(&self, diff_id: &str) -> Result<Option<u64>, Error> {
        let dir = self.layer_dir(diff_id)?;
        let _lock = self.lock(&format!("layer-{}", digest::hex_of(diff_id)?))?;
        let size = match self.read_layer_info(diff_id)? {
            Some(info) => info.size,
            None if dir.exists() => 0,
            None => return Ok(None),
        };
        let aside = tempfile::Builder::new()
            .prefix("deleting-")
            .tempdir_in(self.tmp_dir())
            .map_err(|e| Error::io("creating a temp dir in", self.tmp_dir(), e))?;
        let target = aside.path().join("layer");
        fs::rename(&dir, &target).map_err(|e| Error::io("moving aside layer", &dir, e))?;
        let hex = digest::hex_of(diff_id)?;
        let _ = fs::remove_file(self.root.join("layers/l").join(&hex[..20]));
        // `aside` removes the layer tree when dropped.
        drop(aside);
        Ok(Some(size))
    }

    /// Deletes debris a crash left in `tmp/`: blob temp files untouched for
    /// an hour, layer temp dirs whose layer lock nobody holds, and layers
    /// moved aside for deletion. Call with the metadata lock held.
    fn clean_tmp(&self) -> Result<(), Error> {
        let dir = self.tmp_dir();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for e in fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))? {
            let e = e.map_err(|e| Error::io("listing", &dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let stale = if name.starts_with("deleting-") {
                true
            } else if let Some(rest) = name.strip_prefix("layer-") {
                let hex = rest.split('-').next().unwrap_or_default();
                digest::is_hex64(hex) && self.try_lock(&format!("layer-{hex}"))?.is_some()
            } else if name.starts_with("blob-") {
                e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < hour_ago)
            } else {
                false
            };
            if stale {
                tracing::debug!(path = %path.display(), "removing temp debris");
                let _ = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
            }
        }
        Ok(())
    }

    /// `image prune`: deletes dangling (untagged) images, or with `all` every
    /// image no snapshot uses, then every blob and layer nothing references.
    pub fn prune(&self, all: bool) -> Result<PruneReport, Error> {
        let _lock = self.meta_lock()?;
        let mut tags = self.read_tags()?;
        // Snapshot records are read once, not once per image.
        let in_use = self.snapshot_images()?;
        let mut untagged = Vec::new();
        let mut deleted_images = Vec::new();
        for rec in self.all_records()? {
            let names = names_of(&tags, &rec.id);
            if (!names.is_empty() && !all) || in_use.contains(&rec.id) {
                continue;
            }
            for n in names {
                tags.remove(&n);
                untagged.push(Reference::parse(&n).map(|r| r.familiar()).unwrap_or(n));
            }
            deleted_images.push(rec.id);
        }
        // Tags first, in one write: a crash between the two leaves untagged
        // (dangling) records for the next prune, never a tag without its image.
        if !deleted_images.is_empty() {
            self.write_tags(&tags)?;
        }
        for id in &deleted_images {
            self.delete_record(id)?;
        }
        let mut report = self.collect_garbage(None)?;
        self.clean_tmp()?;
        report.untagged = untagged;
        report.deleted_images = deleted_images;
        Ok(report)
    }
}
