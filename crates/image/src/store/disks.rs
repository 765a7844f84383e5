//! Disk snapshots: a snapshot whose files a utility VM reaches as block
//! devices rather than over 9p. The image (its layers merged) is a
//! read-only EROFS image, made once per layer chain with `mkfs.erofs`
//! (Debian's erofs-utils) and kept in `disks/`; the container's writable
//! layer is an ext4 image of its own (`mke2fs`), `writable.disk` in the
//! snapshot's directory, holding the overlay's `upper/` and `work/`.
//!
//! The host reaches the files through a loop mount of the writable disk at
//! the snapshot's `disk/` (and the usual overlay at `rootfs/` over it),
//! made while no VM holds the disk: [`Store::release_snapshot`] unmounts
//! both before a VM is given the disk, and mounting refuses a disk that a
//! QEMU process has open (QEMU holds OFD locks on the images it opens).
//!
//! Both images are sparse and of fixed sizes, so every VM of a shape sees
//! disks of the same geometry (a VM restored from a template keeps the
//! sizes its kernel probed at boot).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{umount2, MntFlags};
use sha2::{Digest, Sha256};

use super::records::ImageRecord;
use super::{Error, Store};

/// The image disk's size: EROFS uses what it needs, the rest is a hole.
pub const IMAGE_DISK_BYTES: u64 = 1 << 40;
/// The writable layer's size (sparse; what the container writes is what
/// the host stores).
pub const WRITABLE_DISK_BYTES: u64 = 64 << 30;
/// The writable disk's file name in the snapshot's directory.
pub(crate) const WRITABLE_DISK: &str = "writable.disk";
/// Where the host mounts the writable disk, in the snapshot's directory.
pub(crate) const DISK_MOUNT: &str = "disk";

/// The two images a VM's rootfs is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDisks {
    /// The image's files, read-only (EROFS).
    pub image: PathBuf,
    /// The container's writable layer (ext4: `upper/`, `work/`).
    pub writable: PathBuf,
}

impl Store {
    /// The EROFS image of `layers` merged (bottom first), made if missing.
    pub(crate) fn image_disk(&self, key: &str, layers: &[String]) -> Result<PathBuf, Error> {
        let name = image_disk_name(layers);
        let dir = self.root.join("disks");
        let path = dir.join(format!("{name}.erofs"));
        if path.is_file() {
            return Ok(path);
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        let _lock = self.lock(&format!("disk-{name}"))?;
        if path.is_file() {
            return Ok(path);
        }
        let work = tempfile::Builder::new()
            .prefix("disk-")
            .tempdir_in(self.tmp_dir())
            .map_err(|e| Error::io("creating a temp dir in", self.tmp_dir(), e))?;
        let merged = self.mount_image_files(key, layers, work.path())?;
        let partial = work.path().join("image.erofs");
        let made = run_tool(
            Command::new("mkfs.erofs")
                .arg("--quiet")
                .arg(&partial)
                .arg(&merged),
            "mkfs.erofs",
            &partial,
        );
        let _ = umount2(&merged, MntFlags::MNT_DETACH);
        made?;
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&partial)
            .map_err(|e| Error::io("opening", &partial, e))?;
        file.set_len(IMAGE_DISK_BYTES)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("sizing", &partial, e))?;
        fs::rename(&partial, &path).map_err(|e| Error::io("renaming", &path, e))?;
        Ok(path)
    }

    /// A new, empty writable disk in the snapshot directory `dir`.
    pub(crate) fn make_writable_disk(&self, dir: &Path) -> Result<(), Error> {
        let path = dir.join(WRITABLE_DISK);
        let file = fs::File::create(&path).map_err(|e| Error::io("creating", &path, e))?;
        file.set_len(WRITABLE_DISK_BYTES)
            .map_err(|e| Error::io("sizing", &path, e))?;
        drop(file);
        // Lazy inode tables and journal: the file is sparse, so they read as
        // zeros already; mke2fs writes only the few MiB of metadata.
        run_tool(
            Command::new("mke2fs")
                .args(["-q", "-F", "-t", "ext4", "-m", "0"])
                .args(["-E", "lazy_itable_init=1,lazy_journal_init=1"])
                .arg(&path),
            "mke2fs",
            &path,
        )
    }

    /// Mounts the writable disk of snapshot `key` (directory `dir`) at its
    /// `disk/` unless it is mounted there, making `upper/` and `work/`.
    /// Refused while a VM has the disk open.
    pub(crate) fn mount_writable_disk(&self, key: &str, dir: &Path) -> Result<(), Error> {
        let target = dir.join(DISK_MOUNT);
        if super::snapshot::is_mountpoint(&target, dir)? {
            return Ok(());
        }
        let disk = dir.join(WRITABLE_DISK);
        if held_by_a_vm(&disk)? {
            return Err(Error::DiskInUse(key.to_string()));
        }
        // mount(8) sets up the loop device (and frees it at unmount).
        super::snapshot::run_mount(
            Command::new("mount")
                .args(["-t", "ext4", "-o", "loop,noinit_itable,nosuid,nodev"])
                .arg(&disk),
            &target,
        )?;
        for d in ["upper", "work"] {
            let p = target.join(d);
            fs::create_dir_all(&p).map_err(|e| Error::io("creating", &p, e))?;
        }
        Ok(())
    }

    /// Hands disk snapshot `key` over to a VM: unmounts its rootfs and its
    /// writable disk from the host (refused while something on the host
    /// uses them: a VM and the host must never mount one ext4 image at
    /// once) and returns the images.
    pub fn release_snapshot(&self, key: &str) -> Result<SnapshotDisks, Error> {
        let rec = self.read_snapshot(key)?;
        let dir = self.snapshot_dir(key)?;
        if !rec.disk {
            return Err(Error::NotADiskSnapshot(key.to_string()));
        }
        for sub in ["rootfs", DISK_MOUNT] {
            let target = dir.join(sub);
            if super::snapshot::is_mountpoint(&target, &dir)? {
                match umount2(&target, MntFlags::empty()) {
                    Ok(()) | Err(nix::Error::EINVAL) => {}
                    Err(nix::Error::EBUSY) => {
                        return Err(Error::SnapshotBusy {
                            key: key.to_string(),
                            target,
                        })
                    }
                    Err(source) => return Err(Error::Unmount { target, source }),
                }
            }
        }
        Ok(SnapshotDisks {
            image: self.image_disk(key, &rec.layers)?,
            writable: dir.join(WRITABLE_DISK),
        })
    }

    /// While disk snapshot `key`'s rootfs is not mounted on the host (a VM
    /// holds its disks, or it was just made), a read-only view of its
    /// image's files, the layers merged in a temporary mount: what the host
    /// can read of it without its writable disk (the users and groups an
    /// exec names; all of a fresh snapshot's files). None for any other
    /// snapshot.
    pub fn image_view(&self, key: &str) -> Result<Option<ImageView>, Error> {
        let rec = self.read_snapshot(key)?;
        let dir = self.snapshot_dir(key)?;
        if !rec.disk || super::snapshot::is_mountpoint(&dir.join("rootfs"), &dir)? {
            return Ok(None);
        }
        let tmp = tempfile::Builder::new()
            .prefix("view-")
            .tempdir_in(self.tmp_dir())
            .map_err(|e| Error::io("creating a temp dir in", self.tmp_dir(), e))?;
        let merged = self.mount_image_files(key, &rec.layers, tmp.path())?;
        Ok(Some(ImageView { _tmp: tmp, merged }))
    }

    /// Mounts `layers` merged, read-only, at `dir/merged` (returned). A
    /// read-only overlay of the layers alone applies their whiteouts; it
    /// needs two lower dirs at least: a single layer gets an empty one
    /// below it (and no layers, the empty directory alone, unmounted).
    fn mount_image_files(
        &self,
        key: &str,
        layers: &[String],
        dir: &Path,
    ) -> Result<PathBuf, Error> {
        let merged = dir.join("merged");
        let empty = dir.join("empty");
        for d in [&merged, &empty] {
            fs::create_dir(d).map_err(|e| Error::io("creating", d, e))?;
        }
        if layers.is_empty() {
            return Ok(empty);
        }
        let below = (layers.len() == 1).then_some(empty.as_path());
        self.mount_overlay_of(key, layers, below, None, &merged)?;
        Ok(merged)
    }

    /// Bytes allocated to snapshot `key`'s writable disk on the host.
    pub(crate) fn writable_disk_bytes(dir: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(dir.join(WRITABLE_DISK)).map_or(0, |m| m.blocks() * 512)
    }

    /// Removes the EROFS images of layer chains that none of the image
    /// `records` (all of them) and no snapshot has (an image's disk stays
    /// for its next VM container, a build step's goes with its container).
    /// Call with the metadata lock held.
    pub(crate) fn prune_image_disks(&self, records: &[ImageRecord]) -> Result<(), Error> {
        let dir = self.root.join("disks");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(());
        };
        let mut keep: Vec<String> = records.iter().map(|r| image_disk_name(&r.layers)).collect();
        for key in self.snapshots()? {
            keep.extend(
                self.read_snapshot(&key)
                    .ok()
                    .map(|r| image_disk_name(&r.layers)),
            );
        }
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".erofs") {
                if !keep.iter().any(|k| k == stem) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }
}

/// The name of the EROFS image of a layer chain: a hash of its diff ids.
fn image_disk_name(layers: &[String]) -> String {
    let mut h = Sha256::new();
    for l in layers {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A read-only mount of an image's files, unmounted when dropped.
pub struct ImageView {
    /// Removed once the view is unmounted (fields drop after `drop`).
    _tmp: tempfile::TempDir,
    merged: PathBuf,
}

impl ImageView {
    pub fn path(&self) -> &Path {
        &self.merged
    }
}

impl Drop for ImageView {
    fn drop(&mut self) {
        let _ = umount2(&self.merged, MntFlags::MNT_DETACH);
    }
}

/// Whether a QEMU process has `disk` open: QEMU takes shared OFD locks on
/// bytes 100 and up of each image it opens (its image locking), which a
/// probe for an exclusive lock there finds.
fn held_by_a_vm(disk: &Path) -> Result<bool, Error> {
    let file = fs::File::open(disk).map_err(|e| Error::io("opening", disk, e))?;
    let mut probe = nix::libc::flock {
        l_type: nix::libc::F_WRLCK as i16,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: 100,
        l_len: 200,
        l_pid: 0,
    };
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_OFD_GETLK(&mut probe))
        .map_err(|e| Error::io("probing the locks of", disk, e.into()))?;
    Ok(probe.l_type != nix::libc::F_UNLCK as i16)
}

/// Runs `cmd` (`tool`, making `path`); its stderr becomes the error.
fn run_tool(cmd: &mut Command, tool: &'static str, path: &Path) -> Result<(), Error> {
    let out = cmd.output().map_err(|e| Error::DiskTool {
        tool,
        path: path.to_path_buf(),
        message: match e.kind() {
            std::io::ErrorKind::NotFound => "not installed (Debian: erofs-utils, e2fsprogs)".into(),
            _ => e.to_string(),
        },
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::DiskTool {
        tool,
        path: path.to_path_buf(),
        message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}
