//! state: the on-disk record of a container, `<root>/<id>/state.json`, and
//! what /proc says about its init. Writes are atomic (temp, fsync, rename)
//! and made under an flock on the container's directory. It decides nothing
//! about lifecycle: container.rs does.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Error;

pub const STATE_FILE: &str = "state.json";
pub const SPEC_FILE: &str = "config.json";
pub const EXEC_FIFO: &str = "exec.fifo";

/// Creates `path` (and missing parents) and makes it 0700, also when it
/// exists with looser permissions: state, images and sockets under it must
/// not be reachable by other host users (a setuid binary in a rootfs, a
/// socket, a state file), whatever the umask. Parents it creates get 0700
/// too; existing parents are left as they are.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    let meta = fs::metadata(path)?;
    if meta.permissions().mode() & 0o7777 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// What the runtime remembers about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Host pid of the container's init, once known.
    pub pid: Option<i32>,
    /// Start time of `pid` (clock ticks after boot, /proc/<pid>/stat field 22):
    /// tells a live init from a new process that reused its pid.
    pub pid_start_time: Option<u64>,
    /// Creation time, nanoseconds since the epoch.
    pub created_ns: u128,
    /// The cgroups path given to `Cgroup::create`.
    pub cgroups_path: String,
    /// The directories create made it in (controller → directory), so that
    /// a caller in another cgroup finds the same ones; empty in state
    /// written before they were kept (then `cgroups_path` is resolved again).
    #[serde(default)]
    pub cgroup_dirs: std::collections::BTreeMap<String, PathBuf>,
    /// Ancestors of the cgroup that create made; delete removes those left
    /// empty (pre-existing ones are never removed).
    #[serde(default)]
    pub cgroup_parents: Vec<PathBuf>,
    pub annotations: HashMap<String, String>,
    /// Set by pause, cleared by resume.
    pub paused: bool,
    /// Set once create finished (the init waits on exec.fifo).
    pub created: bool,
}

impl ContainerState {
    pub fn created_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.created_ns as u64)
    }
}

pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Reads `<dir>/state.json`.
pub fn read(dir: &Path) -> Result<ContainerState, Error> {
    let path = dir.join(STATE_FILE);
    let data = fs::read(&path).map_err(Error::io("read", &path))?;
    serde_json::from_slice(&data).map_err(|source| Error::StateFile { path, source })
}

/// Writes `<dir>/state.json` atomically and durably.
pub fn write(dir: &Path, state: &ContainerState) -> Result<(), Error> {
    write_state(dir, state, true)
}

/// Writes `<dir>/state.json` atomically; `durable` adds the fsyncs. Only the
/// records that must survive a crash (created, paused) pay for them: the
/// intermediate "creating" record is meaningless after a crash anyway.
pub fn write_state(dir: &Path, state: &ContainerState, durable: bool) -> Result<(), Error> {
    let data = serde_json::to_vec_pretty(state).map_err(|source| Error::StateFile {
        path: dir.join(STATE_FILE),
        source,
    })?;
    write_atomic(&dir.join(STATE_FILE), &data, durable)
}

/// Writes a file atomically: temp file in the same directory, rename over
/// the target, so readers see the old or the new content, never a part.
/// With `durable` the data is synced before the rename, so a crash leaves
/// the old or the new file, never an empty one. The directory itself is not
/// synced: losing the rename in a crash leaves the previous record, which
/// is as good (the containers died with the host anyway).
pub fn write_atomic(path: &Path, data: &[u8], durable: bool) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = File::create(&tmp).map_err(Error::io("create", &tmp))?;
    f.write_all(data).map_err(Error::io("write", &tmp))?;
    if durable {
        f.sync_data().map_err(Error::io("fsync", &tmp))?;
    }
    drop(f);
    fs::rename(&tmp, path).map_err(Error::io("rename onto", path))
}

/// An exclusive flock on a container's directory, released on drop.
pub struct Lock {
    _lock: nix::fcntl::Flock<File>,
}

pub fn lock(dir: &Path) -> Result<Lock, Error> {
    let mut file = File::open(dir).map_err(Error::io("open", dir))?;
    loop {
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive) {
            Ok(l) => return Ok(Lock { _lock: l }),
            Err((f, nix::errno::Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(Error::sys(format!("flock {}", dir.display()))(e)),
        }
    }
}

/// What /proc/<pid>/stat says about a process.
pub struct ProcStat {
    /// One letter: R, S, D, Z, T, ...
    pub state: char,
    pub start_time: u64,
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether `pid` is still the process that was recorded (same start time)
/// and has not exited (a zombie counts as exited).
pub fn is_alive(pid: i32, start_time: Option<u64>) -> bool {
    match proc_stat(pid) {
        Some(st) => {
            st.state != 'Z' && st.state != 'X' && start_time.is_none_or(|t| t == st.start_time)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_is_0700_new_or_existing() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("a/b");
        private_dir(&new).unwrap();
        assert_eq!((mode(&new), mode(&dir.path().join("a"))), (0o700, 0o700));
        let old = dir.path().join("old");
        fs::create_dir(&old).unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&old).unwrap();
        assert_eq!(mode(&old), 0o700);
    }

    #[test]
    fn state_round_trips_through_an_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let st = ContainerState {
            id: "c1".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            pid: Some(42),
            pid_start_time: Some(7),
            created_ns: 1,
            cgroups_path: "/isola/c1".into(),
            cgroup_dirs: Default::default(),
            cgroup_parents: Vec::new(),
            annotations: HashMap::from([("k".into(), "v".into())]),
            paused: false,
            created: true,
        };
        let _lock = lock(dir.path()).unwrap();
        write(dir.path(), &st).unwrap();
        let back = read(dir.path()).unwrap();
        assert_eq!(back.id, "c1");
        assert_eq!(back.pid, Some(42));
        assert_eq!(back.annotations["k"], "v");
        // No temp file is left next to it.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(STATE_FILE)]);
    }

    #[test]
    fn a_reused_pid_is_not_alive() {
        let me = std::process::id() as i32;
        let st = proc_stat(me).unwrap();
        assert!(is_alive(me, Some(st.start_time)));
        assert!(is_alive(me, None));
        // Same pid, different start time: another process that reused the pid.
        assert!(!is_alive(me, Some(st.start_time + 1)));
        assert!(!is_alive(i32::MAX, None));
    }
}
