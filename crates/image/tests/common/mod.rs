//! Shared helpers for the image crate's tests: a store in a temp dir, layer
//! tars written entry by entry (raw headers, so tests can write what a
//! malicious layer would), images committed straight into the store, and
//! checks that a failed operation left nothing behind.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::Path;

use image::{Error, Image, Reference, Store};

pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

impl TestStore {
    pub fn new() -> TestStore {
        let dir = tempfile::Builder::new()
            .prefix("isola-image-test-")
            .tempdir()
            .unwrap();
        let store = Store::open(dir.path()).unwrap();
        TestStore { dir, store }
    }

    /// Entries of a store sub-directory.
    pub fn entries(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.store.root().join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(".tmp-"))
            .collect();
        v.sort();
        v
    }

    /// Asserts that no temp file, unpacked layer or image record exists.
    pub fn assert_nothing_partial(&self) {
        assert_eq!(self.entries("tmp"), Vec::<String>::new(), "temp files left");
        assert_eq!(
            self.entries("layers"),
            Vec::<String>::new(),
            "layer dirs left"
        );
        assert_eq!(
            self.entries("images"),
            Vec::<String>::new(),
            "image records left"
        );
    }
}

/// Unmounts and deletes a snapshot when dropped, so a failing test leaves
/// no mount behind.
pub struct SnapshotGuard<'a> {
    pub store: &'a Store,
    pub key: String,
}

impl Drop for SnapshotGuard<'_> {
    fn drop(&mut self) {
        let _ = self.store.remove_snapshot(&self.key);
    }
}

/// A layer tar built entry by entry.
pub struct LayerTar {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for LayerTar {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerTar {
    pub fn new() -> Self {
        LayerTar {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// Appends an entry with the raw `path` and `link` bytes (no checks).
    pub fn raw(
        &mut self,
        kind: tar::EntryType,
        path: &str,
        link: Option<&str>,
        data: &[u8],
        mode: u32,
    ) -> &mut Self {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(l) = link {
                old.linkname = [0; 100];
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.raw(tar::EntryType::Directory, path, None, b"", 0o755)
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.raw(tar::EntryType::Regular, path, None, data, 0o644)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(tar::EntryType::Symlink, path, Some(target), b"", 0o777)
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(tar::EntryType::Link, path, Some(target), b"", 0o644)
    }

    /// Appends an entry through the builder's normal API (PAX extensions,
    /// owners, devices).
    pub fn with_header(&mut self, header: &mut tar::Header, path: &str, data: &[u8]) -> &mut Self {
        self.builder.append_data(header, path, data).unwrap();
        self
    }

    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.builder
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Compress {
    None,
    Gzip,
    Zstd,
}

pub fn compress(tar: &[u8], how: Compress) -> Vec<u8> {
    match how {
        Compress::None => tar.to_vec(),
        Compress::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).unwrap();
            gz.finish().unwrap()
        }
        Compress::Zstd => zstd::encode_all(tar, 3).unwrap(),
    }
}

/// Writes blobs, config and manifest for an image of `tars` (compressed
/// `how`) into the store; returns the manifest digest, not yet committed.
pub fn write_image(store: &Store, tars: &[Vec<u8>], how: Compress) -> String {
    let diff_ids: Vec<String> = tars.iter().map(|t| image::digest::sha256(t)).collect();
    let blobs: Vec<Vec<u8>> = tars.iter().map(|t| compress(t, how)).collect();
    write_image_blobs(store, &blobs, &diff_ids, serde_json::json!({"Cmd": ["sh"]}))
}

/// Like [`write_image`] with blobs and diff ids given as they are.
pub fn write_image_blobs(
    store: &Store,
    blobs: &[Vec<u8>],
    diff_ids: &[String],
    config: serde_json::Value,
) -> String {
    let mut layers = Vec::new();
    for b in blobs {
        let d = store.put_blob(b).unwrap();
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d, "size": b.len(),
        }));
    }
    let config = serde_json::json!({
        "created": "2024-05-01T10:00:00Z",
        "architecture": testkit::host_arch(), "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = store.put_blob(&config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers,
    });
    store
        .put_blob(&serde_json::to_vec(&manifest).unwrap())
        .unwrap()
}

/// Commits an image of `tars` named `name`.
pub fn commit(store: &Store, tars: &[Vec<u8>], how: Compress, name: &str) -> Result<Image, Error> {
    let m = write_image(store, tars, how);
    store.commit_image(&m, Some(&Reference::parse(name).unwrap()))
}

/// A busybox OCI layout tarred (an `oci-archive`), in `dir`.
pub fn busybox_oci_archive(dir: &Path, name: &str, tag: &str) -> std::path::PathBuf {
    let layout = dir.join("layout");
    testkit::oci_layout(&layout, name, tag);
    let out = dir.join("busybox-oci.tar");
    testkit::tar_dir(&layout, &out);
    out
}

/// The whole error chain on one line, as the CLI prints it.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
