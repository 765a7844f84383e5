//! disk: what isola's objects take on disk (`system df`) and removing what
//! nothing uses (`system prune`'s image part), for the CLI and the API
//! alike. It measures and asks the stores to prune; it formats nothing.

use std::collections::HashSet;
use std::path::Path;

use crate::lifecycle::{Engine, Error};
use crate::volumes::VolumeFilters;

/// Bytes of the files under `dir`, each inode counted once (0 if unreadable).
pub fn dir_size(dir: &Path) -> u64 {
    image::store::tree_size(dir)
}

/// One object's line of `system df -v`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectUsage {
    pub name: String,
    pub size: u64,
    /// Used by a container (an image, a volume) or running (a container).
    pub active: bool,
}

/// `system df`: images, containers (their writable layers) and volumes.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DiskUsage {
    pub images: Vec<ObjectUsage>,
    pub containers: Vec<ObjectUsage>,
    pub volumes: Vec<ObjectUsage>,
}

impl Engine {
    /// What images, containers and volumes take on disk.
    pub fn disk_usage(&self) -> Result<DiskUsage, Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        let containers = self.list()?;
        let used_images: HashSet<&str> = containers
            .iter()
            .map(|c| c.config.image_id.as_str())
            .collect();
        let images = store
            .list()
            .map_err(Error::Image)?
            .into_iter()
            .map(|img| ObjectUsage {
                name: img
                    .names
                    .first()
                    .map(|n| n.familiar())
                    .unwrap_or_else(|| img.short_id().to_string()),
                size: img.size,
                active: used_images.contains(img.id.as_str()),
            })
            .collect();
        let containers = containers
            .iter()
            .map(|c| ObjectUsage {
                name: c.config.name.clone(),
                size: store.snapshot_upper_size(&c.config.snapshot_key),
                active: c.state.status.is_active(),
            })
            .collect();
        let volumes = self
            .list_volumes(&VolumeFilters::default())?
            .into_iter()
            .map(|v| ObjectUsage {
                size: dir_size(&v.mountpoint),
                active: !self.volume_users(&v.name).unwrap_or_default().is_empty(),
                name: v.name,
            })
            .collect();
        Ok(DiskUsage {
            images,
            containers,
            volumes,
        })
    }

    /// A container's size as `ps -s` shows it: its writable layer, and
    /// that plus its image (docker's "virtual" size).
    pub fn container_size(&self, rec: &crate::store::ContainerRecord) -> Result<(u64, u64), Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        let rw = store.snapshot_upper_size(&rec.config.snapshot_key);
        let image = self
            .find_image(&rec.config.image_id)?
            .map(|i| i.size)
            .unwrap_or(0);
        Ok((rw, rw + image))
    }

    /// Removes dangling images, or with `all` every image no container uses.
    pub fn prune_images(&self, all: bool) -> Result<image::store::PruneReport, Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        store.prune(all).map_err(Error::Image)
    }
}
