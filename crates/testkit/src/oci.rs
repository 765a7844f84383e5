//! OCI image fixtures: writes real OCI image layouts (the format `skopeo copy
//! oci:<dir>:<tag>` reads) from busybox or from layer tars a test builds, and
//! tars a directory (an OCI layout tarred is an `oci-archive:`).
//! Written by hand on purpose: tests must not depend on the `image` crate
//! they check.

use std::fs;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

/// One image to write into an OCI layout.
pub struct LayoutImage {
    /// Image name without tag, e.g. `busybox` or `127.0.0.1:5000/busybox`;
    /// recorded as the `io.containerd.image.name` annotation (`name:tag`).
    pub name: String,
    /// Tag, recorded as `org.opencontainers.image.ref.name` (what
    /// `skopeo copy oci:<dir>:<tag>` selects).
    pub tag: String,
    /// Uncompressed layer tars, bottom first; each is stored gzip-compressed.
    pub layers: Vec<Vec<u8>>,
    /// The image config's `config` object (`Cmd`, `Env`, `Entrypoint`, ...).
    pub config: serde_json::Value,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    pub os: String,
}

impl LayoutImage {
    /// An image for the host's platform with the given layers and config.
    pub fn new(name: &str, tag: &str, layers: Vec<Vec<u8>>, config: serde_json::Value) -> Self {
        LayoutImage {
            name: name.to_string(),
            tag: tag.to_string(),
            layers,
            config,
            architecture: host_arch().to_string(),
            os: "linux".to_string(),
        }
    }
}

/// The host architecture in OCI/Go spelling.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let sum = Sha256::digest(data);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn write_blob(dir: &Path, data: &[u8]) -> String {
    let digest = sha256_digest(data);
    let path = dir.join("blobs/sha256").join(&digest["sha256:".len()..]);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    digest
}

/// Writes `image` into the OCI layout at `dir` (created if missing; an
/// existing layout keeps its other images, and a previous image with the
/// same tag is replaced in `index.json`). Returns the manifest digest
/// (`sha256:<hex>`).
pub fn write_oci_layout(dir: &Path, image: &LayoutImage) -> String {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();

    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut history = Vec::new();
    for tar in &image.layers {
        diff_ids.push(sha256_digest(tar));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(tar).unwrap();
        let blob = gz.finish().unwrap();
        let digest = write_blob(dir, &blob);
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest,
            "size": blob.len(),
        }));
        history.push(serde_json::json!({
            "created": "2024-01-01T00:00:00Z",
            "created_by": "testkit layer",
        }));
    }
    let config = serde_json::json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": image.architecture,
        "os": image.os,
        "config": image.config,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = write_blob(dir, &config_bytes);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_bytes.len(),
        },
        "layers": layer_descs,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = write_blob(dir, &manifest_bytes);

    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = match fs::read(&index_path) {
        Ok(b) => serde_json::from_slice(&b).unwrap(),
        Err(_) => serde_json::json!({ "schemaVersion": 2, "manifests": [] }),
    };
    let manifests = index["manifests"].as_array_mut().unwrap();
    manifests
        .retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != image.tag.as_str());
    manifests.push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest,
        "size": manifest_bytes.len(),
        "platform": { "architecture": image.architecture, "os": image.os },
        "annotations": {
            "org.opencontainers.image.ref.name": image.tag,
            "io.containerd.image.name": format!("{}:{}", image.name, image.tag),
        },
    }));
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    manifest_digest
}

/// An uncompressed tar of a busybox root filesystem (see
/// [`crate::write_busybox_rootfs`]), entries relative (`bin/busybox`),
/// owned by root, with a fixed mtime.
pub fn busybox_layer_tar() -> Vec<u8> {
    let root = tempfile::Builder::new()
        .prefix("isola-busybox-")
        .tempdir()
        .unwrap();
    crate::write_busybox_rootfs(root.path());
    tar_bytes(root.path())
}

/// An uncompressed, deterministic tar of the tree at `dir`.
pub(crate) fn layer_tar_of(dir: &Path) -> Vec<u8> {
    tar_bytes(dir)
}

fn tar_bytes(dir: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    append_tree(&mut builder, dir, Path::new(""));
    builder.into_inner().unwrap()
}

fn append_tree<W: Write>(builder: &mut tar::Builder<W>, root: &Path, rel: &Path) {
    let mut entries: Vec<_> = fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    for name in entries {
        let rel = rel.join(name);
        let full = root.join(&rel);
        builder.append_path_with_name(&full, &rel).unwrap();
        if fs::symlink_metadata(&full).unwrap().is_dir() {
            append_tree(builder, root, &rel);
        }
    }
}

/// Writes a busybox image as `name:tag` into the OCI layout at `dir`
/// (created if missing). Its config runs `sh` with a standard `PATH`.
/// Returns the manifest digest. `skopeo copy oci:<dir>:<tag> ...` reads it.
pub fn oci_layout(dir: &Path, name: &str, tag: &str) -> String {
    let image = LayoutImage::new(
        name,
        tag,
        vec![busybox_layer_tar()],
        serde_json::json!({
            "Cmd": ["sh"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        }),
    );
    write_oci_layout(dir, &image)
}

/// Tars the contents of `dir` (paths relative to it, no compression) into
/// the file `out`: an OCI layout tarred this way is an `oci-archive:`.
pub fn tar_dir(dir: &Path, out: &Path) {
    fs::write(out, tar_bytes(dir)).unwrap();
}
