//! volumes: the volumes of one root (`isola volume create|ls|inspect|rm|
//! prune`, `-v name:/path`, `-v /path`, the image's `VOLUME`s), in docker's
//! layout: `<root>/volumes/<name>/_data` (what containers mount) beside
//! `volume.json` (the record). A volume appears and disappears whole: it is
//! made in a hidden directory and renamed into place, and renamed away
//! before it is deleted. Every change happens under one lock, which
//! container creates that claim volumes hold too, so a volume is never
//! removed between a container's check and its record. Only the `local`
//! driver exists: a volume is a plain directory. Which containers use a
//! volume is read from their records (the container store), never kept here.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::filters::LabelFilter;
use crate::lifecycle::{Engine, Error as LifecycleError};
use crate::state::{ContainerConfig, MountPoint, MOUNT_VOLUME};
use crate::store::{lock_file, write_json_atomic, ContainerStore, Lock, StoreError};

/// The label docker (23 and later) gives anonymous volumes; `volume prune`
/// removes only volumes carrying it unless told `--all`.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// The one driver.
pub const LOCAL_DRIVER: &str = "local";

/// The directory inside a volume that containers mount.
const DATA_DIR: &str = "_data";
const RECORD: &str = "volume.json";

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error("invalid volume name {0:?}: names need at least two characters, [a-zA-Z0-9][a-zA-Z0-9_.-]+ (to mount a host directory, give its absolute path)")]
    InvalidName(String),
    #[error("volume {name} is in use by container {containers}: remove the container first")]
    InUse { name: String, containers: String },
    #[error("volume {name} already exists with different {what}: remove it first, or create it as it is")]
    Conflict { name: String, what: &'static str },
    #[error("volume driver {0:?} is not supported: isola's volumes use the local driver")]
    UnsupportedDriver(String),
    #[error("volume option {0:?} is not supported: local volumes are plain directories (the type, device and o mount options are not built)")]
    UnsupportedOption(String),
    #[error("invalid volume filter {filter:?}: {reason}")]
    InvalidFilter {
        filter: String,
        reason: &'static str,
    },
    #[error("copying the image's {path} into volume {name}")]
    CopyUp {
        name: String,
        path: String,
        #[source]
        source: Box<image::Error>,
    },
    #[error("resolving {path} in the image of the new volume {name}")]
    Resolve {
        name: String,
        path: String,
        #[source]
        source: Box<runtime::rootfile::RootFileError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One volume: its record and where its data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The `_data` directory (not stored: it follows the root).
    #[serde(skip)]
    pub mountpoint: PathBuf,
}

impl Volume {
    /// Made for one container (`-v /path`, an image `VOLUME`).
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// What `volume create` asks for.
#[derive(Debug, Clone, Default)]
pub struct VolumeCreate {
    /// `None`: an anonymous volume ([`ANONYMOUS_LABEL`]), named with 64
    /// random hex digits.
    pub name: Option<String>,
    /// `None` or `local`.
    pub driver: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Driver options (`--opt`): none is supported yet.
    pub options: BTreeMap<String, String>,
}

/// Docker's volume name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_name(name: &str) -> Result<(), VolumeError> {
    let mut chars = name.chars();
    let ok = name.len() >= 2
        && name.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(VolumeError::InvalidName(name.into()))
    }
}

/// `volume ls --filter` (and the API's `filters`): the same key ORs,
/// different keys AND, every `label` must match (docker's rules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeFilters {
    /// Substrings of the name.
    pub name: Vec<String>,
    pub label: Vec<LabelFilter>,
    /// Used by no container (`true`) or by some (`false`).
    pub dangling: Option<bool>,
    pub driver: Vec<String>,
}

impl VolumeFilters {
    /// From `key=value` pairs as `--filter` gives them.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<VolumeFilters, VolumeError> {
        let mut f = VolumeFilters::default();
        for (key, value) in pairs {
            let bad = |reason| VolumeError::InvalidFilter {
                filter: format!("{key}={value}"),
                reason,
            };
            match key {
                "name" => f.name.push(value.into()),
                "driver" => f.driver.push(value.into()),
                "label" => f.label.push(LabelFilter::parse(value)),
                "dangling" => {
                    f.dangling = Some(match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(bad("dangling is true or false")),
                    })
                }
                _ => return Err(bad("volumes filter on name, label, dangling and driver")),
            }
        }
        Ok(f)
    }

    fn matches(&self, v: &Volume, used: bool) -> bool {
        (self.name.is_empty() || self.name.iter().any(|n| v.name.contains(n.as_str())))
            && (self.driver.is_empty() || self.driver.contains(&v.driver))
            && self.label.iter().all(|l| l.matches(&v.labels))
            && self.dangling.is_none_or(|d| d != used)
    }
}

/// What `volume prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumePrune {
    pub removed: Vec<String>,
    /// Bytes of the files in them (each inode once).
    pub reclaimed: u64,
}

/// The volumes of one root.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

impl Volumes {
    pub fn open(root: &Path) -> Result<Volumes, VolumeError> {
        let dir = root.join("volumes");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io("creating", &dir))?;
        Ok(Volumes { dir })
    }

    /// Held while volumes are made or removed, and while a container that
    /// claims volumes is created.
    pub fn lock(&self) -> Result<Lock, VolumeError> {
        Ok(lock_file(&self.dir.join(".lock"))?)
    }

    /// The directory containers mount for volume `name`.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(DATA_DIR)
    }

    fn read(&self, name: &str) -> Result<Option<Volume>, VolumeError> {
        let path = self.dir.join(name).join(RECORD);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &path)(e)),
        };
        let mut v: Volume =
            serde_json::from_slice(&data).map_err(|source| StoreError::Parse { path, source })?;
        v.mountpoint = self.mountpoint(name);
        Ok(Some(v))
    }

    /// A volume by its name.
    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        if check_name(name).is_err() {
            return Err(VolumeError::NotFound(name.into()));
        }
        self.read(name)?
            .ok_or_else(|| VolumeError::NotFound(name.into()))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io("listing", &self.dir))? {
            let entry = entry.map_err(io("listing", &self.dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            // Hidden entries are the lock and volumes being made or removed.
            if name.starts_with('.') {
                continue;
            }
            if let Some(v) = self.read(&name)? {
                out.push(v);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Makes a volume, the caller holding [`Volumes::lock`]. Returns it and
    /// whether it is new: an existing one is returned as it is when asked
    /// for the same driver, labels and options, else refused.
    pub fn create_locked(&self, req: &VolumeCreate) -> Result<(Volume, bool), VolumeError> {
        let driver = req.driver.as_deref().unwrap_or(LOCAL_DRIVER);
        if driver != LOCAL_DRIVER {
            return Err(VolumeError::UnsupportedDriver(driver.into()));
        }
        if let Some(k) = req.options.keys().next() {
            return Err(VolumeError::UnsupportedOption(k.clone()));
        }
        let mut labels = req.labels.clone();
        let name = match &req.name {
            Some(n) => {
                check_name(n)?;
                n.clone()
            }
            None => {
                // As docker: a volume without a name is anonymous.
                labels.insert(ANONYMOUS_LABEL.into(), String::new());
                crate::ids::new_id().map_err(io("reading", Path::new("/dev/urandom")))?
            }
        };
        if let Some(v) = self.read(&name)? {
            let what = if v.driver != driver {
                Some("driver")
            } else if v.labels != labels {
                Some("labels")
            } else if v.options != req.options {
                Some("options")
            } else {
                None
            };
            return match what {
                Some(what) => Err(VolumeError::Conflict { name, what }),
                None => Ok((v, false)),
            };
        }
        self.sweep()?;
        let v = Volume {
            name: name.clone(),
            driver: driver.into(),
            created_at: Utc::now(),
            labels,
            options: req.options.clone(),
            mountpoint: self.mountpoint(&name),
        };
        let tmp = self.dir.join(format!(".creating-{name}"));
        let make = || -> Result<(), VolumeError> {
            std::fs::DirBuilder::new()
                .mode(0o701)
                .create(&tmp)
                .map_err(io("creating", &tmp))?;
            let data = tmp.join(DATA_DIR);
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(&data)
                .map_err(io("creating", &data))?;
            // The umask must not narrow what containers see.
            std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(io("setting the mode of", &data))?;
            write_json_atomic(&tmp.join(RECORD), &v)?;
            let dest = self.dir.join(&name);
            std::fs::rename(&tmp, &dest).map_err(io("renaming into place", &dest))
        };
        if let Err(e) = make() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        self.event("create", &name);
        Ok((v, true))
    }

    /// Removes what a crash left of volumes being made or removed (the
    /// caller holds the lock, so nobody is working on them).
    fn sweep(&self) -> Result<(), VolumeError> {
        for entry in std::fs::read_dir(&self.dir).map_err(io("listing", &self.dir))? {
            let entry = entry.map_err(io("listing", &self.dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".creating-") || name.starts_with(".removing-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    /// Removes a volume nobody uses (the caller holds the lock and checked);
    /// returns the bytes its files took.
    fn event(&self, action: &str, name: &str) {
        if let Some(root) = self.dir.parent() {
            let attrs = [("driver", LOCAL_DRIVER.to_string())];
            crate::events::simple(root, crate::events::EventType::Volume, action, name, &attrs);
        }
    }

    pub fn remove_locked(&self, name: &str) -> Result<u64, VolumeError> {
        check_name(name).map_err(|_| VolumeError::NotFound(name.into()))?;
        let dir = self.dir.join(name);
        let size = crate::disk::dir_size(&dir.join(DATA_DIR));
        let gone = self.dir.join(format!(".removing-{name}"));
        match std::fs::rename(&dir, &gone) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.into()))
            }
            Err(e) => return Err(io("removing", &dir)(e)),
        }
        std::fs::remove_dir_all(&gone).map_err(io("removing", &gone))?;
        self.event("destroy", name);
        Ok(size)
    }
}

/// The volumes a container's record names.
fn volumes_of(config: &ContainerConfig) -> impl Iterator<Item = &MountPoint> {
    config.mounts.iter().filter(|m| m.kind == MOUNT_VOLUME)
}

/// Names of the containers (of `store`) whose records name volume `name`.
fn users(store: &ContainerStore, name: &str) -> Result<Vec<String>, VolumeError> {
    Ok(store
        .list()?
        .into_iter()
        .filter(|r| volumes_of(&r.config).any(|m| m.name.as_deref() == Some(name)))
        .map(|r| r.config.name)
        .collect())
}

/// Removes the anonymous volumes of a removed container (`rm -v`, `run
/// --rm`), leaving any another container still names, as docker does.
pub(crate) fn remove_anonymous(
    root: &Path,
    store: &ContainerStore,
    config: &ContainerConfig,
) -> Result<(), VolumeError> {
    let names: Vec<&str> = volumes_of(config)
        .filter(|m| m.anonymous)
        .filter_map(|m| m.name.as_deref())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let volumes = Volumes::open(root)?;
    let _lock = volumes.lock()?;
    for name in names {
        let others = users(store, name)?;
        if !others.iter().all(|n| *n == config.name) {
            continue;
        }
        match volumes.remove_locked(name) {
            Ok(_) | Err(VolumeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The volumes a container being created holds: claimed (made if new)
/// under the lock, which stays held until the container's record is
/// written, and removed again if the create fails.
pub(crate) struct Claim {
    volumes: Volumes,
    _lock: Option<Lock>,
    /// Volumes this create made.
    made: Vec<String>,
    /// (volume, destination) of the volume mounts without `nocopy`.
    copies: Vec<(String, String)>,
    done: bool,
}

impl Claim {
    /// Resolves the volume mounts of `mounts` (and adds an anonymous one
    /// for each of the image's `VOLUME` paths no mount covers): each gets
    /// its volume's name and `_data` as source.
    pub(crate) fn new(
        root: &Path,
        mounts: &mut Vec<MountPoint>,
        image_volumes: &[String],
    ) -> Result<Claim, VolumeError> {
        let volumes = Volumes::open(root)?;
        for path in image_volumes {
            let covered = mounts
                .iter()
                .any(|m| m.destination.trim_end_matches('/') == path.trim_end_matches('/'));
            if !covered {
                mounts.push(MountPoint {
                    kind: MOUNT_VOLUME.into(),
                    destination: path.clone(),
                    rw: true,
                    ..Default::default()
                });
            }
        }
        let mut claim = Claim {
            _lock: None,
            made: Vec::new(),
            copies: Vec::new(),
            done: false,
            volumes,
        };
        if !mounts.iter().any(|m| m.kind == MOUNT_VOLUME) {
            return Ok(claim);
        }
        claim._lock = Some(claim.volumes.lock()?);
        for m in mounts.iter_mut().filter(|m| m.kind == MOUNT_VOLUME) {
            let anonymous = m.name.is_none();
            let req = VolumeCreate {
                name: m.name.clone(),
                ..Default::default()
            };
            // `-v name:/x` takes the volume as it is, whatever its labels.
            let (v, new) = match m.name.as_deref().map(|n| claim.volumes.read(n)) {
                Some(Ok(Some(v))) => (v, false),
                Some(Err(e)) => return Err(e),
                _ => claim.volumes.create_locked(&req)?,
            };
            if new {
                claim.made.push(v.name.clone());
            }
            if !m.nocopy {
                claim.copies.push((v.name.clone(), m.destination.clone()));
            }
            m.anonymous = anonymous;
            m.source = v.mountpoint.display().to_string();
            m.name = Some(v.name);
        }
        Ok(claim)
    }

    /// Copies what the image holds at each volume's destination into the
    /// volume if it is empty (docker's copy-up), from the container's fresh
    /// root filesystem.
    pub(crate) fn copy_up(&self, rootfs: &Path) -> Result<(), VolumeError> {
        for (name, dest) in &self.copies {
            let data = self.volumes.mountpoint(name);
            let empty = std::fs::read_dir(&data)
                .map_err(io("listing", &data))?
                .next()
                .is_none();
            if !empty {
                continue;
            }
            let resolve_err = |source| VolumeError::Resolve {
                name: name.clone(),
                path: dest.clone(),
                source: Box::new(source),
            };
            let Some(src) =
                runtime::rootfile::resolve_dir(rootfs, Path::new(dest)).map_err(resolve_err)?
            else {
                continue;
            };
            image::store::copy_tree(&src, &data).map_err(|source| VolumeError::CopyUp {
                name: name.clone(),
                path: dest.clone(),
                source: Box::new(source),
            })?;
        }
        Ok(())
    }

    /// The container's record is written: the volumes stay.
    pub(crate) fn commit(mut self) {
        self.done = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.done {
            for name in &self.made {
                let _ = self.volumes.remove_locked(name);
            }
        }
    }
}

/// [`Volumes`], users from the container store.
impl Engine {
    pub fn volumes(&self) -> Result<Volumes, LifecycleError> {
        Ok(Volumes::open(self.root())?)
    }

    /// `volume create`.
    pub fn create_volume(&self, req: &VolumeCreate) -> Result<Volume, LifecycleError> {
        let volumes = self.volumes()?;
        let _lock = volumes.lock()?;
        Ok(volumes.create_locked(req)?.0)
    }

    /// `volume inspect`.
    pub fn volume(&self, name: &str) -> Result<Volume, LifecycleError> {
        Ok(self.volumes()?.get(name)?)
    }

    /// Names of the containers (running or not) whose records name `name`.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>, LifecycleError> {
        Ok(users(self.store(), name)?)
    }

    /// `volume ls`: the volumes that pass `filters`, by name.
    pub fn list_volumes(&self, filters: &VolumeFilters) -> Result<Vec<Volume>, LifecycleError> {
        let used = self.used_volumes()?;
        Ok(self
            .volumes()?
            .list()?
            .into_iter()
            .filter(|v| filters.matches(v, used.contains(&v.name)))
            .collect())
    }

    fn used_volumes(&self) -> Result<HashSet<String>, LifecycleError> {
        Ok(self
            .store()
            .list()?
            .iter()
            .flat_map(|r| volumes_of(&r.config).filter_map(|m| m.name.clone()))
            .collect())
    }

    /// `volume rm`: refused while a container names the volume, `force` or
    /// not (as docker); `force` makes a missing volume no error.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<(), LifecycleError> {
        let volumes = self.volumes()?;
        let _lock = volumes.lock()?;
        if let Err(e) = volumes.get(name) {
            return match e {
                VolumeError::NotFound(_) if force => Ok(()),
                e => Err(e.into()),
            };
        }
        let users = users(self.store(), name)?;
        if !users.is_empty() {
            return Err(VolumeError::InUse {
                name: name.into(),
                containers: users.join(", "),
            }
            .into());
        }
        volumes.remove_locked(name)?;
        Ok(())
    }

    /// `volume prune`: removes the volumes no container names that pass
    /// `filters`; only anonymous ones unless `all` (docker 23 and later).
    pub fn prune_volumes(
        &self,
        all: bool,
        filters: &VolumeFilters,
    ) -> Result<VolumePrune, LifecycleError> {
        let volumes = self.volumes()?;
        let _lock = volumes.lock()?;
        let used = self.used_volumes()?;
        let mut report = VolumePrune::default();
        for v in volumes.list()? {
            if used.contains(&v.name) || !(all || v.is_anonymous()) || !filters.matches(&v, false) {
                continue;
            }
            report.reclaimed += volumes.remove_locked(&v.name)?;
            report.removed.push(v.name);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker() {
        for ok in ["ab", "data", "my_vol.1-x", "0a"] {
            check_name(ok).unwrap();
        }
        for bad in ["a", "", "-x", ".x", "a/b", "a:b", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_is_whole_and_idempotent_and_remove_is_too() {
        let root = tempfile::tempdir().unwrap();
        let vols = Volumes::open(root.path()).unwrap();
        let _lock = vols.lock().unwrap();
        let req = VolumeCreate {
            name: Some("data".into()),
            labels: BTreeMap::from([("a".into(), "1".into())]),
            ..Default::default()
        };
        let (v, new) = vols.create_locked(&req).unwrap();
        assert!(new && v.mountpoint.is_dir());
        assert_eq!(vols.get("data").unwrap(), v);
        let (again, new) = vols.create_locked(&req).unwrap();
        assert!(!new);
        assert_eq!(again, v);
        let mut other = req.clone();
        other.labels.clear();
        assert!(matches!(
            vols.create_locked(&other),
            Err(VolumeError::Conflict { what: "labels", .. })
        ));
        other.driver = Some("nfs".into());
        assert!(matches!(
            vols.create_locked(&other),
            Err(VolumeError::UnsupportedDriver(_))
        ));
        let (anon, _) = vols.create_locked(&VolumeCreate::default()).unwrap();
        assert!(crate::ids::is_full_id(&anon.name) && anon.is_anonymous());
        std::fs::write(v.mountpoint.join("f"), "12345").unwrap();
        std::fs::hard_link(v.mountpoint.join("f"), v.mountpoint.join("g")).unwrap();
        assert_eq!(vols.remove_locked("data").unwrap(), 5);
        assert!(matches!(vols.get("data"), Err(VolumeError::NotFound(_))));
        let names: Vec<String> = vols.list().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names, vec![anon.name]);
        // Nothing hidden is left but the lock.
        let hidden: Vec<_> = std::fs::read_dir(root.path().join("volumes"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n != ".lock")
            .collect();
        assert!(hidden.is_empty(), "{hidden:?}");
    }

    #[test]
    fn filters() {
        let f = VolumeFilters::parse([("label", "a=1"), ("label", "b"), ("name", "da")]).unwrap();
        let v = Volume {
            name: "data".into(),
            driver: "local".into(),
            created_at: Utc::now(),
            labels: BTreeMap::from([("a".into(), "1".into()), ("b".into(), "".into())]),
            options: BTreeMap::new(),
            mountpoint: PathBuf::new(),
        };
        assert!(f.matches(&v, true));
        let f = VolumeFilters::parse([("label", "a=2")]).unwrap();
        assert!(!f.matches(&v, true));
        let f = VolumeFilters::parse([("dangling", "true")]).unwrap();
        assert!(!f.matches(&v, true) && f.matches(&v, false));
        assert!(VolumeFilters::parse([("dangling", "maybe")]).is_err());
        assert!(VolumeFilters::parse([("colour", "x")]).is_err());
    }
}
