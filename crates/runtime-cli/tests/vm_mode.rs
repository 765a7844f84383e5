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

/// The runtime as `isola-runtime-vm`.
fn vm_runtime() -> Runtime {
    Runtime::with_binary(&common::vm_binary())
}

/// What a failed VM create may not leave: the keeper directories and QEMU.
fn assert_no_vm_left(rt: &Runtime, id: &str, bundle: &Bundle) {
    assert_nothing_left(rt, id, bundle);
    let keepers: Vec<PathBuf> = std::fs::read_dir(rt.root.path().join(".vm"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(keepers.is_empty(), "keeper directories left: {keepers:?}");
    assert!(common::qemus_of(id).is_empty(), "QEMU of {id} left running");
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
    let vm = vm_runtime();
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
    let vm = vm_runtime();
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
    let vm = vm_runtime();
    let id = unique_name("vm-standin");
    // The init traps TERM (exit 42); an exec with a marker argument runs beside it.
    let bundle = Bundle::new(&runtime_config(&[
        "sh",
        "-c",
        "trap 'exit 42' TERM; sleep 987656 & wait",
    ]));
    let pid_file = bundle.path().join("init.pid");
    create_ok(&vm, &bundle, &id, &pid_file);
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

    // update: the new limit is the guest cgroup's; one above the VM's memory is refused.
    vm.ok(&["update", "--memory", "67108864", "--pids-limit", "77", &id]);
    let limits = vm
        .cmd(&[
            "exec",
            &id,
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&limits.stdout),
        "67108864\n77\n",
        "{}",
        String::from_utf8_lossy(&limits.stderr)
    );
    let too_big = vm
        .cmd(&["update", "--memory", &(1u64 << 30).to_string(), &id])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&too_big.stderr);
    assert!(!too_big.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("1024 MiB") && err.contains("128 MiB"), "{err}");

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
    assert!(common::qemus_of(&id).is_empty(), "QEMU outlived delete");
    assert!(!vm.state_dir(&id).exists());
    let out = Command::new(BIN)
        .arg("--root")
        .arg(vm.root.path())
        .args(["state", &id])
        .output()
        .unwrap();
    assert!(!out.status.success(), "state of a deleted container");
}

/// Runs `ip` with `args`, which must succeed.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace as a CNI bridge plugin leaves one: `eth0` with an
/// address, its peer on the host with the gateway's. Removed on drop.
struct PodNetwork {
    name: String,
    host_if: String,
}

impl PodNetwork {
    fn new(octet: u8) -> PodNetwork {
        let name = unique_name("isola-pod");
        let host_if = format!("vp{}", std::process::id() % 100_000);
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &name,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("10.211.{octet}.1/24"),
            "dev",
            &host_if,
        ]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("10.211.{octet}.2/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &name, "link", "set", "eth0", "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &name,
            "route",
            "add",
            "default",
            "via",
            &format!("10.211.{octet}.1"),
        ]);
        PodNetwork { name, host_if }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `create` with the stdio in files (the container keeps it), which must succeed.
fn create_ok(rt: &Runtime, bundle: &Bundle, id: &str, pid_file: &Path) {
    rt.track(id);
    let err = bundle.path().join("create.err");
    let status = rt
        .cmd(&[
            "create",
            "--bundle",
            bundle.path().to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            id,
        ])
        .env("ISOLA_AGENT", testkit::static_agent())
        .stdout(std::fs::File::create(bundle.path().join("create.out")).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "create {id}: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
}

#[test]
fn a_pod_is_one_vm_in_the_pods_network_namespace() {
    if !testkit::require("VM-mode pod test", common::vm_missing()) {
        return;
    }
    let vm = vm_runtime();
    let net = PodNetwork::new((std::process::id() % 200) as u8 + 20);
    let sandbox = unique_name("pod-sandbox");
    let cri = |kind: &str| {
        json!({
            "io.kubernetes.cri.container-type": kind,
            "io.kubernetes.cri.sandbox-id": sandbox,
        })
    };
    // The sandbox (pause) in the pod's network namespace, as CRI makes it.
    let mut config = runtime_config(&["sleep", "987658"]);
    config["annotations"] = cri("sandbox");
    for ns in config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!(net.path());
        }
    }
    let sb_bundle = Bundle::new(&config);
    let sb_pid = sb_bundle.path().join("pid");
    create_ok(&vm, &sb_bundle, &sandbox, &sb_pid);
    vm.ok(&["start", &sandbox]);
    let stand_in = pid_in(&sb_pid);

    // The pod's containers join the sandbox's namespaces by the host's
    // paths, as CRI gives them; one serves a page, one fetches it.
    let container = |id: &str, args: &[&str], file: Option<(&str, &str)>| {
        let mut config = runtime_config(args);
        config["annotations"] = cri("container");
        for ns in config["linux"]["namespaces"].as_array_mut().unwrap() {
            let kind = ns["type"].as_str().unwrap().to_string();
            match kind.as_str() {
                "network" => ns["path"] = json!(net.path()),
                "ipc" | "uts" => ns["path"] = json!(format!("/proc/{stand_in}/ns/{kind}")),
                _ => {}
            }
        }
        let bundle = Bundle::new(&config);
        if let Some((path, text)) = file {
            let p = bundle.rootfs().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let pid = bundle.path().join("pid");
        create_ok(&vm, &bundle, id, &pid);
        vm.ok(&["start", id]);
        bundle
    };
    let web = format!("{sandbox}-web");
    let _web_bundle = container(
        &web,
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
        Some(("www/index.html", "hello from the pod\n")),
    );
    let client = format!("{sandbox}-client");
    let client_bundle = container(
        &client,
        &[
            "sh",
            "-c",
            "for i in $(seq 100); do wget -qO- http://127.0.0.1:8080/ && break; sleep 0.2; done; hostname",
        ],
        None,
    );
    wait_until("the client to finish", || vm.status(&client) == "stopped");
    let out = std::fs::read_to_string(client_bundle.path().join("create.out")).unwrap();
    assert_eq!(
        out, "hello from the pod\nisola-test\n",
        "localhost and the hostname (UTS) are the pod's"
    );

    // One VM for the pod; the pod's processes are not the host's.
    assert_eq!(common::qemus_of(&sandbox).len(), 1, "one QEMU for the pod");
    assert!(common::qemus_of(&web).is_empty() && common::qemus_of(&client).is_empty());
    let exec = vm
        .cmd(&["exec", &web, "sh", "-c", "cat /proc/version"])
        .output()
        .unwrap();
    let guest = String::from_utf8_lossy(&exec.stdout).to_string();
    let host = std::fs::read_to_string("/proc/version").unwrap();
    assert!(
        !guest.is_empty() && guest != host,
        "{guest}{}{}",
        String::from_utf8_lossy(&exec.stderr),
        debug_logs(&vm)
    );

    // The pod's address, from the host: through the veth into the VM.
    let page = Command::new("curl")
        .args(["-s", "-m", "10"])
        .arg(format!("http://{}:8080/", pod_ip(&net)))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&page.stdout),
        "hello from the pod\n",
        "{}",
        String::from_utf8_lossy(&page.stderr)
    );

    // Deleting the pod's containers, then the sandbox, leaves nothing.
    vm.ok(&["delete", &client]);
    vm.ok(&["kill", &web, "KILL"]);
    wait_until("web to stop", || vm.status(&web) == "stopped");
    vm.ok(&["delete", &web]);
    assert_eq!(
        common::qemus_of(&sandbox).len(),
        1,
        "the VM outlives the pod's containers"
    );
    vm.ok(&["delete", "--force", &sandbox]);
    assert!(
        common::qemus_of(&sandbox).is_empty(),
        "the VM outlived its sandbox"
    );
    let left: Vec<_> = std::fs::read_dir(vm.root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| {
            n != ".vm"
                && !n.to_string_lossy().ends_with(".out")
                && !n.to_string_lossy().ends_with(".err")
        })
        .collect();
    assert!(left.is_empty(), "state left: {left:?}");
    let mounts = common::mounts_under(vm.root.path());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
}

/// The pod's address (eth0's in its namespace).
fn pod_ip(net: &PodNetwork) -> String {
    let out = Command::new("ip")
        .args(["-n", &net.name, "-4", "-o", "addr", "show", "eth0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap()
        .to_string()
}

fn debug_logs(rt: &Runtime) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(rt.root.path().join(".vm"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in ["console.log", "keeper.log", "qemu.log"] {
            let text = std::fs::read_to_string(e.path().join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            out.push_str(&format!(
                "\n--- {f}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
    }
    out
}
