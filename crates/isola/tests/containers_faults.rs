//! End-to-end: what goes wrong: bad input (one-line errors, nothing left
//! behind), processes that ignore SIGTERM, restart policies, a killed
//! monitor, and fifty containers at once.

mod common;

use common::{alive, cgroup_exists, eventually, Root};

fn assert_one_line_error(root: &Root, args: &[&str], needle: &str) {
    let (code, err) = root.fails(args);
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
}

#[test]
fn bad_input_is_a_one_line_error_and_leaves_nothing() {
    let root = Root::new();
    assert_one_line_error(
        &root,
        // Never pulled: a missing image is one line, not a registry's answer.
        &["run", "--rm", "--pull", "never", "no-such-image", "true"],
        "No such image: no-such-image:latest",
    );
    assert_one_line_error(
        &root,
        &["run", "--memory", "10q", "busybox", "true"],
        "--memory",
    );
    assert_one_line_error(&root, &["run", "--cpus", "-1", "busybox", "true"], "--cpus");
    assert_one_line_error(
        &root,
        &["run", "--isolation=foo", "busybox", "true"],
        "\"foo\"",
    );
    assert_one_line_error(
        &root,
        &["run", "--restart", "sometimes", "busybox", "true"],
        "--restart",
    );
    assert_one_line_error(
        &root,
        &["run", "-v", "/no/such/source:/x", "busybox", "true"],
        "/no/such/source",
    );
    assert_one_line_error(
        &root,
        &["run", "--network", "nosuchnet", "busybox", "true"],
        "network nosuchnet not found",
    );
    assert_one_line_error(
        &root,
        &["run", "--cap-add", "FLY", "busybox", "true"],
        "FLY",
    );
    assert_one_line_error(&root, &["run", "-u", "ghost", "busybox", "true"], "ghost");
    // VM isolation exists now (tests/vm_containers.rs); its bad input is refused before any VM boots.
    assert_one_line_error(
        &root,
        &[
            "run",
            "--isolation=vm",
            "--memory",
            "16m",
            "busybox",
            "true",
        ],
        "minimum of 32 MiB",
    );
    for cmd in [
        &["stop", "nope"][..],
        &["inspect", "--type", "container", "nope"],
        &["logs", "nope"],
        &["rm", "nope"],
        &["exec", "nope", "true"],
        &["top", "nope"],
    ] {
        assert_one_line_error(&root, cmd, "no such container: nope");
    }
    // Neither a container nor an image: docker's "no such object".
    assert_one_line_error(&root, &["inspect", "nope"], "no such object: nope");
    root.assert_clean();
    let id = root.run_detached(&["--name", "dup", "busybox", "sleep", "1000"]);
    assert_one_line_error(
        &root,
        &["run", "-d", "--name", "dup", "busybox", "true"],
        "already in use",
    );
    assert_eq!(root.container_dirs(), vec![id.clone()]);
    root.ok(&["rm", "-f", "dup"]);
    root.assert_clean();
}

#[test]
fn stop_kills_a_process_that_ignores_sigterm_after_the_timeout() {
    let root = Root::new();
    let stubborn = root.run_detached(&[
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
    root.ok(&["stop", "-t", "1", &stubborn]);
    assert_eq!(
        root.inspect(&stubborn, ".State.ExitCode"),
        "137",
        "SIGKILL after the timeout"
    );
    // One that handles SIGTERM exits with its own code: SIGTERM came first.
    let polite = root.run_detached(&[
        "busybox",
        "sh",
        "-c",
        "trap 'exit 42' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    // Each run says "ready" once its trap is set: only then is SIGTERM handled
    // (before it, PID 1 without a handler ignores SIGTERM).
    let ready = |n: usize| {
        eventually("the trap to be set", || {
            root.ok(&["logs", &polite]).matches("ready").count() == n
        })
    };
    ready(1);
    root.ok(&["stop", "-t", "30", &polite]);
    assert_eq!(root.inspect(&polite, ".State.ExitCode"), "42");
    // kill -s delivers the named signal (by name or number).
    root.ok(&["start", &polite]);
    ready(2);
    root.ok(&["kill", "-s", "SIGTERM", &polite]);
    assert_eq!(root.ok(&["wait", &polite]).trim(), "42");
    root.ok(&["start", &polite]);
    ready(3);
    root.ok(&["kill", "-s", "15", &polite]);
    assert_eq!(root.ok(&["wait", &polite]).trim(), "42");
    let (_, err) = root.fails(&["kill", "-s", "NOPE", &polite]);
    assert!(err.contains("invalid signal"), "{err}");
    root.ok(&["rm", &stubborn, &polite]);
    root.assert_clean();
}

#[test]
fn restart_policies() {
    let root = Root::new();
    let flaky = root.run_detached(&[
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    eventually("two restarts, then exited", || {
        root.inspect(&flaky, ".RestartCount") == "2"
            && root.inspect(&flaky, ".State.Status") == "exited"
    });
    assert_eq!(root.inspect(&flaky, ".State.ExitCode"), "3");
    assert_eq!(root.ok(&["logs", &flaky]), "run\nrun\nrun\n");
    let always = root.run_detached(&[
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2; exit 0",
    ]);
    eventually("a restart of an always container", || {
        root.inspect(&always, ".RestartCount") != "0"
    });
    root.ok(&["stop", "-t", "1", &always]);
    assert_eq!(
        root.inspect(&always, ".State.Status"),
        "exited",
        "stop wins over --restart always"
    );
    root.ok(&["rm", &flaky, &always]);
    root.assert_clean();
}

#[test]
fn a_killed_monitor_leaves_a_true_state_and_rm_cleans_up() {
    let root = Root::new();
    // 1: the monitor dies, the container keeps running; then it dies too.
    let a = root.run_detached(&["busybox", "sleep", "1000"]);
    let monitor: i32 = root.inspect(&a, ".State.MonitorPid").parse().unwrap();
    let init: i32 = root.inspect(&a, ".State.Pid").parse().unwrap();
    assert!(monitor > 0 && alive(monitor) && alive(init));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("the monitor to die", || !alive(monitor));
    assert_eq!(
        root.inspect(&a, ".State.Status"),
        "running",
        "the container itself still runs"
    );
    assert!(root.ok(&["ps"]).contains(&a[..12]));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("ps to show it exited", || {
        root.ok(&["ps", "-a"]).contains("Exited")
    });
    assert_eq!(root.inspect(&a, ".State.Status"), "exited");
    assert!(root.inspect(&a, ".State.Error").contains("monitor"));
    root.ok(&["rm", &a]);
    assert!(!cgroup_exists(&a));

    // 2: the monitor dies and rm -f removes the still-running container.
    let b = root.run_detached(&["busybox", "sleep", "1000"]);
    let monitor: i32 = root.inspect(&b, ".State.MonitorPid").parse().unwrap();
    let init: i32 = root.inspect(&b, ".State.Pid").parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("the monitor to die", || !alive(monitor));
    root.ok(&["rm", "-f", &b]);
    assert!(!alive(init));
    assert!(!cgroup_exists(&b));
    root.assert_clean();
}

#[test]
fn fifty_containers_at_once() {
    let root = std::sync::Arc::new(Root::new());
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let root = root.clone();
            std::thread::spawn(move || root.run_detached(&["busybox", "sleep", "1000"]))
        })
        .collect();
    let ids: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 50);
    let listed = root.ok(&["ps", "-q", "--no-trunc"]);
    let listed: std::collections::BTreeSet<&str> = listed.lines().collect();
    assert_eq!(listed.len(), 50);
    for id in &ids {
        assert!(listed.contains(id.as_str()));
    }
    assert_eq!(root.ok(&["ps"]).matches("Up ").count(), 50);
    let pids: Vec<(i32, i32)> = ids
        .iter()
        .map(|id| {
            (
                root.inspect(id, ".State.Pid").parse().unwrap(),
                root.inspect(id, ".State.MonitorPid").parse().unwrap(),
            )
        })
        .collect();
    let threads: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            let root = root.clone();
            std::thread::spawn(move || root.ok(&["rm", "-f", &id]))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    root.assert_clean();
    for (id, (init, monitor)) in ids.iter().zip(pids) {
        assert!(!cgroup_exists(id), "cgroup of {id} left");
        assert!(!alive(init) && !alive(monitor), "processes of {id} left");
    }
}
