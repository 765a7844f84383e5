//! info: facts about the host that `isola info` shows: kernel, cgroup
//! version, whether KVM is usable for VM isolation (else TCG), the default
//! isolation and why, the storage root. Reads only; changes nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::isolation::{self, Isolation};

/// How VMs would be accelerated on this host.
#[derive(Debug, Clone, Serialize)]
pub struct Acceleration {
    /// "kvm" or "tcg".
    pub mode: String,
    pub reason: String,
}

/// What `isola info` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostInfo {
    pub kernel_version: String,
    pub operating_system: String,
    pub architecture: String,
    pub oci_platform: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    pub cgroup_version: String,
    pub default_isolation: Option<Isolation>,
    pub default_isolation_source: String,
    pub vm_acceleration: Acceleration,
    /// What a VM container gets by default, and where its parts come from.
    pub vm: crate::backend::vm::VmDefaults,
    pub storage_root: PathBuf,
}

/// The cgroup layout: "2" (unified), "1" (legacy) or "1 (hybrid...)".
pub fn cgroup_version() -> String {
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let v1_memory = Path::new("/sys/fs/cgroup/memory").is_dir();
    match (unified, v1_memory) {
        (true, false) => "2".into(),
        (_, true) if Path::new("/sys/fs/cgroup/unified").is_dir() => {
            "1 (hybrid: v1 controllers, plus a v2 mount without controllers)".into()
        }
        (_, true) => "1".into(),
        _ => "unknown (no cgroup filesystem found)".into(),
    }
}

/// KVM when `/dev/kvm` opens read-write and a hardware KVM module
/// (kvm_intel or kvm_amd) is loaded; otherwise TCG, with why.
pub fn acceleration() -> Acceleration {
    let tcg = |reason: String| Acceleration {
        mode: "tcg".into(),
        reason,
    };
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return tcg(format!("/dev/kvm is not usable ({e}): software emulation"));
    }
    let hw = ["kvm_intel", "kvm_amd"]
        .into_iter()
        .find(|m| Path::new("/sys/module").join(m).exists());
    match hw {
        Some(m) => Acceleration {
            mode: "kvm".into(),
            reason: format!("/dev/kvm usable, {m} loaded"),
        },
        None => {
            let other: Vec<String> = std::fs::read_dir("/sys/module")
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.file_name().into_string().ok())
                        .filter(|n| n.starts_with("kvm_"))
                        .collect()
                })
                .unwrap_or_default();
            let found = if other.is_empty() {
                String::new()
            } else {
                format!(
                    " (found {}, which cannot run a standard guest kernel)",
                    other.join(", ")
                )
            };
            tcg(format!(
                "/dev/kvm exists but neither kvm_intel nor kvm_amd is loaded{found}: software emulation"
            ))
        }
    }
}

fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Gathers the host facts for `root`.
pub fn host_info(root: &Path) -> HostInfo {
    let (default, source) = match isolation::host_default() {
        Ok((m, s)) => (Some(m), s.to_string()),
        Err(e) => (None, format!("error: {e}")),
    };
    let (os, arch, variant) = isolation::host_platform();
    let oci_platform = match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    };
    HostInfo {
        kernel_version: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        operating_system: os_release(),
        architecture: std::env::consts::ARCH.into(),
        oci_platform,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_bytes: memory_bytes(),
        cgroup_version: cgroup_version(),
        default_isolation: default,
        default_isolation_source: source,
        vm_acceleration: acceleration(),
        vm: crate::backend::vm::defaults(),
        storage_root: root.into(),
    }
}
