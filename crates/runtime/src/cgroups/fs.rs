//! fs: the file operations both cgroup versions share: reading and writing
//! interface files with errors that name them (including the hugetlb and
//! rdma limits, written alike on v1 and v2), making and unmaking directory
//! chains, listing and killing member processes.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxHugepageLimit, LinuxRdma};

use super::Error;

/// How long destroy waits for killed tasks to leave and for rmdir to stop
/// returning EBUSY. Tasks leave a cgroup when they exit (not when reaped),
/// which after SIGKILL takes milliseconds.
pub const SETTLE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(5);

pub fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a file holding one number, or "max" (then `None`).
pub fn read_u64(path: &Path) -> Result<Option<u64>, Error> {
    let content = read(path)?;
    let value = content.trim();
    if value == "max" {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        content: value.to_string(),
    })
}

/// Writes one value with one write(2), as cgroupfs expects. Never creates
/// the file: a missing interface file means a missing controller or feature.
pub fn write(path: &Path, value: &str) -> Result<(), Error> {
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| Error::Write {
            path: path.to_path_buf(),
            value: value.to_string(),
            source,
        })
}

/// Writes a hugepage limit to `path` (v1's hugetlb.<size>.limit_in_bytes,
/// v2's hugetlb.<size>.max). A missing file means the kernel has no pages of
/// that size, which is the user's error, not a missing controller.
pub fn write_hugepage_limit(path: &Path, limit: &LinuxHugepageLimit) -> Result<(), Error> {
    if !path.exists() {
        return Err(Error::InvalidValue {
            field: "hugepageLimits".into(),
            reason: format!(
                "page size {:?} is not supported here (no {})",
                limit.page_size(),
                path.display()
            ),
        });
    }
    write(path, &limit.limit().to_string())
}

/// One rdma.max line, the same on v1 and v2: "<device> hca_handle=N hca_object=N".
pub fn rdma_line(device: &str, limit: &LinuxRdma) -> String {
    let mut line = device.to_string();
    if let Some(h) = limit.hca_handles() {
        line.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = limit.hca_objects() {
        line.push_str(&format!(" hca_object={o}"));
    }
    line
}

/// Makes `rel` below `root` one level at a time, calling `on_new` on each
/// directory it made (cpuset needs its values copied in before anything can
/// join). On error, removes what it made and returns the error.
pub fn create_chain(
    root: &Path,
    rel: &Path,
    mut on_new: impl FnMut(&Path) -> Result<(), Error>,
) -> Result<Vec<PathBuf>, Error> {
    let mut made = Vec::new();
    let mut dir = root.to_path_buf();
    for component in rel.components() {
        dir.push(component);
        let step = match std::fs::create_dir(&dir) {
            Ok(()) => {
                made.push(dir.clone());
                on_new(&dir)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(source) => Err(Error::CreateDir {
                path: dir.clone(),
                source,
            }),
        };
        if let Err(err) = step {
            remove_made(&made);
            return Err(err);
        }
    }
    Ok(made)
}

/// Best-effort removal of directories made by [`create_chain`], deepest first.
pub fn remove_made(made: &[PathBuf]) {
    for dir in made.iter().rev() {
        if let Err(e) = std::fs::remove_dir(dir) {
            tracing::debug!(path = %dir.display(), error = %e, "cgroup rollback: rmdir failed");
        }
    }
}

/// The `cgroup.procs` of `dir` and of every cgroup below it.
pub fn procs_recursive(dir: &Path) -> Result<Vec<i32>, Error> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let procs = d.join("cgroup.procs");
        match std::fs::read_to_string(&procs) {
            Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
            // The cgroup went away under us (destroyed concurrently): nothing in it.
            Err(e) if e.kind() == ErrorKind::NotFound && d != dir => continue,
            Err(source) => {
                return Err(Error::Read {
                    path: procs,
                    source,
                })
            }
        }
        stack.extend(subdirs(&d)?);
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    Ok(entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}

/// SIGKILLs every process in `dir` (recursively). Already-gone ones are fine.
pub fn kill_all(dir: &Path) -> Result<(), Error> {
    for pid in procs_recursive(dir)? {
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) | Err(nix::Error::ESRCH) => {}
            Err(source) => {
                return Err(Error::Kill {
                    pid,
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Waits until no process is left in `dir`, re-sending SIGKILL to
/// stragglers (a task forked while the first signals went out).
pub fn wait_empty(dir: &Path) -> Result<(), Error> {
    let start = Instant::now();
    loop {
        let pids = match procs_recursive(dir) {
            Err(Error::Read { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Ok(())
            }
            other => other?,
        };
        if pids.is_empty() {
            return Ok(());
        }
        if start.elapsed() > SETTLE {
            return Err(Error::Survivors {
                path: dir.to_path_buf(),
                pids,
            });
        }
        kill_all(dir)?;
        std::thread::sleep(POLL);
    }
}

/// Removes `dir` and the cgroups below it, deepest first, retrying while the
/// kernel answers EBUSY (tasks that are still exiting). A missing `dir` is
/// success.
pub fn remove_tree(dir: &Path) -> Result<(), Error> {
    for child in subdirs(dir)? {
        remove_tree(&child)?;
    }
    let start = Instant::now();
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < SETTLE => {
                std::thread::sleep(POLL);
            }
            Err(source) => {
                return Err(Error::RemoveDir {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Polls `done` until it holds or `limit` passes; returns whether it held.
pub fn poll_until(
    limit: Duration,
    mut done: impl FnMut() -> Result<bool, Error>,
) -> Result<bool, Error> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(true);
        }
        if start.elapsed() > limit {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Turns a memory/pids value of "max" or a very large number into `None`.
/// v1 reports "unlimited" as PAGE_COUNTER_MAX pages, just under 2^63.
pub fn limit(value: Option<u64>) -> Option<u64> {
    value.filter(|&v| v < (1 << 62))
}
