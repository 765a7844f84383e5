//! End-to-end: containerd (Debian's) drives isola-runtime through its runc
//! shim, `io.containerd.runc.v2` with `--runc-binary`. The test starts its own
//! containerd on a private socket, root and state directory (CRI disabled),
//! imports a busybox OCI archive it builds, runs containers with `ctr`, and
//! stops containerd at the end. Skipped, with the reason printed, only when
//! containerd or ctr is not installed. Needs root.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{wait_until, BIN};

/// A containerd of our own; killed and cleaned up on drop.
struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
    namespace: String,
}

impl Containerd {
    fn start() -> Containerd {
        Containerd::start_with_env(&[])
    }

    /// With `env` set for containerd, its shims and the runtime they run.
    fn start_with_env(env: &[(&str, &Path)]) -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("isola-containerd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let config = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n\
             [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .envs(env.iter().copied())
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd {
            dir,
            child,
            namespace: testkit::unique_name("isola-e2e"),
        };
        wait_until("containerd to serve its socket", || {
            c.ctr(&["version"]).status.success()
        });
        c
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed: {}\n{}\ncontainerd log tail:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Remove what is left in our namespace, then stop containerd.
        if let Ok(out) = Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["--namespace", &self.namespace, "containers", "list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
                let _ = self.ctr(&["task", "delete", "-f", id]);
                let _ = self.ctr(&["containers", "delete", id]);
            }
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        // ctr's cgroupsPath is /<namespace>/<id>: the runtime removes <id>,
        // the namespace's parent directory is ours to remove.
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                let _ = std::fs::remove_dir(h.path().join(&self.namespace));
            }
        }
        // The shim's runc root for our namespace (its state is gone with the containers).
        let _ = std::fs::remove_dir(format!("/run/containerd/runc/{}", self.namespace));
        // Snapshot mounts under the private root must not outlive the test.
        for m in common::mounts_under(self.dir.path()).iter().rev() {
            let _ = nix::mount::umount2(Path::new(m), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn installed(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Imports a busybox image built from busybox-static as `docker.io/library/busybox:latest`.
fn import_busybox(ctd: &Containerd) -> &'static str {
    let image = "docker.io/library/busybox:latest";
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    testkit::oci_layout(&layout, "docker.io/library/busybox", "latest");
    let archive = work.path().join("busybox.tar");
    testkit::tar_dir(&layout, &archive);
    ctd.ctr_ok(&[
        "images",
        "import",
        "--base-name",
        "docker.io/library/busybox",
        archive.to_str().unwrap(),
    ]);
    let images = ctd.ctr_ok(&["images", "list", "-q"]);
    assert!(images.lines().any(|l| l == image), "{images}");
    image
}

#[test]
fn containerd_runs_busybox_through_isola_runtime() {
    let missing = (!installed("containerd") || !installed("ctr"))
        .then(|| "containerd/ctr not installed (Debian package `containerd`)".to_string());
    if !testkit::require("containerd test", missing) {
        return;
    }
    let ctd = Containerd::start();
    let image = import_busybox(&ctd);

    // The acceptance command: output comes back through the shim's FIFOs.
    let id = testkit::unique_name("ctr-echo");
    let out = ctd.ctr_ok(&[
        "run",
        "--rm",
        "--runtime",
        "io.containerd.runc.v2",
        "--runc-binary",
        BIN,
        image,
        &id,
        "echo",
        "hi",
    ]);
    assert_eq!(out, "hi\n");

    // The container's own view: pid 1, its hostname (the id), exit code.
    let id = testkit::unique_name("ctr-exit");
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        BIN,
        image,
        &id,
        "sh",
        "-c",
        "echo $$; exit 7",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A failing create: the shim reads isola-runtime's JSON log for the reason.
    let id = testkit::unique_name("ctr-bad");
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        BIN,
        image,
        &id,
        "/no/such/program",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("executable file not found") && err.contains("/no/such/program"),
        "{err}"
    );
    let _ = ctd.ctr(&["containers", "delete", &id]);

    // A terminal: the shim listens on --console-socket for the pty master.
    // ctr needs a terminal itself, so it runs under script(1).
    if installed("script") {
        let id = testkit::unique_name("ctr-tty");
        let cmd = format!(
            "ctr --address {} --namespace {} run --rm -t --runc-binary {BIN} {image} {id} sh -c 'tty; echo tty-ok'",
            ctd.socket().display(),
            ctd.namespace
        );
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("/dev/pts/0") && text.contains("tty-ok"),
            "{text}"
        );
    }

    // A detached task: exec, ps, kill, delete.
    let id = testkit::unique_name("ctr-task");
    ctd.ctr_ok(&[
        "run",
        "-d",
        "--runc-binary",
        BIN,
        image,
        &id,
        "sleep",
        "300",
    ]);
    let exec = ctd.ctr_ok(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo exec-hi; cat /proc/1/cmdline",
    ]);
    assert_eq!(exec, "exec-hi\nsleep\u{0}300\u{0}");
    // It really is isola-runtime: its state sits under the root the shim gives it.
    let state = Command::new(BIN)
        .args([
            "--root",
            &format!("/run/containerd/runc/{}", ctd.namespace),
            "state",
            &id,
        ])
        .output()
        .unwrap();
    assert!(
        state.status.success(),
        "{}",
        String::from_utf8_lossy(&state.stderr)
    );
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(state["status"], "running");
    let ps = ctd.ctr_ok(&["task", "ps", &id]);
    assert_eq!(ps.lines().count(), 2, "{ps}");
    ctd.ctr_ok(&["task", "pause", &id]);
    assert!(ctd
        .ctr_ok(&["task", "list"])
        .lines()
        .any(|l| l.starts_with(&id) && l.contains("PAUSED")));
    ctd.ctr_ok(&["task", "resume", &id]);
    ctd.ctr_ok(&["task", "kill", "-s", "KILL", &id]);
    wait_until("the task to stop", || {
        ctd.ctr_ok(&["task", "list"])
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("STOPPED"))
    });
    ctd.ctr_ok(&["task", "delete", &id]);
    ctd.ctr_ok(&["containers", "delete", &id]);
    assert!(common::cgroup_dirs_named(&id).is_empty());
}

/// Host processes whose command line is exactly `args` (NUL-separated).
fn host_processes(args: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .as_deref()
                == Some(&want[..])
        })
        .collect()
}

#[test]
fn containerd_runs_busybox_in_a_vm_through_isola_runtime_vm() {
    let missing = (!installed("containerd") || !installed("ctr"))
        .then(|| "containerd/ctr not installed (Debian package `containerd`)".to_string());
    if !testkit::require("containerd VM test", missing)
        || !testkit::require("containerd VM test", common::vm_missing())
    {
        return;
    }
    let ctd = Containerd::start_with_env(&[("ISOLA_AGENT", testkit::static_agent())]);
    let image = import_busybox(&ctd);
    let vm_bin = common::vm_binary().display().to_string();
    let host_release =
        String::from_utf8(Command::new("uname").arg("-r").output().unwrap().stdout).unwrap();

    // Output, the guest's own kernel, pid 1 inside, the exit code.
    let id = testkit::unique_name("ctr-vm-run");
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        &vm_bin,
        image,
        &id,
        "sh",
        "-c",
        "uname -r; echo $$; exit 7",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        ctd.log_tail()
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_ne!(
        lines[0],
        host_release.trim(),
        "the container ran on the host's kernel"
    );
    assert_eq!(lines[1], "1");
    assert!(
        common::qemus_of(&id).is_empty(),
        "a QEMU outlived `ctr run --rm`"
    );

    // A detached task: its command is no host process; exec, ps, pause, kill, delete.
    let id = testkit::unique_name("ctr-vm-task");
    ctd.ctr_ok(&[
        "run",
        "-d",
        "--runc-binary",
        &vm_bin,
        image,
        &id,
        "sh",
        "-c",
        "trap 'exit 42' TERM; sleep 987654 & wait",
    ]);
    assert_eq!(common::qemus_of(&id).len(), 1, "one QEMU for the container");
    assert!(
        host_processes(&["sleep", "987654"]).is_empty(),
        "the container's command runs on the host"
    );
    let exec = ctd.ctr_ok(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo exec-hi; for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <$f; echo; done | grep -cx 'sleep 987654 '",
    ]);
    assert_eq!(exec, "exec-hi\n1\n", "the guest runs the command");
    let failed = ctd.ctr(&["task", "exec", "--exec-id", "e2", &id, "sh", "-c", "exit 5"]);
    assert_eq!(
        failed.status.code(),
        Some(5),
        "an exec's exit code comes back"
    );
    let ps = ctd.ctr_ok(&["task", "ps", &id]);
    let pids: Vec<i32> = ps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(pids.len(), 1, "{ps}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("987654"),
        "task ps shows the stand-in, not the guest's process"
    );
    let state = Command::new(BIN)
        .args([
            "--root",
            &format!("/run/containerd/runc/{}", ctd.namespace),
            "state",
            &id,
        ])
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(state["status"], "running");
    assert_eq!(state["pid"], pids[0]);
    if installed("script") {
        let cmd = format!(
            "ctr --address {} --namespace {} task exec -t --exec-id t1 {id} sh -c 'tty; echo tty-ok'",
            ctd.socket().display(),
            ctd.namespace
        );
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("/dev/pts/") && text.contains("tty-ok"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ctd.ctr_ok(&["task", "pause", &id]);
    assert!(ctd
        .ctr_ok(&["task", "list"])
        .lines()
        .any(|l| l.starts_with(&id) && l.contains("PAUSED")));
    ctd.ctr_ok(&["task", "resume", &id]);
    let stand_in = pids[0];
    ctd.ctr_ok(&["task", "kill", "-s", "TERM", &id]);
    wait_until("the task to stop", || {
        ctd.ctr_ok(&["task", "list"])
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("STOPPED"))
    });
    // The shell's TERM trap ran in the guest, and its exit code came back.
    let deleted = ctd.ctr(&["task", "delete", &id]);
    let text = String::from_utf8_lossy(&deleted.stderr);
    assert!(text.contains("exit code 42"), "{text}");
    ctd.ctr_ok(&["containers", "delete", &id]);
    assert!(
        common::qemus_of(&id).is_empty(),
        "QEMU outlived the task's delete"
    );
    assert!(
        !Path::new(&format!("/proc/{stand_in}")).exists(),
        "the stand-in outlived the task"
    );
    assert!(
        common::cgroup_dirs_named(&id).is_empty(),
        "the VM's host cgroup outlived the task"
    );
    let left: Vec<_> = std::fs::read_dir(format!("/run/containerd/runc/{}", ctd.namespace))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n == ".vm"),
        "state left behind: {left:?}"
    );
}
