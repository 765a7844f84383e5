//! `pull`: reference → manifest (through an index to one platform) →
//! config and layer blobs into the store → image record. Owns the order of
//! those steps and what is shown while they run; verification and unpacking
//! belong to the store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use oci_client::manifest::{
    OciDescriptor, OciImageIndex, OciImageManifest, IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::Reference as OciReference;

use super::auth::AuthStore;
use super::error::{classify, Fetching, RegistryError};
use super::fetch::Source;
use super::platform::{self, Platform};
use super::transport::Transport;
use crate::progress::{LayerProgress, Mode, Progress};
use crate::reference::Reference;
use crate::store::Store;
use crate::Image;

/// Layers downloaded at once: docker's default, enough to fill a link
/// without opening a connection per layer.
const CONCURRENT_DOWNLOADS: usize = 3;

/// What a pull may be told.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Platform to choose from a multi-platform image; the host's if None.
    pub platform: Option<Platform>,
    pub transport: Transport,
    pub auth: AuthStore,
    pub progress: Mode,
}

/// What a pull produced.
#[derive(Debug)]
pub struct Pulled {
    pub image: Image,
    /// The full reference, e.g. `127.0.0.1:5000/busybox:latest`.
    pub reference: String,
    /// Digest of the (single-platform) manifest stored.
    pub manifest_digest: String,
    /// False when every blob was already in the store.
    pub downloaded: bool,
}

/// Media types `pull` asks for and understands.
const MANIFEST_TYPES: [&str; 4] = [
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
];

enum Fetched {
    Index(OciImageIndex),
    Manifest(Box<OciImageManifest>),
}

/// Pulls `name` (`busybox`, `127.0.0.1:5000/busybox:1.36`, `...@sha256:...`)
/// into `store`. Blobs already in the store are not fetched again.
pub fn pull(store: &Store, name: &str, opts: &PullOptions) -> Result<Pulled, RegistryError> {
    let progress = Progress::new(opts.progress);
    let explicit_tag = has_tag_or_digest(name);
    let parsed = Reference::parse(name)?;
    let tag = parsed
        .tag
        .clone()
        .or_else(|| parsed.digest.is_none().then(|| "latest".to_string()));
    if !explicit_tag {
        progress.message("Using default tag: latest");
    }
    let registry = parsed.registry.clone();
    let repo_name = format!("{}/{}", registry, parsed.repository);
    let reference = match (&tag, &parsed.digest) {
        (_, Some(d)) => format!("{repo_name}@{d}"),
        (Some(t), None) => format!("{repo_name}:{t}"),
        (None, None) => unreachable!("a reference without digest gets the default tag"),
    };
    let oci_ref = match (&tag, &parsed.digest) {
        (Some(t), Some(d)) => OciReference::with_tag_and_digest(
            registry.clone(),
            parsed.repository.clone(),
            t.clone(),
            d.clone(),
        ),
        (_, Some(d)) => {
            OciReference::with_digest(registry.clone(), parsed.repository.clone(), d.clone())
        }
        (Some(t), None) => {
            OciReference::with_tag(registry.clone(), parsed.repository.clone(), t.clone())
        }
        (None, None) => unreachable!(),
    };
    let auth = match opts.auth.credentials(&registry)? {
        Some(c) => c.to_registry_auth(),
        None => RegistryAuth::Anonymous,
    };
    let client = opts.transport.client(&registry);
    // A multi-thread runtime drives the sockets while the download threads
    // below block on it; two workers are plenty for a handful of streams.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RegistryError::Runtime)?;
    let handle = rt.handle();
    let timeout = opts.transport.timeout;
    let manifest_err = |e| classify(e, &registry, &reference, Fetching::Manifest, timeout);
    let fetch_manifest = |r: &OciReference| -> Result<(Vec<u8>, String, Fetched), RegistryError> {
        let (bytes, digest) = handle
            .block_on(client.pull_manifest_raw(r, &auth, &MANIFEST_TYPES))
            .map_err(manifest_err)?;
        let fetched = parse_manifest(&bytes, &reference, &digest)?;
        Ok((bytes.to_vec(), digest, fetched))
    };

    progress.message(&format!(
        "{}: Pulling from {}",
        tag.as_deref()
            .or(parsed.digest.as_deref())
            .unwrap_or_default(),
        parsed.repository
    ));
    let (top_bytes, top_digest, top) = fetch_manifest(&oci_ref)?;
    let (index_blob, manifest_bytes, manifest_digest, manifest) = match top {
        Fetched::Manifest(m) => (None, top_bytes, top_digest, m),
        Fetched::Index(index) => {
            let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
            let Some(digest) = platform::choose(&index.manifests, &wanted) else {
                return Err(RegistryError::NoMatchingPlatform {
                    reference,
                    wanted: wanted.to_string(),
                    available: platform::available(&index.manifests),
                });
            };
            tracing::debug!(%digest, platform = %wanted, "index entry chosen");
            let child =
                OciReference::with_digest(registry.clone(), parsed.repository.clone(), digest);
            let (bytes, digest, fetched) = fetch_manifest(&child)?;
            let Fetched::Manifest(m) = fetched else {
                return Err(RegistryError::UnsupportedManifest {
                    reference,
                    digest,
                    media_type: "a nested index".into(),
                });
            };
            (Some((top_bytes, top_digest)), bytes, digest, m)
        }
    };
    for layer in &manifest.layers {
        if !is_layer_media_type(&layer.media_type) {
            return Err(RegistryError::UnsupportedLayer {
                reference,
                digest: layer.digest.clone(),
                media_type: layer.media_type.clone(),
            });
        }
    }

    let source = Source {
        rt: handle,
        client: &client,
        oci_ref: &oci_ref,
        registry: &registry,
        reference: &reference,
        timeout,
    };
    let up_to_date = store.has_blob(&manifest_digest)
        && store.has_blob(&manifest.config.digest)
        && manifest.layers.iter().all(|l| store.has_blob(&l.digest));
    // Layers first, then config, then the manifest: a manifest blob in the
    // store always has everything it names.
    let mut bars = Vec::new();
    let mut missing = Vec::new();
    for layer in &manifest.layers {
        if store.has_blob(&layer.digest) {
            progress.layer_status(&layer.digest, "Already exists");
        } else if !missing
            .iter()
            .any(|l: &&OciDescriptor| l.digest == layer.digest)
        {
            bars.push(progress.layer(&layer.digest, u64::try_from(layer.size).ok()));
            missing.push(layer);
        }
    }
    download_parallel(&source, store, &missing, &bars)?;
    if !store.has_blob(&manifest.config.digest) {
        source.blob_into_store(&manifest.config, store, None)?;
    }
    let write_manifest = |digest: &str, bytes: &[u8]| {
        if store.has_blob(digest) {
            return Ok(());
        }
        store
            .write_blob(digest, Some(bytes.len() as u64), &mut &bytes[..])
            .map(|_| ())
            .map_err(|source| RegistryError::Blob {
                reference: reference.clone(),
                digest: digest.to_string(),
                source,
            })
    };
    write_manifest(&manifest_digest, &manifest_bytes)?;
    if let Some((bytes, digest)) = &index_blob {
        write_manifest(digest, bytes)?;
    }

    for bar in &bars {
        bar.set_status("Extracting");
    }
    let name_ref = tag.is_some().then_some(&parsed);
    let image = store
        .commit_image(&manifest_digest, name_ref)
        .map_err(|source| RegistryError::Commit {
            reference: reference.clone(),
            digest: manifest_digest.clone(),
            source,
        })?;
    for bar in bars {
        bar.finish("Pull complete");
    }
    let shown_digest = index_blob.as_ref().map_or(&manifest_digest, |(_, d)| d);
    progress.message(&format!("Digest: {shown_digest}"));
    if up_to_date {
        progress.message(&format!("Status: Image is up to date for {reference}"));
    } else {
        progress.message(&format!("Status: Downloaded newer image for {reference}"));
    }
    Ok(Pulled {
        image,
        reference,
        manifest_digest,
        downloaded: !up_to_date,
    })
}

/// Downloads `layers` on up to [`CONCURRENT_DOWNLOADS`] threads; the first
/// error stops the rest from starting and is returned.
fn download_parallel(
    source: &Source<'_>,
    store: &Store,
    layers: &[&OciDescriptor],
    bars: &[LayerProgress],
) -> Result<(), RegistryError> {
    let next = Mutex::new(0usize);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..CONCURRENT_DOWNLOADS.min(layers.len()) {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let i = {
                    let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(layer) = layers.get(i) else { return };
                match source.blob_into_store(layer, store, bars.get(i)) {
                    Ok(()) => {
                        if let Some(bar) = bars.get(i) {
                            bar.set_status("Download complete");
                        }
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Whether the user wrote a tag or digest (`busybox` → no; `reg:5000/b` → no;
/// `busybox:1.36`, `b@sha256:..` → yes).
fn has_tag_or_digest(name: &str) -> bool {
    name.contains('@')
        || name
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
}

fn is_layer_media_type(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

/// Parses a manifest or index by its media type (or, for registries that
/// omit it, by its shape); schema 1 and anything else is refused.
fn parse_manifest(bytes: &[u8], reference: &str, digest: &str) -> Result<Fetched, RegistryError> {
    let parse_err = |source| RegistryError::ManifestParse {
        reference: reference.to_string(),
        digest: digest.to_string(),
        source,
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(parse_err)?;
    let media_type = value
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or("");
    let is_index = match media_type {
        OCI_IMAGE_INDEX_MEDIA_TYPE | IMAGE_MANIFEST_LIST_MEDIA_TYPE => true,
        OCI_IMAGE_MEDIA_TYPE | IMAGE_MANIFEST_MEDIA_TYPE => false,
        "" if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(2) => {
            value.get("manifests").is_some()
        }
        other => {
            return Err(RegistryError::UnsupportedManifest {
                reference: reference.to_string(),
                digest: digest.to_string(),
                media_type: if other.is_empty() {
                    "none (schema 1?)".to_string()
                } else {
                    other.to_string()
                },
            })
        }
    };
    if is_index {
        serde_json::from_value(value)
            .map(Fetched::Index)
            .map_err(parse_err)
    } else {
        serde_json::from_value(value)
            .map(|m| Fetched::Manifest(Box::new(m)))
            .map_err(parse_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tag_detection() {
        assert!(!has_tag_or_digest("busybox"));
        assert!(!has_tag_or_digest("127.0.0.1:5000/busybox"));
        assert!(has_tag_or_digest("127.0.0.1:5000/busybox:1.36"));
        assert!(has_tag_or_digest("busybox@sha256:abcd"));
    }

    #[test]
    fn manifests_and_indexes_are_told_apart() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:aa","size":1},"layers":[]}"#;
        assert!(matches!(
            parse_manifest(m, "r", "d").unwrap(),
            Fetched::Manifest(_)
        ));
        let i = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            parse_manifest(i, "r", "d").unwrap(),
            Fetched::Index(_)
        ));
        let v1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(matches!(
            parse_manifest(v1, "r", "d"),
            Err(RegistryError::UnsupportedManifest { .. })
        ));
    }
}
