//! v1: a container's cgroup on cgroup v1, one directory per mounted
//! hierarchy (cpu, cpuacct, cpuset, memory, devices, freezer, blkio, pids,
//! name=systemd, ...). Limits go to each controller's own files; freezing
//! uses the freezer hierarchy. The hierarchies' mount points are a parameter
//! so tests can lay a fake tree in a temporary directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxResources};

use super::mountinfo::Hierarchies;
use super::{fs, Error, Stats, FREEZE_LIMIT};

#[derive(Debug, Clone)]
pub struct CgroupV1 {
    /// Controller (or `name=...`) → this cgroup's directory in its hierarchy.
    dirs: BTreeMap<String, PathBuf>,
}

impl CgroupV1 {
    /// Makes `rel` in every hierarchy of `hierarchies` (controller → mount
    /// point). A new cpuset directory gets its parent's cpus and mems, or no
    /// task could join it. On error, removes every directory it made.
    pub fn create(hierarchies: &Hierarchies, rel: &Path) -> Result<CgroupV1, Error> {
        Self::create_each(hierarchies, |_| rel.to_path_buf())
    }

    /// Like [`CgroupV1::create`], with the path below each hierarchy's
    /// mount given per controller (co-mounted controllers share the first's).
    pub fn create_each(
        hierarchies: &Hierarchies,
        rel_for: impl Fn(&str) -> PathBuf,
    ) -> Result<CgroupV1, Error> {
        let mut made: Vec<PathBuf> = Vec::new();
        for (mount, controllers) in by_mount(hierarchies) {
            let is_cpuset = controllers.iter().any(|c| c == "cpuset");
            let rel = rel_for(controllers.first().map(String::as_str).unwrap_or(""));
            let result = fs::create_chain(&mount, &rel, |dir| {
                if is_cpuset {
                    copy_cpuset_from_parent(dir)
                } else {
                    Ok(())
                }
            });
            match result {
                Ok(dirs) => made.extend(dirs),
                Err(err) => {
                    fs::remove_made(&made);
                    return Err(err);
                }
            }
        }
        let first_of_mount = |mount: &PathBuf| {
            hierarchies
                .iter()
                .find(|(_, m)| *m == mount)
                .map(|(c, _)| c.clone())
                .unwrap_or_default()
        };
        Ok(CgroupV1 {
            dirs: hierarchies
                .iter()
                .map(|(c, mount)| (c.clone(), mount.join(rel_for(&first_of_mount(mount)))))
                .collect(),
        })
    }

    /// The cgroup whose directories (controller → directory) a create
    /// recorded; those that are gone are left out.
    pub fn from_dirs(dirs: &BTreeMap<String, PathBuf>) -> Result<CgroupV1, Error> {
        let dirs: BTreeMap<String, PathBuf> = dirs
            .iter()
            .filter(|(_, d)| d.is_dir())
            .map(|(c, d)| (c.clone(), d.clone()))
            .collect();
        if dirs.is_empty() {
            return Err(Error::NotFound {
                path: PathBuf::from("/"),
            });
        }
        Ok(CgroupV1 { dirs })
    }

    /// Controller → this cgroup's directory.
    pub fn dirs(&self) -> &BTreeMap<String, PathBuf> {
        &self.dirs
    }

    /// The existing cgroup `rel`, in the hierarchies where it exists.
    pub fn open(hierarchies: &Hierarchies, rel: &Path) -> Result<CgroupV1, Error> {
        let dirs: BTreeMap<String, PathBuf> = hierarchies
            .iter()
            .map(|(c, mount)| (c.clone(), mount.join(rel)))
            .filter(|(_, dir)| dir.is_dir())
            .collect();
        if dirs.is_empty() {
            return Err(Error::NotFound {
                path: PathBuf::from("/").join(rel),
            });
        }
        Ok(CgroupV1 { dirs })
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.dirs.values().cloned().collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// This cgroup's directory for `controller`, or the error naming the
    /// controller and the `linux.resources` field that needs it.
    fn dir(&self, controller: &str, field: &str) -> Result<&Path, Error> {
        self.dirs
            .get(controller)
            .map(PathBuf::as_path)
            .ok_or_else(|| Error::ControllerMissing {
                controller: controller.to_string(),
                field: field.to_string(),
                reason: "no cgroup v1 hierarchy is mounted for it".to_string(),
            })
    }

    fn file(&self, controller: &str, field: &str, name: &str) -> Result<PathBuf, Error> {
        Ok(self.dir(controller, field)?.join(name))
    }

    pub fn apply(&self, r: &LinuxResources) -> Result<(), Error> {
        self.check(r)?;
        if let Some(memory) = r.memory() {
            self.apply_memory(memory)?;
        }
        if let Some(cpu) = r.cpu() {
            let file = |name| self.file("cpu", "cpu", name);
            if let Some(shares) = cpu.shares().filter(|&s| s != 0) {
                fs::write(&file("cpu.shares")?, &shares.to_string())?;
            }
            // A period shorter than the current quota is refused (EINVAL)
            // and the other way round: write the period first, and if the
            // kernel refuses it, the quota first.
            let period = cpu.period().filter(|&p| p != 0).map(|p| p.to_string());
            let quota = cpu.quota().filter(|&q| q != 0).map(|q| q.to_string());
            match (&period, &quota) {
                (Some(p), Some(q)) => {
                    if fs::write(&file("cpu.cfs_period_us")?, p).is_err() {
                        fs::write(&file("cpu.cfs_quota_us")?, q)?;
                        fs::write(&file("cpu.cfs_period_us")?, p)?;
                    } else {
                        fs::write(&file("cpu.cfs_quota_us")?, q)?;
                    }
                }
                (Some(p), None) => fs::write(&file("cpu.cfs_period_us")?, p)?,
                (None, Some(q)) => fs::write(&file("cpu.cfs_quota_us")?, q)?,
                (None, None) => {}
            }
            if let Some(burst) = cpu.burst() {
                fs::write(&file("cpu.cfs_burst_us")?, &burst.to_string())?;
            }
            if let Some(rt_period) = cpu.realtime_period().filter(|&p| p != 0) {
                fs::write(&file("cpu.rt_period_us")?, &rt_period.to_string())?;
            }
            if let Some(rt_runtime) = cpu.realtime_runtime().filter(|&r| r != 0) {
                fs::write(&file("cpu.rt_runtime_us")?, &rt_runtime.to_string())?;
            }
            if let Some(idle) = cpu.idle() {
                fs::write(&file("cpu.idle")?, &idle.to_string())?;
            }
            if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
                fs::write(&self.file("cpuset", "cpu.cpus", "cpuset.cpus")?, cpus)?;
            }
            if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
                fs::write(&self.file("cpuset", "cpu.mems", "cpuset.mems")?, mems)?;
            }
        }
        if let Some(pids) = r.pids() {
            // runc's reading of the spec: 0 leaves the limit alone, < 0 is unlimited.
            if pids.limit() != 0 {
                let value = if pids.limit() > 0 {
                    pids.limit().to_string()
                } else {
                    "max".to_string()
                };
                fs::write(&self.file("pids", "pids", "pids.max")?, &value)?;
            }
        }
        if let Some(rules) = r.devices().as_deref().filter(|d| !d.is_empty()) {
            self.apply_devices(rules)?;
        }
        self.apply_block_io(r)?;
        for limit in r.hugepage_limits().iter().flatten() {
            let name = format!("hugetlb.{}.limit_in_bytes", limit.page_size());
            fs::write_hugepage_limit(&self.file("hugetlb", "hugepageLimits", &name)?, limit)?;
        }
        if let Some(network) = r.network() {
            if let Some(class_id) = network.class_id() {
                let path = self.file("net_cls", "network.classID", "net_cls.classid")?;
                fs::write(&path, &class_id.to_string())?;
            }
            for prio in network.priorities().iter().flatten() {
                let path = self.file("net_prio", "network.priorities", "net_prio.ifpriomap")?;
                fs::write(&path, &format!("{} {}", prio.name(), prio.priority()))?;
            }
        }
        for (device, limit) in r.rdma().iter().flatten() {
            let path = self.file("rdma", "rdma", "rdma.max")?;
            fs::write(&path, &fs::rdma_line(device, limit))?;
        }
        Ok(())
    }

    /// Every controller the resources need, checked before any write so
    /// that an absent one changes nothing.
    fn check(&self, r: &LinuxResources) -> Result<(), Error> {
        let mut needed: Vec<(&str, &str)> = Vec::new();
        if let Some(m) = r.memory() {
            if m.limit().is_some()
                || m.reservation().is_some()
                || m.swap().is_some()
                || m.swappiness().is_some()
                || m.disable_oom_killer().is_some()
            {
                needed.push(("memory", "memory"));
            }
        }
        if let Some(c) = r.cpu() {
            if c.shares().is_some()
                || c.quota().is_some()
                || c.period().is_some()
                || c.burst().is_some()
                || c.idle().is_some()
                || c.realtime_period().is_some()
                || c.realtime_runtime().is_some()
            {
                needed.push(("cpu", "cpu"));
            }
            if c.cpus().as_deref().is_some_and(|s| !s.is_empty()) {
                needed.push(("cpuset", "cpu.cpus"));
            }
            if c.mems().as_deref().is_some_and(|s| !s.is_empty()) {
                needed.push(("cpuset", "cpu.mems"));
            }
        }
        if r.pids().is_some_and(|p| p.limit() != 0) {
            needed.push(("pids", "pids"));
        }
        if r.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            needed.push(("devices", "devices"));
        }
        if r.block_io().is_some() {
            needed.push(("blkio", "blockIO"));
        }
        if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
            needed.push(("hugetlb", "hugepageLimits"));
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() {
                needed.push(("net_cls", "network.classID"));
            }
            if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                needed.push(("net_prio", "network.priorities"));
            }
        }
        if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
            needed.push(("rdma", "rdma"));
        }
        for (controller, field) in needed {
            self.dir(controller, field)?;
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(Error::InvalidValue {
                field: "unified".into(),
                reason: "needs cgroup v2, and this host uses cgroup v1".into(),
            });
        }
        if let Some(m) = r.memory() {
            self.check_swap(m)?;
        }
        Ok(())
    }

    /// Without swap accounting there is no memory.memsw.* file; a swap limit
    /// equal to the memory limit (no swap) or unlimited needs none.
    fn check_swap(&self, m: &LinuxMemory) -> Result<(), Error> {
        let Some(swap) = m.swap() else { return Ok(()) };
        let path = self.file("memory", "memory.swap", "memory.memsw.limit_in_bytes")?;
        if !path.exists() && swap != -1 && Some(swap) != m.limit() {
            return Err(Error::SwapAccountingOff { path });
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<(), Error> {
        let file = |name| self.file("memory", "memory", name);
        let limit_path = file("memory.limit_in_bytes")?;
        let swap_path = file("memory.memsw.limit_in_bytes")?;
        let swap = m.swap().filter(|_| swap_path.exists());
        match (m.limit(), swap) {
            // memory.limit_in_bytes must stay <= memory.memsw.limit_in_bytes
            // at every step: raise memsw first when it grows, last when it shrinks.
            (Some(limit), Some(swap)) => {
                let current = fs::read_u64(&swap_path)?.unwrap_or(u64::MAX);
                let grows = swap == -1 || u64::try_from(swap).is_ok_and(|s| s > current);
                if grows {
                    fs::write(&swap_path, &swap.to_string())?;
                    fs::write(&limit_path, &limit.to_string())?;
                } else {
                    fs::write(&limit_path, &limit.to_string())?;
                    fs::write(&swap_path, &swap.to_string())?;
                }
            }
            (Some(limit), None) => fs::write(&limit_path, &limit.to_string())?,
            (None, Some(swap)) => fs::write(&swap_path, &swap.to_string())?,
            (None, None) => {}
        }
        if let Some(reservation) = m.reservation() {
            fs::write(
                &file("memory.soft_limit_in_bytes")?,
                &reservation.to_string(),
            )?;
        }
        if let Some(swappiness) = m.swappiness() {
            if swappiness > 100 {
                return Err(Error::InvalidValue {
                    field: "memory.swappiness".into(),
                    reason: format!("{swappiness} is above 100"),
                });
            }
            fs::write(&file("memory.swappiness")?, &swappiness.to_string())?;
        }
        if m.disable_oom_killer() == Some(true) {
            fs::write(&file("memory.oom_control")?, "1")?;
        }
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            // Kernel memory limits are deprecated and refused by current kernels.
            tracing::warn!("linux.resources.memory.kernel/kernelTCP are ignored");
        }
        Ok(())
    }

    /// Writes the configured rules in order, then the devices every
    /// container needs (see [`default_allowed_devices`]).
    fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<(), Error> {
        let dir = self.dir("devices", "devices")?;
        for rule in rules
            .iter()
            .chain(super::devices::default_allowed_devices().iter())
        {
            let Some(line) = device_rule_line(rule) else {
                continue;
            };
            let file = if rule.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            fs::write(&dir.join(file), &line)?;
        }
        Ok(())
    }

    fn apply_block_io(&self, r: &LinuxResources) -> Result<(), Error> {
        let Some(b) = r.block_io() else { return Ok(()) };
        let dir = self.dir("blkio", "blockIO")?;
        // With the BFQ scheduler (the only one with weights on current kernels) the files are blkio.bfq.*.
        let weight_file = |plain: &str, bfq: &str| {
            let p = dir.join(plain);
            if p.exists() {
                Ok(p)
            } else if dir.join(bfq).exists() {
                Ok(dir.join(bfq))
            } else {
                Err(Error::InvalidValue {
                    field: "blockIO.weight".into(),
                    reason: format!(
                        "block IO weights need the BFQ I/O scheduler (no {plain} or {bfq} in {})",
                        dir.display()
                    ),
                })
            }
        };
        if let Some(w) = b.weight() {
            fs::write(
                &weight_file("blkio.weight", "blkio.bfq.weight")?,
                &w.to_string(),
            )?;
        }
        if let Some(w) = b.leaf_weight() {
            fs::write(&dir.join("blkio.leaf_weight"), &w.to_string())?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                let path = weight_file("blkio.weight_device", "blkio.bfq.weight_device")?;
                fs::write(&path, &format!("{}:{} {w}", d.major(), d.minor()))?;
            }
            if let Some(w) = d.leaf_weight() {
                let line = format!("{}:{} {w}", d.major(), d.minor());
                fs::write(&dir.join("blkio.leaf_weight_device"), &line)?;
            }
        }
        let throttles = [
            (
                "blkio.throttle.read_bps_device",
                b.throttle_read_bps_device(),
            ),
            (
                "blkio.throttle.write_bps_device",
                b.throttle_write_bps_device(),
            ),
            (
                "blkio.throttle.read_iops_device",
                b.throttle_read_iops_device(),
            ),
            (
                "blkio.throttle.write_iops_device",
                b.throttle_write_iops_device(),
            ),
        ];
        for (name, devices) in throttles {
            for d in devices.iter().flatten() {
                let line = format!("{}:{} {}", d.major(), d.minor(), d.rate());
                fs::write(&dir.join(name), &line)?;
            }
        }
        Ok(())
    }

    pub fn add_process(&self, pid: i32) -> Result<(), Error> {
        for dir in self.paths() {
            fs::write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// In each hierarchy, the sub-path `sub` gives for one of its
    /// controllers below the cgroup, else the cgroup itself.
    pub fn dirs_below(&self, sub: impl Fn(&str) -> Option<PathBuf>) -> Vec<PathBuf> {
        let mut targets: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        for (controller, dir) in &self.dirs {
            let target = sub(controller).map_or_else(|| dir.clone(), |s| dir.join(s));
            // Co-mounted controllers share a directory: a sub-path named for
            // any of them wins over none.
            let slot = targets.entry(dir.clone()).or_insert_with(|| dir.clone());
            if target != *dir {
                *slot = target;
            }
        }
        targets.into_values().collect()
    }

    fn freezer_state(&self) -> Result<PathBuf, Error> {
        self.file("freezer", "freezer", "freezer.state")
    }

    pub fn freeze(&self) -> Result<(), Error> {
        let state = self.freezer_state()?;
        // Writing FROZEN starts freezing; the kernel reports FREEZING until
        // every task stopped. Re-writing FROZEN retries tasks that were busy.
        let frozen = fs::poll_until(FREEZE_LIMIT, || {
            fs::write(&state, "FROZEN")?;
            Ok(fs::read(&state)?.trim() == "FROZEN")
        })?;
        if !frozen {
            fs::write(&state, "THAWED")?;
            return Err(Error::FreezeTimeout {
                path: state,
                waited: FREEZE_LIMIT,
            });
        }
        Ok(())
    }

    pub fn thaw(&self) -> Result<(), Error> {
        fs::write(&self.freezer_state()?, "THAWED")
    }

    pub fn is_frozen(&self) -> Result<bool, Error> {
        Ok(fs::read(&self.freezer_state()?)?.trim() == "FROZEN")
    }

    /// The hierarchy whose membership is read: any holds every task, as all
    /// get the same `add_process`; pids or freezer first as they always exist
    /// on container hosts.
    fn membership_dir(&self) -> Option<&Path> {
        ["pids", "freezer", "memory", "cpu"]
            .iter()
            .find_map(|c| self.dirs.get(*c))
            .or_else(|| self.dirs.values().next())
            .map(PathBuf::as_path)
    }

    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        match self.membership_dir() {
            Some(dir) => fs::procs_recursive(dir),
            None => Ok(Vec::new()),
        }
    }

    pub fn stats(&self) -> Result<Stats, Error> {
        let mut stats = Stats::default();
        if let Some(dir) = self.dirs.get("cpuacct") {
            stats.cpu_usage_ns = fs::read_u64(&dir.join("cpuacct.usage"))?.unwrap_or(0);
        }
        if let Some(dir) = self.dirs.get("memory") {
            stats.memory_usage_bytes =
                fs::read_u64(&dir.join("memory.usage_in_bytes"))?.unwrap_or(0);
            stats.memory_limit_bytes = fs::limit(fs::read_u64(&dir.join("memory.limit_in_bytes"))?);
        }
        if let Some(dir) = self.dirs.get("pids") {
            stats.pids_current = fs::read_u64(&dir.join("pids.current"))?.unwrap_or(0);
            stats.pids_limit = fs::limit(fs::read_u64(&dir.join("pids.max"))?);
        }
        Ok(stats)
    }

    pub fn destroy(&self) -> Result<(), Error> {
        if let Some(dir) = self.membership_dir().filter(|d| d.exists()) {
            // Freezing first stops a fork loop from outrunning the kills.
            let frozen =
                self.dirs.get("freezer").is_some_and(|f| f.exists()) && self.freeze().is_ok();
            let killed = fs::kill_all(dir);
            if frozen {
                self.thaw()?;
            }
            killed?;
            fs::wait_empty(dir)?;
        }
        for dir in self.paths() {
            fs::remove_tree(&dir)?;
        }
        Ok(())
    }
}

/// Mount point → the controllers it holds (co-mounted ones share one).
fn by_mount(hierarchies: &Hierarchies) -> BTreeMap<PathBuf, Vec<String>> {
    let mut mounts: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for (controller, mount) in hierarchies {
        mounts
            .entry(mount.clone())
            .or_default()
            .push(controller.clone());
    }
    mounts
}

fn copy_cpuset_from_parent(dir: &Path) -> Result<(), Error> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for name in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(name);
        if fs::read(&own)?.trim().is_empty() {
            let value = fs::read(&parent.join(name))?;
            fs::write(&own, value.trim())?;
        }
    }
    Ok(())
}

/// "type major:minor access" as devices.allow/deny take it; `None` for rules
/// the device controller cannot express (FIFOs need no rule).
fn device_rule_line(rule: &LinuxDeviceCgroup) -> Option<String> {
    let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => return None,
    };
    let number = |n: Option<i64>| {
        n.filter(|&n| n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = rule
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    Some(format!(
        "{kind} {}:{} {access}",
        number(rule.major()),
        number(rule.minor())
    ))
}

#[cfg(test)]
#[path = "v1_tests.rs"]
mod tests;
