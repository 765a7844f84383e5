//! End-to-end: cgroup limits, seccomp and pause/resume through the real
//! `isola-runtime` binary on a busybox bundle, checked from inside the
//! container and from the host's cgroup files. Needs root (as `make test`).
//! Every container gets its own --root and a cgroupsPath under /isola-e2e/,
//! and is force-deleted when its test ends, whatever happened.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{runtime_config, unique_name, Bundle};

mod common;
use common::{wait_until, Runtime, BIN};

/// `isola-runtime spec`'s config (runc's defaults: readonly rootfs, pid,
/// mount, cgroup, ... namespaces, a cgroup mount at /sys/fs/cgroup), made
/// to run `sh -c script` without a terminal in cgroup `/isola-e2e/<id>`.
fn config(script: &str, id: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["spec", "--bundle"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "spec: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sh", "-c", script]);
    config["linux"]["cgroupsPath"] = json!(cgroups_path(id));
    config
}

fn cgroups_path(id: &str) -> String {
    format!("/isola-e2e/{id}")
}

/// cgroup v1 here; a v2 host has one tree.
fn is_v1() -> bool {
    Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists()
}

/// The container's cgroup directory for `controller`, as the host sees it.
fn host_cgroup(controller: &str, id: &str) -> PathBuf {
    let rel = cgroups_path(id);
    let rel = rel.trim_start_matches('/');
    if is_v1() {
        Path::new("/sys/fs/cgroup").join(controller).join(rel)
    } else {
        Path::new("/sys/fs/cgroup").join(rel)
    }
}

/// Every directory the container's cgroup could have, in any hierarchy.
fn any_cgroup_dir_left(id: &str) -> Vec<PathBuf> {
    let rel = cgroups_path(id);
    let rel = rel.trim_start_matches('/');
    let mut left: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path().join(rel))
        .filter(|p| p.exists())
        .collect();
    let unified = Path::new("/sys/fs/cgroup").join(rel);
    if unified.exists() {
        left.push(unified);
    }
    left
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn memory_limit_is_visible_inside_and_enforced() {
    let rt = Runtime::new();
    let id = unique_name("mem");
    let mut cfg = config(
        // `tail` keeps all of a newline-less input in memory: 200 MiB, over the 32 MiB limit.
        // It marks itself the OOM killer's first choice: under a loaded host the kernel may
        // otherwise pick the shell, which would end the container before it can say `done`.
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
         head -c 200m /dev/zero | (echo 1000 >/proc/self/oom_score_adj; exec tail -n 1) >/dev/null \
         && echo survived; echo done",
        &id,
    );
    cfg["linux"]["resources"]["memory"] = json!({"limit": 33554432, "swap": 33554432});
    let bundle = Bundle::new(&cfg);
    let out = rt.run(&bundle, &id);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("33554432"),
        "limit as seen inside: {stdout}"
    );
    assert!(
        !stdout.contains("survived"),
        "allocating 200 MiB under a 32 MiB limit succeeded"
    );
    assert!(stdout.contains("done"), "{stdout}");
}

#[test]
fn limits_are_written_to_the_container_cgroup_and_removed_on_delete() {
    let rt = Runtime::new();
    let id = unique_name("lim");
    let mut cfg = config("true", &id);
    cfg["linux"]["resources"]["memory"] = json!({"limit": 67108864, "reservation": 33554432});
    cfg["linux"]["resources"]["pids"] = json!({"limit": 42});
    cfg["linux"]["resources"]["cpu"] = json!({"shares": 512, "quota": 20000, "period": 100000});
    let bundle = Bundle::new(&cfg);
    rt.create(&bundle, &id, &[]).assert_ok();

    let read = |controller: &str, file: &str| {
        let path = host_cgroup(controller, &id).join(file);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_string()
    };
    if is_v1() {
        assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(read("memory", "memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(read("pids", "pids.max"), "42");
        assert_eq!(read("cpu", "cpu.shares"), "512");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "20000");
        // The created (not yet started) init is already in the cgroup.
        let state: Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
        let pid = state["pid"].as_i64().unwrap().to_string();
        assert!(read("memory", "cgroup.procs").lines().any(|l| l == pid));
    } else {
        assert_eq!(read("", "memory.max"), "67108864");
        assert_eq!(read("", "pids.max"), "42");
        assert_eq!(read("", "cpu.max"), "20000 100000");
    }

    rt.ok(&["delete", "--force", &id]);
    assert_eq!(any_cgroup_dir_left(&id), Vec::<PathBuf>::new());
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let rt = Runtime::new();
    let id = unique_name("pids");
    // The inner shell starts sleeps until fork fails (busybox sh then exits);
    // the outer one (PID 1) reports with builtins only, as no fork is left.
    let bomb = "i=0; while [ $i -lt 100 ]; do sleep 100 & i=$((i+1)); echo started $i; done";
    let script = format!(
        "sh -c '{bomb}'; \
         f=/sys/fs/cgroup/pids/pids.max; [ -e $f ] || f=/sys/fs/cgroup/pids.max; \
         read max < $f; echo max $max"
    );
    let mut cfg = config(&script, &id);
    cfg["linux"]["resources"]["pids"] = json!({"limit": 10});
    let bundle = Bundle::new(&cfg);
    let out = rt.run(&bundle, &id);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    let started: u32 = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("started "))
        .filter_map(|n| n.parse().ok())
        .max()
        .unwrap_or(0);
    assert!(stdout.contains("max 10"), "pids.max inside: {stdout}");
    // 10 tasks: the two shells and at most 8 sleeps.
    assert!(
        (1..=8).contains(&started),
        "started {started} sleeps\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("can't fork"),
        "the fork bomb was not stopped: {stderr}"
    );
}

#[test]
fn seccomp_denied_syscall_returns_the_configured_errno() {
    let rt = Runtime::new();
    let script = "mkdir /dev/shm/made && echo made";

    // Control: without the filter, mkdir on the tmpfs works.
    let id = unique_name("sc-ctl");
    let bundle = Bundle::new(&config(script, &id));
    let out = rt.run(&bundle, &id);
    assert_eq!(text(&out.stdout).trim(), "made", "{}", text(&out.stderr));

    let id = unique_name("sc");
    let mut cfg = config(script, &id);
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    let bundle = Bundle::new(&cfg);
    let out = rt.run(&bundle, &id);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(!text(&out.stdout).contains("made"));
    assert!(
        stderr.contains("can't create directory '/dev/shm/made': Permission denied"),
        "{stderr}"
    );
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let rt = Runtime::new();
    let id = unique_name("pause");
    let out_dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        "i=0; while true; do i=$((i+1)); echo $i > /out/count; usleep 20000; done",
        &id,
    );
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/out", "type": "bind",
                     "source": out_dir.path(), "options": ["rbind", "rw"]}));
    let bundle = Bundle::new(&cfg);
    std::fs::create_dir(bundle.rootfs().join("out")).unwrap();
    // `run -d`, as create + start: returns once the container is running.
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["start", &id]);
    let count = || -> u64 {
        std::fs::read_to_string(out_dir.path().join("count"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let advances_past = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if count() > n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    };
    assert!(advances_past(0), "the counter never started");
    assert_eq!(rt.status(&id), "running");

    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    if is_v1() {
        let state = host_cgroup("freezer", &id).join("freezer.state");
        assert_eq!(std::fs::read_to_string(state).unwrap().trim(), "FROZEN");
    }
    let frozen_at = count();
    // Frozen tasks cannot run: however long we look, the count stays.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(), frozen_at, "the counter advanced while paused");

    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    assert!(
        advances_past(frozen_at),
        "the counter did not advance after resume"
    );
}

#[test]
fn absent_cgroup_controller_is_a_one_line_error_that_leaves_nothing() {
    let rt = Runtime::new();
    let id = unique_name("absent");
    let mut cfg = config("true", &id);
    // No host of this kind has the rdma controller (no v1 hierarchy, no v2 controller).
    cfg["linux"]["resources"]["rdma"] = json!({"mlx5_0": {"hcaHandles": 2, "hcaObjects": 100}});
    cfg["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    let bundle = Bundle::new(&cfg);
    let created = rt.create(&bundle, &id, &[]);
    let stderr = created.stderr();
    assert!(!created.success);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("rdma"), "names the controller: {stderr}");
    assert!(
        !rt.root.path().join(&id).exists(),
        "state directory left behind"
    );
    assert_eq!(any_cgroup_dir_left(&id), Vec::<PathBuf>::new());
    let list = rt.ok(&["list", "-q"]);
    assert!(!list.contains(&id), "{list}");
}

/// Docker and containerd send seccomp profiles with noNewPrivileges false;
/// the kernel then accepts the filter only while CAP_SYS_ADMIN is held, so
/// it must go in before capabilities are dropped (as runc does).
#[test]
fn seccomp_applies_without_no_new_privileges() {
    let rt = Runtime::new();
    let id = unique_name("sc-nnp");
    let mut cfg = config("mkdir /dev/shm/made && echo made", &id);
    cfg["process"]["noNewPrivileges"] = json!(false);
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    let bundle = Bundle::new(&cfg);
    let out = rt.run(&bundle, &id);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("can't create directory '/dev/shm/made': Permission denied"),
        "{stderr}"
    );
}

/// `update` with device rules takes effect in a running container: a node
/// the rules refuse (/dev/kmsg's numbers, made in the rootfs beforehand)
/// cannot be opened until an update allows writing it (opening /dev/kmsg
/// for writing needs no capability; reading would need CAP_SYSLOG).
#[test]
fn update_with_device_rules_takes_effect() {
    let rt = Runtime::new();
    let id = unique_name("devupd");
    let mut cfg = config("sleep 1000", &id);
    cfg["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
    let bundle = Bundle::new(&cfg);
    nix::sys::stat::mknod(
        &bundle.rootfs().join("kmsg"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(1, 11),
    )
    .unwrap();
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["start", &id]);
    let opens = || {
        rt.cmd(&["exec", &id, "sh", "-c", "exec 3>/kmsg"])
            .status()
            .unwrap()
            .success()
    };
    assert!(!opens(), "the deny-all rules let /kmsg open");

    let rules = bundle.path().join("resources.json");
    std::fs::write(
        &rules,
        json!({"devices": [{"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}]})
            .to_string(),
    )
    .unwrap();
    rt.ok(&["update", "--resources", rules.to_str().unwrap(), &id]);
    assert!(opens(), "the updated rules allow writing /kmsg");
    rt.ok(&["delete", "--force", &id]);
}

/// linux.memoryPolicy is set with set_mempolicy before the program runs
/// (numa_maps shows each mapping under the process's policy), for exec'd
/// processes too, and nothing is printed on stderr, which callers read as
/// a failure; a policy that cannot be honoured is refused at create.
#[test]
fn memory_policy_binds_the_container_to_its_nodes() {
    let rt = Runtime::new();
    let mut cfg = runtime_config(&["sh", "-c", "cat /proc/self/numa_maps; exec sleep 100"]);
    cfg["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    let bundle = Bundle::new(&cfg);
    let id = unique_name("mempol");
    let c = rt.create(&bundle, &id, &[]);
    c.assert_ok();
    assert_eq!(c.stderr(), "", "create wrote on stderr");
    rt.ok(&["start", &id]);
    wait_until("the container's numa_maps", || {
        c.stdout().contains("kernelpagesize")
    });
    assert!(c.stdout().contains(" bind:0 "), "{}", c.stdout());
    let exec = rt.ok(&["exec", &id, "cat", "/proc/self/numa_maps"]);
    assert!(exec.contains(" bind:0 "), "{exec}");

    let mut cfg = runtime_config(&["true"]);
    cfg["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND"});
    let bundle = Bundle::new(&cfg);
    let c = rt.create(&bundle, &unique_name("mempolbad"), &[]);
    assert!(!c.success);
    assert!(
        c.stderr().contains("linux.memoryPolicy.nodes"),
        "{}",
        c.stderr()
    );
}
