//! End-to-end: the container lifecycle through the real `isola-runtime`
//! binary as runc users (and containerd) drive it: create/start split,
//! state, list, ps, exec, kill, delete, run's exit code, pid files.
//! Needs root.

mod common;

use common::{wait_until, Runtime};
use testkit::{runtime_config, unique_name, Bundle};

#[test]
fn create_leaves_the_process_blocked_until_start() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&[
        "sh",
        "-c",
        "touch /marker; exec sleep 300",
    ]));
    let id = unique_name("split");
    let pid_file = rt.root.path().join("pid");
    let c = rt.create(&bundle, &id, &["--pid-file", pid_file.to_str().unwrap()]);
    c.assert_ok();

    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], bundle.path().to_str().unwrap());
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // create returned with the init set up but not yet running the user's program.
    assert!(
        !bundle.rootfs().join("marker").exists(),
        "process ran before start"
    );

    rt.ok(&["start", &id]);
    wait_until("the marker written by the container", || {
        bundle.rootfs().join("marker").exists()
    });
    assert_eq!(rt.status(&id), "running");
    assert_eq!(
        rt.state(&id)["pid"].as_i64(),
        Some(pid),
        "pid changed across start"
    );
    // The fifo that held the init is gone after start.
    assert!(!rt.state_dir(&id).join("exec.fifo").exists());
    // A second start is refused.
    let again = rt.cmd(&["start", &id]).output().unwrap();
    assert!(!again.status.success());
}

#[test]
fn list_state_and_ps_report_a_running_container() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["sleep", "300"]));
    let id = unique_name("list");
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["start", &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;

    // The container has its own session keyring, not ours (runc does the same).
    if let Ok(keys) = std::fs::read_to_string("/proc/keys") {
        assert!(keys.contains(&format!("_ses.{id}")), "{keys}");
    }

    let quiet = rt.ok(&["list", "-q"]);
    assert_eq!(quiet.lines().collect::<Vec<_>>(), vec![id.as_str()]);
    let table = rt.ok(&["list"]);
    let row = table
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("row for the container");
    assert!(row.contains("running"), "{row}");
    assert!(row.contains(&pid.to_string()), "{row}");
    let json: serde_json::Value =
        serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(json[0]["id"], id.as_str());
    assert_eq!(json[0]["status"], "running");

    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids, vec![pid]);
    let table = rt.ok(&["ps", &id]);
    assert!(table.lines().next().unwrap().contains("PID"));
    assert!(table.lines().any(|l| l.contains("sleep 300")), "{table}");
}

#[test]
fn kill_and_delete() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["sleep", "300"]));
    let id = unique_name("kill");
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["start", &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();

    // A running container is not deleted without --force.
    let out = rt.cmd(&["delete", &id]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("running"));

    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    // Killing a stopped container says so in words containerd understands.
    let out = rt.cmd(&["kill", &id, "SIGKILL"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("container not running"));

    rt.ok(&["delete", &id]);
    assert!(!rt.state_dir(&id).exists());
    assert!(common::cgroup_dirs_named(&id).is_empty());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read(format!("/proc/{pid}/cmdline")).unwrap() != b"sleep\x00300\x00"
    );
    let out = rt.cmd(&["state", &id]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn kill_accepts_signal_names_and_numbers_and_all() {
    let rt = Runtime::new();
    // The init traps TERM and reports it; pid 1 ignores signals it has no handler for.
    let bundle = Bundle::new(&runtime_config(&[
        "sh",
        "-c",
        "trap 'echo got-term > /got; exit 0' TERM; touch /ready; while :; do sleep 1; done",
    ]));
    let id = unique_name("sig");
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["start", &id]);
    wait_until("the trap to be set", || {
        bundle.rootfs().join("ready").exists()
    });
    rt.ok(&["kill", &id, "15"]);
    rt.wait_status(&id, "stopped");
    assert_eq!(
        std::fs::read_to_string(bundle.rootfs().join("got")).unwrap(),
        "got-term\n"
    );

    let id2 = unique_name("sigall");
    let bundle2 = Bundle::new(&runtime_config(&[
        "sh",
        "-c",
        "sleep 300 & sleep 300 & wait",
    ]));
    rt.create(&bundle2, &id2, &[]).assert_ok();
    rt.ok(&["start", &id2]);
    wait_until("three processes", || {
        serde_json::from_str::<Vec<i32>>(&rt.ok(&["ps", "--format", "json", &id2]))
            .unwrap()
            .len()
            == 3
    });
    rt.ok(&["kill", "--all", &id2, "KILL"]);
    rt.wait_status(&id2, "stopped");
    let out = rt.cmd(&["kill", &id2, "NOSUCHSIGNAL"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn delete_force_kills_a_running_container() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["sleep", "300"]));
    let id = unique_name("force");
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["start", &id]);
    rt.ok(&["delete", "--force", &id]);
    assert!(!rt.state_dir(&id).exists());
    assert!(common::processes_in_cgroup_named(&id).is_empty());
    assert!(common::cgroup_dirs_named(&id).is_empty());
}

#[test]
fn delete_of_a_created_container_kills_its_init() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["sh", "-c", "touch /marker"]));
    let id = unique_name("delcreated");
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["delete", &id]);
    assert!(!rt.state_dir(&id).exists());
    assert!(common::processes_in_cgroup_named(&id).is_empty());
    assert!(!bundle.rootfs().join("marker").exists());
}

#[test]
fn run_returns_the_container_exit_code_and_deletes_it() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&[
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]));
    let id = unique_name("exit");
    let out = rt.run(&bundle, &id);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert!(!rt.state_dir(&id).exists());
    assert!(rt.ok(&["list", "-q"]).is_empty());
}

#[test]
fn run_detached_returns_while_the_container_runs() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["sleep", "300"]));
    let id = unique_name("detach");
    rt.track(&id);
    let status = rt
        .cmd(&[
            "run",
            "-d",
            "--bundle",
            bundle.path().to_str().unwrap(),
            &id,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(rt.status(&id), "running");
}

#[test]
fn exec_runs_inside_the_container() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["sleep", "300"]));
    let id = unique_name("exec");
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["start", &id]);

    let text = rt.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $FOO; pwd; id -u",
    ]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "isola-test");
    assert_eq!(
        lines[1].trim(),
        "sleep 300",
        "exec'd process sees the container's pid 1"
    );
    assert_eq!(lines[2], "");
    assert_eq!(lines[3], "/");
    assert_eq!(lines[4], "0");

    let stdout = rt.ok(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g",
    ]);
    assert_eq!(stdout, "bar\n/tmp\n1000\n1000\n");

    let out = rt
        .cmd(&["exec", &id, "sh", "-c", "exit 5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));

    // --process: a process.json, as containerd passes it.
    let proc_json = rt.root.path().join("process.json");
    std::fs::write(
        &proc_json,
        serde_json::json!({
            "args": ["sh", "-c", "echo from-process-json; echo $X"],
            "env": ["PATH=/bin", "X=y"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0}
        })
        .to_string(),
    )
    .unwrap();
    let stdout = rt.ok(&["exec", "--process", proc_json.to_str().unwrap(), &id]);
    assert_eq!(stdout, "from-process-json\ny\n");

    // -d with --pid-file: the process runs on, in the container's cgroup.
    let pid_file = rt.root.path().join("exec.pid");
    // (stdio to /dev/null: the detached process keeps what it inherits open)
    let status = rt
        .cmd(&[
            "exec",
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "sleep",
            "301",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.contains(&pid), "{pids:?} lacks {pid}");

    let out = rt.cmd(&["exec", &id, "/no/such/binary"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/binary"));
}

#[test]
fn spec_writes_a_config_that_runs() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["true"]));
    std::fs::remove_file(bundle.path().join("config.json")).unwrap();
    rt.ok(&["spec", "--bundle", bundle.path().to_str().unwrap()]);
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["root"]["path"], "rootfs");
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["sh", "-c", "echo spec-ok"]);
    bundle.write_config(&config);
    assert_eq!(rt.run_ok(&bundle, &unique_name("spec")), "spec-ok\n");
    // A second `spec` refuses to overwrite.
    let out = rt
        .cmd(&["spec", "--bundle", bundle.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn features_reports_hooks_and_namespaces() {
    let rt = Runtime::new();
    let f: serde_json::Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(f["hooks"].as_array().unwrap().len(), 6);
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&"user".into()));
    assert!(f["linux"]["seccomp"]["actions"]
        .as_array()
        .unwrap()
        .contains(&"SCMP_ACT_NOTIFY".into()));
    assert!(f["linux"]["memoryPolicy"]["modes"]
        .as_array()
        .unwrap()
        .contains(&"MPOL_BIND".into()));
}

#[test]
fn preserve_fds_passes_extra_fds_and_no_others() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&[
        "sh",
        "-c",
        "cat <&3; ls /proc/self/fd | sort -n | tr '\\n' ' '",
    ]));
    let data = rt.root.path().join("data");
    std::fs::write(&data, "via-fd-3\n").unwrap();
    let id = unique_name("fds");
    rt.track(&id);
    // The shell opens fd 3 (and a stray fd 4 that must not get through).
    let script = format!(
        "exec 3<{} 4<{}; exec {} --root {} run --preserve-fds 1 --bundle {} {}",
        data.display(),
        data.display(),
        common::BIN,
        rt.root.path().display(),
        bundle.path().display(),
        id
    );
    let stdout = common::stdout_ok(
        std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null()),
    );
    // 0-2, 3, and the fd `ls` itself opens for /proc/self/fd.
    assert_eq!(stdout, "via-fd-3\n0 1 2 3 4 ");
}

#[test]
fn no_pivot_still_confines_the_container() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["sh", "-c", "ls /bin/busybox; echo $$"]));
    let id = unique_name("nopivot");
    rt.track(&id);
    let stdout = rt.ok(&[
        "run",
        "--no-pivot",
        "--bundle",
        bundle.path().to_str().unwrap(),
        &id,
    ]);
    assert_eq!(stdout, "/bin/busybox\n1\n");
}

#[test]
fn run_and_exec_with_a_terminal_proxy_the_pty() {
    let rt = Runtime::new();
    let mut config = runtime_config(&["sh", "-c", "tty; echo via-pty"]);
    config["process"]["terminal"] = serde_json::json!(true);
    let bundle = Bundle::new(&config);
    let out = rt.run(&bundle, &unique_name("runtty"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/dev/pts/0\r\nvia-pty\r\n"
    );

    let bundle = Bundle::new(&runtime_config(&["sleep", "300"]));
    let id = unique_name("exectty");
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["start", &id]);
    let stdout = rt.ok(&["exec", "-t", &id, "sh", "-c", "test -t 1 && echo exec-tty"]);
    assert_eq!(stdout, "exec-tty\r\n");
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["sleep", "300"]));
    let id = unique_name("update");
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["start", &id]);
    rt.ok(&["update", "--pids-limit", "42", &id]);
    let read = |rt: &Runtime| {
        let out = rt
            .cmd(&["exec", &id, "cat", "/sys/fs/cgroup/pids/pids.max"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(read(&rt), "42\n");
    // containerd passes the whole LinuxResources on stdin.
    let mut child = rt
        .cmd(&["update", "--resources", "-", &id])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids": {"limit": 64}}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(read(&rt), "64\n");
}

#[test]
fn a_container_without_proc_is_created_and_started() {
    // Nothing in the create/start handshake may depend on the container's /proc.
    let rt = Runtime::new();
    let mut config = runtime_config(&["sh", "-c", "ls /proc | wc -l; echo started"]);
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/proc");
    config["linux"]["maskedPaths"] = serde_json::json!([]);
    config["linux"]["readonlyPaths"] = serde_json::json!([]);
    let bundle = Bundle::new(&config);
    assert_eq!(rt.run_ok(&bundle, &unique_name("noproc")), "0\nstarted\n");
}

#[test]
fn run_with_a_terminal_gives_the_container_our_window_size() {
    // script(1) provides the terminal a user would have.
    let missing = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
        .then(|| "script(1) is not installed (Debian package util-linux)".to_string());
    if !testkit::require("terminal window size test", missing) {
        return;
    }
    let rt = Runtime::new();
    let mut config = runtime_config(&["sh", "-c", "stty size"]);
    config["process"]["terminal"] = serde_json::json!(true);
    let bundle = Bundle::new(&config);
    let id = unique_name("winsize");
    rt.track(&id);
    let cmd = format!(
        "stty rows 33 cols 77; {} --root {} run --bundle {} {}",
        common::BIN,
        rt.root.path().display(),
        bundle.path().display(),
        id
    );
    let stdout = common::stdout_ok(
        std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(std::process::Stdio::null()),
    );
    assert!(stdout.contains("33 77"), "{stdout}");
}
