//! End-to-end: VM isolation (`--isolation=vm`) through the real `isola`
//! binary: the design brief's demonstration as assertions, exit codes, the
//! default isolation chain, a QEMU killed under a running container, and the
//! refusals. Each VM boot costs seconds under TCG, so assertions are grouped
//! into few containers. Tests skip, saying why, only when the guest kernel
//! has not been built (`make setup` / scripts/guest-kernel.sh builds it).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{alive, cgroup_exists, eventually, Root};

fn host_uname_r() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_string()
}

/// The VM's run directory and host cgroup are gone, and QEMU with them.
fn assert_vm_gone(root: &Root, id: &str, qemu: i32) {
    assert!(!alive(qemu), "QEMU {qemu} still runs");
    let vm_dirs: Vec<_> = std::fs::read_dir(root.path().join("vm"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(vm_dirs.is_empty(), "VM run directories left: {vm_dirs:?}");
    for h in ["memory", "cpu", "pids", "freezer", "unified", ""] {
        let p = Path::new("/sys/fs/cgroup")
            .join(h)
            .join("isola-vm")
            .join(id);
        assert!(!p.exists(), "host cgroup left: {}", p.display());
    }
    assert!(!cgroup_exists(id), "container cgroup left on the host");
    root.assert_clean();
}

#[test]
fn vm_demonstration_ping_runs_in_its_own_kernel_and_every_command_works() {
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    if !root.vm_kernel_or_skip("VM demonstration") {
        return;
    }
    let id = root
        .ok(&[
            "run",
            "-d",
            "--isolation=vm",
            "busybox",
            "ping",
            "localhost",
        ])
        .trim()
        .to_string();
    eventually("ping output in isola logs", || {
        root.ok(&["logs", &id]).contains("bytes from 127.0.0.1")
    });
    assert_eq!(root.inspect(&id, ".Isolation"), "vm");
    assert_eq!(root.inspect(&id, ".State.Status"), "running");

    // The host sees the VM worker, named for the container, and no ping.
    let qemu: i32 = root.inspect(&id, ".State.Pid").parse().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{qemu}/comm")).unwrap();
    assert_eq!(comm.trim(), format!("isola-vm-{}", &id[..6]));
    let ps = Command::new("ps")
        .args(["-eo", "pid,comm"])
        .output()
        .unwrap();
    let ps = String::from_utf8(ps.stdout).unwrap();
    assert!(
        ps.lines().any(|l| l
            .split_whitespace()
            .eq([qemu.to_string(), comm.trim().to_string()])),
        "ps shows the VM worker: {ps}"
    );
    assert_eq!(common::host_processes_of(&id, "ping"), Vec::<i32>::new());
    assert!(
        !cgroup_exists(&id),
        "the container's cgroup is in the guest"
    );
    let console = root.inspect(&id, ".ConsoleLogPath");
    assert!(Path::new(&console).is_file(), "console log {console}");

    // top: the guest's pids.
    let top = root.ok(&["top", &id]);
    let row = top
        .lines()
        .find(|l| l.ends_with("ping localhost"))
        .unwrap_or_else(|| panic!("top lacks ping: {top}"));
    let guest_pid: i32 = row.split_whitespace().next().unwrap().parse().unwrap();
    let host_comm = std::fs::read_to_string(format!("/proc/{guest_pid}/comm")).unwrap_or_default();
    assert_ne!(host_comm.trim(), "ping", "pid {guest_pid} is a host ping");

    // exec: its own kernel; stdin works.
    let guest_release = root.ok(&["exec", &id, "uname", "-r"]).trim().to_string();
    assert!(!guest_release.is_empty());
    assert_ne!(guest_release, host_uname_r());
    let mut cat = root
        .cmd(&["exec", "-i", &id, "sh", "-c", "cat; exit 3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    cat.stdin
        .take()
        .unwrap()
        .write_all(b"through the agent\n")
        .unwrap();
    let out = cat.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through the agent\n");

    // update: the guest's cgroup takes the new limits, inspect shows them,
    // a dropped limit goes from the cgroup too, and a memory limit above
    // what the VM booted with (128 MiB, whatever the record says since)
    // is refused in one line.
    root.ok(&[
        "update",
        "-m",
        "100m",
        "--pids-limit",
        "33",
        "--cpu-quota",
        "50000",
        "--cpu-shares",
        "512",
        &id,
    ]);
    let guest_cgroup = |files: &[&str]| {
        let mut args = vec!["exec", id.as_str(), "cat"];
        args.extend(files);
        root.ok(&args)
    };
    assert_eq!(
        guest_cgroup(&[
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/pids.max",
            "/sys/fs/cgroup/cpu.max"
        ]),
        format!("{}\n33\n50000 100000\n", 100u64 << 20)
    );
    assert_eq!(
        root.inspect(&id, ".HostConfig.Memory"),
        (100u64 << 20).to_string()
    );
    assert_eq!(
        root.ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}} {{.HostConfig.CpuShares}} {{.HostConfig.NanoCpus}}",
            &id
        ])
        .trim(),
        "50000 100000 512 0"
    );
    for too_much in ["150m", "2g"] {
        let (code, err) = root.fails(&["update", "-m", too_much, &id]);
        assert_ne!(code, 0);
        let mib = units_mib(too_much);
        assert!(
            err.contains(&format!("{mib} MiB")) && err.contains("128 MiB"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    root.ok(&["update", "--pids-limit", "-1", &id]);
    assert_eq!(guest_cgroup(&["/sys/fs/cgroup/pids.max"]), "max\n");

    // The same image runs with process isolation, on the host kernel.
    let same = root.ok(&["run", "--rm", "busybox", "uname", "-r"]);
    assert_eq!(same.trim(), host_uname_r());
    let pid_ctr = root.ok(&["create", "busybox", "true"]).trim().to_string();
    assert_eq!(
        root.inspect(&pid_ctr, ".Image"),
        root.inspect(&id, ".Image")
    );
    root.ok(&["rm", &pid_ctr]);

    // stats: the guest's cgroup and the VM worker on the host.
    let stats = root.ok(&["stats", "--no-stream", &id]);
    assert!(
        stats.contains(&id[..12]) && stats.contains("VM WORKER") && !stats.contains("--"),
        "{stats}"
    );

    // pause freezes the VM; unpause lets ping go on.
    root.ok(&["pause", &id]);
    assert_eq!(root.inspect(&id, ".State.Status"), "paused");
    // A frozen guest cannot answer: top thaws it for the call and freezes it again.
    assert!(root.ok(&["top", &id]).contains("ping localhost"));
    assert_eq!(root.inspect(&id, ".State.Status"), "paused");
    root.ok(&["unpause", &id]);
    let before = root.ok(&["logs", &id]).lines().count();
    eventually("ping output after unpause", || {
        root.ok(&["logs", &id]).lines().count() > before
    });

    // stop: signals inside the guest (ping as PID 1 ignores SIGTERM: SIGKILL).
    root.ok(&["stop", "-t", "1", &id]);
    assert_eq!(root.inspect(&id, ".State.Status"), "exited");
    assert_eq!(root.inspect(&id, ".State.ExitCode"), "137");
    eventually("QEMU gone after stop", || !alive(qemu));
    root.ok(&["rm", &id]);
    assert_vm_gone(&root, &id, qemu);
}

#[test]
fn vm_exit_codes_default_isolation_and_a_killed_qemu() {
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    if !root.vm_kernel_or_skip("VM exit codes and faults") {
        return;
    }
    // VMs start from templates unless told not to; `info` says which.
    let template = |off: bool| {
        let mut c = root.cmd(&["info", "--format", "json"]);
        if off {
            c.env("ISOLA_VM_TEMPLATE", "0");
        }
        let info: serde_json::Value = serde_json::from_slice(&c.output().unwrap().stdout).unwrap();
        info["Vm"]["Template"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(template(false).starts_with("on:"), "{}", template(false));
    assert!(template(true).starts_with("off:"), "{}", template(true));

    // The default chain selects vm; stdin, output, a volume (9p) and the
    // exit code pass through. This VM boots its kernel (no template); the
    // later ones start from the template.
    let volume = tempfile::tempdir().unwrap();
    std::fs::write(volume.path().join("in"), "from the host\n").unwrap();
    let bind = format!("{}:/data", volume.path().display());
    let mut run = root.cmd(&[
        "run",
        "--rm",
        "-i",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "read x; echo got $x; uname -r; cat /data/in > /data/out; exit 7",
    ]);
    let mut child = run
        .env("ISOLA_ISOLATION", "vm")
        .env("ISOLA_VM_TEMPLATE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out: Output = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("got hello"));
    assert_ne!(lines.next().unwrap(), host_uname_r());
    assert_eq!(
        std::fs::read_to_string(volume.path().join("out")).unwrap(),
        "from the host\n"
    );
    assert_eq!(root.container_dirs(), Vec::<String>::new(), "--rm left it");

    // The default seccomp profile (compiled on the host, installed in the
    // guest) holds inside the VM too.
    let out = root
        .cmd(&[
            "run",
            "--rm",
            "--isolation=vm",
            "busybox",
            "sh",
            "-c",
            "unshare -U true",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{out:?}"
    );

    // QEMU killed under a running container: exited, with a message that says so.
    let id = root
        .ok(&["run", "-d", "--isolation=hyperv", "busybox", "sleep", "600"])
        .trim()
        .to_string();
    let qemu: i32 = root.inspect(&id, ".State.Pid").parse().unwrap();

    // exec -it: a terminal in the guest, driven under a pty by script(1).
    let isola_cmd = format!(
        "{} --root {} exec -it {id} sh -c 'tty; exit 4'",
        env!("CARGO_BIN_EXE_isola"),
        root.path().display()
    );
    let out = Command::new("script")
        .args(["-qec", &isola_cmd, "/dev/null"])
        .env("ISOLA_AGENT", testkit::static_agent())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(qemu),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("the container marked exited", || {
        root.inspect(&id, ".State.Status") == "exited"
    });
    let error = root.inspect(&id, ".State.Error");
    assert!(
        error.contains("QEMU was killed by signal 9") && error.contains("console.log"),
        "{error}"
    );
    assert!(root.ok(&["ps", "-a"]).contains("Exited (255)"));
    let monitor: i32 = root.inspect(&id, ".State.MonitorPid").parse().unwrap();
    eventually("the monitor gone", || monitor == 0 || !alive(monitor));
    root.ok(&["rm", &id]);
    assert_vm_gone(&root, &id, qemu);
}

#[test]
fn vm_refusals_name_what_is_missing_and_leave_nothing() {
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    let fails = |args: &[&str], env: &[(&str, &str)], needle: &str| {
        let mut c = root.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    };
    let run = ["run", "--rm", "--isolation=vm", "busybox", "true"];
    fails(
        &[
            "run",
            "--rm",
            "--memory",
            "1m",
            "--isolation=vm",
            "busybox",
            "true",
        ],
        &[],
        "32 MiB",
    );
    fails(
        &[
            "run",
            "--rm",
            "--memory",
            "16m",
            "--isolation=vm",
            "busybox",
            "true",
        ],
        &[],
        "minimum of 32 MiB",
    );
    fails(
        &run,
        &[("ISOLA_VM_KERNEL", "/nonexistent/bzImage")],
        "scripts/guest-kernel.sh",
    );
    fails(
        &run,
        &[("PATH", "/nonexistent")],
        "apt-get install qemu-system-x86",
    );
    assert_eq!(root.container_dirs(), Vec::<String>::new());
}

/// MiB in a `-m` value of these tests ("150m", "2g").
fn units_mib(v: &str) -> u64 {
    let (n, unit) = v.split_at(v.len() - 1);
    let n: u64 = n.parse().unwrap();
    if unit == "g" {
        n << 10
    } else {
        n
    }
}
