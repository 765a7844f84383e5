//! Writing a snapshot's changes as a new layer: the overlay's upper
//! directory as a gzip tar (overlayfs whiteouts become `.wh.` files, opaque
//! directories `.wh..wh..opq`), entries in name order so that the same
//! tree always gives the same bytes, then stored as a blob and unpacked
//! like a pulled layer. Used by `build` (each RUN and COPY step) and
//! `commit`. It reads the snapshot; it must not change it.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use super::{Error, Store};
use crate::digest::DigestingWriter;
use crate::manifest::{Descriptor, OCI_LAYER_GZIP};

/// A layer in the store made from a snapshot: its blob and its diff id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLayer {
    pub descriptor: Descriptor,
    pub diff_id: String,
}

/// How a snapshot's changes become a layer.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// `SOURCE_DATE_EPOCH`: modification times after it are written as it,
    /// so that the same changes give the same layer digest on any day.
    pub clamp_mtime: Option<u64>,
    /// Paths (`/etc/hosts`) left out when they are an empty file or an
    /// empty directory that no lower layer has: mount points the runtime
    /// made for the container, not changes the container made.
    pub mount_points: Vec<String>,
}

impl Store {
    /// Writes the changes of overlay snapshot `key` as a gzip layer blob,
    /// unpacks it, and returns it. A copy-driver snapshot has no upper
    /// directory to read: [`Error::NoUpperDir`].
    pub fn layer_from_snapshot(&self, key: &str, opts: &DiffOptions) -> Result<NewLayer, Error> {
        let (upper, lowers) = self.overlay_dirs(key)?;

        let mut w = self.layer_writer()?;
        let write_err = |e| Error::io("writing a layer of", upper.clone(), e);
        let mut walker = Walker {
            upper: &upper,
            lowers: &lowers,
            opts,
            links: HashMap::new(),
            tar: w.tar(),
        };
        walker.dir(Path::new("")).map_err(write_err)?;
        self.finish_layer(w)
    }

    /// A layer to write entry by entry (a build's COPY writes the files it
    /// copies straight into its layer); [`Store::finish_layer`] stores it.
    pub fn layer_writer(&self) -> Result<LayerWriter, Error> {
        let tmp_dir = self.tmp_dir();
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| Error::io("creating a temp file in", &tmp_dir, e))?;
        let file = tmp
            .as_file()
            .try_clone()
            .map_err(|e| Error::io("opening", tmp.path(), e))?;
        let compressed = DigestingWriter::new(io::BufWriter::new(file));
        let gz = GzEncoder::new(compressed, flate2::Compression::fast());
        let mut tar = tar::Builder::new(LayerSink(DigestingWriter::new(gz)));
        tar.mode(tar::HeaderMode::Complete);
        Ok(LayerWriter { tmp, tar })
    }

    /// Ends the layer `w`, stores its blob and unpacks it.
    pub fn finish_layer(&self, w: LayerWriter) -> Result<NewLayer, Error> {
        let LayerWriter { tmp, tar } = w;
        let write_err = |e| Error::io("writing a layer to", tmp.path().to_path_buf(), e);
        let (diff_id, _, gz) = tar.into_inner().map_err(write_err)?.0.finish();
        let (blob, blob_size, mut file) = gz.finish().map_err(write_err)?.finish();
        file.flush().map_err(write_err)?;
        drop(file);
        self.persist_blob(tmp, &blob)?;
        self.ensure_layer(&blob, &diff_id)?;
        Ok(NewLayer {
            descriptor: Descriptor::new(OCI_LAYER_GZIP, blob, blob_size),
            diff_id,
        })
    }
}

/// Where a layer's tar goes: digested (the diff id), gzip'd, digested
/// again (the blob), into a temp file.
pub struct LayerSink(DigestingWriter<GzEncoder<DigestingWriter<io::BufWriter<File>>>>);

impl Write for LayerSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A layer being written: entries go to [`LayerWriter::tar`], paths
/// relative to the root (`etc/app.conf`), parents before what they hold.
pub struct LayerWriter {
    tmp: tempfile::NamedTempFile,
    tar: tar::Builder<LayerSink>,
}

impl LayerWriter {
    pub fn tar(&mut self) -> &mut tar::Builder<LayerSink> {
        &mut self.tar
    }
}

struct Walker<'a, W: Write> {
    upper: &'a Path,
    lowers: &'a [PathBuf],
    opts: &'a DiffOptions,
    /// (dev, inode) of files with several links → the first path written.
    links: HashMap<(u64, u64), PathBuf>,
    tar: &'a mut tar::Builder<W>,
}

impl<W: Write> Walker<'_, W> {
    fn in_lower(&self, rel: &Path) -> bool {
        self.lowers
            .iter()
            .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
    }

    fn header(&self, meta: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid().into());
        h.set_gid(meta.gid().into());
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        h.set_mtime(self.opts.clamp_mtime.map_or(mtime, |c| mtime.min(c)));
        h.set_size(0);
        h
    }

    fn is_mount_point(&self, rel: &Path, meta: &fs::Metadata) -> io::Result<bool> {
        let shown = format!("/{}", rel.display());
        if !self.opts.mount_points.contains(&shown) || self.in_lower(rel) {
            return Ok(false);
        }
        Ok(if meta.is_dir() {
            fs::read_dir(self.upper.join(rel))?.next().is_none()
        } else {
            meta.is_file() && meta.len() == 0
        })
    }

    fn dir(&mut self, rel: &Path) -> io::Result<()> {
        let mut names: Vec<_> = fs::read_dir(self.upper.join(rel))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let rel = rel.join(&name);
            let path = self.upper.join(&rel);
            let meta = fs::symlink_metadata(&path)?;
            let ft = meta.file_type();
            if self.is_mount_point(&rel, &meta)? {
                continue;
            }
            // overlayfs marks a deleted lower file with a 0/0 character device.
            if ft.is_char_device() && meta.rdev() == 0 {
                let mut wh = name.as_bytes().to_vec();
                wh.splice(0..0, b".wh.".iter().copied());
                let wh_path = rel.with_file_name(std::ffi::OsStr::from_bytes(&wh));
                let mut h = self.header(&meta, tar::EntryType::Regular);
                h.set_mode(0o600);
                self.tar.append_data(&mut h, wh_path, io::empty())?;
            } else if ft.is_dir() {
                let mut h = self.header(&meta, tar::EntryType::Directory);
                self.tar.append_data(&mut h, &rel, io::empty())?;
                let opaque = xattr::get(&path, "trusted.overlay.opaque")
                    .ok()
                    .flatten()
                    .is_some_and(|v| v == b"y");
                if opaque {
                    let mut h = self.header(&meta, tar::EntryType::Regular);
                    h.set_mode(0o600);
                    self.tar
                        .append_data(&mut h, rel.join(".wh..wh..opq"), io::empty())?;
                }
                self.dir(&rel)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&path)?;
                let mut h = self.header(&meta, tar::EntryType::Symlink);
                // A symlink's mode means nothing on Linux, and is not always
                // 0777: overlayfs applies the umask to one it makes on an
                // upper filesystem without POSIX ACLs (the VM guest's ext4).
                h.set_mode(0o777);
                self.tar.append_link(&mut h, &rel, target)?;
            } else if ft.is_file() {
                let key = (meta.dev(), meta.ino());
                if meta.nlink() > 1 {
                    if let Some(first) = self.links.get(&key) {
                        let mut h = self.header(&meta, tar::EntryType::Link);
                        self.tar.append_link(&mut h, &rel, first.clone())?;
                        continue;
                    }
                    self.links.insert(key, rel.clone());
                }
                let mut h = self.header(&meta, tar::EntryType::Regular);
                h.set_size(meta.len());
                self.tar.append_data(&mut h, &rel, File::open(&path)?)?;
            } else {
                let kind = if ft.is_char_device() {
                    tar::EntryType::Char
                } else if ft.is_block_device() {
                    tar::EntryType::Block
                } else if ft.is_fifo() {
                    tar::EntryType::Fifo
                } else {
                    // Sockets have no tar form; docker leaves them out too.
                    continue;
                };
                let mut h = self.header(&meta, kind);
                let rdev = meta.rdev();
                h.set_device_major(nix::sys::stat::major(rdev) as u32)?;
                h.set_device_minor(nix::sys::stat::minor(rdev) as u32)?;
                self.tar.append_data(&mut h, &rel, io::empty())?;
            }
        }
        Ok(())
    }
}
