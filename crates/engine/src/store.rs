//! store: the container records on disk, under `<root>/containers/<id>/`:
//! `config.json` (what was asked), `state.json` (what happened), `lock` (the
//! per-container flock every writer holds), `bundle/` (the OCI bundle), the log
//! and the monitor's socket. Writes are atomic (temp, fsync, rename). Names are
//! unique under a store-wide lock. The store knows nothing of processes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ids;
use crate::state::{ContainerConfig, ContainerState};

/// Errors reading or writing container records.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("container reference {reference:?} is ambiguous: it matches {matches}")]
    Ambiguous { reference: String, matches: String },
    #[error("the container name {name:?} is already in use by container {id}: remove or rename that container, or choose another name")]
    NameInUse { name: String, id: String },
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `value` as JSON to `path` atomically: a temporary file in the same
/// directory, fsync, rename over the old one.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let data = serde_json::to_vec_pretty(value).map_err(|source| StoreError::Parse {
        path: path.into(),
        source,
    })?;
    let mut f = File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(&data).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("syncing", &tmp))?;
    fs::rename(&tmp, path).map_err(io("renaming into place", path))
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let data = fs::read(path).map_err(io("reading", path))?;
    serde_json::from_slice(&data).map_err(|source| StoreError::Parse {
        path: path.into(),
        source,
    })
}

/// A held flock; released on drop.
pub struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// An exclusive flock on `path` (created if missing), held until dropped.
pub(crate) fn lock_file(path: &Path) -> Result<Lock, StoreError> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io("opening lock", path))?;
    f.lock().map_err(io("locking", path))?;
    Ok(Lock(f))
}

/// All containers under one root.
#[derive(Debug, Clone)]
pub struct ContainerStore {
    dir: PathBuf,
}

/// One container's directory and records.
#[derive(Debug, Clone)]
pub struct ContainerRecord {
    pub dir: PathBuf,
    pub config: ContainerConfig,
    pub state: ContainerState,
}

impl ContainerStore {
    /// Opens (creating if needed) `<root>/containers`.
    pub fn open(root: &Path) -> Result<ContainerStore, StoreError> {
        let dir = root.join("containers");
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        Ok(ContainerStore { dir })
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn names_lock(&self) -> Result<Lock, StoreError> {
        lock_file(&self.dir.join(".names.lock"))
    }

    /// Ids of every container directory.
    pub fn ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io("listing", &self.dir))? {
            let entry = entry.map_err(io("listing", &self.dir))?;
            if let Some(name) = entry.file_name().to_str() {
                if ids::is_full_id(name) {
                    ids.push(name.to_string());
                }
            }
        }
        Ok(ids)
    }

    /// Reads one container; `None` if it is gone (or half-removed).
    pub fn read(&self, id: &str) -> Result<Option<ContainerRecord>, StoreError> {
        let dir = self.container_dir(id);
        let config_path = dir.join("config.json");
        let config: ContainerConfig = match fs::read(&config_path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|source| StoreError::Parse {
                path: config_path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    op: "reading",
                    path: config_path,
                    source,
                })
            }
        };
        let state_path = dir.join("state.json");
        let state = match read_json(&state_path) {
            Ok(s) => s,
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        Ok(Some(ContainerRecord { dir, config, state }))
    }

    /// Every container, newest first.
    pub fn list(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        let mut all = Vec::new();
        for id in self.ids()? {
            if let Some(r) = self.read(&id)? {
                all.push(r);
            }
        }
        all.sort_by_key(|r| std::cmp::Reverse(r.config.created));
        Ok(all)
    }

    /// Finds a container by full id, name, or unique id prefix (docker's order).
    pub fn lookup(&self, reference: &str) -> Result<ContainerRecord, StoreError> {
        if ids::is_full_id(reference) {
            if let Some(r) = self.read(reference)? {
                return Ok(r);
            }
        }
        let all = self.list()?;
        if let Some(r) = all.iter().find(|r| r.config.name == reference) {
            return Ok(r.clone());
        }
        let matches: Vec<&ContainerRecord> = if reference.is_empty() {
            Vec::new()
        } else {
            all.iter()
                .filter(|r| r.config.id.starts_with(reference))
                .collect()
        };
        match matches.as_slice() {
            [] => Err(StoreError::NotFound(reference.into())),
            [one] => Ok((*one).clone()),
            many => Err(StoreError::Ambiguous {
                reference: reference.into(),
                matches: many
                    .iter()
                    .map(|r| ids::short(&r.config.id).to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn name_owner(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .list()?
            .into_iter()
            .find(|r| r.config.name == name)
            .map(|r| r.config.id))
    }

    /// Creates a container record: picks an id, takes `name` (or a random
    /// one), lets `make` build the config (and whatever else the container
    /// needs, in its directory), then writes config and a `created` state.
    /// The name check and the write happen under the store-wide lock, so two
    /// creates never get the same name. If `make` or the write fails, the
    /// directory is removed.
    pub fn create<E: From<StoreError>>(
        &self,
        name: Option<&str>,
        make: impl FnOnce(&str, &str, &Path) -> Result<ContainerConfig, E>,
    ) -> Result<ContainerRecord, E> {
        if let Some(n) = name {
            if !ids::is_valid_name(n) {
                return Err(StoreError::InvalidName(n.into()).into());
            }
        }
        let _names = self.names_lock()?;
        let name = match name {
            Some(n) => {
                if let Some(id) = self.name_owner(n)? {
                    return Err(StoreError::NameInUse {
                        name: n.into(),
                        id: ids::short(&id).into(),
                    }
                    .into());
                }
                n.to_string()
            }
            None => {
                let mut attempt = 0;
                loop {
                    let n = ids::random_name(attempt.min(1))
                        .map_err(io("reading", Path::new("/dev/urandom")))?;
                    if self.name_owner(&n)?.is_none() {
                        break n;
                    }
                    attempt += 1;
                }
            }
        };
        let id = ids::new_id().map_err(io("reading", Path::new("/dev/urandom")))?;
        let dir = self.container_dir(&id);
        // 0700: the monitor's socket and the container's log live here.
        std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700)
            .create(&dir)
            .map_err(io("creating", &dir))?;
        let config = match make(&id, &name, &dir) {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let state = ContainerState::new();
        let write = || -> Result<(), StoreError> {
            write_json_atomic(&dir.join("state.json"), &state)?;
            write_json_atomic(&dir.join("config.json"), &config)
        };
        if let Err(e) = write() {
            let _ = fs::remove_dir_all(&dir);
            return Err(e.into());
        }
        Ok(ContainerRecord { dir, config, state })
    }

    /// Locks one container's records until the guard drops.
    pub fn lock(&self, id: &str) -> Result<Lock, StoreError> {
        lock_file(&self.container_dir(id).join("lock"))
    }

    /// Reads, changes and writes a container's state under its lock; returns
    /// the new state. `NotFound` if the container is gone.
    pub fn update_state(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerState),
    ) -> Result<ContainerState, StoreError> {
        let dir = self.container_dir(id);
        if !dir.exists() {
            return Err(StoreError::NotFound(id.into()));
        }
        let _lock = self.lock(id)?;
        let path = dir.join("state.json");
        let mut state: ContainerState = match read_json(&path) {
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(id.into()))
            }
            other => other?,
        };
        change(&mut state);
        write_json_atomic(&path, &state)?;
        Ok(state)
    }

    /// Renames a container; the new name must be free.
    pub fn rename(&self, id: &str, new_name: &str) -> Result<(), StoreError> {
        if !ids::is_valid_name(new_name) {
            return Err(StoreError::InvalidName(new_name.into()));
        }
        let _names = self.names_lock()?;
        if let Some(owner) = self.name_owner(new_name)? {
            return Err(StoreError::NameInUse {
                name: new_name.into(),
                id: ids::short(&owner).into(),
            });
        }
        let _lock = self.lock(id)?;
        let path = self.container_dir(id).join("config.json");
        let mut config: ContainerConfig = read_json(&path)?;
        config.name = new_name.into();
        write_json_atomic(&path, &config)
    }

    /// Changes a container's configuration (`network connect` and
    /// `disconnect`), under its lock, written atomically.
    pub fn update_config(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerConfig),
    ) -> Result<ContainerConfig, StoreError> {
        let _lock = self.lock(id)?;
        let path = self.container_dir(id).join("config.json");
        let mut config: ContainerConfig = read_json(&path)?;
        change(&mut config);
        write_json_atomic(&path, &config)?;
        Ok(config)
    }

    /// Removes a container's directory and everything in it. The config goes
    /// first so that readers treat a half-removed container as gone.
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        let dir = self.container_dir(id);
        match fs::remove_file(dir.join("config.json")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    op: "removing",
                    path: dir.join("config.json"),
                    source,
                })
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                op: "removing",
                path: dir,
                source,
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::isolation::Isolation;
    use crate::state::NetworkMode;

    pub(crate) fn config(id: &str, name: &str) -> ContainerConfig {
        ContainerConfig {
            id: id.into(),
            name: name.into(),
            created: chrono::Utc::now(),
            image: "busybox".into(),
            image_id: "sha256:0".into(),
            isolation: Isolation::Process,
            args: vec!["true".into()],
            env: vec![],
            working_dir: "/".into(),
            user: String::new(),
            hostname: ids::short(id).into(),
            tty: false,
            open_stdin: false,
            auto_remove: false,
            restart_policy: Default::default(),
            network: NetworkMode::None,
            network_options: Default::default(),
            netns: None,
            read_only: false,
            mounts: vec![],
            limits: Default::default(),
            cap_add: vec![],
            cap_drop: vec![],
            security_opt: vec![],
            init: false,
            snapshot_key: id.into(),
            rootfs: "/nonexistent".into(),
            labels: Default::default(),
            platform: String::new(),
            stop_signal: None,
            stop_timeout: None,
            ulimits: vec![],
            sysctls: Default::default(),
            group_add: vec![],
            devices: vec![],
            pid_mode: None,
            ipc_mode: None,
            log_config: Default::default(),
            privileged: false,
            healthcheck: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::config;
    use super::*;
    use crate::state::Status;

    #[test]
    fn create_lookup_rename_remove() {
        let root = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(root.path()).unwrap();
        let a = store
            .create(Some("web"), |id, name, _| {
                Ok::<_, StoreError>(config(id, name))
            })
            .unwrap();
        let b = store
            .create(None, |id, name, _| Ok::<_, StoreError>(config(id, name)))
            .unwrap();
        assert!(b.config.name.contains('_'));
        assert_eq!(store.lookup("web").unwrap().config.id, a.config.id);
        assert_eq!(
            store.lookup(&a.config.id[..8]).unwrap().config.id,
            a.config.id
        );
        assert!(matches!(store.lookup("nope"), Err(StoreError::NotFound(_))));
        let e = store
            .create(Some("web"), |id, name, _| {
                Ok::<_, StoreError>(config(id, name))
            })
            .unwrap_err();
        assert!(matches!(e, StoreError::NameInUse { .. }), "{e}");
        assert!(store.rename(&b.config.id, "web").is_err());
        store.rename(&b.config.id, "db").unwrap();
        assert_eq!(store.lookup("db").unwrap().config.id, b.config.id);
        let s = store
            .update_state(&a.config.id, |s| s.status = Status::Running)
            .unwrap();
        assert_eq!(s.status, Status::Running);
        assert_eq!(
            store.read(&a.config.id).unwrap().unwrap().state.status,
            Status::Running
        );
        store.remove(&a.config.id).unwrap();
        assert!(store.read(&a.config.id).unwrap().is_none());
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn concurrent_state_updates_never_lose_or_corrupt() {
        let root = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(root.path()).unwrap();
        let c = store
            .create(None, |id, name, _| Ok::<_, StoreError>(config(id, name)))
            .unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                let id = c.config.id.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        store.update_state(&id, |s| s.restart_count += 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = store.read(&c.config.id).unwrap().unwrap().state;
        assert_eq!(s.restart_count, 200);
    }

    #[test]
    fn concurrent_creates_with_one_name_admit_one() {
        let root = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(root.path()).unwrap();
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    store
                        .create(Some("same"), |id, name, _| {
                            Ok::<_, StoreError>(config(id, name))
                        })
                        .is_ok()
                })
            })
            .collect();
        let ok = threads
            .into_iter()
            .filter(|_| true)
            .map(|t| t.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(ok, 1);
    }
}
