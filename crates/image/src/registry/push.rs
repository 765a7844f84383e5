//! `push`: an image's layers, config and manifest from the store to a
//! registry, blobs the registry already has skipped. The manifest is sent
//! as the bytes the store holds, so the pushed digest is the image's own.

use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;

use super::auth::AuthStore;
use super::error::{classify, Fetching, RegistryError};
use super::pull::{full_name, oci_reference};
use super::transport::Transport;
use crate::manifest::OCI_MANIFEST;
use crate::progress::{Mode, Progress, Stream};
use crate::reference::Reference;
use crate::store::Store;
use crate::Image;

/// What a push may be told.
#[derive(Debug, Clone)]
pub struct PushOptions {
    pub transport: Transport,
    pub auth: AuthStore,
    pub progress: Mode,
    pub progress_stream: Stream,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `127.0.0.1:5000/app:1`.
    pub reference: String,
    pub manifest_digest: String,
    pub manifest_size: u64,
    /// Blobs sent (the rest the registry had).
    pub uploaded: usize,
}

/// Pushes `image` as `target` (a tag; `latest` if none).
pub fn push(
    store: &Store,
    image: &Image,
    target: &Reference,
    opts: &PushOptions,
) -> Result<Pushed, RegistryError> {
    let progress = Progress::on(opts.progress, opts.progress_stream);
    let reference = full_name(target);
    let oci_ref = oci_reference(target);
    let registry = target.registry.clone();
    let timeout = opts.transport.timeout;
    let err = |what: &str| {
        let what = what.to_string();
        let (registry, reference) = (registry.clone(), reference.clone());
        move |e| classify(e, &registry, &reference, Fetching::Blob(&what), timeout)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RegistryError::Runtime)?;
    let client = opts.transport.client(&registry);
    let auth = match opts.auth.credentials(&registry)? {
        Some(c) => c.to_registry_auth(),
        None => RegistryAuth::Anonymous,
    };
    progress.message(&format!(
        "The push refers to repository [{}]",
        target.name()
    ));
    rt.block_on(client.auth(&oci_ref, &auth, RegistryOperation::Push))
        .map_err(err("credentials"))?;

    let read = |digest: &str, what: &str| {
        store
            .read_blob(digest, what)
            .map_err(|source| RegistryError::Blob {
                reference: reference.clone(),
                digest: digest.to_string(),
                source,
            })
    };
    let layers = store
        .layer_descriptors(image)
        .map_err(|source| RegistryError::Blob {
            reference: reference.clone(),
            digest: image.manifest_digest.clone(),
            source,
        })?;
    let mut uploaded = 0;
    // Top layer first, as docker lists them.
    for layer in layers.iter().rev() {
        let exists = rt
            .block_on(client.blob_exists(&oci_ref, &layer.digest))
            .map_err(err(&layer.digest))?;
        if exists {
            progress.layer_status(&layer.digest, "Layer already exists");
            continue;
        }
        // Whole in memory: oci-client's upload takes bytes; layers that a
        // build makes are small, and the pulled ones the registry often has.
        let data = read(&layer.digest, "layer")?;
        rt.block_on(client.push_blob(&oci_ref, data, &layer.digest))
            .map_err(err(&layer.digest))?;
        uploaded += 1;
        progress.layer_status(&layer.digest, "Pushed");
    }
    let exists = rt
        .block_on(client.blob_exists(&oci_ref, &image.id))
        .map_err(err(&image.id))?;
    if !exists {
        let config = read(&image.id, "image config")?;
        rt.block_on(client.push_blob(&oci_ref, config, &image.id))
            .map_err(err(&image.id))?;
        uploaded += 1;
    }
    let manifest = read(&image.manifest_digest, "manifest")?;
    let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
        .unwrap_or_else(|| OCI_MANIFEST.to_string());
    let content_type = media_type
        .parse()
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(OCI_MANIFEST));
    let size = manifest.len() as u64;
    rt.block_on(client.push_manifest_raw(&oci_ref, manifest, content_type))
        .map_err(err("the manifest"))?;
    progress.message(&format!(
        "{}: digest: {} size: {size}",
        target.tag.as_deref().unwrap_or("latest"),
        image.manifest_digest
    ));
    Ok(Pushed {
        reference,
        manifest_digest: image.manifest_digest.clone(),
        manifest_size: size,
        uploaded,
    })
}
