//! `import`: a root filesystem tar (plain, gzip or zstd) as a one-layer
//! image for the host platform, with no command (like `docker import`).

use std::fs::File;
use std::io::Read;

use crate::digest::DigestingReader;
use crate::manifest::{Descriptor, Manifest, OCI_CONFIG};
use crate::registry::Platform;
use crate::unpack::{decompress, expect_tar};
use crate::{Error, Image, Reference, Store};

/// Makes a one-layer image from `rootfs_tar`, tagged `name` if given.
pub fn import(
    store: &Store,
    rootfs_tar: &mut dyn Read,
    name: Option<&Reference>,
    platform: Option<&Platform>,
) -> Result<Image, Error> {
    let (layer_digest, layer_size) = store.ingest_blob(rootfs_tar)?;
    let mut ours = vec![layer_digest.clone()];
    let platform = platform.cloned().unwrap_or_else(Platform::host);
    let result = commit(store, &layer_digest, layer_size, name, &platform, &mut ours);
    if result.is_err() {
        if let Err(e) = store.discard_blobs(&ours) {
            tracing::warn!(error = %e, "cleaning up after a failed import");
        }
    }
    result
}

fn commit(
    store: &Store,
    layer_digest: &str,
    layer_size: u64,
    name: Option<&Reference>,
    platform: &Platform,
    ours: &mut Vec<String>,
) -> Result<Image, Error> {
    let path = store.blob_path(layer_digest);
    let file = File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
    let read_err = |source| Error::BlobRead {
        digest: layer_digest.to_string(),
        source,
    };
    let (compression, stream) = decompress(file).map_err(read_err)?;
    let stream = expect_tar(stream)
        .map_err(read_err)?
        .ok_or(Error::NotATar {
            expected: "a root filesystem tarball (plain, gzip or zstd)",
        })?;
    let (diff_id, _) = DigestingReader::new(stream).finish().map_err(read_err)?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut config = serde_json::json!({
        "created": now,
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": now, "created_by": "isola import", "comment": "imported from a tarball" }],
    });
    if let Some(v) = &platform.variant {
        config["variant"] = serde_json::json!(v);
    }
    let config = serde_json::to_vec(&config).expect("configs serialize");
    let config_digest = store.put_blob(&config)?;
    ours.push(config_digest.clone());
    let manifest = Manifest::oci(
        Descriptor::new(OCI_CONFIG, config_digest, config.len() as u64),
        vec![Descriptor::new(
            compression.layer_media_type(),
            layer_digest.to_string(),
            layer_size,
        )],
    );
    let manifest_digest =
        store.put_blob(&serde_json::to_vec(&manifest).expect("manifests serialize"))?;
    ours.push(manifest_digest.clone());
    store.commit_local(&manifest_digest, name)
}
