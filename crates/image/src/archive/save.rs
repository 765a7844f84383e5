//! `save`: images as a docker-archive tar (`manifest.json` with Config,
//! RepoTags and Layers; the config JSON; each layer as an uncompressed tar
//! named by its diff id), the format `docker load` and
//! `skopeo ... docker-archive:` read.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};

use serde::Serialize;

use crate::unpack::decompress;
use crate::{Error, Reference, Store};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Writes `images` (names or ids) to `out` as one docker-archive tar.
pub fn save(store: &Store, images: &[String], out: &mut dyn Write) -> Result<(), Error> {
    let mut builder = tar::Builder::new(out);
    let mut written = BTreeSet::new();
    let mut manifest = Vec::new();
    for name_or_id in images {
        let image = store.resolve(name_or_id)?;
        // Docker: saved by name, the archive carries that name; by id, none.
        let repo_tags = Reference::parse(name_or_id)
            .ok()
            .filter(|r| r.digest.is_none() && image.names.contains(r))
            .map(|r| vec![r.familiar()]);
        let config_name = format!("{}.json", crate::digest::hex_of(&image.id)?);
        if written.insert(config_name.clone()) {
            let config = store.read_blob(&image.id, "image config")?;
            append(
                &mut builder,
                &config_name,
                config.len() as u64,
                &mut &config[..],
            )?;
        }
        let mut layers = Vec::new();
        for (diff_id, blob) in image.layers.iter().zip(&image.layer_blobs) {
            let layer_name = format!("{}.tar", crate::digest::hex_of(diff_id)?);
            if written.insert(layer_name.clone()) {
                let info = store
                    .read_layer_info(diff_id)?
                    .ok_or_else(|| Error::MissingBlob {
                        digest: diff_id.clone(),
                        what: format!("unpacked layer of image {}", image.id),
                    })?;
                let path = store.blob_path(blob);
                let file =
                    File::open(&path).map_err(|e| Error::io("opening layer blob", &path, e))?;
                let (_, stream) = decompress(file).map_err(|source| Error::BlobRead {
                    digest: blob.clone(),
                    source,
                })?;
                let mut exact = Exact {
                    inner: stream,
                    left: info.diff_size,
                };
                append(&mut builder, &layer_name, info.diff_size, &mut exact)?;
            }
            layers.push(layer_name);
        }
        manifest.push(DockerManifestEntry {
            config: config_name,
            repo_tags,
            layers,
        });
    }
    let data = serde_json::to_vec(&manifest).expect("manifests serialize");
    append(
        &mut builder,
        "manifest.json",
        data.len() as u64,
        &mut &data[..],
    )?;
    builder
        .into_inner()
        .and_then(|w| w.flush())
        .map_err(|source| Error::ArchiveWrite { source })
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: &mut dyn Read,
) -> Result<(), Error> {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, name, data)
        .map_err(|source| Error::ArchiveWrite { source })
}

/// Yields exactly `left` bytes, or fails: a tar entry must match its header.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "layer blob shorter than its recorded size",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
