//! End-to-end: the everyday container commands through the real `isola`
//! binary, with a real busybox image, as root.

mod common;

use common::{alive, eventually, Root};

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn run_rm_propagates_exit_codes_and_streams() {
    let root = Root::new();
    let out = root.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(
        root.run(&["run", "--rm", "busybox", "true"]).status.code(),
        Some(0)
    );
    // A command that does not exist: docker's 127, with the reason on one line.
    let (code, err) = root.fails(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(code, 127, "{err}");
    assert!(
        err.contains("no-such-command") && err.trim().lines().count() == 1,
        "{err}"
    );
    // One that exists but is no executable: 126.
    let (code, err) = root.fails(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(code, 126, "{err}");
    assert!(
        err.contains("/etc/passwd") && err.contains("permission denied"),
        "{err}"
    );
    root.assert_clean();
}

#[test]
fn detached_container_lifecycle() {
    let root = Root::new();
    let id = root.run_detached(&["--name", "web", "busybox", "sleep", "1000"]);
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let short = &id[..12];

    let ps = root.ok(&["ps"]);
    let rows = lines(&ps);
    assert!(
        rows[0].starts_with("CONTAINER ID") && rows[0].contains("ISOLATION"),
        "{ps}"
    );
    assert!(
        rows[1].starts_with(short) && rows[1].contains("web") && rows[1].contains("Up"),
        "{ps}"
    );
    assert!(
        rows[1].contains("\"sleep 1000\"") && rows[1].contains("process"),
        "{ps}"
    );
    assert_eq!(root.ok(&["ps", "-q"]).trim(), short);
    let json: serde_json::Value =
        serde_json::from_str(root.ok(&["ps", "--format", "json"]).trim()).unwrap();
    assert_eq!(json["Names"], "web");
    assert_eq!(json["State"], "running");
    assert_eq!(json["Isolation"], "process");

    let inspect: serde_json::Value = serde_json::from_str(&root.ok(&["inspect", "web"])).unwrap();
    let c = &inspect[0];
    assert_eq!(c["Id"], id);
    assert_eq!(c["Name"], "/web");
    assert_eq!(c["Isolation"], "process");
    assert_eq!(c["State"]["Status"], "running");
    let pid = c["State"]["Pid"].as_i64().unwrap() as i32;
    assert!(pid > 0 && alive(pid));
    assert!(c["State"]["StartedAt"].as_str().unwrap().ends_with('Z'));
    // Lookup by id prefix and by full id.
    assert_eq!(root.inspect(short, ".Name"), "/web");
    assert_eq!(root.inspect(&id, ".Name"), "/web");

    root.ok(&["pause", "web"]);
    assert!(root.ok(&["ps"]).contains("(Paused)"));
    assert_eq!(root.inspect("web", ".State.Status"), "paused");
    root.ok(&["unpause", "web"]);
    assert_eq!(root.inspect("web", ".State.Status"), "running");

    // sleep is PID 1 with no handler: SIGTERM does nothing, SIGKILL after -t.
    assert_eq!(root.ok(&["stop", "-t", "1", "web"]).trim(), "web");
    assert!(!alive(pid));
    assert_eq!(root.inspect("web", ".State.Status"), "exited");
    assert_eq!(root.inspect("web", ".State.ExitCode"), "137");
    assert_eq!(
        lines(&root.ok(&["ps"])).len(),
        1,
        "stopped containers are hidden without -a"
    );
    assert!(root.ok(&["ps", "-a"]).contains("Exited (137)"));
    assert!(root
        .ok(&["ps", "--filter", "status=exited"])
        .contains("web"));
    assert!(!root
        .ok(&["ps", "-a", "--filter", "status=running"])
        .contains("web"));
    assert!(
        !common::cgroup_exists(&id),
        "an exited container keeps no cgroup"
    );

    root.ok(&["start", "web"]);
    let pid2: i32 = root.inspect("web", ".State.Pid").parse().unwrap();
    assert!(pid2 != pid && alive(pid2));
    root.ok(&["restart", "-t", "1", "web"]);
    let pid3: i32 = root.inspect("web", ".State.Pid").parse().unwrap();
    assert!(pid3 != pid2 && alive(pid3) && !alive(pid2));

    root.ok(&["kill", "web"]);
    assert_eq!(root.ok(&["wait", "web"]).trim(), "137");
    root.ok(&["rename", "web", "web2"]);
    assert_eq!(root.inspect("web2", ".Name"), "/web2");
    let (_, err) = root.fails(&["inspect", "web"]);
    assert!(err.contains("no such object: web"), "{err}");
    assert_eq!(root.ok(&["rm", "web2"]).trim(), "web2");
    root.assert_clean();
    assert!(!common::cgroup_exists(&id));
}

#[test]
fn wait_reports_the_exit_code_of_an_auto_removed_container() {
    let root = Root::new();
    let id = root.run_detached(&["--rm", "busybox", "sh", "-c", "sleep 2; exit 11"]);
    assert_eq!(root.ok(&["wait", &id]).trim(), "11");
    common::eventually("the --rm container to be removed", || {
        root.container_dirs().is_empty()
    });
    root.assert_clean();
}

#[test]
fn rm_refuses_running_containers_unless_forced() {
    let root = Root::new();
    let id = root.run_detached(&["busybox", "sleep", "1000"]);
    let pid: i32 = root.inspect(&id, ".State.Pid").parse().unwrap();
    let (code, err) = root.fails(&["rm", &id]);
    assert_ne!(code, 0);
    assert!(err.contains("stop it first or use rm -f"), "{err}");
    assert!(alive(pid));
    root.ok(&["rm", "-f", "-v", &id]);
    assert!(!alive(pid));
    assert!(!common::cgroup_exists(&id));
    root.assert_clean();
}

#[test]
fn create_then_start_attached_and_detached() {
    let root = Root::new();
    let id = root.ok(&[
        "create",
        "--name",
        "job",
        "busybox",
        "sh",
        "-c",
        "echo created-output; exit 3",
    ]);
    assert_eq!(id.trim().len(), 64);
    assert!(root.ok(&["ps", "-a"]).contains("Created"));
    assert_eq!(root.inspect("job", ".State.Status"), "created");
    let out = root.run(&["start", "-a", "job"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "created-output\n");
    root.ok(&["start", "job"]);
    assert_eq!(root.ok(&["wait", "job"]).trim(), "3");
    assert_eq!(
        root.ok(&["logs", "job"]),
        "created-output\ncreated-output\n"
    );
    root.ok(&["rm", "job"]);
    root.assert_clean();
}

#[test]
fn logs_tail_timestamps_streams_and_since() {
    let root = Root::new();
    // stdout and stderr are separate pipes, so only each stream's own order is kept.
    root.ok(&[
        "run",
        "--name",
        "both",
        "busybox",
        "sh",
        "-c",
        "echo out; echo oops >&2",
    ]);
    let out = root.run(&["logs", "both"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    root.ok(&["rm", "both"]);
    root.ok(&[
        "run",
        "--name",
        "talk",
        "busybox",
        "sh",
        "-c",
        "echo a; echo b; echo c",
    ]);
    assert_eq!(root.ok(&["logs", "--tail", "1", "talk"]), "c\n");
    let stamped = root.ok(&["logs", "-t", "--tail", "1", "talk"]);
    let (stamp, text) = stamped.trim_end().split_once(' ').unwrap();
    assert_eq!(text, "c");
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
        "{stamp}"
    );
    assert_eq!(root.ok(&["logs", "--since", "1h", "talk"]), "a\nb\nc\n");
    assert_eq!(
        root.ok(&["logs", "--since", "2999-01-01T00:00:00Z", "talk"]),
        ""
    );
    // The log file is docker's json-file format.
    let path = root.inspect("talk", ".LogPath");
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["stream"], "stdout");
    assert_eq!(first["log"], "a\n");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    root.ok(&["rm", "talk"]);
    root.assert_clean();
}

#[test]
fn logs_follow_streams_until_the_container_stops() {
    use std::io::{BufRead, BufReader};
    let root = Root::new();
    let id = root.run_detached(&[
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done",
    ]);
    let mut follower = root
        .cmd(&["logs", "-f", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(follower.stdout.take().unwrap());
    let mut seen = Vec::new();
    // Lines written after `logs -f` started arrive through the follower.
    while !seen.iter().any(|l: &String| l == "tick15") {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "logs -f ended early: {seen:?}"
        );
        seen.push(line.trim_end().to_string());
    }
    assert_eq!(seen[0], "tick0");
    root.ok(&["stop", "-t", "1", &id]);
    // The follower ends by itself once the container has stopped.
    let status = follower.wait().unwrap();
    assert!(status.success());
    root.ok(&["rm", &id]);
    root.assert_clean();
}

/// Host pids of every process in the pid namespace of `pid`.
fn pids_in_namespace_of(pid: i32) -> Vec<i32> {
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    let mut out: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&ns)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn top_shows_the_host_pids_of_the_container_processes() {
    let root = Root::new();
    let id = root.run_detached(&["busybox", "sh", "-c", "sleep 1000 & sleep 1001 & wait"]);
    let init: i32 = root.inspect(&id, ".State.Pid").parse().unwrap();
    eventually("three processes in the container", || {
        pids_in_namespace_of(init).len() == 3
    });
    let top = root.ok(&["top", &id]);
    let rows = lines(&top);
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["PID", "USER", "TIME", "CMD"]
    );
    let mut pids: Vec<i32> = rows[1..]
        .iter()
        .map(|r| r.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    pids.sort();
    assert_eq!(pids, pids_in_namespace_of(init));
    assert!(
        top.contains("sleep 1000") && top.contains("sleep 1001"),
        "{top}"
    );
    for row in &rows[1..] {
        let pid = row.split_whitespace().next().unwrap();
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .replace('\0', " ");
        assert!(row.ends_with(cmdline.trim_end()), "{row} vs {cmdline}");
    }
    // Extra ps options pass through.
    let custom = root.ok(&["top", &id, "-o", "pid,comm"]);
    assert_eq!(
        lines(&custom)[0].split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    assert_eq!(lines(&custom).len(), 4);
    root.ok(&["rm", "-f", &id]);
    root.assert_clean();
}

#[test]
fn exec_runs_in_the_container_and_returns_its_code() {
    let root = Root::new();
    let id = root.run_detached(&[
        "--name",
        "box",
        "-e",
        "FROM_RUN=1",
        "busybox",
        "sleep",
        "1000",
    ]);
    let out = root.run(&[
        "exec",
        "box",
        "sh",
        "-c",
        "echo $FROM_RUN $(hostname); exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("1 {}\n", &id[..12])
    );
    let who = root.ok(&[
        "exec",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "-e",
        "X=y",
        "box",
        "sh",
        "-c",
        "id -u; pwd; echo $X",
    ]);
    assert_eq!(who, "65534\n/tmp\ny\n");
    let echoed = root
        .cmd(&["exec", "-i", "box", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"through stdin\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), "through stdin\n");
    root.ok(&["exec", "-d", "box", "sleep", "999"]);
    eventually("the detached exec in top", || {
        root.ok(&["top", "box"]).contains("sleep 999")
    });
    let (code, err) = root.fails(&["exec", "box", "no-such-command"]);
    assert_eq!(code, 127, "{err}");
    let (code, err) = root.fails(&["exec", "box", "/etc/passwd"]);
    assert_eq!(code, 126, "{err}");
    root.ok(&["stop", "-t", "1", "box"]);
    let (_, err) = root.fails(&["exec", "box", "true"]);
    assert!(err.contains("not running"), "{err}");
    root.ok(&["rm", "box"]);
    root.assert_clean();
}

#[test]
fn attach_forwards_stdin_and_output() {
    use std::io::{BufRead, BufReader, Write};
    let root = Root::new();
    let id = root.run_detached(&[
        "-i",
        "busybox",
        "sh",
        "-c",
        "while read l; do echo got-$l; done; echo bye; exit 9",
    ]);
    let mut att = root
        .cmd(&["attach", &id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = att.stdin.take().unwrap();
    let mut out = BufReader::new(att.stdout.take().unwrap());
    stdin.write_all(b"one\n").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "got-one\n");
    drop(stdin); // end of input closes the container's stdin
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "bye\n");
    assert_eq!(att.wait().unwrap().code(), Some(9));
    root.ok(&["rm", &id]);
    root.assert_clean();
}

#[test]
fn stats_report_cgroup_usage_and_limits() {
    let root = Root::new();
    let id = root.run_detached(&[
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "busybox",
        "sleep",
        "1000",
    ]);
    let stats = root.ok(&["stats", "--no-stream", &id]);
    let rows = lines(&stats);
    assert!(
        rows[0].contains("CPU %")
            && rows[0].contains("MEM USAGE / LIMIT")
            && rows[0].contains("PIDS"),
        "{stats}"
    );
    assert!(
        rows[1].starts_with(&id[..12]) && rows[1].contains("/ 64MiB"),
        "{stats}"
    );
    assert_eq!(rows[1].split_whitespace().last(), Some("1"), "{stats}");
    // The limits are the host cgroup's.
    let cg = |ctl: &str, file: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}/isola/{id}/{file}"))
            .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/isola/{id}/{file}")))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    if std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        assert_eq!(
            cg("memory", "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(cg("pids", "pids.max"), "50");
        assert_eq!(cg("cpu", "cpu.cfs_quota_us"), "50000");
    } else {
        assert_eq!(cg("", "memory.max"), (64u64 << 20).to_string());
        assert_eq!(cg("", "pids.max"), "50");
    }
    root.ok(&["rm", "-f", &id]);
    root.assert_clean();
}

#[test]
fn update_takes_dockers_cpu_swap_and_restart_flags() {
    let root = Root::new();
    // Exits 3 once /go exists: a failure the restart policy acts on.
    let id = root.run_detached(&[
        "busybox",
        "sh",
        "-c",
        "while [ ! -e /go ]; do sleep 1; done; exit 3",
    ]);
    let out = root.ok(&[
        "container",
        "update",
        "-m",
        "64m",
        "--memory-swap",
        "128m",
        "--cpu-shares",
        "512",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "50000",
        "--restart",
        "on-failure:2",
        &id,
    ]);
    assert_eq!(out.trim(), id);
    let cg = |ctl: &str, v1: &str, v2: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}/isola/{id}/{v1}"))
            .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/isola/{id}/{v2}")))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    if std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        assert_eq!(cg("cpu", "cpu.shares", ""), "512");
        assert_eq!(cg("cpu", "cpu.cfs_quota_us", ""), "20000");
        assert_eq!(cg("cpu", "cpu.cfs_period_us", ""), "50000");
        if std::path::Path::new(&format!(
            "/sys/fs/cgroup/memory/isola/{id}/memory.memsw.limit_in_bytes"
        ))
        .exists()
        {
            assert_eq!(
                cg("memory", "memory.memsw.limit_in_bytes", ""),
                (128u64 << 20).to_string()
            );
        }
    } else {
        assert_eq!(cg("", "", "cpu.max"), "20000 50000");
        assert_eq!(cg("", "", "memory.swap.max"), (64u64 << 20).to_string());
    }
    let host = root.ok(&[
        "inspect",
        "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.CpuShares}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
        &id,
    ]);
    assert_eq!(
        host.trim(),
        format!(
            "{} {} 512 20000 50000 0 on-failure:2",
            64u64 << 20,
            128u64 << 20
        )
    );
    // docker's refusals, one line each, nothing changed.
    for (args, says) in [
        (&["--cpus", "1"][..], "Nano CPUs cannot be updated"),
        (
            &["-m", "256m"][..],
            "update the memoryswap at the same time",
        ),
        (
            &["-m", "256m", "--memory-swap", "128m"][..],
            "larger than memory limit",
        ),
        (&["--cpu-period", "10"][..], "CPU cfs period"),
        (&["--restart", "sometimes"][..], "invalid --restart"),
    ] {
        let mut full = vec!["update"];
        full.extend_from_slice(args);
        full.push(&id);
        let (code, err) = root.fails(&full);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // The new policy is the running container's: its failures restart it,
    // twice, then it stays exited.
    root.ok(&["exec", &id, "touch", "/go"]);
    eventually("two restarts, then exited", || {
        root.inspect(&id, ".RestartCount") == "2" && root.inspect(&id, ".State.Status") == "exited"
    });
    assert_eq!(root.inspect(&id, ".State.ExitCode"), "3");
    root.ok(&["rm", "-f", &id]);
    root.assert_clean();
}

#[test]
fn update_changes_a_running_containers_limits_and_keeps_them_for_the_next_start() {
    let root = Root::new();
    let id = root.run_detached(&["--memory", "64m", "busybox", "sleep", "1000"]);
    let cg = |ctl: &str, v1: &str, v2: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}/isola/{id}/{v1}"))
            .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/isola/{id}/{v2}")))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let out = root.ok(&[
        "update",
        "-m",
        "96m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "40",
        &id,
    ]);
    assert_eq!(out.trim(), id, "update names each container it changed");
    assert_eq!(
        cg("memory", "memory.limit_in_bytes", "memory.max"),
        (96u64 << 20).to_string()
    );
    assert_eq!(cg("pids", "pids.max", "pids.max"), "40");
    assert_eq!(
        root.inspect(&id, ".HostConfig.Memory"),
        (96u64 << 20).to_string()
    );
    assert_eq!(root.inspect(&id, ".HostConfig.PidsLimit"), "40");
    assert_eq!(root.inspect(&id, ".HostConfig.NanoCpus"), "500000000");
    // The next start has them too.
    root.ok(&["restart", "-t", "0", &id]);
    assert_eq!(
        cg("memory", "memory.limit_in_bytes", "memory.max"),
        (96u64 << 20).to_string()
    );
    // Bad input: one line, nothing changed.
    let (code, err) = root.fails(&["update", "-m", "-5", &id]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("-5"), "{err}");
    let (code, err) = root.fails(&["update", &id]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("one or more flags"), "{err}");
    let (code, err) = root.fails(&["update", "-m", "64m", "no-such-container"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no-such-container"), "{err}");
    assert_eq!(
        root.inspect(&id, ".HostConfig.Memory"),
        (96u64 << 20).to_string()
    );
    root.ok(&["rm", "-f", &id]);
    root.assert_clean();
}

#[test]
fn container_prune_removes_only_stopped_containers() {
    let root = Root::new();
    root.ok(&["run", "busybox", "true"]);
    root.ok(&["create", "busybox", "true"]);
    let running = root.run_detached(&["busybox", "sleep", "1000"]);
    let out = root.ok(&["container", "prune", "-f"]);
    assert!(out.contains("Total reclaimed containers: 2"), "{out}");
    assert_eq!(root.ok(&["ps", "-a", "-q"]).trim(), &running[..12]);
    root.ok(&["rm", "-f", &running]);
    root.assert_clean();
}

#[test]
fn info_and_version_describe_the_host() {
    let root = Root::new();
    let info = root.ok(&["info"]);
    let canon = std::fs::canonicalize(root.path()).unwrap();
    assert!(
        info.contains(&format!("Storage Root: {}", canon.display())),
        "{info}"
    );
    assert!(info.contains("Cgroup Version: "), "{info}");
    assert!(
        info.contains("VM Acceleration: kvm") || info.contains("VM Acceleration: tcg"),
        "{info}"
    );
    assert!(info.contains("Kernel Version: "), "{info}");
    let json: serde_json::Value =
        serde_json::from_str(&root.ok(&["info", "--format", "json"])).unwrap();
    assert!(json["KernelVersion"]
        .as_str()
        .is_some_and(|k| !k.is_empty()));
    if !std::path::Path::new(engine::isolation::CONFIG_FILE).exists() {
        assert!(
            info.contains("Default Isolation: process (built-in default"),
            "{info}"
        );
        let out = root
            .cmd(&["info"])
            .env("ISOLA_ISOLATION", "vm")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(
                "Default Isolation: vm (set by the environment variable ISOLA_ISOLATION)"
            ),
            "{text}"
        );
    }
    let version = root.ok(&["version"]);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
}

#[test]
fn a_foreground_run_passes_signals_to_the_container() {
    use std::io::{BufRead, BufReader};
    let root = Root::new();
    let mut child = root
        .cmd(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // SIGTERM to the CLI reaches the container's process (docker's --sig-proxy).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "got-term\n");
    assert_eq!(child.wait().unwrap().code(), Some(3));
    root.assert_clean();
}

#[test]
fn run_takes_cpu_shares_and_memory_swap() {
    let root = Root::new();
    let script =
        "c=/sys/fs/cgroup/cpu/cpu.shares; [ -f $c ] || c=/sys/fs/cgroup/cpu.weight; cat $c";
    let out = root.ok(&[
        "run",
        "--rm",
        "-c",
        "512",
        "-m",
        "64m",
        "--memory-swap",
        "128m",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    // v2 weighs 512 shares as 20 (runc's conversion).
    let want = if std::path::Path::new("/sys/fs/cgroup/cpu").is_dir() {
        "512"
    } else {
        "20"
    };
    assert_eq!(out.trim(), want);
    // --cpuset-cpus and --memory-reservation, as the container's cgroup has them.
    let script = "c=/sys/fs/cgroup/cpuset/cpuset.cpus; [ -f $c ] || c=/sys/fs/cgroup/cpuset.cpus; \
                  r=/sys/fs/cgroup/memory/memory.soft_limit_in_bytes; [ -f $r ] || r=/sys/fs/cgroup/memory.low; \
                  echo $(cat $c) $(cat $r)";
    let out = root.ok(&[
        "run",
        "--rm",
        "--cpuset-cpus",
        "0",
        "-m",
        "64m",
        "--memory-reservation",
        "32m",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out.trim(), format!("0 {}", 32u64 << 20));
    let id = root.ok(&[
        "create",
        "--cpu-shares",
        "300",
        "-m",
        "64m",
        "--memory-swap",
        "-1",
        "busybox",
    ]);
    assert_eq!(
        root.inspect(id.trim(), ".HostConfig.CpuShares").to_string()
            + " "
            + &root.inspect(id.trim(), ".HostConfig.MemorySwap"),
        "300 -1"
    );
    root.ok(&["rm", id.trim()]);
    for (args, says) in [
        (
            &["-m", "64m", "--memory-swap", "32m"][..],
            "Minimum memoryswap limit should be larger than memory limit",
        ),
        (
            &["--memory-swap", "128m"][..],
            "You should always set the Memory limit when using Memoryswap limit",
        ),
        (
            &["-m", "64m", "--memory-reservation", "128m"][..],
            "Minimum memory limit can not be less than memory reservation limit",
        ),
        (&["--cpuset-cpus", "99"][..], "invalid --cpuset-cpus \"99\""),
        (
            &["--isolation", "vm", "--cpuset-cpus", "0"][..],
            "--cpuset-cpus is not supported with --isolation=vm",
        ),
    ] {
        root.refuses_create(args, says);
    }
    root.assert_clean();
}
