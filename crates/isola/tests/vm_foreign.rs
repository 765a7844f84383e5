//! End-to-end: an image of another architecture (Debian's arm64
//! busybox-static) in a multi-platform index with the host's busybox,
//! pulled from a registry on 127.0.0.1: refused in process mode with the
//! hint, run under VM isolation with the emulator inside the VM only
//! (`uname -m` says aarch64, exit codes come back, `top` and `exec` work, no
//! emulator or ping on the host), and the refusals when no emulator exists
//! or the index lacks the platform asked for. One detached VM checks most.

mod common;
mod support;

use std::fs;

use common::Root;

/// An OCI layout whose `latest` is an index of the host's busybox
/// (linux/amd64) and the arm64 one (linux/arm64).
fn multi_arch_layout(arm64_layer: Vec<u8>) -> tempfile::TempDir {
    let config = serde_json::json!({
        "Cmd": ["sh"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    });
    support::index_layout(&[
        ("amd64", testkit::busybox_layer_tar(), config.clone()),
        ("arm64", arm64_layer, config),
    ])
    .0
}

/// Host processes whose name starts with `prefix`.
fn host_processes(prefix: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim().starts_with(prefix) {
            out.push((pid, comm.trim().to_string()));
        }
    }
    out
}

#[test]
fn an_arm64_image_runs_in_a_vm_under_its_emulator_and_only_there() {
    let layer = testkit::busybox_arm64_layer_tar();
    if !testkit::require("foreign-architecture test", layer.as_ref().err().cloned()) {
        return;
    }
    if testkit::host_arch() != "amd64" {
        eprintln!("skipped: the index built here has amd64 as the host platform");
        return;
    }
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    if !root.vm_kernel_or_skip("foreign-architecture test") {
        return;
    }
    let info = root.ok(&["info"]);
    let can_run = info
        .lines()
        .any(|l| l.starts_with("VM Architectures:") && l.contains("arm64"));
    let no_emulator = (!can_run).then(|| {
        format!(
            "an arm64 emulator (Debian's qemu-user-static; scripts/setup.sh unpacks it): {info}"
        )
    });
    if !testkit::require("foreign-architecture test", no_emulator) {
        return;
    }
    let reg = support::Registry::start();
    let layout = multi_arch_layout(layer.unwrap());
    reg.push(layout.path(), "latest", "multi:latest", None);
    let image = format!("{}/multi:latest", reg.host());

    // Process mode pulls the arm64 variant, then refuses it with the hint.
    let (code, err) = root.fails(&[
        "run",
        "--rm",
        "--isolation=process",
        "--platform",
        "linux/arm64",
        &image,
        "true",
    ]);
    assert_eq!(code, 125, "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains("linux/arm64") && last.contains("--isolation=vm"),
        "{err}"
    );

    // VM mode runs it: the emulator inside the VM answers for aarch64, and
    // the exit code comes back.
    let out = root.run(&[
        "run",
        "--rm",
        "--isolation=vm",
        "--platform",
        "linux/arm64",
        &image,
        "sh",
        "-c",
        "uname -m; exit 3",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "aarch64",
        "{out:?}"
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    // A detached arm64 ping: the guest's top sees it; the host has neither
    // it nor an emulator, only the VM worker.
    let id = root.run_detached(&[
        "--isolation=vm",
        "--platform",
        "linux/arm64",
        &image,
        "ping",
        "localhost",
    ]);
    common::eventually("the arm64 ping's output", || {
        root.ok(&["logs", &id]).contains("bytes from 127.0.0.1")
    });
    let top = root.ok(&["top", &id]);
    assert!(top.contains("ping"), "{top}");
    assert!(host_processes("ping").is_empty(), "ping on the host: {top}");
    assert!(
        host_processes("qemu-aarch64").is_empty(),
        "an emulator on the host"
    );
    assert_eq!(
        host_processes("isola-vm-")
            .iter()
            .filter(|(_, c)| c == &format!("isola-vm-{}", &id[..6]))
            .count(),
        1,
        "the VM worker"
    );
    assert_eq!(root.ok(&["exec", &id, "uname", "-m"]).trim(), "aarch64");
    assert_eq!(root.inspect(&id, ".ImagePlatform"), "linux/arm64");
    assert_eq!(root.inspect(&id, ".VmArchitecture"), "amd64");
    // kill (SIGKILL) returns once the container is recorded stopped.
    root.ok(&["kill", &id]);
    assert_eq!(root.inspect(&id, ".State.Status"), "exited");
    assert_eq!(root.inspect(&id, ".State.ExitCode"), "137");
    root.ok(&["rm", "-f", &id]);

    // No emulator: one line naming the package, nothing left behind.
    let empty = tempfile::tempdir().unwrap();
    let bare = Root::new()
        .with_env("ISOLA_AGENT", testkit::static_agent())
        .with_env("ISOLA_QEMU_USER_ROOT", empty.path());
    let (code, err) = bare.fails(&[
        "run",
        "--rm",
        "--isolation=vm",
        "--platform",
        "linux/arm64",
        &image,
        "true",
    ]);
    assert_eq!(code, 125, "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains("qemu-user-static") && last.contains("arm64"),
        "{err}"
    );
    let (_, err) = bare.fails(&[
        "run",
        "--rm",
        "--isolation=process",
        "--platform",
        "linux/arm64",
        &image,
        "true",
    ]);
    assert!(err.contains("none is installed"), "{err}");
    assert_eq!(bare.ok(&["ps", "-aq"]).trim(), "");
    bare.assert_clean();

    // A platform the index lacks: the error lists those it has.
    let (_, err) = root.fails(&[
        "run",
        "--rm",
        "--isolation=vm",
        "--platform",
        "linux/s390x",
        &image,
        "true",
    ]);
    assert!(
        err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
    root.assert_clean();
}
