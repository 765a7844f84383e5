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
use crate::progress::{LayerProgress, Mode, Progress, Stream};
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
    /// Where progress goes (stdout unless told).
    pub progress_stream: Stream,
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

/// A manifest chosen for this host (or `--platform`), with the index it
/// came from, if any.
struct Resolved {
    /// Bytes and digest of the index (or manifest list), if the reference named one.
    index: Option<(Vec<u8>, String)>,
    bytes: Vec<u8>,
    digest: String,
    manifest: Box<OciImageManifest>,
}

/// One pull's connection to one repository.
struct Session<'a> {
    rt: tokio::runtime::Runtime,
    client: oci_client::Client,
    auth: RegistryAuth,
    parsed: &'a Reference,
    oci_ref: OciReference,
    /// `127.0.0.1:5000/busybox:latest`, for messages and output.
    reference: String,
    timeout: std::time::Duration,
}

impl Session<'_> {
    /// Fetches the manifest or index `r` names, checked against its digest
    /// (oci-client compares the bytes with the reference's digest or the
    /// registry's `Docker-Content-Digest`).
    fn fetch_manifest(
        &self,
        r: &OciReference,
    ) -> Result<(Vec<u8>, String, Fetched), RegistryError> {
        let (bytes, digest) = self
            .rt
            .block_on(
                self.client
                    .pull_manifest_raw(r, &self.auth, &MANIFEST_TYPES),
            )
            .map_err(|e| {
                classify(
                    e,
                    &self.parsed.registry,
                    &self.reference,
                    Fetching::Manifest,
                    self.timeout,
                )
            })?;
        let fetched = parse_manifest(&bytes, &self.reference, &digest)?;
        Ok((bytes.to_vec(), digest, fetched))
    }

    /// The single-platform manifest to pull: the one the reference names,
    /// or the index entry for `wanted`.
    fn resolve(&self, wanted: &Platform) -> Result<Resolved, RegistryError> {
        let (bytes, digest, fetched) = self.fetch_manifest(&self.oci_ref)?;
        let index = match fetched {
            Fetched::Manifest(manifest) => {
                return Ok(Resolved {
                    index: None,
                    bytes,
                    digest,
                    manifest,
                })
            }
            Fetched::Index(index) => index,
        };
        let Some(child) = platform::choose(&index.manifests, wanted) else {
            return Err(RegistryError::NoMatchingPlatform {
                reference: self.reference.clone(),
                wanted: wanted.to_string(),
                available: platform::available(&index.manifests),
            });
        };
        tracing::debug!(digest = %child, platform = %wanted, "index entry chosen");
        let child_ref = OciReference::with_digest(
            self.parsed.registry.clone(),
            self.parsed.repository.clone(),
            child,
        );
        let (child_bytes, child_digest, fetched) = self.fetch_manifest(&child_ref)?;
        let Fetched::Manifest(manifest) = fetched else {
            return Err(RegistryError::UnsupportedManifest {
                reference: self.reference.clone(),
                digest: child_digest,
                media_type: "an index inside an index".into(),
            });
        };
        Ok(Resolved {
            index: Some((bytes, digest)),
            bytes: child_bytes,
            digest: child_digest,
            manifest,
        })
    }

    fn source(&self) -> Source<'_> {
        Source {
            rt: self.rt.handle(),
            client: &self.client,
            oci_ref: &self.oci_ref,
            registry: &self.parsed.registry,
            reference: &self.reference,
            timeout: self.timeout,
        }
    }
}

/// Pulls `name` (`busybox`, `127.0.0.1:5000/busybox:1.36`, `...@sha256:...`)
/// into `store`. Blobs already in the store are not fetched again.
pub fn pull(store: &Store, name: &str, opts: &PullOptions) -> Result<Pulled, RegistryError> {
    let progress = Progress::on(opts.progress, opts.progress_stream);
    let parsed = Reference::parse(name)?;
    if !has_tag_or_digest(name) {
        progress.message("Using default tag: latest");
    }
    let session = Session {
        // A multi-thread runtime drives the sockets while the download
        // threads block on it; two workers are plenty for a few streams.
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(RegistryError::Runtime)?,
        client: opts.transport.client(&parsed.registry),
        auth: match opts.auth.credentials(&parsed.registry)? {
            Some(c) => c.to_registry_auth(),
            None => RegistryAuth::Anonymous,
        },
        oci_ref: oci_reference(&parsed),
        reference: full_name(&parsed),
        parsed: &parsed,
        timeout: opts.transport.timeout,
    };
    let reference = session.reference.clone();
    progress.message(&format!(
        "{}: Pulling from {}",
        parsed
            .tag
            .as_deref()
            .or(parsed.digest.as_deref())
            .unwrap_or("latest"),
        parsed.repository
    ));

    let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
    let resolved = session.resolve(&wanted)?;
    let manifest = &resolved.manifest;
    for layer in &manifest.layers {
        if !is_layer_media_type(&layer.media_type) {
            return Err(RegistryError::UnsupportedLayer {
                reference,
                digest: layer.digest.clone(),
                media_type: layer.media_type.clone(),
            });
        }
    }
    let up_to_date = store.has_blob(&resolved.digest)
        && store.has_blob(&manifest.config.digest)
        && manifest.layers.iter().all(|l| store.has_blob(&l.digest));

    // Layers and config first, the manifest last: a manifest blob in the
    // store always has everything it names.
    let mut bars = Vec::new();
    let mut missing: Vec<&OciDescriptor> = Vec::new();
    for layer in &manifest.layers {
        if store.has_blob(&layer.digest) {
            progress.layer_status(&layer.digest, "Already exists");
        } else if !missing.iter().any(|l| l.digest == layer.digest) {
            bars.push(progress.layer(&layer.digest, u64::try_from(layer.size).ok()));
            missing.push(layer);
        }
    }
    let source = session.source();
    download_parallel(&source, store, &missing, &bars)?;
    if !store.has_blob(&manifest.config.digest) {
        source.blob_into_store(&manifest.config, store, None)?;
    }
    write_manifest_blob(store, &reference, &resolved.digest, &resolved.bytes)?;
    if let Some((bytes, digest)) = &resolved.index {
        write_manifest_blob(store, &reference, digest, bytes)?;
    }

    for bar in &bars {
        bar.set_status("Extracting");
    }
    // Pulled by digest alone: the image gets no tag, as with docker.
    let name_ref = parsed.tag.is_some().then_some(&parsed);
    let image = store
        .commit_image(&resolved.digest, name_ref)
        .map_err(|source| RegistryError::Commit {
            reference: reference.clone(),
            digest: resolved.digest.clone(),
            source,
        })?;
    for bar in bars {
        bar.finish("Pull complete");
    }
    let shown_digest = resolved.index.as_ref().map_or(&resolved.digest, |(_, d)| d);
    progress.message(&format!("Digest: {shown_digest}"));
    progress.message(&if up_to_date {
        format!("Status: Image is up to date for {reference}")
    } else {
        format!("Status: Downloaded newer image for {reference}")
    });
    Ok(Pulled {
        image,
        reference,
        manifest_digest: resolved.digest,
        downloaded: !up_to_date,
    })
}

/// Stores a manifest or index blob (already fetched and digest-checked)
/// unless present; the store checks the digest once more as it writes.
fn write_manifest_blob(
    store: &Store,
    reference: &str,
    digest: &str,
    bytes: &[u8],
) -> Result<(), RegistryError> {
    if store.has_blob(digest) {
        return Ok(());
    }
    store
        .write_blob(digest, Some(bytes.len() as u64), &mut &bytes[..])
        .map(|_| ())
        .map_err(|source| RegistryError::Blob {
            reference: reference.to_string(),
            digest: digest.to_string(),
            source,
        })
}

/// The oci-client form of a parsed reference.
pub(super) fn oci_reference(r: &Reference) -> OciReference {
    let (registry, repository) = (r.registry.clone(), r.repository.clone());
    match (&r.tag, &r.digest) {
        (Some(t), Some(d)) => {
            OciReference::with_tag_and_digest(registry, repository, t.clone(), d.clone())
        }
        (None, Some(d)) => OciReference::with_digest(registry, repository, d.clone()),
        (Some(t), None) => OciReference::with_tag(registry, repository, t.clone()),
        (None, None) => OciReference::with_tag(registry, repository, "latest".into()),
    }
}

/// `registry/repository:tag` or `registry/repository@digest`, as `pull` prints it.
pub(super) fn full_name(r: &Reference) -> String {
    match (&r.tag, &r.digest) {
        (_, Some(d)) => format!("{}@{d}", r.name()),
        (Some(t), None) => format!("{}:{t}", r.name()),
        (None, None) => format!("{}:latest", r.name()),
    }
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
