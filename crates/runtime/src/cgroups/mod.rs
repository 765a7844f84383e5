//! cgroups: one container's control group, on cgroup v1 (one directory per
//! mounted hierarchy) or v2 (one directory in the unified tree), behind one
//! enum so callers never branch on the version (enum dispatch, like youki's
//! libcgroups). It creates, limits (`linux.resources`), joins, freezes,
//! reports on and removes that group.
//!
//! It must not know about containers beyond their id and `cgroupsPath`, nor
//! spawn processes: the runtime decides when to create, join and destroy.
//!
//! Layout is read from /proc/self/mountinfo. A hybrid host (v1 controllers
//! plus an empty cgroup2 at /sys/fs/cgroup/unified, as here) is treated as v1:
//! the v2 tree there has no controllers to limit anything with.

pub mod devices;
mod fs;
pub(crate) mod mountinfo;
pub mod v1;
pub mod v2;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

/// How long a freeze waits for every task to stop before it gives up and
/// thaws again (both versions).
const FREEZE_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path} to find the cgroup mounts")]
    MountInfo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no cgroup filesystem is mounted (none listed in /proc/self/mountinfo)")]
    NoCgroupMounts,
    #[error("invalid cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("linux.resources.{field}: cgroup controller {controller} is not available on this host ({reason})")]
    ControllerMissing {
        controller: String,
        field: String,
        reason: String,
    },
    #[error("linux.resources.{field}: {reason}")]
    InvalidValue { field: String, reason: String },
    #[error("linux.resources.memory.swap: swap accounting is off on this host ({path} is missing); set swap equal to memory.limit, or boot with swapaccount=1")]
    SwapAccountingOff { path: PathBuf },
    #[error("cgroup {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("cannot create cgroup directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove cgroup directory {path}")]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read cgroup file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {value:?} to cgroup file {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected content {content:?} in cgroup file {path}")]
    Parse { path: PathBuf, content: String },
    #[error("cgroup {path} did not freeze within {waited:?} (a process may be stuck in the kernel); it was thawed again")]
    FreezeTimeout { path: PathBuf, waited: Duration },
    #[error("cannot kill process {pid} of cgroup {path}")]
    Kill {
        pid: i32,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot {op} cgroup {path}{}", if log.is_empty() { String::new() } else { format!(" (verifier: {log})") })]
    DeviceProgram {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
        log: String,
    },
    #[error("processes of cgroup {path} are still alive after SIGKILL: {pids:?}")]
    Survivors { path: PathBuf, pids: Vec<i32> },
}

/// An existing cgroup below a container's, for one controller (v1) or all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubCgroup {
    pub controller: Option<String>,
    pub path: PathBuf,
}

/// The files a process writes "0" to, to move itself into a cgroup (see
/// [`Cgroup::join_targets`]).
#[derive(Debug, Clone)]
pub struct JoinTargets {
    files: Vec<PathBuf>,
}

impl JoinTargets {
    /// Moves the calling thread into the cgroup: for a process just forked
    /// (one thread) that is the whole process, and its children follow. On
    /// v1 this is far cheaper than a pid written to cgroup.procs, which
    /// takes the kernel's global threadgroup lock, whose write side waits
    /// for an RCU grace period (about 10 ms, the largest part of starting a
    /// container); a thread moving only itself skips that lock.
    pub fn join_self(&self) -> Result<(), Error> {
        for f in &self.files {
            fs::write(f, "0")?;
        }
        Ok(())
    }
}

/// Resource usage of a cgroup, as far as the host's controllers report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Total CPU time consumed by the group's tasks, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Current memory usage in bytes (page cache included, like `docker stats`).
    pub memory_usage_bytes: u64,
    /// Memory limit in bytes; `None` when unlimited.
    pub memory_limit_bytes: Option<u64>,
    /// Number of tasks (threads included) in the group.
    pub pids_current: u64,
    /// Task limit; `None` when unlimited.
    pub pids_limit: Option<u64>,
}

/// One container's cgroup, on whichever version the host runs.
#[derive(Debug, Clone)]
pub enum Cgroup {
    V1(v1::CgroupV1),
    V2(v2::CgroupV2),
}

impl Cgroup {
    /// Create (or open) the cgroup for `cgroups_path` (OCI linux.cgroupsPath),
    /// named as runc's cgroupfs driver names it: an absolute path like
    /// "/isola/<id>" is below each hierarchy's root; a relative one is below
    /// this process's own cgroup in each hierarchy, and an empty one is the
    /// container id there ("/<id>" for a caller in the root cgroup). Detects
    /// v1/v2/hybrid from /proc/self/mountinfo. On error nothing it made is
    /// left behind.
    pub fn create(cgroups_path: &str, container_id: &str) -> Result<Cgroup, Error> {
        Cgroup::create_noting_parents(cgroups_path, container_id).map(|(c, _)| c)
    }

    /// [`Cgroup::create`], also returning, for a relative path, the ancestor
    /// directories that did not exist before, for [`remove_parents`] at the
    /// end.
    pub fn create_noting_parents(
        cgroups_path: &str,
        container_id: &str,
    ) -> Result<(Cgroup, Vec<PathBuf>), Error> {
        let rel = relative_path(cgroups_path, container_id)?;
        let own = match rel {
            Placement::Absolute(_) => BTreeMap::new(),
            Placement::Relative(_) => own_cgroups()?,
        };
        let rel_for = |controller: &str| rel.below(own.get(controller));
        let layout = mountinfo::detect()?;
        let mut missing = Vec::new();
        // Only for a relative path: an absolute one names a shared parent
        // (the engine's /isola) that other containers come and go under.
        let relative = matches!(rel, Placement::Relative(_));
        let mut note = |mount: &Path, rel: &Path| {
            if !relative {
                return;
            }
            let mut dir = mount.to_path_buf();
            for c in rel.parent().into_iter().flat_map(Path::components) {
                dir.push(c);
                if !dir.exists() && !missing.contains(&dir) {
                    missing.push(dir.clone());
                }
            }
        };
        let cgroup = match layout {
            mountinfo::Layout::V1(hierarchies) => {
                for (controller, mount) in &hierarchies {
                    note(mount, &rel_for(controller));
                }
                v1::CgroupV1::create_each(&hierarchies, rel_for).map(Cgroup::V1)?
            }
            mountinfo::Layout::V2(root) => {
                let rel = rel_for("");
                note(&root, &rel);
                v2::CgroupV2::create(&root, &rel).map(Cgroup::V2)?
            }
        };
        Ok((cgroup, missing))
    }

    /// Opens an existing cgroup (made by [`Cgroup::create`], maybe by another
    /// process: a relative path is resolved against this process's own
    /// cgroup again, so a caller that moved should use [`Cgroup::from_dirs`]);
    /// [`Error::NotFound`] if it is absent.
    pub fn open(cgroups_path: &str, container_id: &str) -> Result<Cgroup, Error> {
        let rel = relative_path(cgroups_path, container_id)?;
        let own = match rel {
            Placement::Absolute(_) => BTreeMap::new(),
            Placement::Relative(_) => own_cgroups()?,
        };
        match mountinfo::detect()? {
            mountinfo::Layout::V1(hierarchies) => {
                let dirs = hierarchies
                    .iter()
                    .map(|(c, mount)| (c.clone(), mount.join(rel.below(own.get(c)))))
                    .collect();
                v1::CgroupV1::from_dirs(&dirs)
                    .map(Cgroup::V1)
                    .map_err(|e| match e {
                        Error::NotFound { .. } => Error::NotFound {
                            path: PathBuf::from("/").join(rel.below(None)),
                        },
                        e => e,
                    })
            }
            mountinfo::Layout::V2(root) => {
                v2::CgroupV2::open(&root, &rel.below(own.get(""))).map(Cgroup::V2)
            }
        }
    }

    /// The cgroup with the directories [`Cgroup::dirs`] gave (kept in a
    /// container's state, so that any process finds what create made).
    pub fn from_dirs(dirs: &BTreeMap<String, PathBuf>) -> Result<Cgroup, Error> {
        match mountinfo::detect()? {
            mountinfo::Layout::V1(_) => v1::CgroupV1::from_dirs(dirs).map(Cgroup::V1),
            mountinfo::Layout::V2(_) => {
                let dir = dirs.get("").ok_or(Error::NotFound {
                    path: PathBuf::from("/"),
                })?;
                let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
                    return Err(Error::NotFound { path: dir.clone() });
                };
                v2::CgroupV2::open(parent, Path::new(name)).map(Cgroup::V2)
            }
        }
    }

    /// Controller → directory (v2: one entry, keyed "").
    pub fn dirs(&self) -> BTreeMap<String, PathBuf> {
        match self {
            Cgroup::V1(c) => c.dirs().clone(),
            Cgroup::V2(c) => c.paths().into_iter().map(|d| (String::new(), d)).collect(),
        }
    }

    /// [`Cgroup::create`] then [`Cgroup::apply`]; if applying fails (an absent
    /// controller, a value the kernel refuses), the cgroup is destroyed again
    /// so that nothing is left behind.
    pub fn create_with_resources(
        cgroups_path: &str,
        container_id: &str,
        resources: Option<&LinuxResources>,
    ) -> Result<Cgroup, Error> {
        let cgroup = Cgroup::create(cgroups_path, container_id)?;
        if let Some(resources) = resources {
            if let Err(err) = cgroup.apply(resources) {
                if let Err(cleanup) = cgroup.destroy() {
                    tracing::warn!(error = %cleanup, "removing the cgroup after a failed apply");
                }
                return Err(err);
            }
        }
        Ok(cgroup)
    }

    /// Writes `linux.resources`. Every controller the resources need is
    /// checked first, so an absent one fails before anything is written.
    /// The devices rules are followed by the devices every container needs
    /// (runc's default allow list): on v1 written to devices.allow/deny, on
    /// v2 compiled into a device program attached to the cgroup.
    pub fn apply(&self, resources: &LinuxResources) -> Result<(), Error> {
        match self {
            Cgroup::V1(c) => c.apply(resources),
            Cgroup::V2(c) => c.apply(resources),
        }
    }

    /// Changes the limits of a running container whose cgroup was made with
    /// the device rules `created_with` (`update`). Device rules in
    /// `resources` follow those: v1's controller keeps its state and takes
    /// them as further writes, v2's program is rebuilt from both, so an
    /// update means the same on either.
    pub fn update(
        &self,
        resources: &LinuxResources,
        created_with: &[oci_spec::runtime::LinuxDeviceCgroup],
    ) -> Result<(), Error> {
        match self {
            Cgroup::V1(c) => c.apply(resources),
            Cgroup::V2(c) => match resources.devices().as_deref() {
                Some(rules) if !rules.is_empty() => {
                    let mut all = created_with.to_vec();
                    all.extend_from_slice(rules);
                    let mut resources = resources.clone();
                    resources.set_devices(Some(all));
                    c.apply(&resources)
                }
                _ => c.apply(resources),
            },
        }
    }

    /// Moves process `pid` (and its threads) into the cgroup.
    pub fn add_process(&self, pid: i32) -> Result<(), Error> {
        match self {
            Cgroup::V1(c) => c.add_process(pid),
            Cgroup::V2(c) => c.add_process(pid),
        }
    }

    /// Moves `pid` into existing sub-cgroups of this cgroup (runc's `exec
    /// --cgroup`): each of `subs` is a controller (None: all of them) and a
    /// path below the container's cgroup; a hierarchy no sub names gets the
    /// cgroup itself. On v2 there is one tree: a controller is ignored.
    pub fn add_process_below(&self, pid: i32, subs: &[SubCgroup]) -> Result<(), Error> {
        for dir in self.dirs_below(subs)? {
            fs::write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Where the calling thread goes with [`Cgroup::join_self`]: this
    /// cgroup, or with `subs` its existing sub-cgroups as
    /// [`Cgroup::add_process_below`] places them, checked now (a missing
    /// sub-cgroup is [`Error::NotFound`]). Worked out before a fork, so
    /// that a bad path fails in the caller and the child only writes.
    pub fn join_targets(&self, subs: &[SubCgroup]) -> Result<JoinTargets, Error> {
        let mut files: Vec<PathBuf> = self
            .dirs_below(subs)?
            .into_iter()
            .map(|d| d.join(self.join_file()))
            .collect();
        // A frozen (paused) cgroup freezes whoever joins it: its freezer
        // last, so that the joiner is in every hierarchy by then.
        if let Cgroup::V1(c) = self {
            if let Some(freezer) = c.dirs().get("freezer") {
                files.sort_by_key(|f| f.starts_with(freezer));
            }
        }
        Ok(JoinTargets { files })
    }

    /// The file that takes "0" for the caller: v1's `tasks` (the calling
    /// thread alone), v2's cgroup.procs (its process; v2 has no per-thread
    /// placement outside threaded cgroups).
    fn join_file(&self) -> &'static str {
        match self {
            Cgroup::V1(_) => "tasks",
            Cgroup::V2(_) => "cgroup.procs",
        }
    }

    /// This cgroup's directory in each hierarchy, or with `subs` the
    /// sub-cgroups that [`Cgroup::add_process_below`] names.
    fn dirs_below(&self, subs: &[SubCgroup]) -> Result<Vec<PathBuf>, Error> {
        if subs.is_empty() {
            return Ok(self.paths());
        }
        for s in subs {
            let bad = |reason| Error::InvalidPath {
                path: s.path.display().to_string(),
                reason,
            };
            if s.path.as_os_str().is_empty()
                || !s
                    .path
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)))
            {
                return Err(bad("a sub-cgroup must be a relative path without \"..\""));
            }
        }
        let sub_for = |controller: &str| {
            subs.iter()
                .find(|s| s.controller.as_deref() == Some(controller))
                .or_else(|| subs.iter().find(|s| s.controller.is_none()))
                .map(|s| s.path.clone())
        };
        let targets = match self {
            Cgroup::V1(c) => c.dirs_below(sub_for),
            Cgroup::V2(c) => {
                let dir = c.paths().into_iter().next().ok_or(Error::NotFound {
                    path: PathBuf::from("/"),
                })?;
                let target = subs
                    .iter()
                    .map(|s| dir.join(&s.path))
                    .next_back()
                    .unwrap_or(dir);
                vec![target]
            }
        };
        for target in &targets {
            if !target.is_dir() {
                return Err(Error::NotFound {
                    path: target.clone(),
                });
            }
        }
        Ok(targets)
    }

    /// Freezes every task of the cgroup and waits until the kernel says FROZEN.
    pub fn freeze(&self) -> Result<(), Error> {
        match self {
            Cgroup::V1(c) => c.freeze(),
            Cgroup::V2(c) => c.freeze(),
        }
    }

    pub fn thaw(&self) -> Result<(), Error> {
        match self {
            Cgroup::V1(c) => c.thaw(),
            Cgroup::V2(c) => c.thaw(),
        }
    }

    pub fn is_frozen(&self) -> Result<bool, Error> {
        match self {
            Cgroup::V1(c) => c.is_frozen(),
            Cgroup::V2(c) => c.is_frozen(),
        }
    }

    /// Every process in the cgroup and its descendants, sorted.
    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        match self {
            Cgroup::V1(c) => c.pids(),
            Cgroup::V2(c) => c.pids(),
        }
    }

    pub fn stats(&self) -> Result<Stats, Error> {
        match self {
            Cgroup::V1(c) => c.stats(),
            Cgroup::V2(c) => c.stats(),
        }
    }

    /// Kills what is left (freeze, SIGKILL all, thaw), then removes the
    /// cgroup's directories (children first) in every hierarchy, retrying
    /// briefly while the kernel still reports them busy. Idempotent.
    pub fn destroy(&self) -> Result<(), Error> {
        match self {
            Cgroup::V1(c) => c.destroy(),
            Cgroup::V2(c) => c.destroy(),
        }
    }

    /// The cgroup's directory in every hierarchy it lives in.
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            Cgroup::V1(c) => c.paths(),
            Cgroup::V2(c) => c.paths(),
        }
    }
}

/// Removes `parents` (from [`Cgroup::create_noting_parents`]) that are
/// empty now, deepest first; one another container still uses stays.
pub fn remove_parents(parents: &[PathBuf]) {
    let mut sorted = parents.to_vec();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for dir in sorted {
        if let Err(e) = std::fs::remove_dir(&dir) {
            tracing::debug!(path = %dir.display(), error = %e, "cgroup parent kept");
        }
    }
}

/// The directories of this process's own cgroup, controller → directory
/// (v2: one entry, keyed ""), for [`return_to`] after a move.
pub fn own_dirs() -> Result<BTreeMap<String, PathBuf>, Error> {
    let own = own_cgroups()?;
    Ok(match mountinfo::detect()? {
        mountinfo::Layout::V1(hierarchies) => hierarchies
            .iter()
            .filter_map(|(c, mount)| own.get(c).map(|p| (c.clone(), mount.join(p))))
            .collect(),
        mountinfo::Layout::V2(root) => own
            .get("")
            .map(|p| (String::new(), root.join(p)))
            .into_iter()
            .collect(),
    })
}

/// Moves `pid` (its whole thread group) into the directories [`own_dirs`]
/// gave, for each of `controllers` ("" on v2) present there.
pub fn return_to(
    dirs: &BTreeMap<String, PathBuf>,
    controllers: &[String],
    pid: i32,
) -> Result<(), Error> {
    let mut done: Vec<&PathBuf> = Vec::new();
    for c in controllers {
        let Some(dir) = dirs.get(c) else { continue };
        if done.contains(&dir) {
            continue;
        }
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).map_err(|source| Error::Write {
            path: procs,
            value: pid.to_string(),
            source,
        })?;
        done.push(dir);
    }
    Ok(())
}

/// Where a cgroups path puts the cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placement {
    /// Below each hierarchy's root.
    Absolute(PathBuf),
    /// Below this process's own cgroup in each hierarchy.
    Relative(PathBuf),
}

impl Placement {
    /// The path below a hierarchy's mount, given our own cgroup there.
    fn below(&self, own: Option<&PathBuf>) -> PathBuf {
        match self {
            Placement::Absolute(p) => p.clone(),
            Placement::Relative(p) => own.map_or_else(|| p.clone(), |o| o.join(p)),
        }
    }
}

/// This process's cgroup in each hierarchy (controller, or "" for the v2
/// tree → path below the hierarchy's root), from /proc/self/cgroup.
fn own_cgroups() -> Result<BTreeMap<String, PathBuf>, Error> {
    let path = PathBuf::from("/proc/self/cgroup");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    Ok(parse_own_cgroups(&text))
}

fn parse_own_cgroups(text: &str) -> BTreeMap<String, PathBuf> {
    let mut own = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(p)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        // A path outside our cgroup namespace reads "/.." and up: no base.
        if p.contains("/..") {
            continue;
        }
        let p = PathBuf::from(p.trim_start_matches('/'));
        for c in controllers.split(',') {
            own.insert(c.to_string(), p.clone());
        }
    }
    own
}

/// Where the cgroup goes (see [`Cgroup::create`]).
fn relative_path(cgroups_path: &str, container_id: &str) -> Result<Placement, Error> {
    let invalid = |reason| Error::InvalidPath {
        path: cgroups_path.to_string(),
        reason,
    };
    let (rel, absolute) = if cgroups_path.is_empty() {
        if container_id.is_empty() || container_id.contains('/') || container_id.starts_with('.') {
            return Err(invalid("the container id cannot name a cgroup directory"));
        }
        (PathBuf::from(container_id), false)
    } else if let Some(abs) = cgroups_path.strip_prefix('/') {
        (PathBuf::from(abs), true)
    } else if cgroups_path.split(':').count() == 3 {
        return Err(invalid(
            "systemd-style \"slice:prefix:name\" paths are not supported; use a path such as /isola/<id>",
        ));
    } else {
        (PathBuf::from(cgroups_path), false)
    };
    let mut clean = PathBuf::new();
    for component in rel.components() {
        match component {
            Component::Normal(c) => clean.push(c),
            Component::CurDir => {}
            _ => return Err(invalid("it must not contain \"..\"")),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(invalid("it names the root cgroup"));
    }
    Ok(if absolute {
        Placement::Absolute(clean)
    } else {
        Placement::Relative(clean)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_resolution() {
        let rel = |p: &str| Placement::Relative(PathBuf::from(p));
        let abs = |p: &str| Placement::Absolute(PathBuf::from(p));
        assert_eq!(relative_path("", "c1").unwrap(), rel("c1"));
        assert_eq!(relative_path("/isola/c1", "x").unwrap(), abs("isola/c1"));
        assert_eq!(
            relative_path("/kubepods/pod1/c", "x").unwrap(),
            abs("kubepods/pod1/c")
        );
        assert_eq!(relative_path("team/c2", "x").unwrap(), rel("team/c2"));
        for bad in ["/", "/a/../../etc", "system.slice:isola:c1"] {
            let err = relative_path(bad, "x").unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!(relative_path("", "a/b").is_err());
    }

    #[test]
    fn a_relative_path_is_below_our_own_cgroup() {
        let own = parse_own_cgroups("4:memory:/user/a\n1:cpu,cpuacct:/\n0::/u/b\n2:pids:/../x\n");
        assert_eq!(own["memory"], Path::new("user/a"));
        assert_eq!(own["cpuacct"], Path::new(""));
        assert_eq!(own[""], Path::new("u/b"));
        assert!(!own.contains_key("pids"));
        let p = relative_path("", "c1").unwrap();
        assert_eq!(p.below(own.get("memory")), Path::new("user/a/c1"));
        assert_eq!(p.below(own.get("cpu")), Path::new("c1"));
        assert_eq!(p.below(own.get("pids")), Path::new("c1"));
        let p = relative_path("/isola/c1", "x").unwrap();
        assert_eq!(p.below(own.get("memory")), Path::new("isola/c1"));
    }
}
