//! Content digests (`sha256:<hex>`): validation, hashing of bytes and of
//! streams as they pass. Only sha256 is accepted: it is what every
//! registry and archive format in use writes.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::Error;

/// Checks that `digest` is `sha256:<64 lowercase hex>` and returns the hex part.
pub fn hex_of(digest: &str) -> Result<&str, Error> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if is_hex64(hex) => Ok(hex),
        _ => Err(Error::InvalidDigest(digest.to_string())),
    }
}

pub(crate) fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    finish(h)
}

/// `sha256:<hex>` of what `h` was fed.
pub fn finish(h: Sha256) -> String {
    let sum = h.finalize();
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in sum.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A reader that hashes and counts what passes through it.
pub struct DigestingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> DigestingReader<R> {
    pub fn new(inner: R) -> Self {
        DigestingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Reads the rest of the stream (so that trailing bytes are hashed
    /// too), then returns `(digest, total bytes)`.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((finish(self.hasher), self.count))
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through it to `inner`.
pub struct DigestingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: io::Write> DigestingWriter<W> {
    pub fn new(inner: W) -> Self {
        DigestingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// `(digest, total bytes, inner)`.
    pub fn finish(self) -> (String, u64, W) {
        (finish(self.hasher), self.count, self.inner)
    }
}

impl<W: io::Write> io::Write for DigestingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_bytes_and_streams_alike() {
        let d = sha256(b"hello");
        assert_eq!(
            d,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let r = DigestingReader::new(&b"hello"[..]);
        assert_eq!(r.finish().unwrap(), (d, 5));
    }

    #[test]
    fn rejects_malformed_digests() {
        assert!(hex_of("sha256:abc").is_err());
        assert!(
            hex_of("md5:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824").is_err()
        );
        assert!(
            hex_of("sha256:../../../../etc/passwd0000000000000000000000000000000000000000")
                .is_err()
        );
        assert!(
            hex_of("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
                .is_ok()
        );
    }
}
