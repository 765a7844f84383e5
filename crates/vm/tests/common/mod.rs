//! Fixtures for the VM tests: the real guest kernel from the cache, the
//! static agent (built here with the flags it needs), a busybox rootfs and a
//! minimal OCI spec. Tests that need the kernel skip, saying why, only when
//! it has not been built (make setup builds it).

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

pub const ID_PREFIX: &str = "vmt";

/// The cached guest kernel, or `None` after printing why the test skips
/// (with `CI` set a missing kernel fails the test: [`testkit::require`]).
pub fn kernel_or_skip(test: &str) -> Option<vm::GuestKernel> {
    match vm::GuestKernel::locate(None) {
        Ok(k) => Some(k),
        Err(e) => {
            testkit::require(test, Some(e.to_string()));
            None
        }
    }
}

/// The statically linked agent ([`testkit::static_agent`]).
pub fn static_agent() -> vm::AgentBinary {
    vm::AgentBinary::locate(Some(testkit::static_agent())).expect("the static agent")
}

/// A busybox rootfs with /etc/hosts (so `localhost` resolves).
pub fn busybox_rootfs() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("isola-vm-rootfs-")
        .tempdir()
        .unwrap();
    testkit::write_busybox_rootfs(dir.path());
    std::fs::write(
        dir.path().join("etc/hosts"),
        "127.0.0.1 localhost\n::1 localhost\n",
    )
    .unwrap();
    dir
}

/// A VM configuration for tests: TCG or KVM as the host allows, a short run dir.
pub fn config(kernel: vm::GuestKernel, rootfs: &Path, run_dir: &Path, id: &str) -> vm::VmConfig {
    let mut cfg = vm::VmConfig::new(id, id, kernel, static_agent(), rootfs, run_dir);
    cfg.cache_dir = std::env::temp_dir().join("isola-vm-test-initramfs");
    cfg.template_dir = Some(std::env::temp_dir().join("isola-vm-test-templates"));
    // Generous: TCG on a shared 2-core machine. Only bounds a broken boot.
    cfg.boot_timeout = Duration::from_secs(180);
    cfg
}

/// A minimal container spec running `args` (CAP_NET_RAW for ping).
pub fn spec(args: &[&str]) -> oci_spec::runtime::Spec {
    serde_json::from_value(testkit::vm_container_config(args)).unwrap()
}

/// An OCI process for exec.
pub fn process(args: &[&str]) -> oci_spec::runtime::Process {
    spec(args).process().clone().unwrap()
}

/// Every descendant pid of `root` on the host (from /proc/*/stat).
pub fn host_descendants(root: u32) -> Vec<(u32, String)> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = stat[stat.find('(').unwrap() + 1..close].to_string();
        let ppid: u32 = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        parent.insert(pid, (ppid, comm));
    }
    let mut out = Vec::new();
    for (&pid, (_, comm)) in &parent {
        let mut p = pid;
        while let Some((pp, _)) = parent.get(&p) {
            if *pp == root {
                out.push((pid, comm.clone()));
                break;
            }
            if *pp <= 1 {
                break;
            }
            p = *pp;
        }
    }
    out
}
