//! initramfs: writes the guest's initramfs, a cpio archive in the kernel's
//! "newc" format holding /init (the static agent), /dev/console and the
//! empty mount points the agent uses. Written by hand because it is ~60
//! lines: the cpio crates on crates.io are either unmaintained or cannot
//! make device nodes without a real one on disk, and no cpio binary is needed.
//! Uncompressed on purpose: under TCG the kernel's gunzip costs more boot
//! time than reading the few extra megabytes.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::kernel::AgentBinary;
use crate::Error;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

/// One cpio newc writer over any sink.
pub struct CpioWriter<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> CpioWriter<W> {
        CpioWriter {
            out,
            ino: 1,
            written: 0,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> io::Result<()> {
        let namesize = name.len() + 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & S_IFDIR != 0 { 2 } else { 1 },
            0, // mtime
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            namesize as u32,
            0, // check
        ];
        self.ino += 1;
        let mut header = String::from("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }

    pub fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.entry(name, S_IFDIR | perm, (0, 0), &[])
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, S_IFREG | perm, (0, 0), data)
    }

    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(name, S_IFCHR | perm, (major, minor), &[])
    }

    /// Writes the trailer and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes the initramfs for `agent` to `out`.
pub fn write(agent: &AgentBinary, out: &Path) -> Result<(), Error> {
    let init = fs::read(agent.path()).map_err(Error::io("read", agent.path()))?;
    let file = File::create(out).map_err(Error::io("create", out))?;
    let mut cpio = CpioWriter::new(BufWriter::new(file));
    let result = (|| {
        for d in ["dev", "proc", "sys", "run", "tmp"] {
            cpio.dir(d, 0o755)?;
        }
        cpio.char_device("dev/console", 0o600, 5, 1)?;
        cpio.file("init", 0o755, &init)?;
        cpio.finish()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
    })();
    result.map_err(Error::io("write initramfs", out))
}

/// The initramfs for `agent`, written once into `cache_dir` and reused while
/// the agent binary is unchanged (keyed by its path, size and mtime).
pub fn cached(agent: &AgentBinary, cache_dir: &Path) -> Result<PathBuf, Error> {
    let meta = fs::metadata(agent.path()).map_err(Error::io("stat", agent.path()))?;
    let key = Sha256::digest(format!(
        "{}\0{}\0{}.{}",
        agent.path().display(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ));
    let hex: String = key.iter().take(12).map(|b| format!("{b:02x}")).collect();
    let path = cache_dir.join(format!("initramfs-{hex}.cpio"));
    if path.is_file() {
        // The modification time says when it was last used: prune (run when
        // another agent build writes its archive) keeps what is in use.
        let _ = fs::File::open(&path).and_then(|f| f.set_modified(std::time::SystemTime::now()));
        return Ok(path);
    }
    fs::create_dir_all(cache_dir).map_err(Error::io("create", cache_dir))?;
    // Write aside and rename, so concurrent boots never read a partial archive.
    let tmp = cache_dir.join(format!(".initramfs-{hex}.{}", std::process::id()));
    write(agent, &tmp)?;
    fs::rename(&tmp, &path).map_err(Error::io("rename", &tmp))?;
    prune(cache_dir, &path);
    Ok(path)
}

/// Removes initramfs files of earlier agent builds. One used in the last ten
/// minutes is kept: a VM booting right now may be about to open it (once
/// QEMU has it open, removing it is harmless).
fn prune(cache_dir: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(cache_dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(600));
        if p != keep && name.starts_with("initramfs-") && name.ends_with(".cpio") && old {
            let _ = fs::remove_file(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_aligned_and_parse_back() {
        let mut cpio = CpioWriter::new(Vec::new());
        cpio.dir("dev", 0o755).unwrap();
        cpio.char_device("dev/console", 0o600, 5, 1).unwrap();
        cpio.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        let bytes = cpio.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        // Walk it back as the kernel does.
        let mut off = 0;
        let mut names = Vec::new();
        while off < bytes.len() {
            assert_eq!(&bytes[off..off + 6], b"070701", "magic at {off}");
            let field = |i: usize| {
                let s = std::str::from_utf8(&bytes[off + 6 + i * 8..off + 14 + i * 8]).unwrap();
                u32::from_str_radix(s, 16).unwrap() as usize
            };
            let (mode, size, rmaj, rmin, namesize) =
                (field(1), field(6), field(9), field(10), field(11));
            let name = std::str::from_utf8(&bytes[off + 110..off + 110 + namesize - 1]).unwrap();
            names.push((name.to_string(), mode as u32, size, (rmaj, rmin)));
            off = (off + 110 + namesize).div_ceil(4) * 4;
            off = (off + size).div_ceil(4) * 4;
        }
        assert_eq!(names[0], ("dev".into(), S_IFDIR | 0o755, 0, (0, 0)));
        assert_eq!(names[1], ("dev/console".into(), S_IFCHR | 0o600, 0, (5, 1)));
        assert_eq!(names[2], ("init".into(), S_IFREG | 0o755, 10, (0, 0)));
        assert_eq!(names[3].0, "TRAILER!!!");
    }
}
