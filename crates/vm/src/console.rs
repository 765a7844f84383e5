//! console: the guest's serial console. QEMU writes it into a pipe (it has
//! no file of its own in its jail); a thread here copies it into the console
//! log, which the guest thus cannot grow beyond [`CONSOLE_LOG_MAX`] twice
//! over: past that size the log moves to `<log>.1` (replacing the one
//! before) and starts again. It must not parse what the guest writes.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The most one console log file holds; with the one rotated file, a VM's
/// console takes at most twice this on disk.
pub const CONSOLE_LOG_MAX: u64 = 2 << 20;

/// `<log>.1`: the console's previous part.
pub fn rotated(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Copies what arrives on `pipe` into `log` (truncated first; a `.1` left
/// from before is removed) until every writer has closed it. Write errors
/// drop the data but keep reading, so that QEMU never blocks on its console.
pub(crate) fn drain(pipe: OwnedFd, log: PathBuf) -> std::io::Result<std::thread::JoinHandle<()>> {
    let mut file = fs::File::create(&log)?;
    let _ = fs::remove_file(rotated(&log));
    std::thread::Builder::new()
        .name("vm-console".into())
        .spawn(move || {
            let mut pipe = fs::File::from(pipe);
            let mut buf = vec![0u8; 64 << 10];
            let mut written = 0u64;
            loop {
                let n = match pipe.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                };
                if written + n as u64 > CONSOLE_LOG_MAX {
                    let _ = fs::rename(&log, rotated(&log));
                    match fs::File::create(&log) {
                        Ok(f) => file = f,
                        Err(e) => tracing::warn!(log = %log.display(), error = %e, "rotating the guest console log"),
                    }
                    written = 0;
                }
                if file.write_all(&buf[..n]).is_ok() {
                    written += n as u64;
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_console_stays_within_two_files_of_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let (r, w) = nix::unistd::pipe().unwrap();
        let t = drain(r, log.clone()).unwrap();
        let mut w = fs::File::from(w);
        let line = [b'x'; 1000];
        for _ in 0..(CONSOLE_LOG_MAX as usize * 5 / 1000) {
            w.write_all(&line).unwrap();
        }
        w.write_all(b"\nthe end\n").unwrap();
        drop(w);
        t.join().unwrap();
        let size = |p: &Path| fs::metadata(p).unwrap().len();
        assert!(size(&log) <= CONSOLE_LOG_MAX, "{}", size(&log));
        assert!(size(&rotated(&log)) <= CONSOLE_LOG_MAX);
        let text = fs::read_to_string(&log).unwrap();
        assert!(text.ends_with("the end\n"), "the newest output was lost");
    }
}
