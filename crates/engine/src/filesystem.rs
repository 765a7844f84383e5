//! filesystem: a container's files seen from the host, in both isolation
//! modes (a VM container's rootfs is the same snapshot, shared into its
//! VM): `diff` (what it changed against its image) and `export` (its whole
//! filesystem as a tar stream). It reads the snapshot; it never writes it.

use std::io::Write;

pub use image::store::{Change, ChangeKind};

use crate::lifecycle::{Engine, Error};
use crate::store::ContainerRecord;

impl Engine {
    /// The host directory of the container's root filesystem (its
    /// snapshot, mounted again if a reboot unmounted it).
    pub(crate) fn rootfs_of(&self, rec: &ContainerRecord) -> Result<std::path::PathBuf, Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        Ok(store
            .snapshot(&rec.config.snapshot_key)
            .map_err(Error::Image)?
            .rootfs)
    }

    /// What the container changed in its filesystem, sorted by path. As
    /// docker's, it leaves out what isola made for its mounts (the mount
    /// points of /etc/hosts, /etc/hostname, /etc/resolv.conf and volumes).
    pub fn changes(&self, rec: &ContainerRecord) -> Result<Vec<Change>, Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        let mount_points: Vec<String> = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
            .into_iter()
            .map(String::from)
            .chain(rec.config.mounts.iter().map(|m| m.destination.clone()))
            .collect();
        Ok(store
            .changes(&rec.config.snapshot_key)
            .map_err(Error::Image)?
            .into_iter()
            .filter(|c| !(c.kind == ChangeKind::Added && mount_points.contains(&c.path)))
            .collect())
    }

    /// Writes the container's whole filesystem to `out` as a tar stream
    /// (as `docker export`): owners, modes, links and device nodes as they
    /// are, symlinks not followed.
    pub fn export(&self, rec: &ContainerRecord, out: &mut dyn Write) -> Result<(), Error> {
        let rootfs = self.rootfs_of(rec)?;
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        let failed = |source| Error::Export {
            id: rec.config.id.clone(),
            source,
        };
        tar.append_dir_all(".", &rootfs).map_err(failed)?;
        tar.finish().map_err(failed)
    }
}
