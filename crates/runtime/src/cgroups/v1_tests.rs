//! v1 file writes against a temporary directory laid out like v1
//! hierarchies (interface files pre-created, as mkdir in a tmpfs makes none).
//! The real hierarchies are exercised in host_tests.rs.

use super::*;
use std::fs as stdfs;

const CONTROLLERS: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "pids", "blkio",
];

/// One hierarchy per controller under a tempdir, each with isola/c1/ holding
/// the files the tests touch. `memsw` says whether swap accounting is on.
fn layout(memsw: bool) -> (tempfile::TempDir, Hierarchies) {
    let tmp = tempfile::tempdir().unwrap();
    let mut hierarchies = Hierarchies::new();
    for c in CONTROLLERS {
        let mount = tmp.path().join(c);
        let leaf = mount.join("isola/c1");
        stdfs::create_dir_all(&leaf).unwrap();
        stdfs::write(leaf.join("cgroup.procs"), "").unwrap();
        hierarchies.insert(c.to_string(), mount);
    }
    let leaf = |c: &str| tmp.path().join(c).join("isola/c1");
    for (c, f) in [
        ("memory", "memory.limit_in_bytes"),
        ("memory", "memory.soft_limit_in_bytes"),
        ("cpu", "cpu.shares"),
        ("cpu", "cpu.cfs_quota_us"),
        ("cpu", "cpu.cfs_period_us"),
        ("cpuset", "cpuset.cpus"),
        ("cpuset", "cpuset.mems"),
        ("pids", "pids.max"),
        ("devices", "devices.allow"),
        ("devices", "devices.deny"),
        ("freezer", "freezer.state"),
        ("blkio", "blkio.throttle.read_bps_device"),
    ] {
        stdfs::write(leaf(c).join(f), "").unwrap();
    }
    if memsw {
        stdfs::write(
            leaf("memory").join("memory.memsw.limit_in_bytes"),
            "9223372036854771712",
        )
        .unwrap();
    }
    (tmp, hierarchies)
}

fn resources(json: serde_json::Value) -> LinuxResources {
    serde_json::from_value(json).unwrap()
}

fn content(tmp: &tempfile::TempDir, controller: &str, name: &str) -> String {
    stdfs::read_to_string(tmp.path().join(controller).join("isola/c1").join(name)).unwrap()
}

#[test]
fn apply_writes_v1_files() {
    let (tmp, h) = layout(true);
    let cg = CgroupV1::open(&h, Path::new("isola/c1")).unwrap();
    assert_eq!(cg.paths().len(), CONTROLLERS.len());
    cg.apply(&resources(serde_json::json!({
        "memory": {"limit": 104857600, "reservation": 52428800, "swap": 209715200},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "devices": [{"allow": false, "access": "rwm"}]
    })))
    .unwrap();
    assert_eq!(
        content(&tmp, "memory", "memory.limit_in_bytes"),
        "104857600"
    );
    assert_eq!(
        content(&tmp, "memory", "memory.memsw.limit_in_bytes"),
        "209715200"
    );
    assert_eq!(
        content(&tmp, "memory", "memory.soft_limit_in_bytes"),
        "52428800"
    );
    assert_eq!(content(&tmp, "cpu", "cpu.shares"), "512");
    assert_eq!(content(&tmp, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(content(&tmp, "cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(content(&tmp, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(content(&tmp, "pids", "pids.max"), "20");
    assert_eq!(
        content(&tmp, "blkio", "blkio.throttle.read_bps_device"),
        "8:0 1048576"
    );
    // Each write replaces the file here; the kernel appends rules. The last
    // deny is the config's, the last allow the default list's last entry.
    assert_eq!(content(&tmp, "devices", "devices.deny"), "a *:* rwm");
    assert_eq!(content(&tmp, "devices", "devices.allow"), "c 136:* rwm");
}

#[test]
fn swap_without_accounting_is_an_error_unless_equal_to_limit() {
    let (tmp, h) = layout(false);
    let cg = CgroupV1::open(&h, Path::new("isola/c1")).unwrap();
    let err = cg
        .apply(&resources(
            serde_json::json!({"memory": {"limit": 1048576, "swap": 2097152}}),
        ))
        .unwrap_err();
    assert!(matches!(err, Error::SwapAccountingOff { .. }), "{err}");
    assert!(
        err.to_string().contains("memory.memsw.limit_in_bytes"),
        "{err}"
    );
    assert_eq!(content(&tmp, "memory", "memory.limit_in_bytes"), "");

    cg.apply(&resources(
        serde_json::json!({"memory": {"limit": 1048576, "swap": 1048576}}),
    ))
    .unwrap();
    assert_eq!(content(&tmp, "memory", "memory.limit_in_bytes"), "1048576");
}

#[test]
fn absent_hierarchy_is_named_and_nothing_is_written() {
    let (tmp, h) = layout(true);
    let cg = CgroupV1::open(&h, Path::new("isola/c1")).unwrap();
    let err = cg
        .apply(&resources(serde_json::json!({
            "memory": {"limit": 1048576},
            "rdma": {"mlx5_0": {"hcaHandles": 2}}
        })))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("rdma") && msg.contains("not available"),
        "{msg}"
    );
    assert_eq!(content(&tmp, "memory", "memory.limit_in_bytes"), "");

    let err = cg
        .apply(&resources(
            serde_json::json!({"unified": {"memory.high": "1"}}),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("unified"), "{err}");
}

#[test]
fn create_copies_cpuset_and_rolls_back_on_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cpuset = tmp.path().join("cpuset");
    stdfs::create_dir_all(cpuset.join("isola")).unwrap();
    stdfs::write(cpuset.join("cpuset.cpus"), "0-1\n").unwrap();
    stdfs::write(cpuset.join("cpuset.mems"), "0\n").unwrap();
    stdfs::write(cpuset.join("isola/cpuset.cpus"), "").unwrap();
    stdfs::write(cpuset.join("isola/cpuset.mems"), "").unwrap();
    copy_cpuset_from_parent(&cpuset.join("isola")).unwrap();
    assert_eq!(
        stdfs::read_to_string(cpuset.join("isola/cpuset.cpus")).unwrap(),
        "0-1"
    );
    assert_eq!(
        stdfs::read_to_string(cpuset.join("isola/cpuset.mems")).unwrap(),
        "0"
    );

    // A new directory in a tmpfs has no cpuset files, so the copy fails:
    // every directory made so far, in every hierarchy, must be gone again.
    let mut h = Hierarchies::new();
    // "a-memory" sorts before "cpuset": it is made first, then undone.
    h.insert("memory".into(), tmp.path().join("a-memory"));
    h.insert("cpuset".into(), cpuset.clone());
    stdfs::create_dir_all(tmp.path().join("a-memory")).unwrap();
    let err = CgroupV1::create(&h, Path::new("isola/c9/sub")).unwrap_err();
    assert!(err.to_string().contains("cpuset.cpus"), "{err}");
    assert!(!cpuset.join("isola/c9").exists());
    assert!(!tmp.path().join("a-memory/isola").exists());
}

#[test]
fn open_absent_is_not_found() {
    let (_tmp, h) = layout(true);
    let err = CgroupV1::open(&h, Path::new("isola/nope")).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[test]
fn freezer_state_drives_freeze() {
    let (tmp, h) = layout(true);
    let cg = CgroupV1::open(&h, Path::new("isola/c1")).unwrap();
    cg.freeze().unwrap();
    assert_eq!(content(&tmp, "freezer", "freezer.state"), "FROZEN");
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
}

#[test]
fn device_rules_format() {
    let rule = |json| device_rule_line(&serde_json::from_value(json).unwrap());
    assert_eq!(
        rule(serde_json::json!({"allow": false, "access": "rwm"})).as_deref(),
        Some("a *:* rwm")
    );
    assert_eq!(
        rule(serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 3})).as_deref(),
        Some("c 1:3 rwm")
    );
    assert_eq!(
        rule(serde_json::json!({"allow": true, "type": "b", "major": 8, "access": "r"})).as_deref(),
        Some("b 8:* r")
    );
    assert_eq!(rule(serde_json::json!({"allow": true, "type": "p"})), None);
}
