//! Image archives: `load` (a docker-archive or an OCI image layout, as a
//! tar, optionally gzip- or zstd-compressed), `save` (docker-archive) and
//! `import` (a rootfs tar as a one-layer image). Everything enters the
//! store through its verified blob writes and `commit_image`; a failed
//! load or import leaves no blob of its own behind.

mod contents;
mod import;
mod save;

use std::io::Read;

pub use import::import;
pub use save::save;

use contents::Contents;

use crate::manifest::{
    Descriptor, Index, Manifest, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, OCI_CONFIG,
};
use crate::progress::{Mode, Progress};
use crate::registry::Platform;
use crate::unpack::Compression;
use crate::{Error, Image, Reference, Store};

/// Loads every image in a docker-archive or OCI-layout tar. Names come
/// from `RepoTags` (docker-archive) or the `io.containerd.image.name` /
/// `org.opencontainers.image.ref.name` annotations (OCI layout).
pub fn load(store: &Store, input: &mut dyn Read) -> Result<Vec<Image>, Error> {
    load_with_progress(store, input, &Progress::new(Mode::Quiet))
}

/// One image an archive held, and the names the archive gave it (the
/// image may have more in the store: those are not the archive's).
#[derive(Debug)]
pub struct Loaded {
    pub image: Image,
    pub names: Vec<Reference>,
}

/// [`load`], showing each big file of the archive as it is read.
pub fn load_with_progress(
    store: &Store,
    input: &mut dyn Read,
    progress: &Progress,
) -> Result<Vec<Image>, Error> {
    Ok(load_listing(store, input, progress)?
        .into_iter()
        .map(|l| l.image)
        .collect())
}

/// [`load_with_progress`], telling which names each image got from the
/// archive (what `load` reports).
pub fn load_listing(
    store: &Store,
    input: &mut dyn Read,
    progress: &Progress,
) -> Result<Vec<Loaded>, Error> {
    let mut contents = Contents::read(store, input, progress)?;
    // docker 25+ saves both files; its manifest.json is then the one followed.
    let result = if contents.has("manifest.json") {
        load_docker(store, &mut contents)
    } else if contents.has("index.json") {
        load_oci(store, &mut contents)
    } else if contents.has("repositories") {
        Err(Error::LegacyDockerArchive)
    } else {
        Err(Error::UnknownArchiveFormat)
    };
    if result.is_err() {
        let adopted = contents.adopted();
        if let Err(e) = store.discard_blobs(&adopted) {
            tracing::warn!(error = %e, "cleaning up after a failed load");
        }
    }
    result
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn load_docker(store: &Store, contents: &mut Contents) -> Result<Vec<Loaded>, Error> {
    let bytes = contents.read_small("manifest.json")?;
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&bytes).map_err(|e| Error::ArchiveEntry {
            entry: "manifest.json".into(),
            reason: format!("not a docker-archive manifest: {e}"),
        })?;
    let mut images = Vec::new();
    for entry in entries {
        let (config_digest, config_size) = contents.adopt(store, &entry.config, None)?;
        let mut layers = Vec::new();
        for path in &entry.layers {
            let compression = contents.compression(path)?;
            let (digest, size) = contents.adopt(store, path, None)?;
            layers.push(Descriptor::new(
                compression.layer_media_type(),
                digest,
                size,
            ));
        }
        let manifest = Manifest::oci(
            Descriptor::new(OCI_CONFIG, config_digest, config_size),
            layers,
        );
        let manifest_digest =
            store.put_blob(&serde_json::to_vec(&manifest).expect("manifests serialize"))?;
        contents.note_adopted(&manifest_digest);
        let mut names = Vec::new();
        for tag in entry.repo_tags.iter().flatten() {
            names.push(Reference::parse(tag)?);
        }
        let image = commit_named(store, &manifest_digest, &names)?;
        images.push(Loaded { image, names });
    }
    Ok(images)
}

fn commit_named(store: &Store, manifest_digest: &str, names: &[Reference]) -> Result<Image, Error> {
    let image = store.commit_local(manifest_digest, names.first())?;
    if names.len() <= 1 {
        return Ok(image);
    }
    for n in &names[1..] {
        store.tag(&image.id, n)?;
    }
    store.resolve(&image.id)
}

fn load_oci(store: &Store, contents: &mut Contents) -> Result<Vec<Loaded>, Error> {
    let bytes = contents.read_small("index.json")?;
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| Error::ArchiveEntry {
        entry: "index.json".into(),
        reason: format!("not an OCI image index: {e}"),
    })?;
    let mut images = Vec::new();
    for desc in &index.manifests {
        let name = oci_name(desc)?;
        let manifest_digest = resolve_platform(contents, desc, 0)?;
        let image = load_oci_manifest(store, contents, &manifest_digest, name.as_ref())?;
        images.push(Loaded {
            image,
            names: name.into_iter().collect(),
        });
    }
    Ok(images)
}

/// The name an index entry carries, if any. A bare `ref.name` like
/// `latest` is only a tag without a repository: no name.
fn oci_name(desc: &Descriptor) -> Result<Option<Reference>, Error> {
    if let Some(n) = desc.annotation(ANNOTATION_IMAGE_NAME) {
        return Ok(Some(Reference::parse(n)?));
    }
    match desc.annotation(ANNOTATION_REF_NAME) {
        Some(r) if r.contains([':', '/']) => Ok(Some(Reference::parse(r)?)),
        _ => Ok(None),
    }
}

/// Follows nested indexes down to the host platform's image manifest.
fn resolve_platform(contents: &Contents, desc: &Descriptor, depth: u32) -> Result<String, Error> {
    let path = blob_path(&desc.digest)?;
    let bytes = contents.read_small(&path)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::ArchiveEntry {
            entry: path.clone(),
            reason: format!("not JSON: {e}"),
        })?;
    if value.get("manifests").is_none() {
        return Ok(desc.digest.clone());
    }
    if depth > 4 {
        return Err(Error::ArchiveEntry {
            entry: path,
            reason: "indexes nested too deep".into(),
        });
    }
    let index: Index = serde_json::from_value(value).map_err(|e| Error::ArchiveEntry {
        entry: path.clone(),
        reason: format!("not an OCI image index: {e}"),
    })?;
    let host = Platform::host();
    let matching = index.manifests.iter().find(|m| {
        m.platform
            .as_ref()
            .is_some_and(|p| p.os == host.os && p.architecture == host.architecture)
    });
    let chosen = match (matching, index.manifests.as_slice()) {
        (Some(m), _) => m,
        (None, [only]) => only,
        _ => {
            return Err(Error::ArchiveEntry {
                entry: path,
                reason: format!(
                    "the index has no image for {}/{}",
                    host.os, host.architecture
                ),
            })
        }
    };
    resolve_platform(contents, chosen, depth + 1)
}

fn blob_path(digest: &str) -> Result<String, Error> {
    Ok(format!("blobs/sha256/{}", crate::digest::hex_of(digest)?))
}

fn load_oci_manifest(
    store: &Store,
    contents: &mut Contents,
    manifest_digest: &str,
    name: Option<&Reference>,
) -> Result<Image, Error> {
    contents.adopt(store, &blob_path(manifest_digest)?, Some(manifest_digest))?;
    let manifest = store.read_manifest(manifest_digest)?;
    let config = &manifest.config;
    adopt_listed(
        store,
        contents,
        config,
        &format!("config of manifest {manifest_digest}"),
    )?;
    for (i, layer) in manifest.layers.iter().enumerate() {
        adopt_listed(
            store,
            contents,
            layer,
            &format!("layer {} of manifest {manifest_digest}", i + 1),
        )?;
    }
    store.commit_local(manifest_digest, name)
}

/// Moves a blob a manifest lists from the archive into the store, checking
/// digest and size.
fn adopt_listed(
    store: &Store,
    contents: &mut Contents,
    desc: &Descriptor,
    what: &str,
) -> Result<(), Error> {
    let path = blob_path(&desc.digest)?;
    if !contents.has(&path) {
        if store.has_blob(&desc.digest) {
            return Ok(());
        }
        return Err(Error::MissingBlob {
            digest: desc.digest.clone(),
            what: format!("{what}; not in the archive"),
        });
    }
    let (_, size) = contents.adopt(store, &path, Some(&desc.digest))?;
    if size != desc.size {
        return Err(Error::SizeMismatch {
            digest: desc.digest.clone(),
            expected: desc.size,
            actual: size,
        });
    }
    Ok(())
}

/// Compression of a layer file in the archive.
pub(crate) fn sniff_file(path: &std::path::Path) -> std::io::Result<Compression> {
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(Compression::sniff(&head[..n]))
}
