//! monitor::log: the container log, docker's json-file format: one JSON object
//! per line, `{"stream":"stdout"|"stderr","time":RFC3339Nano,"log":text}`,
//! rotated by size (`container.log` → `container.log.1` → `.2`..., as many
//! as `--log-opt max-file` keeps), or not written at all (`--log-driver
//! none`). The monitor writes
//! it; `isola logs` reads and follows it. Only complete lines are logged
//! (a partial line is flushed at 16 KiB or at end of stream).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The log file's name in the container directory.
pub const LOG_FILE: &str = "container.log";
/// Size at which the log is rotated.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Files kept unless `--log-opt max-file` says: the current and one rotated.
pub const DEFAULT_MAX_FILES: u32 = 2;
const MAX_PARTIAL: usize = 16 * 1024;

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub stream: String,
    #[serde(with = "rfc3339_nano")]
    pub time: DateTime<Utc>,
    pub log: String,
}

mod rfc3339_nano {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Nanos, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// RFC 3339 with nanoseconds, as docker's `logs -t` prints.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Appends log records, rotating by size. Shared by the output threads
/// behind a mutex.
pub struct LogWriter {
    path: PathBuf,
    /// None: `--log-driver none`, nothing written.
    file: Option<File>,
    size: u64,
    max_size: u64,
    /// Files kept, the current one included (docker's max-file).
    max_files: u32,
}

impl LogWriter {
    /// The log of container directory `dir` as `config` says (json-file
    /// with its size and file count, or none).
    pub fn open(dir: &Path, config: &crate::state::LogConfig) -> std::io::Result<LogWriter> {
        let path = dir.join(LOG_FILE);
        let (file, size) = if config.driver == crate::state::LOG_NONE {
            (None, 0)
        } else {
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            let size = file.metadata()?.len();
            (Some(file), size)
        };
        Ok(LogWriter {
            path,
            file,
            size,
            max_size: config.max_size.unwrap_or(DEFAULT_MAX_SIZE),
            max_files: config.max_file.unwrap_or(DEFAULT_MAX_FILES).max(1),
        })
    }

    fn write_entry(&mut self, stream: &str, text: &str) -> std::io::Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        let entry = LogEntry {
            stream: stream.into(),
            time: Utc::now(),
            log: text.into(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(&line)?;
        }
        self.size += line.len() as u64;
        Ok(())
    }

    /// `container.log.N-1` → `.N` ... `container.log` → `.1`, the oldest
    /// dropped; with one file only, the log starts again empty.
    fn rotate(&mut self) -> std::io::Result<()> {
        let numbered = |n: u32| self.path.with_extension(format!("log.{n}"));
        if self.max_files <= 1 {
            self.file = Some(File::create(&self.path)?);
            self.size = 0;
            return Ok(());
        }
        for n in (1..self.max_files - 1).rev() {
            match fs::rename(numbered(n), numbered(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        fs::rename(&self.path, numbered(1))?;
        self.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?,
        );
        self.size = 0;
        Ok(())
    }
}

/// The rotated files there are, oldest first (`container.log.3`, `.2`, `.1`).
fn rotated(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for n in 1.. {
        let p = dir.join(format!("{LOG_FILE}.{n}"));
        if !p.exists() {
            break;
        }
        out.push(p);
    }
    out.reverse();
    out
}

/// Splits one stream's bytes into log lines.
pub struct LineBuffer {
    stream: &'static str,
    pending: Vec<u8>,
}

impl LineBuffer {
    pub fn new(stream: &'static str) -> LineBuffer {
        LineBuffer {
            stream,
            pending: Vec::new(),
        }
    }

    /// Adds bytes; writes every complete line.
    pub fn push(&mut self, data: &[u8], log: &mut LogWriter) -> std::io::Result<()> {
        self.pending.extend_from_slice(data);
        while let Some(nl) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            log.write_entry(self.stream, &String::from_utf8_lossy(&line))?;
        }
        if self.pending.len() >= MAX_PARTIAL {
            self.flush(log)?;
        }
        Ok(())
    }

    /// Writes what is left (end of stream).
    pub fn flush(&mut self, log: &mut LogWriter) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            log.write_entry(self.stream, &String::from_utf8_lossy(&line))?;
        }
        Ok(())
    }
}

/// Reads complete records from `reader`, leaving a trailing partial line unread.
fn read_records(reader: &mut impl BufRead, out: &mut Vec<LogEntry>) -> std::io::Result<u64> {
    let mut consumed = 0;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            return Ok(consumed);
        }
        consumed += n as u64;
        if let Ok(e) = serde_json::from_str::<LogEntry>(&line) {
            out.push(e);
        }
    }
}

/// Every record in the log (rotated file first).
pub fn read_all(dir: &Path) -> std::io::Result<Vec<LogEntry>> {
    let mut out = Vec::new();
    for path in rotated(dir).into_iter().chain([dir.join(LOG_FILE)]) {
        match File::open(&path) {
            Ok(f) => {
                read_records(&mut BufReader::new(f), &mut out)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Every record so far, and a follower positioned right after them.
pub fn read_with_follower(dir: &Path) -> std::io::Result<(Vec<LogEntry>, LogFollower)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for path in rotated(dir) {
        match File::open(path) {
            Ok(f) => {
                read_records(&mut BufReader::new(f), &mut out)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let path = dir.join(LOG_FILE);
    let mut follower = LogFollower {
        path: path.clone(),
        file: None,
        offset: 0,
        inode: 0,
    };
    if let Ok(mut f) = File::open(&path) {
        follower.inode = f.metadata()?.ino();
        follower.offset = read_records(&mut BufReader::new(&mut f), &mut out)?;
        follower.file = Some(f);
    }
    Ok((out, follower))
}

/// Follows the current log from where [`read_all`] left it, across rotation.
pub struct LogFollower {
    path: PathBuf,
    file: Option<File>,
    offset: u64,
    inode: u64,
}

impl LogFollower {
    /// Starts at the current end of the log.
    pub fn at_end(dir: &Path) -> LogFollower {
        let path = dir.join(LOG_FILE);
        let (offset, inode) = fs::metadata(&path)
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.len(), m.ino())
            })
            .unwrap_or((0, 0));
        LogFollower {
            file: File::open(&path).ok(),
            path,
            offset,
            inode,
        }
    }

    /// New complete records since the last call.
    pub fn poll(&mut self) -> std::io::Result<Vec<LogEntry>> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        if let Some(f) = self.file.as_mut() {
            f.seek(SeekFrom::Start(self.offset))?;
            self.offset += read_records(&mut BufReader::new(&mut *f), &mut out)?;
        }
        // Rotated (or created): switch to the new file once the old one is drained.
        if let Ok(m) = fs::metadata(&self.path) {
            if m.ino() != self.inode {
                self.file = File::open(&self.path).ok();
                self.inode = m.ino();
                self.offset = 0;
                if let Some(f) = self.file.as_mut() {
                    self.offset += read_records(&mut BufReader::new(&mut *f), &mut out)?;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_logged_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::state::LogConfig {
            max_size: Some(400),
            ..Default::default()
        };
        let mut w = LogWriter::open(dir.path(), &config).unwrap();
        let mut out = LineBuffer::new("stdout");
        let mut err = LineBuffer::new("stderr");
        let mut follow = LogFollower::at_end(dir.path());
        out.push(b"hello\nwor", &mut w).unwrap();
        err.push(b"oops\n", &mut w).unwrap();
        out.push(b"ld\n", &mut w).unwrap();
        let got = follow.poll().unwrap();
        let texts: Vec<(&str, &str)> = got
            .iter()
            .map(|e| (e.stream.as_str(), e.log.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                ("stdout", "hello\n"),
                ("stderr", "oops\n"),
                ("stdout", "world\n")
            ]
        );
        for i in 0..20 {
            out.push(format!("line {i}\n").as_bytes(), &mut w).unwrap();
        }
        out.push(b"tail", &mut w).unwrap();
        out.flush(&mut w).unwrap();
        assert!(dir.path().join("container.log.1").exists());
        let followed: Vec<String> = follow.poll().unwrap().into_iter().map(|e| e.log).collect();
        let all: Vec<String> = read_all(dir.path())
            .unwrap()
            .into_iter()
            .map(|e| e.log)
            .collect();
        assert_eq!(all.last().unwrap(), "tail");
        assert_eq!(followed.last().unwrap(), "tail");
        assert!(followed.len() >= 5, "{followed:?}");
        let t = read_all(dir.path()).unwrap()[0].time;
        assert!(format_time(&t).ends_with('Z'));
    }
}
