//! v2 file writes against a temporary directory laid out like a cgroup2
//! mount: the kernel's interface files are pre-created (mkdir in a tmpfs
//! does not make them), then the files' contents are checked.

use super::*;
use std::fs as stdfs;

const ALL: &str = "cpuset cpu io memory hugetlb pids rdma";

/// root/ and root/isola/ with controller lists, root/isola/c1/ with the
/// leaf's interface files.
fn layout(leaf_controllers: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for dir in [root.to_path_buf(), root.join("isola")] {
        stdfs::create_dir_all(&dir).unwrap();
        stdfs::write(dir.join("cgroup.controllers"), ALL).unwrap();
        stdfs::write(dir.join("cgroup.subtree_control"), "").unwrap();
    }
    let leaf = root.join("isola/c1");
    stdfs::create_dir_all(&leaf).unwrap();
    stdfs::write(leaf.join("cgroup.controllers"), leaf_controllers).unwrap();
    for f in [
        "cgroup.procs",
        "cgroup.freeze",
        "memory.max",
        "memory.low",
        "memory.swap.max",
        "memory.high",
        "cpu.weight",
        "cpu.max",
        "cpuset.cpus",
        "cpuset.mems",
        "pids.max",
        "io.weight",
        "io.max",
    ] {
        stdfs::write(leaf.join(f), "").unwrap();
    }
    stdfs::write(leaf.join("cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
    tmp
}

fn resources(json: serde_json::Value) -> LinuxResources {
    serde_json::from_value(json).unwrap()
}

fn content(dir: &Path, name: &str) -> String {
    stdfs::read_to_string(dir.join(name)).unwrap()
}

#[test]
fn create_enables_controllers_in_every_ancestor() {
    let tmp = layout(ALL);
    let cg = CgroupV2::create(tmp.path(), Path::new("isola/c1")).unwrap();
    assert_eq!(cg.paths(), vec![tmp.path().join("isola/c1")]);
    let expected = "+cpuset +cpu +io +memory +hugetlb +pids +rdma";
    assert_eq!(content(tmp.path(), "cgroup.subtree_control"), expected);
    assert_eq!(
        content(&tmp.path().join("isola"), "cgroup.subtree_control"),
        expected
    );
}

#[test]
fn apply_writes_v2_files() {
    let tmp = layout(ALL);
    let cg = CgroupV2::create(tmp.path(), Path::new("isola/c1")).unwrap();
    cg.apply(&resources(serde_json::json!({
        "memory": {"limit": 104857600, "reservation": 52428800, "swap": 209715200},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "unified": {"memory.high": "90000000"}
    })))
    .unwrap();
    let leaf = tmp.path().join("isola/c1");
    assert_eq!(content(&leaf, "memory.max"), "104857600");
    assert_eq!(content(&leaf, "memory.low"), "52428800");
    // OCI swap is memory+swap; v2 wants swap alone.
    assert_eq!(content(&leaf, "memory.swap.max"), "104857600");
    assert_eq!(content(&leaf, "cpu.weight"), "39");
    assert_eq!(content(&leaf, "cpu.max"), "50000 100000");
    assert_eq!(content(&leaf, "cpuset.cpus"), "0");
    assert_eq!(content(&leaf, "cpuset.mems"), "0");
    assert_eq!(content(&leaf, "pids.max"), "20");
    assert_eq!(content(&leaf, "io.weight"), "default 300");
    assert_eq!(content(&leaf, "io.max"), "8:0 rbps=1048576");
    assert_eq!(content(&leaf, "memory.high"), "90000000");
}

#[test]
fn hugetlb_and_rdma_limits_are_written() {
    let tmp = layout(ALL);
    let leaf = tmp.path().join("isola/c1");
    for f in ["hugetlb.2MB.max", "rdma.max"] {
        stdfs::write(leaf.join(f), "").unwrap();
    }
    let cg = CgroupV2::open(tmp.path(), Path::new("isola/c1")).unwrap();
    cg.apply(&resources(serde_json::json!({
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "rdma": {"mlx5_0": {"hcaHandles": 2, "hcaObjects": 10}}
    })))
    .unwrap();
    assert_eq!(content(&leaf, "hugetlb.2MB.max"), "4194304");
    assert_eq!(
        content(&leaf, "rdma.max"),
        "mlx5_0 hca_handle=2 hca_object=10"
    );

    // A page size the kernel lacks has no file: named, not created.
    let err = cg
        .apply(&resources(serde_json::json!({
            "hugepageLimits": [{"pageSize": "1GB", "limit": 1073741824}]
        })))
        .unwrap_err();
    assert!(err.to_string().contains("hugetlb.1GB.max"), "{err}");
    assert!(!leaf.join("hugetlb.1GB.max").exists());
}

#[test]
fn unlimited_values_are_max() {
    let tmp = layout(ALL);
    let cg = CgroupV2::open(tmp.path(), Path::new("isola/c1")).unwrap();
    cg.apply(&resources(serde_json::json!({
        "memory": {"limit": -1},
        "cpu": {"quota": -1, "period": 20000},
        "pids": {"limit": -1}
    })))
    .unwrap();
    let leaf = tmp.path().join("isola/c1");
    assert_eq!(content(&leaf, "memory.max"), "max");
    assert_eq!(content(&leaf, "memory.swap.max"), "max");
    assert_eq!(content(&leaf, "cpu.max"), "max 20000");
    assert_eq!(content(&leaf, "pids.max"), "max");
}

#[test]
fn absent_controller_is_named_and_nothing_is_written() {
    let tmp = layout("cpu memory pids");
    let cg = CgroupV2::open(tmp.path(), Path::new("isola/c1")).unwrap();
    let err = cg
        .apply(&resources(serde_json::json!({
            "memory": {"limit": 1048576},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
        })))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("hugetlb") && msg.contains("hugepageLimits"),
        "{msg}"
    );
    assert_eq!(content(&tmp.path().join("isola/c1"), "memory.max"), "");

    let err = cg
        .apply(&resources(serde_json::json!({"network": {"classID": 7}})))
        .unwrap_err();
    assert!(err.to_string().contains("network"), "{err}");
}

#[test]
fn failed_create_leaves_no_directory() {
    // An ancestor without cgroup.controllers cannot have controllers enabled.
    let tmp = tempfile::tempdir().unwrap();
    let err = CgroupV2::create(tmp.path(), Path::new("isola/c2")).unwrap_err();
    assert!(err.to_string().contains("cgroup.controllers"), "{err}");
    assert!(!tmp.path().join("isola").exists());
}

#[test]
fn open_absent_is_not_found() {
    let tmp = layout(ALL);
    let err = CgroupV2::open(tmp.path(), Path::new("isola/nope")).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[test]
fn freeze_and_thaw_use_cgroup_freeze() {
    let tmp = layout(ALL);
    let leaf = tmp.path().join("isola/c1");
    let cg = CgroupV2::open(tmp.path(), Path::new("isola/c1")).unwrap();
    assert!(!cg.is_frozen().unwrap());
    // The kernel would flip cgroup.events; here it already says frozen.
    stdfs::write(leaf.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    cg.freeze().unwrap();
    assert_eq!(content(&leaf, "cgroup.freeze"), "1");
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert_eq!(content(&leaf, "cgroup.freeze"), "0");
}

#[test]
fn stats_read_v2_files() {
    let tmp = layout(ALL);
    let leaf = tmp.path().join("isola/c1");
    stdfs::write(leaf.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").unwrap();
    stdfs::write(leaf.join("memory.current"), "4096\n").unwrap();
    stdfs::write(leaf.join("memory.max"), "max\n").unwrap();
    stdfs::write(leaf.join("pids.current"), "3\n").unwrap();
    stdfs::write(leaf.join("pids.max"), "10\n").unwrap();
    let stats = CgroupV2::open(tmp.path(), Path::new("isola/c1"))
        .unwrap()
        .stats()
        .unwrap();
    assert_eq!(
        stats,
        Stats {
            cpu_usage_ns: 1_500_000,
            memory_usage_bytes: 4096,
            memory_limit_bytes: None,
            pids_current: 3,
            pids_limit: Some(10),
        }
    );
}

#[test]
fn shares_convert_like_runc() {
    assert_eq!(shares_to_weight(0), None);
    assert_eq!(shares_to_weight(2), Some(1));
    assert_eq!(shares_to_weight(1024), Some(39));
    assert_eq!(shares_to_weight(262_144), Some(10_000));
}

#[test]
fn swap_converts_like_runc() {
    let mem = |limit: Option<i64>, swap: Option<i64>| {
        let mut m = LinuxMemory::default();
        m.set_limit(limit);
        m.set_swap(swap);
        swap_max(&m)
    };
    assert_eq!(mem(Some(100), Some(300)).unwrap().as_deref(), Some("200"));
    assert_eq!(mem(Some(100), Some(100)).unwrap().as_deref(), Some("0"));
    assert_eq!(mem(Some(100), None).unwrap(), None);
    assert_eq!(mem(Some(-1), None).unwrap().as_deref(), Some("max"));
    assert_eq!(mem(Some(100), Some(-1)).unwrap().as_deref(), Some("max"));
    assert!(mem(Some(100), Some(50)).is_err());
    assert!(mem(None, Some(50)).is_err());
}
