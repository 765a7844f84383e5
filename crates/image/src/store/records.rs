//! Image records and tags: what images the store holds, their names, and
//! looking them up by name, id or id prefix. Records and tags change only
//! under the metadata lock.

use std::collections::BTreeMap;
use std::fs;
use std::io;

use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use super::{read_json, write_atomic, Error, Store};
use crate::digest;
use crate::reference::Reference;

/// An image in the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// The config digest, `sha256:<hex>`.
    pub id: String,
    /// Tags pointing at it (`docker.io/library/busybox:latest`).
    pub names: Vec<Reference>,
    pub manifest_digest: String,
    pub config: ImageConfiguration,
    /// Layer diff ids, bottom first.
    pub layers: Vec<String>,
    /// Unpacked bytes (sum of regular file sizes in all layers).
    pub size: u64,
    /// The config's `created` (RFC 3339), if any.
    pub created: Option<String>,
    /// `registry/repository@sha256:<manifest digest>` names it was pulled or
    /// loaded under.
    pub repo_digests: Vec<String>,
    /// Layer blob digests (compressed, as in the manifest), bottom first.
    pub layer_blobs: Vec<String>,
}

impl Image {
    /// `(os, architecture, variant)` from the config.
    pub fn platform(&self) -> (String, String, Option<String>) {
        (
            self.config.os().to_string(),
            self.config.architecture().to_string(),
            self.config.variant().clone(),
        )
    }

    /// The 12-hex-digit short id docker prints.
    pub fn short_id(&self) -> &str {
        let hex = self.id.strip_prefix("sha256:").unwrap_or(&self.id);
        &hex[..hex.len().min(12)]
    }
}

/// What `images/<id hex>.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub id: String,
    pub manifest_digest: String,
    pub layers: Vec<String>,
    pub layer_blobs: Vec<String>,
    #[serde(default)]
    pub repo_digests: Vec<String>,
    pub size: u64,
}

type Tags = BTreeMap<String, String>;

/// The names in `tags` that point at image `id`.
pub(crate) fn names_of(tags: &Tags, id: &str) -> Vec<String> {
    tags.iter()
        .filter(|(_, i)| *i == id)
        .map(|(n, _)| n.clone())
        .collect()
}

impl Store {
    pub(crate) fn record_path(&self, id: &str) -> Result<std::path::PathBuf, Error> {
        Ok(self
            .root
            .join("images")
            .join(format!("{}.json", digest::hex_of(id)?)))
    }

    pub(crate) fn read_record(&self, id: &str) -> Result<Option<ImageRecord>, Error> {
        read_json(&self.record_path(id)?, "image record", id)
    }

    pub(crate) fn write_record(&self, rec: &ImageRecord) -> Result<(), Error> {
        let data = serde_json::to_vec_pretty(rec).expect("image records serialize");
        write_atomic(&self.record_path(&rec.id)?, &data)
    }

    pub(crate) fn delete_record(&self, id: &str) -> Result<(), Error> {
        let path = self.record_path(id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing", path, e)),
        }
    }

    pub(crate) fn all_records(&self) -> Result<Vec<ImageRecord>, Error> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if !digest::is_hex64(hex) {
                continue;
            }
            if let Some(rec) = self.read_record(&format!("sha256:{hex}"))? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    fn tags_path(&self) -> std::path::PathBuf {
        self.root.join("repositories.json")
    }

    pub(crate) fn read_tags(&self) -> Result<Tags, Error> {
        let path = self.tags_path();
        let tags = read_json(&path, "tag list", &path.display().to_string())?;
        Ok(tags.unwrap_or_else(Tags::new))
    }

    pub(crate) fn write_tags(&self, tags: &Tags) -> Result<(), Error> {
        let data = serde_json::to_vec_pretty(tags).expect("tags serialize");
        write_atomic(&self.tags_path(), &data)
    }

    /// Builds the public view of a record.
    pub(crate) fn image_of(&self, rec: &ImageRecord, tags: &Tags) -> Result<Image, Error> {
        let bytes = self.read_blob(&rec.id, "image config")?;
        let config: ImageConfiguration =
            serde_json::from_slice(&bytes).map_err(|source| Error::BadJson {
                what: "image config",
                digest: rec.id.clone(),
                source,
            })?;
        let mut names: Vec<Reference> = tags
            .iter()
            .filter(|(_, id)| **id == rec.id)
            .filter_map(|(name, _)| Reference::parse(name).ok())
            .collect();
        names.sort();
        Ok(Image {
            id: rec.id.clone(),
            names,
            manifest_digest: rec.manifest_digest.clone(),
            created: config.created().clone(),
            config,
            layers: rec.layers.clone(),
            size: rec.size,
            repo_digests: rec.repo_digests.clone(),
            layer_blobs: rec.layer_blobs.clone(),
        })
    }

    /// Finds an image by name (`busybox`, `busybox:1.36`, `repo@sha256:..`),
    /// full id (`sha256:<hex>`) or a unique id prefix of at least 4 hex
    /// digits, docker style.
    pub fn resolve(&self, name_or_id: &str) -> Result<Image, Error> {
        let tags = self.read_tags()?;
        let rec = self.find_record(name_or_id, &tags)?;
        self.image_of(&rec, &tags)
    }

    pub(crate) fn find_record(&self, name_or_id: &str, tags: &Tags) -> Result<ImageRecord, Error> {
        let not_found = || Error::NotFound(name_or_id.to_string());
        if let Some(hex) = name_or_id.strip_prefix("sha256:") {
            return self.find_by_prefix(name_or_id, hex)?.ok_or_else(not_found);
        }
        if let Ok(r) = Reference::parse(name_or_id) {
            if let Some(d) = &r.digest {
                let repo_digest = format!("{}@{}", r.name(), d);
                let found = self.all_records()?.into_iter().find(|rec| {
                    rec.repo_digests.contains(&repo_digest)
                        || (rec.manifest_digest == *d
                            && tags.iter().any(|(n, id)| {
                                *id == rec.id
                                    && Reference::parse(n).is_ok_and(|x| x.name() == r.name())
                            }))
                });
                if let Some(rec) = found {
                    return Ok(rec);
                }
            } else if let Some(id) = tags.get(&r.to_string()) {
                if let Some(rec) = self.read_record(id)? {
                    return Ok(rec);
                }
            }
        }
        self.find_by_prefix(name_or_id, name_or_id)?
            .ok_or_else(not_found)
    }

    fn find_by_prefix(&self, input: &str, hex: &str) -> Result<Option<ImageRecord>, Error> {
        if hex.len() < 4 || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let hex = hex.to_ascii_lowercase();
        if hex.len() == 64 {
            // A whole id names its record file: no need to list them all.
            return self.read_record(&format!("sha256:{hex}"));
        }
        let mut matches: Vec<ImageRecord> = self
            .all_records()?
            .into_iter()
            .filter(|r| r.id["sha256:".len()..].starts_with(&hex))
            .collect();
        match matches.len() {
            0 => Ok(None),
            1 => Ok(matches.pop()),
            count => Err(Error::Ambiguous {
                prefix: input.to_string(),
                count,
            }),
        }
    }

    /// Every image, newest first (by config `created`). An image whose
    /// config cannot be read is skipped with a warning, so one damaged
    /// record does not hide the others.
    pub fn list(&self) -> Result<Vec<Image>, Error> {
        let tags = self.read_tags()?;
        let mut images = Vec::new();
        for rec in self.all_records()? {
            match self.image_of(&rec, &tags) {
                Ok(img) => images.push(img),
                Err(e) => {
                    tracing::warn!(image = %rec.id, error = %e, "skipping a damaged image record")
                }
            }
        }
        images.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(images)
    }

    /// Points tag `target` at the image `source` names (moving it from
    /// another image if it had one). A `target` without a tag gets `latest`.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<(), Error> {
        let _lock = self.meta_lock()?;
        let mut tags = self.read_tags()?;
        let rec = self.find_record(source, &tags)?;
        let mut target = target.without_digest();
        if target.tag.is_none() {
            target.tag = Some("latest".to_string());
        }
        tags.insert(target.to_string(), rec.id);
        self.write_tags(&tags)
    }

    /// Removes a name or an image (`rmi`). By name, with other names left:
    /// only untags. Otherwise deletes the image and the blobs and layers
    /// nothing else uses. Refuses when a snapshot uses the image, or when
    /// an id names an image with several tags, unless `force`. Returns
    /// docker's lines: `Untagged: busybox:latest`, `Deleted: sha256:..`.
    pub fn remove(&self, name_or_id: &str, force: bool) -> Result<Vec<String>, Error> {
        let _lock = self.meta_lock()?;
        let mut tags = self.read_tags()?;
        let rec = self.find_record(name_or_id, &tags)?;
        let by_name = Reference::parse(name_or_id)
            .ok()
            .filter(|r| r.digest.is_none() && tags.get(&r.to_string()) == Some(&rec.id));
        let names = names_of(&tags, &rec.id);
        let mut lines = Vec::new();
        if let Some(r) = &by_name {
            if names.len() > 1 {
                tags.remove(&r.to_string());
                self.write_tags(&tags)?;
                lines.push(format!("Untagged: {}", r.familiar()));
                return Ok(lines);
            }
        } else if names.len() > 1 && !force {
            return Err(Error::MultipleNames {
                image: short(&rec.id),
                names: names.join(", "),
            });
        }
        let users = self.snapshots_using(&rec.id)?;
        if !users.is_empty() && !force {
            return Err(Error::InUse {
                image: by_name
                    .as_ref()
                    .map(|r| r.familiar())
                    .unwrap_or_else(|| short(&rec.id)),
                snapshots: users.join(", "),
            });
        }
        for n in &names {
            tags.remove(n);
            let shown = Reference::parse(n)
                .map(|r| r.familiar())
                .unwrap_or(n.clone());
            lines.push(format!("Untagged: {shown}"));
        }
        self.write_tags(&tags)?;
        for d in &rec.repo_digests {
            let shown = Reference::parse(d)
                .map(|r| r.familiar())
                .unwrap_or(d.clone());
            lines.push(format!("Untagged: {shown}"));
        }
        self.delete_record(&rec.id)?;
        lines.push(format!("Deleted: {}", rec.id));
        let mut blobs = vec![rec.id.clone(), rec.manifest_digest.clone()];
        blobs.extend(rec.layer_blobs.iter().cloned());
        for layer in self
            .collect_garbage(Some((blobs, rec.layers.clone())))?
            .deleted_layers
        {
            lines.push(format!("Deleted: {layer}"));
        }
        Ok(lines)
    }
}

fn short(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex[..hex.len().min(12)].to_string()
}
