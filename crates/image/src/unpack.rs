//! Layer unpacking: a layer tar (gzip, zstd or plain, told apart by magic
//! bytes) into one directory laid out for overlayfs. Owns the safety rules:
//! every entry lands inside the directory or the layer is rejected.
//!
//! - Paths are cleaned component by component: an absolute path is taken
//!   relative to the layer's root (as docker and containerd do), `..` is
//!   rejected, never resolved. Each parent component must be a real
//!   directory created by this layer: a symlink parent is rejected, so a
//!   symlink is never followed while writing. Files are created with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW`. The directory is fresh and private to
//!   the caller, so checks and writes cannot race with anyone else.
//! - Whiteouts become overlayfs whiteouts: `.wh.<name>` a 0/0 character
//!   device, `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr.
//! - Hardlink targets must be earlier entries of this layer.
//! - Ownership, modes (after chown, which clears set-id bits), mtimes
//!   (directories last) and xattrs are applied; `security.*` xattrs that the
//!   kernel refuses are skipped, and `trusted.overlay.*` from the tar is
//!   dropped: only this module decides overlay metadata.
//!
//! The diff id (sha256 of the uncompressed stream) is computed on the way.
//! This module does not clean up on failure: the store unpacks into a temp
//! dir and deletes it.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use filetime::FileTime;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use tar::EntryType;

use crate::digest::DigestingReader;

/// Why a layer could not be unpacked. The store wraps it with the layer digest.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("reading the layer stream failed (truncated or corrupt)")]
    Stream {
        #[source]
        source: io::Error,
    },
    #[error("entry \"{entry}\": reading its content failed (truncated or corrupt stream)")]
    EntryStream {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("entry \"{entry}\" rejected: {reason}")]
    Rejected { entry: String, reason: String },
    #[error("entry \"{entry}\": {op}")]
    Io {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The result of unpacking one layer.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: String,
    /// Length of the uncompressed tar stream.
    pub diff_size: u64,
    /// Sum of regular file sizes.
    pub size: u64,
}

/// Compression of a layer, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for this compression.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::None => crate::manifest::OCI_LAYER,
            Compression::Gzip => crate::manifest::OCI_LAYER_GZIP,
            Compression::Zstd => crate::manifest::OCI_LAYER_ZSTD,
        }
    }
}

/// Wraps `reader` in the decompressor its magic bytes call for.
pub fn decompress<'a>(reader: impl Read + 'a) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let kind = Compression::sniff(buf.fill_buf()?);
    let r: Box<dyn Read + 'a> = match kind {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buf)?),
        Compression::None => Box::new(buf),
    };
    Ok((kind, r))
}

/// `stream` (already decompressed) if it starts like a tar archive, with
/// nothing consumed; `None` if it does not (an empty stream, a short one,
/// or a first block whose header checksum is wrong), so that callers can
/// say "not a tar archive" instead of quoting the tar reader's complaint
/// about bytes it took for a header.
pub fn expect_tar<'a>(mut stream: Box<dyn Read + 'a>) -> io::Result<Option<Box<dyn Read + 'a>>> {
    let mut block = Vec::with_capacity(512);
    (&mut stream).take(512).read_to_end(&mut block)?;
    if block.len() < 512 || !is_tar_header(&block) {
        return Ok(None);
    }
    Ok(Some(Box::new(io::Cursor::new(block).chain(stream))))
}

/// Whether a 512-byte block is a tar header (its checksum field matches
/// the sum of its bytes, that field counted as spaces) or the all-zero
/// end of an empty archive.
fn is_tar_header(block: &[u8]) -> bool {
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| !matches!(c, '\0' | ' '))
        .collect();
    let Ok(stored) = u64::from_str_radix(&text, 8) else {
        return false;
    };
    let unsigned: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    // Some old tars summed signed bytes.
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

/// Unpacks the layer `blob` into the empty directory `dest`.
pub fn unpack_layer(blob: &mut dyn Read, dest: &Path) -> Result<Unpacked, UnpackError> {
    let (_, stream) = decompress(blob).map_err(|source| UnpackError::Stream { source })?;
    let mut archive = tar::Archive::new(DigestingReader::new(stream));
    let mut dirs: Vec<(PathBuf, u32, FileTime)> = Vec::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 128 * 1024];
    // Directories known to be real directories of this layer: saves an
    // lstat per parent component per entry. Only this function writes
    // under `dest`, so the set stays true as long as removals update it.
    let mut dirs_seen: HashSet<PathBuf> = HashSet::new();
    for entry in archive
        .entries()
        .map_err(|source| UnpackError::Stream { source })?
    {
        let mut entry = entry.map_err(|source| UnpackError::Stream { source })?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let reject = |reason: String| UnpackError::Rejected {
            entry: name.clone(),
            reason,
        };
        let Some(rel) = clean_path(&raw).map_err(reject)? else {
            continue; // the layer root itself ("./")
        };
        let file_name = rel
            .file_name()
            .expect("cleaned paths end in a name")
            .as_bytes();
        let parent = ensure_parent(dest, &rel, &name, &mut dirs_seen)?;

        if let Some(wh) = file_name.strip_prefix(b".wh.") {
            whiteout(&parent, wh, &name, &mut dirs_seen)?;
            continue;
        }
        let path = parent.join(OsStr::from_bytes(file_name));
        let io_err = |op: &'static str| {
            let entry = name.clone();
            move |source| UnpackError::Io { entry, op, source }
        };
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = header.mode().map_err(io_err("reading its mode"))? & 0o7777;
        let pax = pax_meta(&mut entry);
        let mtime = pax
            .mtime
            .unwrap_or_else(|| FileTime::from_unix_time(header.mtime().unwrap_or(0) as i64, 0));
        let xattrs = pax.xattrs;

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                remove_existing(&path, false, &mut dirs_seen)
                    .map_err(io_err("replacing an earlier entry"))?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                    .open(&path)
                    .map_err(io_err("creating the file"))?;
                copy_entry(&mut entry, &mut file, &mut buf, &name)?;
                size += header.size().unwrap_or(0);
            }
            EntryType::Directory => {
                if !remove_existing(&path, true, &mut dirs_seen)
                    .map_err(io_err("replacing an earlier entry"))?
                {
                    DirBuilder::new()
                        .mode(0o755)
                        .create(&path)
                        .map_err(io_err("creating the directory"))?;
                }
                dirs_seen.insert(path.clone());
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| reject("symlink without a target".to_string()))?
                    .into_owned();
                remove_existing(&path, false, &mut dirs_seen)
                    .map_err(io_err("replacing an earlier entry"))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(io_err("creating the symlink"))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| reject("hardlink without a target".to_string()))?
                    .into_owned();
                let target_name = String::from_utf8_lossy(&target).into_owned();
                let rel_target = clean_path(&target)
                    .map_err(|r| {
                        reject(format!(
                            "hardlink target \"{target_name}\" is outside the layer: {r}"
                        ))
                    })?
                    .ok_or_else(|| reject("hardlink to the layer root".to_string()))?;
                let target_path = existing_inside(dest, &rel_target)
                    .map_err(|r| reject(format!("hardlink target \"{target_name}\": {r}")))?;
                if target_path != path {
                    remove_existing(&path, false, &mut dirs_seen)
                        .map_err(io_err("replacing an earlier entry"))?;
                    // link(2) does not follow a symlink target on Linux.
                    fs::hard_link(&target_path, &path).map_err(io_err("creating the hardlink"))?;
                }
                continue; // a hardlink shares its target's metadata
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (sflag, dev) = match kind {
                    EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    _ => {
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        let f = if kind == EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (f, makedev(major.into(), minor.into()))
                    }
                };
                remove_existing(&path, false, &mut dirs_seen)
                    .map_err(io_err("replacing an earlier entry"))?;
                mknod(&path, sflag, Mode::from_bits_truncate(mode), dev)
                    .map_err(|e| io::Error::from_raw_os_error(e as i32))
                    .map_err(io_err("creating the device node or fifo"))?;
            }
            EntryType::XGlobalHeader | EntryType::XHeader => continue,
            other => {
                return Err(reject(format!(
                    "unsupported entry type {:?}",
                    other.as_byte() as char
                )));
            }
        }

        let uid = pax.uid.unwrap_or_else(|| header.uid().unwrap_or(0) as u32);
        let gid = pax.gid.unwrap_or_else(|| header.gid().unwrap_or(0) as u32);
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
            .map_err(io_err("setting its owner"))?;
        for (key, value) in xattrs {
            set_xattr(&path, &key, &value, &name)?;
        }
        if kind == EntryType::Directory {
            dirs.push((path, mode, mtime));
            continue;
        }
        if kind != EntryType::Symlink {
            fs::set_permissions(&path, Permissions::from_mode(mode))
                .map_err(io_err("setting its mode"))?;
        }
        filetime::set_symlink_file_times(&path, mtime, mtime)
            .map_err(io_err("setting its mtime"))?;
    }
    // Directories last: their mode may forbid writing, and creating
    // children changes their mtime.
    for (path, mode, mtime) in dirs.into_iter().rev() {
        let entry = path
            .strip_prefix(dest)
            .unwrap_or(&path)
            .display()
            .to_string();
        let io_err = |op: &'static str| {
            let entry = entry.clone();
            move |source| UnpackError::Io { entry, op, source }
        };
        fs::set_permissions(&path, Permissions::from_mode(mode))
            .map_err(io_err("setting its mode"))?;
        filetime::set_symlink_file_times(&path, mtime, mtime)
            .map_err(io_err("setting its mtime"))?;
    }
    let (diff_id, diff_size) = archive
        .into_inner()
        .finish()
        .map_err(|source| UnpackError::Stream { source })?;
    Ok(Unpacked {
        diff_id,
        diff_size,
        size,
    })
}

/// The relative path of an entry: `./`, `.` and a leading `/` dropped (an
/// absolute name is relative to the layer's root, as in docker); `None` for
/// the root. `..` is an error.
pub(crate) fn clean_path(raw: &[u8]) -> Result<Option<PathBuf>, String> {
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::Prefix(_) => return Err("a path prefix is not a tar path".to_string()),
            Component::ParentDir => {
                return Err(
                    "path contains \"..\": it would land outside the layer directory".to_string(),
                )
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Makes sure every parent component of `rel` is a real directory inside
/// `dest` (creating missing ones); returns the parent's full path.
fn ensure_parent(
    dest: &Path,
    rel: &Path,
    entry: &str,
    dirs_seen: &mut HashSet<PathBuf>,
) -> Result<PathBuf, UnpackError> {
    let mut cur = dest.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(cur);
    };
    for c in parent.components() {
        cur.push(c);
        if dirs_seen.contains(&cur) {
            continue;
        }
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(UnpackError::Rejected {
                    entry: entry.to_string(),
                    reason: format!(
                        "its parent \"{}\" is a symlink: writing through it could land outside the layer directory",
                        cur.strip_prefix(dest).unwrap_or(&cur).display()
                    ),
                })
            }
            Ok(_) => {
                return Err(UnpackError::Rejected {
                    entry: entry.to_string(),
                    reason: format!(
                        "its parent \"{}\" is not a directory",
                        cur.strip_prefix(dest).unwrap_or(&cur).display()
                    ),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .mode(0o755)
                    .create(&cur)
                    .map_err(|source| UnpackError::Io {
                        entry: entry.to_string(),
                        op: "creating a parent directory",
                        source,
                    })?;
            }
            Err(source) => {
                return Err(UnpackError::Io {
                    entry: entry.to_string(),
                    op: "checking a parent directory",
                    source,
                })
            }
        }
        dirs_seen.insert(cur.clone());
    }
    Ok(cur)
}

/// The full path of an existing non-directory `rel` inside `dest` reached
/// through real directories only.
fn existing_inside(dest: &Path, rel: &Path) -> Result<PathBuf, String> {
    let mut cur = dest.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        cur.push(c);
        let last = i + 1 == comps.len();
        match fs::symlink_metadata(&cur) {
            Ok(m) if !last && m.is_dir() => {}
            Ok(m) if !last && m.file_type().is_symlink() => {
                return Err(
                    "it goes through a symlink, which could lead outside the layer directory"
                        .into(),
                )
            }
            Ok(_) if !last => return Err("a parent is not a directory".into()),
            Ok(m) if m.is_dir() => return Err("it is a directory".into()),
            Ok(_) => {}
            Err(_) => return Err("it is not an earlier entry of this layer".into()),
        }
    }
    Ok(cur)
}

/// Removes whatever is at `path`; with `keep_dir`, an existing directory
/// stays (returns true).
fn remove_existing(
    path: &Path,
    keep_dir: bool,
    dirs_seen: &mut HashSet<PathBuf>,
) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() && keep_dir => Ok(true),
        Ok(m) if m.is_dir() => {
            dirs_seen.retain(|d| !d.starts_with(path));
            fs::remove_dir_all(path).map(|_| false)
        }
        Ok(_) => fs::remove_file(path).map(|_| false),
    }
}

/// Records a whiteout the overlayfs way.
fn whiteout(
    parent: &Path,
    wh: &[u8],
    entry: &str,
    dirs_seen: &mut HashSet<PathBuf>,
) -> Result<(), UnpackError> {
    let io_err = |op: &'static str| {
        let entry = entry.to_string();
        move |source| UnpackError::Io { entry, op, source }
    };
    if wh == b".wh..opq" {
        return xattr::set(parent, "trusted.overlay.opaque", b"y").map_err(io_err(
            "marking the directory opaque (trusted.overlay.opaque)",
        ));
    }
    if wh.starts_with(b".wh.") || wh.is_empty() {
        // Other `.wh..wh.` names are aufs bookkeeping (hardlink dirs): skip.
        return Ok(());
    }
    let target = parent.join(OsStr::from_bytes(wh));
    remove_existing(&target, false, dirs_seen).map_err(io_err("replacing an earlier entry"))?;
    mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
        .map_err(|e| io::Error::from_raw_os_error(e as i32))
        .map_err(io_err("creating the whiteout device"))
}

/// What PAX records say about an entry beyond its ustar header: xattrs,
/// and owners and mtimes too large or too precise for the header fields.
struct PaxMeta {
    xattrs: Vec<(String, Vec<u8>)>,
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: Option<FileTime>,
}

fn pax_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> PaxMeta {
    let mut meta = PaxMeta {
        xattrs: Vec::new(),
        uid: None,
        gid: None,
        mtime: None,
    };
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            let (Ok(key), Ok(value)) = (ext.key(), ext.value()) else {
                if let Ok(key) = ext.key() {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        meta.xattrs
                            .push((name.to_string(), ext.value_bytes().to_vec()));
                    }
                }
                continue;
            };
            match key {
                "uid" => meta.uid = value.parse().ok(),
                "gid" => meta.gid = value.parse().ok(),
                "mtime" => {
                    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
                    let nanos = format!("{frac:0<9}").get(..9).and_then(|n| n.parse().ok());
                    if let (Ok(secs), Some(nanos)) = (secs.parse::<i64>(), nanos) {
                        meta.mtime = Some(FileTime::from_unix_time(secs, nanos));
                    }
                }
                _ => {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        meta.xattrs
                            .push((name.to_string(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
    }
    meta
}

fn set_xattr(path: &Path, key: &str, value: &[u8], entry: &str) -> Result<(), UnpackError> {
    if key.starts_with("trusted.overlay.") {
        tracing::debug!(entry, key, "dropping overlay xattr from the layer tar");
        return Ok(());
    }
    match xattr::set(path, key, value) {
        Ok(()) => Ok(()),
        Err(e) if key.starts_with("security.") => {
            tracing::debug!(entry, key, error = %e, "skipping security xattr");
            Ok(())
        }
        Err(e)
            if e.raw_os_error() == Some(nix::libc::EPERM)
                && fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            // user.* xattrs are not allowed on symlinks.
            tracing::debug!(entry, key, "skipping an xattr on a symlink");
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(nix::libc::EOPNOTSUPP) => {
            tracing::warn!(
                entry,
                key,
                "the filesystem does not support this xattr; skipped"
            );
            Ok(())
        }
        Err(source) => Err(UnpackError::Io {
            entry: entry.to_string(),
            op: "setting an xattr",
            source,
        }),
    }
}

fn copy_entry(
    from: &mut dyn Read,
    to: &mut fs::File,
    buf: &mut [u8],
    entry: &str,
) -> Result<(), UnpackError> {
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(UnpackError::EntryStream {
                    entry: entry.to_string(),
                    source,
                })
            }
        };
        to.write_all(&buf[..n]).map_err(|source| UnpackError::Io {
            entry: entry.to_string(),
            op: "writing the file",
            source,
        })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tar_streams_pass_expect_tar() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "a", &b"hi"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        let mut passed = expect_tar(Box::new(&bytes[..])).unwrap().unwrap();
        let mut back = Vec::new();
        passed.read_to_end(&mut back).unwrap();
        assert_eq!(back, bytes, "nothing consumed");
        assert!(expect_tar(Box::new(&[0u8; 1024][..])).unwrap().is_some());
        let passwd = b"root:x:0:0:root:/root:/bin/bash\n".repeat(40);
        assert!(expect_tar(Box::new(&passwd[..])).unwrap().is_none());
        assert!(expect_tar(Box::new(&b"short"[..])).unwrap().is_none());
        assert!(expect_tar(Box::new(&b""[..])).unwrap().is_none());
    }
}
