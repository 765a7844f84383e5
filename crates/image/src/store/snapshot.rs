//! Snapshots: a container's root filesystem made from an image. An
//! overlayfs mount (the image's layer dirs as lowerdirs, top first, with a
//! private upper and work dir), or a plain copy of the layers where
//! overlayfs is unavailable (or `ISOLA_SNAPSHOTTER=copy`). Each snapshot
//! records its image id and layers so that `rmi` refuses and garbage
//! collection keeps those layers.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{mknod, Mode, SFlag};
use serde::{Deserialize, Serialize};

use super::disks::DISK_MOUNT;
use super::records::Image;
use super::{read_json, write_atomic, Error, Store};

/// The most mount option bytes the kernel reads (one page, less a margin).
const MAX_MOUNT_DATA: usize = 4000;

/// Environment variable forcing the copy driver (`copy`) or overlay (`overlay`).
pub const SNAPSHOTTER_ENV: &str = "ISOLA_SNAPSHOTTER";

/// A container's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub key: String,
    /// The directory to use as the container's rootfs.
    pub rootfs: PathBuf,
    pub image_id: String,
    pub driver: SnapshotDriver,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotDriver {
    Overlay,
    Copy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotRecord {
    key: String,
    image_id: String,
    pub(crate) layers: Vec<String>,
    pub(crate) driver: SnapshotDriver,
    /// The writable layer is a disk image ([`super::disks`]), for a VM.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) disk: bool,
}

impl Store {
    pub(crate) fn snapshot_dir(&self, key: &str) -> Result<PathBuf, Error> {
        let valid = !key.is_empty()
            && key.len() <= 128
            && key != "."
            && key != ".."
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            return Err(Error::InvalidSnapshotKey(key.to_string()));
        }
        Ok(self.root.join("snapshots").join(key))
    }

    /// Makes the root filesystem for container `key` from `image`: an
    /// overlay mount, or a copy where overlayfs is unavailable.
    pub fn create_snapshot(&self, image: &Image, key: &str) -> Result<Snapshot, Error> {
        let forced = match std::env::var(SNAPSHOTTER_ENV).as_deref() {
            Ok("copy") => Some(SnapshotDriver::Copy),
            Ok("overlay") => Some(SnapshotDriver::Overlay),
            _ => None,
        };
        self.create_snapshot_inner(image, key, forced, false)
    }

    /// Makes the root filesystem for a VM container `key` from `image`: its
    /// writable layer is a disk image of its own and the image's files one
    /// image shared by its snapshots ([`super::disks`]); the host sees them
    /// as any overlay snapshot while no VM holds the disk, once
    /// [`Store::snapshot`] has mounted them (the returned rootfs is not
    /// mounted yet).
    pub fn create_disk_snapshot(&self, image: &Image, key: &str) -> Result<Snapshot, Error> {
        self.create_snapshot_inner(image, key, Some(SnapshotDriver::Overlay), true)
    }

    /// [`Store::create_snapshot`] with the given driver, no fallback.
    pub fn create_snapshot_as(
        &self,
        image: &Image,
        key: &str,
        driver: SnapshotDriver,
    ) -> Result<Snapshot, Error> {
        self.create_snapshot_inner(image, key, Some(driver), false)
    }

    fn create_snapshot_inner(
        &self,
        image: &Image,
        key: &str,
        forced: Option<SnapshotDriver>,
        disk: bool,
    ) -> Result<Snapshot, Error> {
        let dir = self.snapshot_dir(key)?;
        let _lock = self.meta_lock()?;
        for diff_id in &image.layers {
            if self.read_layer_info(diff_id)?.is_none() {
                return Err(Error::MissingBlob {
                    digest: diff_id.clone(),
                    what: format!("unpacked layer of image {}", image.id),
                });
            }
        }
        // 0700: the snapshot's upper dir and mounted rootfs are the
        // container's files, setuid binaries included.
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::SnapshotExists(key.to_string()))
            }
            Err(e) => return Err(Error::io("creating", &dir, e)),
        }
        let result = self.build_snapshot(image, key, &dir, forced, disk);
        if result.is_err() {
            let _ = umount2(&dir.join("rootfs"), MntFlags::MNT_DETACH);
            let _ = umount2(&dir.join(DISK_MOUNT), MntFlags::MNT_DETACH);
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    fn build_snapshot(
        &self,
        image: &Image,
        key: &str,
        dir: &Path,
        forced: Option<SnapshotDriver>,
        disk: bool,
    ) -> Result<Snapshot, Error> {
        let rootfs = dir.join("rootfs");
        let subdirs: &[&str] = match disk {
            true => &["rootfs", DISK_MOUNT],
            false => &["rootfs", "upper", "work"],
        };
        if disk {
            // Made now, so that starting the container does not wait for it.
            self.image_disk(key, &image.layers)?;
        }
        for d in subdirs {
            let p = dir.join(d);
            DirBuilder::new()
                .mode(0o755)
                .create(&p)
                .map_err(|e| Error::io("creating", &p, e))?;
        }
        if disk {
            self.make_writable_disk(dir)?;
        }
        let mut driver = SnapshotDriver::Overlay;
        if forced == Some(SnapshotDriver::Copy) {
            driver = SnapshotDriver::Copy;
        } else if disk {
            // Left unmounted: its VM takes the disks as they are, and the
            // host mounts them when it needs the files ([`Store::snapshot`]);
            // a loop mount and unmount of the ext4 image cost a start about
            // 70 ms. A fresh snapshot's files are its image's
            // ([`Store::image_view`]).
        } else if let Err(e) = self.mount_overlay(key, &image.layers, dir, false) {
            let unavailable = matches!(
                e,
                Error::Mount {
                    source: nix::Error::ENODEV | nix::Error::EINVAL | nix::Error::EPERM,
                    ..
                }
            );
            if !unavailable || forced == Some(SnapshotDriver::Overlay) {
                return Err(e);
            }
            tracing::warn!(key, error = %e, "overlayfs unavailable; copying the image layers instead");
            driver = SnapshotDriver::Copy;
        }
        if driver == SnapshotDriver::Copy {
            for diff_id in &image.layers {
                let layer = self.layer_diff_dir(diff_id)?;
                copy_layer(&layer, &rootfs).map_err(|(path, source)| Error::SnapshotCopy {
                    key: key.to_string(),
                    path,
                    source,
                })?;
            }
        }
        let rec = SnapshotRecord {
            key: key.to_string(),
            image_id: image.id.clone(),
            layers: image.layers.clone(),
            driver,
            disk,
        };
        write_atomic(
            &dir.join("snapshot.json"),
            &serde_json::to_vec_pretty(&rec).expect("snapshot records serialize"),
        )?;
        Ok(Snapshot {
            key: key.to_string(),
            rootfs,
            image_id: image.id.clone(),
            driver,
        })
    }

    /// Mounts snapshot `key`'s overlay at its `rootfs/`: `layers` below,
    /// its upper and work dirs (on its writable disk with `disk`) above.
    fn mount_overlay(
        &self,
        key: &str,
        layers: &[String],
        dir: &Path,
        disk: bool,
    ) -> Result<(), Error> {
        let rw = match disk {
            true => {
                self.mount_writable_disk(key, dir)?;
                dir.join(DISK_MOUNT)
            }
            false => dir.to_path_buf(),
        };
        // overlayfs needs a lowerdir; an image without layers gets an empty one.
        let empty = dir.join("empty");
        let below = match layers.is_empty() {
            true => {
                fs::create_dir_all(&empty).map_err(|e| Error::io("creating", &empty, e))?;
                Some(empty.as_path())
            }
            false => None,
        };
        let upper = (rw.join("upper"), rw.join("work"));
        self.mount_overlay_of(key, layers, below, Some(&upper), &dir.join("rootfs"))
    }

    /// Mounts an overlay of `layers`' dirs (and `below` them, one more dir)
    /// at `target`, with `upper` (its upper and work dirs) or read-only.
    /// With many layers the lowers are named by short links to `layers`'
    /// dirs.
    pub(crate) fn mount_overlay_of(
        &self,
        key: &str,
        layers: &[String],
        below: Option<&Path>,
        upper: Option<&(PathBuf, PathBuf)>,
        target: &Path,
    ) -> Result<(), Error> {
        let target = target.to_path_buf();
        let below = below.map(|p| p.display().to_string());
        let mut lowers = Vec::new();
        for diff_id in layers.iter().rev() {
            lowers.push(self.layer_diff_dir(diff_id)?.display().to_string());
        }
        lowers.extend(below.clone());
        let upper_work = match upper {
            Some((upper, work)) => {
                format!(",upperdir={},workdir={}", upper.display(), work.display())
            }
            None => String::new(),
        };
        let opts = format!("lowerdir={}{upper_work}", lowers.join(":"));
        if opts.len() <= MAX_MOUNT_DATA {
            return mount(
                Some("overlay"),
                &target,
                Some("overlay"),
                MsFlags::empty(),
                Some(opts.as_str()),
            )
            .map_err(|source| Error::Mount {
                key: key.to_string(),
                target,
                source,
            });
        }
        // The kernel reads one page of mount options: with many layers,
        // name them by short links relative to the layers dir (as docker's
        // overlay2 does), and mount from a child whose cwd is that dir.
        let layers_dir = self.root.join("layers");
        let mut short = Vec::new();
        for diff_id in layers.iter().rev() {
            short.push(self.short_layer_link(diff_id)?);
        }
        short.extend(below);
        let opts = format!("lowerdir={}{upper_work}", short.join(":"));
        if opts.len() > MAX_MOUNT_DATA {
            return Err(Error::TooManyLayers {
                key: key.to_string(),
                count: lowers.len(),
            });
        }
        run_mount(
            std::process::Command::new("mount")
                .current_dir(&layers_dir)
                .args(["-t", "overlay", "overlay", "-o", &opts]),
            &target,
        )
    }

    /// `l/<20 hex>`, a link to the layer's `diff` dir, relative to `layers/`.
    fn short_layer_link(&self, diff_id: &str) -> Result<String, Error> {
        let hex = crate::digest::hex_of(diff_id)?;
        let name = format!("l/{}", &hex[..20]);
        let link = self.root.join("layers").join(&name);
        if fs::symlink_metadata(&link).is_err() {
            let l = self.root.join("layers/l");
            fs::create_dir_all(&l).map_err(|e| Error::io("creating", &l, e))?;
            match std::os::unix::fs::symlink(format!("../{hex}/diff"), &link) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("creating", &link, e)),
            }
        }
        Ok(name)
    }

    pub(crate) fn read_snapshot(&self, key: &str) -> Result<SnapshotRecord, Error> {
        let path = self.snapshot_dir(key)?.join("snapshot.json");
        read_json(&path, "snapshot record", key)?
            .ok_or_else(|| Error::SnapshotNotFound(key.to_string()))
    }

    /// An existing snapshot; remounts its overlay if it is not mounted
    /// (after a reboot, say).
    pub fn snapshot(&self, key: &str) -> Result<Snapshot, Error> {
        let rec = self.read_snapshot(key)?;
        let dir = self.snapshot_dir(key)?;
        let rootfs = dir.join("rootfs");
        if rec.driver == SnapshotDriver::Overlay && !is_mountpoint(&rootfs, &dir)? {
            self.mount_overlay(key, &rec.layers, &dir, rec.disk)?;
        }
        Ok(Snapshot {
            key: rec.key,
            rootfs,
            image_id: rec.image_id,
            driver: rec.driver,
        })
    }

    /// Every snapshot's key.
    pub fn snapshots(&self) -> Result<Vec<String>, Error> {
        let dir = self.root.join("snapshots");
        let mut keys = Vec::new();
        for e in fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))? {
            let e = e.map_err(|e| Error::io("listing", &dir, e))?;
            if let Some(k) = e.file_name().to_str() {
                if e.path().join("snapshot.json").is_file() {
                    keys.push(k.to_string());
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Unmounts (lazily if busy) and deletes the snapshot.
    pub fn remove_snapshot(&self, key: &str) -> Result<(), Error> {
        let dir = self.snapshot_dir(key)?;
        if !dir.exists() {
            return Err(Error::SnapshotNotFound(key.to_string()));
        }
        let rec_disk = self.read_snapshot(key).is_ok_and(|r| r.disk);
        let rootfs = dir.join("rootfs");
        if rootfs.exists() && is_mountpoint(&rootfs, &dir)? {
            match umount2(&rootfs, MntFlags::empty()) {
                Ok(()) => {}
                Err(nix::Error::EBUSY) => {
                    umount2(&rootfs, MntFlags::MNT_DETACH).map_err(|source| Error::Unmount {
                        target: rootfs.clone(),
                        source,
                    })?
                }
                Err(nix::Error::EINVAL) => {}
                Err(source) => {
                    return Err(Error::Unmount {
                        target: rootfs,
                        source,
                    })
                }
            }
        }
        let disk = dir.join(DISK_MOUNT);
        if disk.exists() && is_mountpoint(&disk, &dir)? {
            umount2(&disk, MntFlags::MNT_DETACH).map_err(|source| Error::Unmount {
                target: disk.clone(),
                source,
            })?;
        }
        let _lock = self.meta_lock()?;
        fs::remove_dir_all(&dir).map_err(|e| Error::io("removing", &dir, e))?;
        if rec_disk {
            self.prune_image_disks(&self.all_records()?)?;
        }
        Ok(())
    }

    /// Keys of the snapshots made from image `id`.
    pub(crate) fn snapshots_using(&self, id: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for key in self.snapshots()? {
            if self.read_snapshot(&key)?.image_id == id {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// Ids of the images some snapshot was made from.
    pub(crate) fn snapshot_images(&self) -> Result<BTreeSet<String>, Error> {
        let mut out = BTreeSet::new();
        for key in self.snapshots()? {
            out.insert(self.read_snapshot(&key)?.image_id);
        }
        Ok(out)
    }

    /// Diff ids of every layer some snapshot uses.
    pub(crate) fn snapshot_layers(&self) -> Result<BTreeSet<String>, Error> {
        let mut out = BTreeSet::new();
        for key in self.snapshots()? {
            out.extend(self.read_snapshot(&key)?.layers);
        }
        Ok(out)
    }
}

/// True when `path` is a mount point (its device differs from its parent's).
/// Runs mount(8) `cmd` with `target` last; its stderr becomes the error.
pub(crate) fn run_mount(cmd: &mut std::process::Command, target: &Path) -> Result<(), Error> {
    let out = cmd
        .arg(target)
        .output()
        .map_err(|e| Error::io("running mount(8) for", target, e))?;
    if !out.status.success() {
        return Err(Error::MountCommand {
            target: target.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

pub(crate) fn is_mountpoint(path: &Path, parent: &Path) -> Result<bool, Error> {
    let a = fs::symlink_metadata(path).map_err(|e| Error::io("checking", path, e))?;
    let b = fs::symlink_metadata(parent).map_err(|e| Error::io("checking", parent, e))?;
    Ok(a.dev() != b.dev())
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Applies one overlay-format layer dir onto `dest`, the way overlayfs
/// would show it: whiteouts delete, opaque dirs hide what was below.
fn copy_layer(layer: &Path, dest: &Path) -> Result<(), (PathBuf, io::Error)> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    copy_dir(layer, dest, &mut links)
}

/// Copies the tree at `src` (a plain directory: a snapshot's root
/// filesystem or part of it) into the empty directory `dest`, keeping
/// owners, modes, symlinks, hard links, device nodes, xattrs and mtimes;
/// `dest` itself takes `src`'s owner, mode and xattrs. A volume's first
/// content comes from its image this way (docker's copy-up). `src` must
/// not change meanwhile: symlinks are copied, never followed, but the
/// directories on the way are taken as they are.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<(), Error> {
    let io = |(path, source): (PathBuf, io::Error)| Error::io("copying", path, source);
    copy_layer(src, dest).map_err(io)?;
    let meta = fs::symlink_metadata(src).map_err(|e| Error::io("reading", src, e))?;
    copy_meta(src, dest, &meta).map_err(|e| Error::io("copying", dest, e))
}

fn copy_dir(
    src: &Path,
    dest: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), (PathBuf, io::Error)> {
    let ctx = |p: &Path| {
        let p = p.to_path_buf();
        move |e| (p, e)
    };
    let mut entries: Vec<_> = fs::read_dir(src)
        .map_err(ctx(src))?
        .collect::<Result<_, _>>()
        .map_err(ctx(src))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let from = e.path();
        let to = dest.join(e.file_name());
        let meta = fs::symlink_metadata(&from).map_err(ctx(&from))?;
        let existing = fs::symlink_metadata(&to).ok();
        if is_whiteout(&meta) {
            if let Some(m) = existing {
                remove_existing(&to, &m).map_err(ctx(&to))?;
            }
            continue;
        }
        if meta.is_dir() {
            let opaque = xattr::get(&from, "trusted.overlay.opaque")
                .ok()
                .flatten()
                .as_deref()
                == Some(b"y");
            match existing {
                Some(m) if m.is_dir() && opaque => {
                    fs::remove_dir_all(&to).map_err(ctx(&to))?;
                    fs::create_dir(&to).map_err(ctx(&to))?;
                }
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    fs::remove_file(&to).map_err(ctx(&to))?;
                    fs::create_dir(&to).map_err(ctx(&to))?;
                }
                None => fs::create_dir(&to).map_err(ctx(&to))?,
            }
            copy_dir(&from, &to, links)?;
            copy_meta(&from, &to, &meta).map_err(ctx(&to))?;
            continue;
        }
        if let Some(m) = existing {
            remove_existing(&to, &m).map_err(ctx(&to))?;
        }
        let ft = meta.file_type();
        if meta.nlink() > 1 && !ft.is_symlink() {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                fs::hard_link(first, &to).map_err(ctx(&to))?;
                continue;
            }
            links.insert((meta.dev(), meta.ino()), to.clone());
        }
        if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(ctx(&from))?;
            std::os::unix::fs::symlink(target, &to).map_err(ctx(&to))?;
        } else if ft.is_file() {
            fs::copy(&from, &to).map_err(ctx(&to))?;
        } else {
            let kind = SFlag::from_bits_truncate(meta.mode() & SFlag::S_IFMT.bits());
            mknod(
                &to,
                kind,
                Mode::from_bits_truncate(meta.mode() & 0o7777),
                meta.rdev(),
            )
            .map_err(|e| (to.clone(), io::Error::from_raw_os_error(e as i32)))?;
        }
        copy_meta(&from, &to, &meta).map_err(ctx(&to))?;
    }
    Ok(())
}

/// Removes what a lower layer put at `path` (`meta` says what): a whole
/// directory tree, or one file, link or node.
fn remove_existing(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

fn copy_meta(from: &Path, to: &Path, meta: &fs::Metadata) -> io::Result<()> {
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    if let Ok(names) = xattr::list(from) {
        for name in names {
            let key = name.to_string_lossy();
            if key.starts_with("trusted.overlay.") {
                continue;
            }
            if let Ok(Some(v)) = xattr::get(from, &name) {
                if let Err(e) = xattr::set(to, &name, &v) {
                    tracing::debug!(path = %to.display(), key = %key, error = %e, "xattr not copied");
                }
            }
        }
    }
    if !meta.file_type().is_symlink() {
        fs::set_permissions(to, Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    let mtime = filetime::FileTime::from_last_modification_time(meta);
    filetime::set_symlink_file_times(to, mtime, mtime)
}
