//! Tests on this host's real cgroup hierarchies (v1 here, v2 elsewhere):
//! they need root, create cgroups under isola/ and remove them again.

use super::*;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use testkit::unique_name;

fn resources(json: serde_json::Value) -> LinuxResources {
    serde_json::from_value(json).unwrap()
}

/// Destroys the cgroup even when an assertion fails half-way.
struct Cleanup(Cgroup);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.0.destroy();
    }
}

#[test]
fn lifecycle_create_limit_join_freeze_destroy() {
    let id = unique_name("cg-life");
    let cgroup = Cgroup::create("", &id).unwrap();
    let guard = Cleanup(cgroup.clone());
    let paths = cgroup.paths();
    assert!(!paths.is_empty());
    for p in &paths {
        assert!(p.is_dir(), "{} missing", p.display());
        assert!(p.ends_with(format!("isola/{id}")), "{}", p.display());
    }

    cgroup
        .apply(&resources(serde_json::json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 16},
            "cpu": {"shares": 512}
        })))
        .unwrap();

    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.id() as i32;
    // Joining needs cpuset.cpus/mems filled in on v1: this checks that too.
    cgroup.add_process(pid).unwrap();
    assert_eq!(cgroup.pids().unwrap(), vec![pid]);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.contains(&format!("/isola/{id}")), "{own}");

    let stats = cgroup.stats().unwrap();
    assert_eq!(stats.memory_limit_bytes, Some(64 << 20));
    assert_eq!(stats.pids_limit, Some(16));
    assert!(stats.pids_current >= 1, "{stats:?}");

    cgroup.freeze().unwrap();
    assert!(cgroup.is_frozen().unwrap());
    cgroup.thaw().unwrap();
    assert!(!cgroup.is_frozen().unwrap());

    // Opening by path finds the same directories.
    assert_eq!(Cgroup::open("", &id).unwrap().paths(), paths);

    cgroup.destroy().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    for p in &paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    assert!(matches!(Cgroup::open("", &id), Err(Error::NotFound { .. })));
    drop(guard);
}

#[test]
fn absolute_cgroups_path_is_below_each_root() {
    let id = unique_name("cg-abs");
    let cgroup = Cgroup::create(&format!("/isola-test/{id}"), "ignored").unwrap();
    let _guard = Cleanup(cgroup.clone());
    for p in cgroup.paths() {
        assert!(p.ends_with(format!("isola-test/{id}")), "{}", p.display());
        assert!(p.is_dir());
    }
    cgroup.destroy().unwrap();
    assert!(cgroup.paths().iter().all(|p| !p.exists()));
    // Tidy the test-only parent (no other test uses it).
    for p in cgroup.paths() {
        let _ = std::fs::remove_dir(p.parent().unwrap());
    }
}

#[test]
fn absent_controller_is_named_and_leaves_no_cgroup() {
    let id = unique_name("cg-absent");
    // No host here has an rdma hierarchy (or controller).
    let err = Cgroup::create_with_resources(
        "",
        &id,
        Some(&resources(serde_json::json!({
            "memory": {"limit": 67108864},
            "rdma": {"mlx5_0": {"hcaHandles": 2}}
        }))),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("rdma") && msg.contains("linux.resources.rdma"),
        "{msg}"
    );
    assert!(matches!(Cgroup::open("", &id), Err(Error::NotFound { .. })));
}

#[test]
fn memory_limit_is_enforced_by_the_oom_killer() {
    let id = unique_name("cg-oom");
    let cgroup = Cgroup::create("", &id).unwrap();
    let _guard = Cleanup(cgroup.clone());
    cgroup
        .apply(&resources(serde_json::json!({
            "memory": {"limit": 33554432, "swap": 33554432}
        })))
        .unwrap();
    // The shell waits for a line, so that it is in the cgroup before `tail`
    // (which keeps all of a newline-less input in memory) allocates 200 MiB.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "read go; head -c 200m /dev/zero | tail -n 1 >/dev/null && echo survived",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    cgroup.add_process(child.id() as i32).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("survived"),
        "tail finished under a 32 MiB limit"
    );
    // The kernel counted an OOM kill in this cgroup (v1: memory.oom_control, v2: memory.events).
    let counters = cgroup
        .paths()
        .iter()
        .flat_map(|p| [p.join("memory.oom_control"), p.join("memory.events")])
        .find(|p| p.exists())
        .unwrap();
    let text = std::fs::read_to_string(&counters).unwrap();
    let kills: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(kills >= 1, "{}: {text}", counters.display());
    cgroup.destroy().unwrap();
}

/// On a hybrid host the cgroup2 mount at /sys/fs/cgroup/unified has no
/// controllers, but its core features (membership, cgroup.freeze,
/// cgroup.kill) are real: the v2 code runs against the kernel here too.
/// (On a pure v2 host the tests above already use v2.)
#[test]
fn v2_freeze_kill_and_missing_controller_on_the_unified_mount() {
    let root = std::path::Path::new("/sys/fs/cgroup/unified");
    if !root.join("cgroup.procs").exists() {
        eprintln!("no hybrid cgroup2 mount here; the tests above cover this host's layout");
        return;
    }
    let rel = PathBuf::from("isola-test").join(unique_name("cg-v2"));
    let cgroup = Cgroup::V2(v2::CgroupV2::create(root, &rel).unwrap());
    let _guard = Cleanup(cgroup.clone());

    // No controller is enabled on this mount: a limit names what is missing.
    let err = cgroup
        .apply(&resources(
            serde_json::json!({"memory": {"limit": 67108864}}),
        ))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("controller memory is not available"),
        "{err}"
    );

    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.id() as i32;
    cgroup.add_process(pid).unwrap();
    assert_eq!(cgroup.pids().unwrap(), vec![pid]);
    cgroup.freeze().unwrap();
    assert!(cgroup.is_frozen().unwrap());
    cgroup.thaw().unwrap();
    assert!(!cgroup.is_frozen().unwrap());

    cgroup.destroy().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(!root.join(&rel).exists());
    let _ = std::fs::remove_dir(root.join("isola-test"));
}

/// Runs `sh -c 'exec 3<PATH'` as a member of `cgroup`: whether the open
/// of the device node was allowed.
fn opens_in(cgroup: &Cgroup, path: &str) -> bool {
    let mut child = Command::new("sh")
        .args(["-c", &format!("read go; exec 3<{path}")])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    cgroup.add_process(child.id() as i32).unwrap();
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    child.wait().unwrap().success()
}

/// The v2 device program, for real: on the hybrid host's cgroup2 mount
/// the kernel runs it on every open, as on a v2-only host. The docker
/// default rules (deny all, then runc's list) refuse /dev/kmsg and allow
/// /dev/null; an update replaces the program instead of adding a second.
#[test]
fn v2_device_program_refuses_and_update_replaces_it() {
    let root = std::path::Path::new("/sys/fs/cgroup/unified");
    if !root.join("cgroup.procs").exists() {
        eprintln!("no hybrid cgroup2 mount here; the in-guest VM tests cover v2 devices");
        return;
    }
    let rel = PathBuf::from("isola-test").join(unique_name("cg-dev"));
    let cgroup = Cgroup::V2(v2::CgroupV2::create(root, &rel).unwrap());
    let _guard = Cleanup(cgroup.clone());
    let programs = || {
        let dir = std::fs::File::open(root.join(&rel)).unwrap();
        crate::sys::bpf_device_programs(std::os::fd::AsFd::as_fd(&dir))
            .unwrap()
            .len()
    };
    assert!(opens_in(&cgroup, "/dev/kmsg"), "no program yet");

    let deny_all = resources(serde_json::json!({"devices": [{"allow": false, "access": "rwm"}]}));
    cgroup.apply(&deny_all).unwrap();
    assert_eq!(programs(), 1);
    assert!(
        !opens_in(&cgroup, "/dev/kmsg"),
        "/dev/kmsg opened under deny-all"
    );
    assert!(
        opens_in(&cgroup, "/dev/null"),
        "/dev/null is always allowed"
    );

    cgroup
        .apply(&resources(serde_json::json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}
        ]})))
        .unwrap();
    assert_eq!(programs(), 1, "update replaced the program");
    assert!(
        opens_in(&cgroup, "/dev/kmsg"),
        "the updated rules allow /dev/kmsg"
    );

    cgroup.destroy().unwrap();
    let _ = std::fs::remove_dir(root.join("isola-test"));
}
