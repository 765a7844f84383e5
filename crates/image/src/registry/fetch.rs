//! Streams one blob from a registry into the store. oci-client hands out an
//! async byte stream; the store's `write_blob` takes a blocking `Read` and
//! does the verification (digest, size, atomic rename). `StreamReader`
//! bridges the two on a plain thread, so a blob is never held in memory
//! whole and never written twice. Owns no policy about which blobs to get.

use std::io::{self, Read};

use futures_util::{Stream, StreamExt};
use oci_client::manifest::OciDescriptor;
use oci_client::{Client, Reference as OciReference};
use tokio::runtime::Handle;

use super::error::{classify, Fetching, RegistryError};
use crate::progress::LayerProgress;
use crate::store::Store;

/// A blocking `Read` over an async stream of byte chunks. Must be used from
/// a thread that is not a runtime worker (`Handle::block_on` panics there).
pub(crate) struct StreamReader<'a, S, B> {
    rt: &'a Handle,
    stream: S,
    chunk: Option<B>,
    pos: usize,
    /// The stream ended. oci-client's verifying stream must not be polled
    /// again after that: it would check an empty digest and fail.
    done: bool,
    progress: Option<&'a LayerProgress>,
}

impl<'a, S, B> StreamReader<'a, S, B>
where
    S: Stream<Item = io::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    pub(crate) fn new(rt: &'a Handle, stream: S, progress: Option<&'a LayerProgress>) -> Self {
        StreamReader {
            rt,
            stream,
            chunk: None,
            pos: 0,
            done: false,
            progress,
        }
    }
}

impl<S, B> Read for StreamReader<'_, S, B>
where
    S: Stream<Item = io::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(chunk) = &self.chunk {
                let rest = &chunk.as_ref()[self.pos..];
                if !rest.is_empty() {
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            if self.done {
                return Ok(0);
            }
            match self.rt.block_on(self.stream.next()) {
                None => {
                    self.done = true;
                    return Ok(0);
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(chunk)) => {
                    if let Some(p) = self.progress {
                        p.inc(chunk.as_ref().len() as u64);
                    }
                    self.chunk = Some(chunk);
                    self.pos = 0;
                }
            }
        }
    }
}

/// Where blobs come from: one repository of one registry.
pub(crate) struct Source<'a> {
    pub rt: &'a Handle,
    pub client: &'a Client,
    pub oci_ref: &'a OciReference,
    /// For messages: `127.0.0.1:5000` and `127.0.0.1:5000/busybox:latest`.
    pub registry: &'a str,
    pub reference: &'a str,
    pub timeout: std::time::Duration,
}

impl Source<'_> {
    /// Downloads the blob `desc` into `store`, verified against its digest
    /// and size; on any failure nothing of it stays in the store.
    pub(crate) fn blob_into_store(
        &self,
        desc: &OciDescriptor,
        store: &Store,
        progress: Option<&LayerProgress>,
    ) -> Result<(), RegistryError> {
        let stream = self
            .rt
            .block_on(self.client.pull_blob_stream(self.oci_ref, desc))
            .map_err(|e| {
                classify(
                    e,
                    self.registry,
                    self.reference,
                    Fetching::Blob(&desc.digest),
                    self.timeout,
                )
            })?;
        let mut reader = StreamReader::new(self.rt, stream, progress);
        let size = u64::try_from(desc.size).ok();
        store
            .write_blob(&desc.digest, size, &mut reader)
            .map_err(|source| RegistryError::Blob {
                reference: self.reference.to_string(),
                digest: desc.digest.clone(),
                source,
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_reader_reassembles_chunks_and_passes_errors() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let chunks: Vec<io::Result<Vec<u8>>> =
            vec![Ok(b"hel".to_vec()), Ok(vec![]), Ok(b"lo".to_vec())];
        let mut r = StreamReader::new(rt.handle(), futures_util::stream::iter(chunks), None);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello");
        // Reading past the end never polls the finished stream again.
        assert_eq!(r.read(&mut [0; 8]).unwrap(), 0);

        let chunks: Vec<io::Result<Vec<u8>>> =
            vec![Ok(b"x".to_vec()), Err(io::Error::other("digest mismatch"))];
        let mut r = StreamReader::new(rt.handle(), futures_util::stream::iter(chunks), None);
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "digest mismatch");
    }
}
