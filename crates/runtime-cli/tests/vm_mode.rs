//! End-to-end: isola-runtime's VM mode driven directly with runc's command
//! line (containerd drives it in containerd.rs): choosing the mode, bad
//! input refused in one line with nothing left behind, and the stand-in's
//! contract (its exit is the guest process's, signals it gets reach the
//! guest, its death by SIGKILL takes the guest process with it). Needs root;
//! VM checks need the guest kernel and QEMU.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_nothing_left, wait_until, Runtime, BIN};
use serde_json::json;
use testkit::{runtime_config, unique_name, Bundle};

/// The runtime as `isola-runtime-vm` (a link, as `make install` makes it).
fn vm_runtime() -> (Runtime, tempfile::TempDir) {
    let links = tempfile::tempdir().unwrap();
    let link = links.path().join("isola-runtime-vm");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    (Runtime::with_binary(&link), links)
}

/// What a failed VM create may not leave: the keeper directories and QEMU.
fn assert_no_vm_left(rt: &Runtime, id: &str, bundle: &Bundle) {
    assert_nothing_left(rt, id, bundle);
    let keepers: Vec<PathBuf> = std::fs::read_dir(rt.root.path().join(".vm"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(keepers.is_empty(), "keeper directories left: {keepers:?}");
    assert!(qemus_of(id).is_empty(), "QEMU of {id} left running");
}

fn qemus_of(id: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .unwrap_or_default()
                .contains(&format!("/isola-vm/{id}/"))
        })
        .collect()
}

fn create_fails(rt: &Runtime, bundle: &Bundle, id: &str) -> String {
    let c = rt.create(bundle, id, &[]);
    assert!(!c.success, "create of a bad bundle succeeded");
    let err = c.stderr();
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("isola-runtime: error: "), "{err}");
    assert_no_vm_left(rt, id, bundle);
    err
}

#[test]
fn features_report_the_isolation_annotation_and_the_default() {
    let rt = Runtime::new();
    let f: serde_json::Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(f["annotations"]["io.isola.isolation"], "process,vm");
    assert_eq!(f["annotations"]["io.isola.isolation.default"], "process");
    let f: serde_json::Value =
        serde_json::from_str(&rt.ok(&["--isolation", "vm", "features"])).unwrap();
    assert_eq!(f["annotations"]["io.isola.isolation.default"], "vm");
    let (vm, _links) = vm_runtime();
    let f: serde_json::Value = serde_json::from_str(&vm.ok(&["features"])).unwrap();
    assert_eq!(f["annotations"]["io.isola.isolation.default"], "vm");
}

#[test]
fn bad_isolation_requests_are_refused_in_one_line() {
    // An unknown value, in either mode.
    let mut config = runtime_config(&["true"]);
    config["annotations"] = json!({"io.isola.isolation": "container"});
    let bundle = Bundle::new(&config);
    let err = create_fails(&Runtime::new(), &bundle, &unique_name("vm-bad-ann"));
    assert!(
        err.contains("io.isola.isolation") && err.contains("\"container\"") && err.contains("vm"),
        "{err}"
    );

    // A pod may not ask a VM handler for less isolation.
    let (vm, _links) = vm_runtime();
    config["annotations"] = json!({"io.isola.isolation": "process"});
    let bundle = Bundle::new(&config);
    let err = create_fails(&vm, &bundle, &unique_name("vm-downgrade"));
    assert!(
        err.contains("io.isola.isolation=process") && err.contains("VM"),
        "{err}"
    );

    // A memory limit below what a VM container needs.
    let mut config = runtime_config(&["true"]);
    config["linux"]["resources"] = json!({"memory": {"limit": 16 << 20}});
    let bundle = Bundle::new(&config);
    let err = create_fails(&vm, &bundle, &unique_name("vm-small"));
    assert!(
        err.contains("linux.resources.memory.limit") && err.contains("32 MiB"),
        "{err}"
    );

    // A pod container whose sandbox (and so its VM) does not exist.
    let mut config = runtime_config(&["true"]);
    config["annotations"] = json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": "no-such-sandbox",
    });
    let bundle = Bundle::new(&config);
    let err = create_fails(&vm, &bundle, &unique_name("vm-orphan"));
    assert!(
        err.contains("no-such-sandbox") && err.contains("sandbox"),
        "{err}"
    );
}

fn pid_in(file: &Path) -> i32 {
    std::fs::read_to_string(file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn a_stand_in_exits_with_the_guest_process_and_passes_signals_on() {
    if !testkit::require("VM-mode runtime test", common::vm_missing()) {
        return;
    }
    let agent = testkit::static_agent();
    let (vm, _links) = vm_runtime();
    let id = unique_name("vm-standin");
    // The init traps TERM (exit 42); an exec with a marker argument runs beside it.
    let bundle = Bundle::new(&runtime_config(&[
        "sh",
        "-c",
        "trap 'exit 42' TERM; sleep 987656 & wait",
    ]));
    let pid_file = bundle.path().join("init.pid");
    // The container keeps the stdio create gets: files, not pipes to wait on.
    let err_file = bundle.path().join("create.err");
    vm.track(&id);
    let status = vm
        .cmd(&[
            "create",
            "--bundle",
            bundle.path().to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
        ])
        .env("ISOLA_AGENT", agent)
        .stdout(std::fs::File::create(bundle.path().join("create.out")).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&err_file).unwrap_or_default()
    );
    let init = pid_in(&pid_file);
    assert_eq!(vm.status(&id), "created");
    assert_eq!(vm.state(&id)["pid"], init);
    vm.ok(&["start", &id]);
    assert_eq!(vm.status(&id), "running");

    // An exec's stand-in killed with SIGKILL takes the guest process along.
    let exec_pid = bundle.path().join("exec.pid");
    // Detached: the exec keeps its stdio, so not pipes this test would wait on.
    let status = vm
        .cmd(&[
            "exec",
            "-d",
            "--pid-file",
            exec_pid.to_str().unwrap(),
            &id,
            "sleep",
            "987657",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let exec = pid_in(&exec_pid);
    let ps: Vec<i32> = serde_json::from_str(&vm.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(ps.len(), 2, "ps lists the two stand-ins: {ps:?}");
    assert!(ps.contains(&init) && ps.contains(&exec), "{ps:?}");
    let count = |marker: &str| {
        let script = format!(
            "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <$f; echo; done | grep -cx 'sleep {marker} '"
        );
        let out = vm
            .cmd(&["exec", &id, "sh", "-c", &script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(count("987657"), "1", "the exec runs in the guest");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(exec),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the exec's guest process to die with its stand-in", || {
        count("987657") == "0"
    });

    // An exec's exit code is the exec command's.
    let out = vm
        .cmd(&["exec", &id, "sh", "-c", "exit 9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9));

    // TERM sent to the init's stand-in (as a shim may) reaches the guest's init.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_until("the container to stop", || vm.status(&id) == "stopped");
    // Not the stand-in's child: the exit code is checked through containerd
    // (containerd.rs); here, that it is gone and the VM with `delete`.
    assert!(!alive(init));
    vm.ok(&["delete", &id]);
    assert!(qemus_of(&id).is_empty(), "QEMU outlived delete");
    assert!(!vm.state_dir(&id).exists());
    let out = Command::new(BIN)
        .arg("--root")
        .arg(vm.root.path())
        .args(["state", &id])
        .output()
        .unwrap();
    assert!(!out.status.success(), "state of a deleted container");
}
