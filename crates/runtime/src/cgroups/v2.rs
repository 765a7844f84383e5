//! v2: a container's cgroup in the unified hierarchy: one directory, its
//! controllers enabled through every ancestor's cgroup.subtree_control,
//! freezing with cgroup.freeze and killing with cgroup.kill. The mount root
//! is a parameter so tests can point it at a temporary directory laid out
//! like a cgroup2 mount.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxMemory, LinuxResources};

use super::devices::{self, DeviceAccess};
use super::{fs, Error, Stats, FREEZE_LIMIT};
use crate::sys;

#[derive(Debug, Clone)]
pub struct CgroupV2 {
    /// The cgroup's directory (mount root joined with the relative path).
    dir: PathBuf,
}

impl CgroupV2 {
    /// Makes `rel` below the cgroup2 mount `root`, enabling in each ancestor
    /// every controller the ancestor has, so the leaf gets all of them (as
    /// runc does). A controller the kernel refuses to enable is left out and
    /// reported by [`CgroupV2::apply`] if a limit needs it.
    pub fn create(root: &Path, rel: &Path) -> Result<CgroupV2, Error> {
        let made = fs::create_chain(root, rel, |_| Ok(()))?;
        let cgroup = CgroupV2 {
            dir: root.join(rel),
        };
        let mut ancestor = root.to_path_buf();
        for component in rel.components() {
            if let Err(err) = enable_controllers(&ancestor) {
                fs::remove_made(&made);
                return Err(err);
            }
            ancestor.push(component);
        }
        Ok(cgroup)
    }

    pub fn open(root: &Path, rel: &Path) -> Result<CgroupV2, Error> {
        let dir = root.join(rel);
        if !dir.is_dir() {
            return Err(Error::NotFound { path: dir });
        }
        Ok(CgroupV2 { dir })
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn controllers(&self) -> Result<Vec<String>, Error> {
        Ok(fs::read(&self.dir.join("cgroup.controllers"))?
            .split_whitespace()
            .map(str::to_string)
            .collect())
    }

    pub fn apply(&self, r: &LinuxResources) -> Result<(), Error> {
        self.check(r)?;
        let file = |name: &str| self.dir.join(name);
        if let Some(m) = r.memory() {
            self.apply_memory(m)?;
        }
        if let Some(cpu) = r.cpu() {
            if let Some(weight) = cpu.shares().and_then(shares_to_weight) {
                fs::write(&file("cpu.weight"), &weight.to_string())?;
            }
            // runc's cpu.max: "max" unless a positive quota, then the period if given.
            let quota = cpu.quota().unwrap_or(0);
            let period = cpu.period().unwrap_or(0);
            if quota != 0 || period != 0 {
                let mut value = if quota > 0 {
                    quota.to_string()
                } else {
                    "max".to_string()
                };
                if period != 0 {
                    value.push_str(&format!(" {period}"));
                }
                fs::write(&file("cpu.max"), &value)?;
            }
            if let Some(burst) = cpu.burst() {
                fs::write(&file("cpu.max.burst"), &burst.to_string())?;
            }
            if let Some(idle) = cpu.idle() {
                fs::write(&file("cpu.idle"), &idle.to_string())?;
            }
            if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
                fs::write(&file("cpuset.cpus"), cpus)?;
            }
            if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
                fs::write(&file("cpuset.mems"), mems)?;
            }
        }
        if let Some(pids) = r.pids() {
            if pids.limit() != 0 {
                let value = if pids.limit() > 0 {
                    pids.limit().to_string()
                } else {
                    "max".to_string()
                };
                fs::write(&file("pids.max"), &value)?;
            }
        }
        if let Some(rules) = r.devices().as_deref().filter(|d| !d.is_empty()) {
            self.apply_devices(rules)?;
        }
        if let Some(b) = r.block_io() {
            if let Some(w) = b.weight() {
                fs::write(&self.io_weight_file()?, &format!("default {w}"))?;
            }
            for d in b.weight_device().iter().flatten() {
                if let Some(w) = d.weight() {
                    let line = format!("{}:{} {w}", d.major(), d.minor());
                    fs::write(&self.io_weight_file()?, &line)?;
                }
            }
            let throttles = [
                ("rbps", b.throttle_read_bps_device()),
                ("wbps", b.throttle_write_bps_device()),
                ("riops", b.throttle_read_iops_device()),
                ("wiops", b.throttle_write_iops_device()),
            ];
            for (key, devices) in throttles {
                for d in devices.iter().flatten() {
                    let line = format!("{}:{} {key}={}", d.major(), d.minor(), d.rate());
                    fs::write(&file("io.max"), &line)?;
                }
            }
        }
        for limit in r.hugepage_limits().iter().flatten() {
            let path = file(&format!("hugetlb.{}.max", limit.page_size()));
            fs::write_hugepage_limit(&path, limit)?;
        }
        for (device, limit) in r.rdma().iter().flatten() {
            fs::write(&file("rdma.max"), &fs::rdma_line(device, limit))?;
        }
        let mut unified: Vec<_> = r.unified().iter().flatten().collect();
        unified.sort();
        for (key, value) in unified {
            fs::write(&file(key), value)?;
        }
        Ok(())
    }

    /// Checks, before any write, that every controller the resources need
    /// is enabled for this cgroup and that no v1-only field is set.
    fn check(&self, r: &LinuxResources) -> Result<(), Error> {
        let available = self.controllers()?;
        let mut needed: Vec<(String, String)> = Vec::new();
        let mut need = |controller: &str, field: &str| {
            needed.push((controller.to_string(), field.to_string()));
        };
        if let Some(m) = r.memory() {
            if m.limit().is_some() || m.reservation().is_some() || m.swap().is_some() {
                need("memory", "memory");
            }
        }
        if let Some(c) = r.cpu() {
            if c.shares().is_some()
                || c.quota().is_some()
                || c.period().is_some()
                || c.burst().is_some()
                || c.idle().is_some()
            {
                need("cpu", "cpu");
            }
            if c.cpus().as_deref().is_some_and(|s| !s.is_empty()) {
                need("cpuset", "cpu.cpus");
            }
            if c.mems().as_deref().is_some_and(|s| !s.is_empty()) {
                need("cpuset", "cpu.mems");
            }
            if c.realtime_period().is_some_and(|p| p != 0)
                || c.realtime_runtime().is_some_and(|r| r != 0)
            {
                return Err(Error::InvalidValue {
                    field: "cpu.realtimeRuntime".into(),
                    reason: "realtime CPU limits do not exist on cgroup v2".into(),
                });
            }
        }
        if r.pids().is_some_and(|p| p.limit() != 0) {
            need("pids", "pids");
        }
        if r.block_io().is_some() {
            need("io", "blockIO");
        }
        if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
            need("hugetlb", "hugepageLimits");
        }
        if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
            need("rdma", "rdma");
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(Error::InvalidValue {
                    field: "network".into(),
                    reason:
                        "net_cls/net_prio exist only on cgroup v1, and this host uses cgroup v2"
                            .into(),
                });
            }
        }
        for key in r.unified().iter().flat_map(|u| u.keys()) {
            if key.contains('/') || key.starts_with('.') || !key.contains('.') {
                return Err(Error::InvalidValue {
                    field: format!("unified[{key:?}]"),
                    reason: "not a cgroup interface file name".into(),
                });
            }
            let controller = key.split('.').next().unwrap_or_default();
            if controller != "cgroup" {
                need(controller, &format!("unified[{key:?}]"));
            }
        }
        for (controller, field) in needed {
            if !available.contains(&controller) {
                return Err(Error::ControllerMissing {
                    reason: format!("not in {}", self.dir.join("cgroup.controllers").display()),
                    controller,
                    field,
                });
            }
        }
        if let Some(m) = r.memory() {
            swap_max(m)?;
            let swap_file = self.dir.join("memory.swap.max");
            if m.swap().is_some_and(|s| s != -1 && Some(s) != m.limit()) && !swap_file.exists() {
                return Err(Error::SwapAccountingOff { path: swap_file });
            }
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<(), Error> {
        let file = |name: &str| self.dir.join(name);
        // Swap first: memory.max may be refused while usage is above it, and
        // a later swap write must not run against a limit being lowered.
        if let Some(swap) = swap_max(m)? {
            let path = file("memory.swap.max");
            if path.exists() {
                fs::write(&path, &swap)?;
            }
        }
        if let Some(limit) = m.limit() {
            fs::write(&file("memory.max"), &max_or(limit))?;
        }
        if let Some(reservation) = m.reservation() {
            fs::write(&file("memory.low"), &max_or(reservation))?;
        }
        if m.swappiness().is_some() || m.disable_oom_killer().is_some() {
            tracing::warn!("cgroup v2: linux.resources.memory.swappiness/disableOOMKiller have no v2 file; ignored");
        }
        Ok(())
    }

    /// v2 has no devices.allow: the rules, followed by the devices every
    /// container needs (as on v1), become a device program attached to the
    /// cgroup. A program attached before (an earlier apply, `update`) is
    /// detached once the new one is in place, so there is never a moment
    /// without one.
    fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<(), Error> {
        let defaults = devices::default_allowed_devices();
        let access =
            DeviceAccess::from_rules(rules.iter().chain(defaults.iter())).map_err(|e| {
                Error::InvalidValue {
                    field: "devices".into(),
                    reason: e.to_string(),
                }
            })?;
        let insns: Vec<[u8; 8]> = access.program().into_iter().map(|i| i.to_bytes()).collect();
        let bpf_err = |op: &'static str| {
            let dir = self.dir.clone();
            move |source: nix::errno::Errno| Error::DeviceProgram {
                op,
                path: dir,
                source: source.into(),
                log: String::new(),
            }
        };
        let dir = std::fs::File::open(&self.dir).map_err(|source| Error::DeviceProgram {
            op: "open the cgroup directory for",
            path: self.dir.clone(),
            source,
            log: String::new(),
        })?;
        let old = sys::bpf_device_programs(dir.as_fd())
            .map_err(bpf_err("query the device programs of"))?;
        let prog =
            sys::bpf_load_device_program(&insns).map_err(|(errno, log)| Error::DeviceProgram {
                op: "load the device program for",
                path: self.dir.clone(),
                source: errno.into(),
                log,
            })?;
        sys::bpf_attach_device_program(dir.as_fd(), prog.as_fd())
            .map_err(bpf_err("attach the device program to"))?;
        for fd in old {
            sys::bpf_detach_device_program(dir.as_fd(), fd.as_fd())
                .map_err(bpf_err("detach the previous device program from"))?;
        }
        Ok(())
    }

    fn io_weight_file(&self) -> Result<PathBuf, Error> {
        ["io.weight", "io.bfq.weight"]
            .iter()
            .map(|n| self.dir.join(n))
            .find(|p| p.exists())
            .ok_or_else(|| Error::InvalidValue {
                field: "blockIO.weight".into(),
                reason: format!("no io.weight or io.bfq.weight in {}", self.dir.display()),
            })
    }

    pub fn add_process(&self, pid: i32) -> Result<(), Error> {
        fs::write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    fn freeze_file(&self) -> Result<PathBuf, Error> {
        let path = self.dir.join("cgroup.freeze");
        if !path.exists() {
            return Err(Error::ControllerMissing {
                controller: "freezer".into(),
                field: "(pause)".into(),
                reason: format!("no {} (kernel older than 5.2)", path.display()),
            });
        }
        Ok(path)
    }

    pub fn freeze(&self) -> Result<(), Error> {
        let path = self.freeze_file()?;
        fs::write(&path, "1")?;
        if !fs::poll_until(FREEZE_LIMIT, || self.is_frozen())? {
            fs::write(&path, "0")?;
            return Err(Error::FreezeTimeout {
                path,
                waited: FREEZE_LIMIT,
            });
        }
        Ok(())
    }

    pub fn thaw(&self) -> Result<(), Error> {
        fs::write(&self.freeze_file()?, "0")
    }

    /// From cgroup.events, which says "frozen 1" once every task stopped.
    pub fn is_frozen(&self) -> Result<bool, Error> {
        let events = fs::read(&self.dir.join("cgroup.events"))?;
        Ok(events.lines().any(|l| l.trim() == "frozen 1"))
    }

    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        fs::procs_recursive(&self.dir)
    }

    pub fn stats(&self) -> Result<Stats, Error> {
        let mut stats = Stats::default();
        let file = |name: &str| self.dir.join(name);
        if let Ok(cpu) = fs::read(&file("cpu.stat")) {
            let usec = cpu
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            stats.cpu_usage_ns = usec.saturating_mul(1000);
        }
        if file("memory.current").exists() {
            stats.memory_usage_bytes = fs::read_u64(&file("memory.current"))?.unwrap_or(0);
            stats.memory_limit_bytes = fs::limit(fs::read_u64(&file("memory.max"))?);
        }
        if file("pids.current").exists() {
            stats.pids_current = fs::read_u64(&file("pids.current"))?.unwrap_or(0);
            stats.pids_limit = fs::limit(fs::read_u64(&file("pids.max"))?);
        }
        Ok(stats)
    }

    pub fn destroy(&self) -> Result<(), Error> {
        if !self.dir.exists() {
            return Ok(());
        }
        let kill_file = self.dir.join("cgroup.kill");
        if kill_file.exists() {
            // cgroup.kill (5.14+) kills the whole subtree atomically, forks included.
            fs::write(&kill_file, "1")?;
        } else {
            let frozen = self.freeze().is_ok();
            let killed = fs::kill_all(&self.dir);
            if frozen {
                self.thaw()?;
            }
            killed?;
        }
        fs::wait_empty(&self.dir)?;
        fs::remove_tree(&self.dir)
    }
}

/// Enables in `dir`'s cgroup.subtree_control every controller `dir` has
/// that is not enabled yet: all in one write, and if the kernel refuses that
/// (it refuses the whole write when one controller fails), one at a time so
/// that one refusal does not cost the others.
fn enable_controllers(dir: &Path) -> Result<(), Error> {
    let available = fs::read(&dir.join("cgroup.controllers"))?;
    let control = dir.join("cgroup.subtree_control");
    let enabled = fs::read(&control)?;
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    let missing: Vec<&str> = available
        .split_whitespace()
        .filter(|c| !enabled.contains(c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
    if fs::write(&control, &all.join(" ")).is_ok() {
        return Ok(());
    }
    for controller in missing {
        if let Err(err) = fs::write(&control, &format!("+{controller}")) {
            tracing::debug!(%controller, error = %err, "cgroup v2: controller not enabled");
        }
    }
    Ok(())
}

/// runc's conversion of cpu shares (2..262144) to cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> Option<u64> {
    if shares == 0 {
        return None;
    }
    let shares = shares.clamp(2, 262_144);
    Some(1 + ((shares - 2) * 9999) / 262_142)
}

/// OCI's swap is memory+swap (the v1 memsw meaning); v2's memory.swap.max
/// is swap alone. Same rules as runc's ConvertMemorySwapToCgroupV2Value.
fn swap_max(m: &LinuxMemory) -> Result<Option<String>, Error> {
    let limit = m.limit().unwrap_or(0);
    let swap = m.swap().unwrap_or(0);
    let invalid = |reason: &str| Error::InvalidValue {
        field: "memory.swap".into(),
        reason: reason.to_string(),
    };
    Ok(match (limit, swap) {
        // Memory unlimited and swap unset: both unlimited, as on v1.
        (-1, 0) => Some("max".into()),
        (_, 0) => None,
        (_, -1) => Some("max".into()),
        (0 | -1, _) => return Err(invalid("a swap limit needs a memory limit")),
        (l, s) if s < l => return Err(invalid("memory+swap must be >= memory.limit")),
        (l, s) => Some((s - l).to_string()),
    })
}

fn max_or(value: i64) -> String {
    if value < 0 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
#[path = "v2_tests.rs"]
mod tests;
