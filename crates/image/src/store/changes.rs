//! changes: what a container changed in its snapshot, as `docker diff`
//! lists it (A added, C changed, D deleted), read from the overlay's upper
//! directory against the image's layers. A copy-driver snapshot (no
//! overlay) has no upper directory to read: it says so. It must not
//! change the snapshot.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{SnapshotDriver, Store};
use crate::Error;

/// One change, as `docker diff` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// The path inside the container (`/etc/hosts`).
    #[serde(rename = "Path")]
    pub path: String,
    #[serde(rename = "Kind")]
    pub kind: ChangeKind,
}

/// docker's change kinds (its API numbers them 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Changed,
    Added,
    Deleted,
}

impl ChangeKind {
    /// `C`, `A` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Changed => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

impl serde::Serialize for ChangeKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(match self {
            ChangeKind::Changed => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        })
    }
}

impl Store {
    /// Bytes the snapshot `key` added (its upper directory; a copy-driver
    /// snapshot's whole tree); 0 when unreadable.
    pub fn snapshot_upper_size(&self, key: &str) -> u64 {
        let Ok(dir) = self.snapshot_dir(key) else {
            return 0;
        };
        let Ok(rec) = self.read_snapshot(key) else {
            return 0;
        };
        if rec.disk {
            // Not mounted (its VM holds it, say): the disk's bytes.
            let disk = dir.join(super::disks::DISK_MOUNT);
            return match super::snapshot::is_mountpoint(&disk, &dir) {
                Ok(true) => tree_size(&disk.join("upper")),
                _ => Self::writable_disk_bytes(&dir),
            };
        }
        let tree = if rec.driver == SnapshotDriver::Overlay {
            dir.join("upper")
        } else {
            dir.join("rootfs")
        };
        tree_size(&tree)
    }

    /// The upper directory of overlay snapshot `key` and its lower
    /// layers' directories; a copy-driver snapshot has no upper directory:
    /// [`Error::NoUpperDir`].
    pub(crate) fn overlay_dirs(&self, key: &str) -> Result<(PathBuf, Vec<PathBuf>), Error> {
        let rec = self.read_snapshot(key)?;
        if rec.driver != SnapshotDriver::Overlay {
            return Err(Error::NoUpperDir(key.to_string()));
        }
        let dir = self.snapshot_dir(key)?;
        let upper = match rec.disk {
            true => {
                self.mount_writable_disk(key, &dir)?;
                dir.join(super::disks::DISK_MOUNT).join("upper")
            }
            false => dir.join("upper"),
        };
        let lowers = rec
            .layers
            .iter()
            .map(|l| self.layer_diff_dir(l))
            .collect::<Result<Vec<PathBuf>, Error>>()?;
        Ok((upper, lowers))
    }

    /// The changes of snapshot `key`, sorted by path.
    pub fn changes(&self, key: &str) -> Result<Vec<Change>, Error> {
        let (upper, lowers) = self.overlay_dirs(key)?;
        let mut out = Vec::new();
        walk(&upper, Path::new(""), &lowers, &mut out)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

fn walk(upper: &Path, rel: &Path, lowers: &[PathBuf], out: &mut Vec<Change>) -> Result<(), Error> {
    let dir = upper.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| Error::io("listing", &dir, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::io("listing", &dir, e))?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = upper.join(&rel);
        let meta = fs::symlink_metadata(&path).map_err(|e| Error::io("reading", &path, e))?;
        let shown = format!("/{}", rel.display());
        // overlayfs marks a deleted lower file with a 0/0 character device.
        let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
        let in_lower = lowers
            .iter()
            .any(|l| fs::symlink_metadata(l.join(&rel)).is_ok());
        let kind = match (whiteout, in_lower) {
            (true, _) => ChangeKind::Deleted,
            (false, true) => ChangeKind::Changed,
            (false, false) => ChangeKind::Added,
        };
        out.push(Change { path: shown, kind });
        if meta.is_dir() {
            walk(upper, &rel, lowers, out)?;
        }
    }
    Ok(())
}

/// Bytes of the files under `dir`, each inode counted once (hard links),
/// links not followed; 0 for what cannot be read.
pub fn tree_size(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}
