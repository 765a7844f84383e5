//! host_cgroup: the host cgroup of one VM, `/isola-vm/<id>`, which holds
//! the memory and pids limits; QEMU runs in its `vmm` child (joined before
//! QEMU's first instruction, and what `pause` freezes) and, when asked, the
//! process that owns the VM (the engine's monitor) in its `monitor` child,
//! so that what the guest makes the monitor buffer counts against the same
//! limit. It must not know what runs in the VM.

use std::collections::BTreeMap;
use std::path::PathBuf;

use runtime::cgroups::Cgroup;

use crate::Error;

/// The cgroups of one VM.
pub(crate) struct HostCgroup {
    limits: Cgroup,
    vmm: Cgroup,
    /// The caller's cgroup below the limits, and where it came from.
    caller: Option<(Cgroup, BTreeMap<String, PathBuf>)>,
}

/// The path of a VM's host cgroup (as [`Cgroup::create`] takes it).
pub fn path(id: &str) -> String {
    format!("/isola-vm/{id}")
}

impl HostCgroup {
    /// Makes the VM's cgroups, `memory` bytes and [`crate::jail::PIDS_LIMIT`]
    /// tasks at most, and moves the calling process into its `monitor` child
    /// if `hold_caller`. On error nothing is left.
    pub(crate) fn create(id: &str, memory: u64, hold_caller: bool) -> Result<HostCgroup, Error> {
        let top = path(id);
        let err = |path: String| {
            move |source| Error::Cgroup {
                pid: std::process::id(),
                path,
                source,
            }
        };
        let mut resources = oci_spec::runtime::LinuxResources::default();
        let mut m = oci_spec::runtime::LinuxMemory::default();
        m.set_limit(Some(memory as i64));
        resources.set_memory(Some(m));
        let mut pids = oci_spec::runtime::LinuxPids::default();
        pids.set_limit(crate::jail::PIDS_LIMIT);
        resources.set_pids(Some(pids));
        let limits =
            Cgroup::create_with_resources(&top, id, Some(&resources)).map_err(err(top.clone()))?;
        let made = (|| {
            let vmm_path = format!("{top}/vmm");
            let vmm = Cgroup::create(&vmm_path, id).map_err(err(vmm_path))?;
            let mut cg = HostCgroup {
                limits: limits.clone(),
                vmm,
                caller: None,
            };
            if hold_caller {
                let from = runtime::cgroups::own_dirs().map_err(err(top.clone()))?;
                let monitor_path = format!("{top}/monitor");
                let monitor =
                    Cgroup::create(&monitor_path, id).map_err(err(monitor_path.clone()))?;
                let moved = monitor.add_process(std::process::id() as i32);
                cg.caller = Some((monitor, from));
                if let Err(e) = moved {
                    cg.remove();
                    return Err(err(monitor_path)(e));
                }
            }
            Ok(cg)
        })();
        if made.is_err() {
            let _ = limits.destroy();
        }
        made
    }

    /// QEMU's directories (one per v1 hierarchy), for the jail to join.
    pub(crate) fn vmm_dirs(&self) -> Vec<PathBuf> {
        self.vmm.paths()
    }

    pub(crate) fn vmm(&self) -> &Cgroup {
        &self.vmm
    }

    /// Moves the caller back where it came from and removes the cgroups
    /// (QEMU must be gone). Their directories are removed at once when
    /// empty, else what is left in them is killed first.
    pub(crate) fn remove(&mut self) {
        if let Some((monitor, from)) = self.caller.take() {
            let controllers: Vec<String> = monitor.dirs().into_keys().collect();
            if let Err(e) =
                runtime::cgroups::return_to(&from, &controllers, std::process::id() as i32)
            {
                tracing::warn!(error = %e, "moving the monitor out of the VM's cgroup");
            }
            remove_one(&monitor);
        }
        remove_one(&self.vmm);
        remove_one(&self.limits);
    }
}

fn remove_one(cg: &Cgroup) {
    // Normally empty by now: removing the directories is much quicker than
    // a full destroy (freeze, kill, thaw, retry), which stays the fallback.
    let empty = cg.pids().is_ok_and(|p| p.is_empty());
    if empty
        && cg
            .paths()
            .iter()
            .all(|p| std::fs::remove_dir(p).is_ok() || !p.exists())
    {
        return;
    }
    if let Err(e) = cg.destroy() {
        tracing::warn!(error = %e, "removing a VM's host cgroup");
    }
}

/// Removes what a VM whose owner died left of its host cgroup (its QEMU
/// killed), children first.
pub fn remove_orphan(id: &str) {
    let top = path(id);
    for sub in [format!("{top}/vmm"), format!("{top}/monitor"), top.clone()] {
        if let Ok(cg) = Cgroup::open(&sub, id) {
            if cg.paths().iter().any(|p| p.exists()) {
                let _ = cg.destroy();
            }
        }
    }
}
