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

mod fs;
pub(crate) mod mountinfo;
pub mod v1;
pub mod v2;

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

/// Parent of containers whose `cgroupsPath` is empty or relative.
pub const DEFAULT_PARENT: &str = "isola";

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
    #[error("processes of cgroup {path} are still alive after SIGKILL: {pids:?}")]
    Survivors { path: PathBuf, pids: Vec<i32> },
}

/// An existing cgroup below a container's, for one controller (v1) or all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubCgroup {
    pub controller: Option<String>,
    pub path: PathBuf,
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
    /// Create (or open) the cgroup for `cgroups_path` (OCI linux.cgroupsPath;
    /// an absolute path like "/isola/<id>" is relative to each hierarchy's
    /// root; an empty one means "isola/<id>" and a relative one "isola/<path>"),
    /// detecting v1/v2/hybrid from /proc/self/mountinfo. On error nothing it
    /// made is left behind.
    pub fn create(cgroups_path: &str, container_id: &str) -> Result<Cgroup, Error> {
        let rel = relative_path(cgroups_path, container_id)?;
        match mountinfo::detect()? {
            mountinfo::Layout::V1(hierarchies) => {
                v1::CgroupV1::create(&hierarchies, &rel).map(Cgroup::V1)
            }
            mountinfo::Layout::V2(root) => v2::CgroupV2::create(&root, &rel).map(Cgroup::V2),
        }
    }

    /// Opens an existing cgroup (made by [`Cgroup::create`], maybe by another
    /// process); [`Error::NotFound`] if it is absent.
    pub fn open(cgroups_path: &str, container_id: &str) -> Result<Cgroup, Error> {
        let rel = relative_path(cgroups_path, container_id)?;
        match mountinfo::detect()? {
            mountinfo::Layout::V1(hierarchies) => {
                v1::CgroupV1::open(&hierarchies, &rel).map(Cgroup::V1)
            }
            mountinfo::Layout::V2(root) => v2::CgroupV2::open(&root, &rel).map(Cgroup::V2),
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
    /// On v1 the devices rules are followed by the devices every container
    /// needs (runc's default allow list); on v2 device rules need an eBPF
    /// program, which isola does not load yet: they are skipped with a warning.
    pub fn apply(&self, resources: &LinuxResources) -> Result<(), Error> {
        match self {
            Cgroup::V1(c) => c.apply(resources),
            Cgroup::V2(c) => c.apply(resources),
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
        match self {
            Cgroup::V1(c) => c.add_process_below(pid, sub_for),
            Cgroup::V2(c) => {
                let dir = c.paths().into_iter().next().ok_or(Error::NotFound {
                    path: PathBuf::from("/"),
                })?;
                let target = subs
                    .iter()
                    .map(|s| dir.join(&s.path))
                    .next_back()
                    .unwrap_or(dir);
                if !target.is_dir() {
                    return Err(Error::NotFound { path: target });
                }
                fs::write(&target.join("cgroup.procs"), &pid.to_string())
            }
        }
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

/// The cgroup's path below each hierarchy's root (see [`Cgroup::create`]).
fn relative_path(cgroups_path: &str, container_id: &str) -> Result<PathBuf, Error> {
    let invalid = |reason| Error::InvalidPath {
        path: cgroups_path.to_string(),
        reason,
    };
    let rel = if cgroups_path.is_empty() {
        if container_id.is_empty() || container_id.contains('/') || container_id.starts_with('.') {
            return Err(invalid("the container id cannot name a cgroup directory"));
        }
        Path::new(DEFAULT_PARENT).join(container_id)
    } else if let Some(abs) = cgroups_path.strip_prefix('/') {
        PathBuf::from(abs)
    } else if cgroups_path.split(':').count() == 3 {
        return Err(invalid(
            "systemd-style \"slice:prefix:name\" paths are not supported; use a path such as /isola/<id>",
        ));
    } else {
        Path::new(DEFAULT_PARENT).join(cgroups_path)
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
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_resolution() {
        assert_eq!(relative_path("", "c1").unwrap(), Path::new("isola/c1"));
        assert_eq!(
            relative_path("/isola/c1", "x").unwrap(),
            Path::new("isola/c1")
        );
        assert_eq!(
            relative_path("/kubepods/pod1/c", "x").unwrap(),
            Path::new("kubepods/pod1/c")
        );
        assert_eq!(
            relative_path("team/c2", "x").unwrap(),
            Path::new("isola/team/c2")
        );
        for bad in ["/", "/a/../../etc", "system.slice:isola:c1"] {
            let err = relative_path(bad, "x").unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!(relative_path("", "a/b").is_err());
    }
}

#[cfg(test)]
mod host_tests;
