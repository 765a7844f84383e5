//! End-to-end: what the flags of `run` change inside the container: user,
//! environment, working directory, hostname, volumes and mounts, read-only
//! root, network mode, capabilities, security options, platform check.

mod common;

use common::Root;

fn run_out(root: &Root, args: &[&str]) -> String {
    let mut full = vec!["run", "--rm"];
    full.extend_from_slice(args);
    root.ok(&full)
}

#[test]
fn user_env_workdir_and_hostname() {
    let root = Root::new();
    assert_eq!(
        run_out(&root, &["-u", "nobody", "busybox", "id", "-u"]),
        "65534\n"
    );
    assert_eq!(
        run_out(&root, &["-u", "65534:0", "busybox", "id", "-g"]),
        "0\n"
    );
    let env_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(env_file.path(), "# comment\nFROM_FILE=f\nBOTH=file\n").unwrap();
    let out = run_out(
        &root,
        &[
            "-e",
            "A=1",
            "--env-file",
            env_file.path().to_str().unwrap(),
            "-e",
            "BOTH=flag",
            "busybox",
            "sh",
            "-c",
            "echo $A $FROM_FILE $BOTH $HOME",
        ],
    );
    assert_eq!(out, "1 f flag /root\n");
    assert_eq!(run_out(&root, &["-w", "/tmp", "busybox", "pwd"]), "/tmp\n");
    assert_eq!(
        run_out(&root, &["--hostname", "box1", "busybox", "hostname"]),
        "box1\n"
    );
    assert_eq!(
        run_out(
            &root,
            &["--entrypoint", "echo", "busybox", "from", "entrypoint"]
        ),
        "from entrypoint\n"
    );
    // The default hostname is the short id; /etc/hosts names it.
    let id = root.run_detached(&["busybox", "sleep", "1000"]);
    assert_eq!(root.ok(&["exec", &id, "hostname"]).trim(), &id[..12]);
    let hosts = root.ok(&["exec", &id, "cat", "/etc/hosts"]);
    assert!(
        hosts.contains("localhost") && hosts.contains(&id[..12]),
        "{hosts}"
    );
    root.ok(&["rm", "-f", &id]);
    root.assert_clean();
}

#[test]
fn volumes_mounts_and_read_only_root() {
    let root = Root::new();
    let host = tempfile::tempdir().unwrap();
    let v = format!("{}:/data", host.path().display());
    run_out(
        &root,
        &["-v", &v, "busybox", "sh", "-c", "echo written > /data/f"],
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("f")).unwrap(),
        "written\n"
    );
    let ro = format!("{}:/data:ro", host.path().display());
    let out = root.run(&[
        "run",
        "--rm",
        "-v",
        &ro,
        "busybox",
        "sh",
        "-c",
        "cat /data/f && touch /data/g",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "written\n");
    assert_ne!(
        out.status.code(),
        Some(0),
        "a :ro volume must refuse writes"
    );
    assert!(!host.path().join("g").exists());
    let bind = format!(
        "type=bind,source={},target=/b,readonly",
        host.path().display()
    );
    assert_eq!(
        run_out(&root, &["--mount", &bind, "busybox", "cat", "/b/f"]),
        "written\n"
    );
    let mounts = run_out(
        &root,
        &[
            "--mount",
            "type=tmpfs,target=/scratch,tmpfs-size=1m",
            "busybox",
            "cat",
            "/proc/mounts",
        ],
    );
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with("tmpfs /scratch tmpfs")),
        "{mounts}"
    );
    let out = root.run(&["run", "--rm", "--read-only", "busybox", "touch", "/newfile"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "--read-only must refuse writes to /"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only file system"));
    root.assert_clean();
}

#[test]
fn network_none_has_only_loopback_and_host_shares_the_host_network() {
    let root = Root::new();
    let links = run_out(&root, &["--network", "none", "busybox", "ip", "-o", "link"]);
    let names: Vec<&str> = links.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(names, ["lo"], "{links}");
    assert!(links.contains("UP"), "lo must be up: {links}");
    assert!(run_out(
        &root,
        &[
            "--network",
            "none",
            "busybox",
            "ping",
            "-c",
            "1",
            "localhost"
        ]
    )
    .contains("1 packets received"));
    let host_links = run_out(&root, &["--network", "host", "busybox", "ip", "-o", "link"]);
    assert!(host_links.lines().count() > 1, "{host_links}");
    root.assert_clean();
}

/// Effective capabilities of a container's process, from /proc/self/status.
fn cap_eff(root: &Root, extra: &[&str]) -> u64 {
    let mut args = extra.to_vec();
    args.extend_from_slice(&["busybox", "grep", "CapEff", "/proc/self/status"]);
    let out = run_out(root, &args);
    u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn capabilities_and_security_options() {
    let root = Root::new();
    // docker's default set.
    assert_eq!(cap_eff(&root, &[]), 0xa80425fb);
    assert_eq!(cap_eff(&root, &["--cap-drop", "ALL"]), 0);
    let net_admin = 1 << 12;
    assert_eq!(
        cap_eff(&root, &["--cap-add", "NET_ADMIN"]),
        0xa80425fb | net_admin
    );
    assert_eq!(cap_eff(&root, &["--cap-drop", "chown"]), 0xa80425fb & !1);
    let nnp = run_out(
        &root,
        &[
            "--security-opt",
            "no-new-privileges",
            "busybox",
            "grep",
            "NoNewPrivs",
            "/proc/self/status",
        ],
    );
    assert!(nnp.trim().ends_with('1'), "{nnp}");
    // The default seccomp profile: a new user namespace (which root in a
    // container could otherwise make) is refused; CAP_SYS_ADMIN or
    // seccomp=unconfined allow it.
    let unshare = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sh", "-c", "unshare -U true"]);
        root.run(&args)
    };
    let out = unshare(&[]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{out:?}"
    );
    assert_eq!(
        unshare(&["--security-opt", "seccomp=unconfined"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(unshare(&["--cap-add", "SYS_ADMIN"]).status.code(), Some(0));
    // A docker-format seccomp profile: mkdir refused with EPERM, the rest allowed.
    let profile = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        profile.path(),
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.path().display());
    let out = root.run(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/tmp/x",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{out:?}"
    );
    assert_eq!(
        run_out(
            &root,
            &[
                "--security-opt",
                "seccomp=unconfined",
                "busybox",
                "mkdir",
                "/tmp/x"
            ]
        ),
        ""
    );
    root.assert_clean();
}

#[test]
fn foreign_platform_is_refused_in_process_mode() {
    let root = Root::new();
    let host = testkit::host_arch();
    let other = if host == "amd64" { "arm64" } else { "amd64" };
    let mut img = testkit::LayoutImage::new(
        "foreign",
        "latest",
        vec![testkit::busybox_layer_tar()],
        serde_json::json!({"Cmd": ["sh"]}),
    );
    img.architecture = other.into();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("foreign.tar");
    common::layout_tar(&img, &tar);
    root.load(&tar);
    let (code, err) = root.fails(&["run", "--rm", "foreign", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains(&format!("linux/{other}")) && err.contains(&format!("linux/{host}")),
        "{err}"
    );
    assert!(err.contains("--isolation=vm"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    root.assert_clean();
}

#[test]
fn init_runs_as_pid_one_and_forwards_signals() {
    let root = Root::new();
    if !std::path::Path::new(engine::spec::INIT_BINARY).exists() {
        let (_, err) = root.fails(&["run", "--rm", "--init", "busybox", "true"]);
        assert!(err.contains("tini"), "{err}");
        let missing = format!(
            "{} is missing (Debian package tini)",
            engine::spec::INIT_BINARY
        );
        testkit::require("--init test", Some(missing));
        return;
    }
    let comm = run_out(&root, &["--init", "busybox", "cat", "/proc/1/comm"]);
    assert_eq!(comm.trim(), "isola-init");
    assert_eq!(
        root.run(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 5"])
            .status
            .code(),
        Some(5)
    );
    // Without an init, sleep as PID 1 ignores SIGTERM; under tini it gets it.
    let id = root.run_detached(&["--init", "busybox", "sleep", "1000"]);
    root.ok(&["stop", "-t", "30", &id]);
    assert_eq!(root.inspect(&id, ".State.ExitCode"), "143");
    root.ok(&["rm", &id]);
    root.assert_clean();
}

/// What `--ulimit`, `--sysctl` and `--group-add` set, as the container
/// sees it: the first line of each check names it.
const LIMITS_SCRIPT: &str = "echo nofile $(ulimit -n) $(ulimit -Hn); echo shmmax $(cat /proc/sys/kernel/shmmax); echo msgmax $(cat /proc/sys/kernel/msgmax); echo groups $(id -G)";

fn limits_flags() -> Vec<&'static str> {
    vec![
        "--ulimit",
        "nofile=100:200",
        "--sysctl",
        "kernel.shmmax=123456789",
        "--sysctl",
        "kernel.msgmax=4096",
        "--group-add",
        "nogroup",
        "--group-add",
        "10",
    ]
}

#[test]
fn ulimits_sysctls_and_added_groups_reach_the_container_in_both_modes() {
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    let want = "nofile 100 200\nshmmax 123456789\nmsgmax 4096\ngroups 0 10 65534\n";
    // (nogroup is 65534 in the test image's /etc/group.)
    let mut args = vec!["run", "--rm", "--isolation", "process"];
    args.extend(limits_flags());
    args.extend(["busybox", "sh", "-c", LIMITS_SCRIPT]);
    assert_eq!(root.ok(&args), want, "process mode");
    // exec gets the same limits and groups.
    let mut args = vec!["run", "-d"];
    args.extend(limits_flags());
    args.extend(["busybox", "sleep", "60"]);
    let id = root.ok(&args);
    let id = id.trim();
    assert_eq!(
        root.ok(&["exec", id, "sh", "-c", LIMITS_SCRIPT]),
        want,
        "exec"
    );
    assert_eq!(
        root.inspect(id, "json .HostConfig.Ulimits"),
        r#"[{"Hard":200,"Name":"nofile","Soft":100}]"#
    );
    root.ok(&["rm", "-f", id]);
    if root.vm_kernel_or_skip("ulimits, sysctls and groups in a VM") {
        let mut args = vec!["run", "--rm", "--isolation", "vm"];
        args.extend(limits_flags());
        args.extend(["busybox", "sh", "-c", LIMITS_SCRIPT]);
        assert_eq!(root.ok(&args), want, "VM mode");
    }
    // Refusals: one line, exit 125, nothing made.
    for (args, says) in [
        (
            &["--ulimit", "nofiles=1"][..],
            "invalid --ulimit \"nofiles=1\": not a ulimit name",
        ),
        (
            &["--ulimit", "nofile=10:5"][..],
            "the soft limit is above the hard limit",
        ),
        (
            &["--sysctl", "kernel.panic=1"][..],
            "kernel.panic is not in a namespace the container owns",
        ),
        (
            &["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"][..],
            "host's network namespace",
        ),
        (&["--group-add", "nosuchgroup"][..], "nosuchgroup"),
    ] {
        root.refuses_create(args, says);
    }
    root.assert_clean();
}

#[test]
fn device_makes_a_host_device_usable_in_the_container() {
    if !std::path::Path::new("/dev/fuse").exists() {
        // Every Debian host has it (the fuse module is built in or loads).
        assert!(
            std::env::var_os("CI").is_none(),
            "/dev/fuse missing on this host"
        );
        return;
    }
    let root = Root::new();
    let open = "exec 3<>/dev/fuse && echo opened";
    // Without --device the container has no such node, and may not make one
    // that works (the device rules).
    let out = root.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mknod /tmp/f c 10 229 && exec 3<>/tmp/f && echo opened",
    ]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("opened"),
        "a device the rules do not allow opened"
    );
    assert_eq!(
        root.ok(&[
            "run",
            "--rm",
            "--device",
            "/dev/fuse",
            "busybox",
            "sh",
            "-c",
            open
        ]),
        "opened\n"
    );
    assert_eq!(
        root.ok(&[
            "run",
            "--rm",
            "--device",
            "/dev/fuse:/dev/other",
            "busybox",
            "sh",
            "-c",
            "test -c /dev/other && exec 3<>/dev/other && echo opened"
        ]),
        "opened\n"
    );
    let id = root.ok(&["create", "--device", "/dev/fuse", "busybox"]);
    assert_eq!(
        root.inspect(id.trim(), "json .HostConfig.Devices"),
        r#"[{"CgroupPermissions":"rwm","PathInContainer":"/dev/fuse","PathOnHost":"/dev/fuse"}]"#
    );
    root.ok(&["rm", id.trim()]);
    for (args, says) in [
        (
            &["--device", "/etc/passwd"][..],
            "/etc/passwd is not a device",
        ),
        (
            &["--device", "/dev/nosuch"][..],
            "invalid --device \"/dev/nosuch\"",
        ),
        (
            &["--device", "/dev/fuse:/dev/fuse:r"][..],
            "isola gives a device rwm, or refuses it",
        ),
        (
            &["--isolation", "vm", "--device", "/dev/fuse"][..],
            "not supported with --isolation=vm",
        ),
    ] {
        root.refuses_create(args, says);
    }
    root.assert_clean();
}

#[test]
fn pid_and_ipc_share_the_hosts_or_another_containers_namespace() {
    let root = Root::new();
    let ns = |pid: &str, kind: &str| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
    // --pid host: the container sees the host's processes (its own shell
    // among them, under its host pid).
    let out = root.ok(&[
        "run",
        "--rm",
        "--pid",
        "host",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/pid",
    ]);
    assert_eq!(std::path::Path::new(out.trim()), ns("self", "pid"));
    let out = root.ok(&[
        "run",
        "--rm",
        "--ipc",
        "host",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/ipc",
    ]);
    assert_eq!(std::path::Path::new(out.trim()), ns("self", "ipc"));
    // container:NAME: the other container's namespaces, its processes seen.
    let id = root.run_detached(&["--name", "target", "busybox", "sleep", "60"]);
    let pid = root.inspect(&id, ".State.Pid");
    let out = root.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:target",
        "--ipc",
        "container:target",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; cat /proc/1/comm",
    ]);
    assert_eq!(
        out,
        format!(
            "{}\n{}\nsleep\n",
            ns(&pid, "pid").display(),
            ns(&pid, "ipc").display()
        )
    );
    assert_eq!(
        root.inspect(
            root.ok(&["create", "--pid", "container:target", "busybox"])
                .trim(),
            ".HostConfig.PidMode"
        ),
        format!("container:{id}")
    );
    // Refusals, one line each.
    for (args, says) in [
        (
            &["--pid", "bogus"][..],
            "invalid --pid \"bogus\": expected host, private or container:<name|id>",
        ),
        (
            &["--ipc", "container:nosuch"][..],
            "no such container: nosuch",
        ),
        (
            &["--isolation", "vm", "--pid", "host"][..],
            "--pid host is not supported with --isolation=vm",
        ),
    ] {
        root.refuses_create(args, says);
    }
    for c in root.ok(&["ps", "-aq"]).lines() {
        root.ok(&["rm", "-f", c]);
    }
    root.assert_clean();
}

#[test]
fn log_driver_none_and_log_opt_rotation() {
    let root = Root::new();
    // none: nothing written, and logs says so.
    let id = root.ok(&[
        "run",
        "-d",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "unseen",
    ]);
    let id = id.trim().to_string();
    common::eventually("exited", || root.inspect(&id, ".State.Status") == "exited");
    let (code, err) = root.fails(&["logs", &id]);
    assert_eq!(code, 125);
    assert!(
        err.contains("configured logging driver does not support reading")
            && err.trim_end().lines().count() == 1,
        "{err}"
    );
    assert!(!root
        .containers_dir()
        .join(&id)
        .join("container.log")
        .exists());
    assert_eq!(root.inspect(&id, ".HostConfig.LogConfig.Type"), "none");
    root.ok(&["rm", &id]);
    // json-file with max-size and max-file: rotated, three files at most,
    // the newest lines read back in order.
    let script = "i=0; while [ $i -lt 200 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done";
    let id = root.ok(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let id = id.trim().to_string();
    common::eventually("exited", || root.inspect(&id, ".State.Status") == "exited");
    let dir = root.containers_dir().join(&id);
    assert!(dir.join("container.log.2").exists() && !dir.join("container.log.3").exists());
    for f in ["container.log", "container.log.1", "container.log.2"] {
        let len = std::fs::metadata(dir.join(f)).unwrap().len();
        assert!(len <= 2048, "{f} is {len} bytes, over max-size");
    }
    let logs = root.ok(&["logs", &id]);
    let numbers: Vec<u32> = logs
        .lines()
        .map(|l| l.split('-').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(numbers.last(), Some(&199), "the newest line");
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, no gap: {numbers:?}"
    );
    assert!(numbers.len() < 200, "the oldest lines were dropped");
    assert_eq!(
        root.inspect(&id, "json .HostConfig.LogConfig"),
        r#"{"Config":{"max-file":"3","max-size":"2048"},"Type":"json-file"}"#
    );
    root.ok(&["rm", &id]);
    for (args, says) in [
        (
            &["--log-driver", "syslog"][..],
            "invalid --log-driver \"syslog\"",
        ),
        (
            &["--log-opt", "max-size=0"][..],
            "invalid --log-opt \"max-size=0\"",
        ),
        (
            &["--log-driver", "none", "--log-opt", "max-file=2"][..],
            "none takes nothing",
        ),
    ] {
        root.refuses_create(args, says);
    }
    root.assert_clean();
}

#[test]
fn privileged_opens_the_host_to_the_container_and_only_when_asked() {
    let root = Root::new();
    let probe = "grep -E '^(CapEff|Seccomp):' /proc/self/status | tr -s '\\t ' ' '; \
                 grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; \
                 mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>/dev/null && echo mounted || echo no-mount; \
                 test -c /dev/fuse && echo fuse || echo no-fuse";
    let confined = root.ok(&["run", "--rm", "busybox", "sh", "-c", probe]);
    assert_eq!(
        confined,
        "CapEff: 00000000a80425fb\nSeccomp: 2\nro\nno-mount\nno-fuse\n",
        "the default: docker's capabilities, a seccomp filter, /sys read-only, no mount, no host devices"
    );
    let host_caps = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let open = root.ok(&["run", "--rm", "--privileged", "busybox", "sh", "-c", probe]);
    let fuse = if std::path::Path::new("/dev/fuse").exists() {
        "fuse"
    } else {
        "no-fuse"
    };
    assert_eq!(
        open,
        format!("CapEff: {host_caps}\nSeccomp: 0\nrw\nmounted\n{fuse}\n")
    );
    let id = root.ok(&["create", "--privileged", "busybox"]);
    assert_eq!(root.inspect(id.trim(), ".HostConfig.Privileged"), "true");
    root.ok(&["rm", id.trim()]);
    let (code, err) = root.fails(&["create", "--isolation", "vm", "--privileged", "busybox"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("--privileged is not supported with --isolation=vm")
            && err.trim_end().lines().count() == 1,
        "{err}"
    );
    root.assert_clean();
}

/// Waits until the container's health is `want`, returning what `ps`
/// shows then.
fn health_becomes(root: &Root, id: &str, want: &str) -> String {
    common::eventually(&format!("health {want}"), || {
        root.inspect(id, ".State.Health.Status") == want
    });
    root.ok(&[
        "ps",
        "--filter",
        &format!("id={id}"),
        "--format",
        "{{.Status}}",
    ])
}

#[test]
fn health_checks_run_in_both_modes_and_images_carry_them() {
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    // Unhealthy until /tmp/ok exists, then healthy: the streak, the
    // status in ps and inspect, the events.
    let run = |isolation: &str| {
        root.ok(&[
            "run",
            "-d",
            "--isolation",
            isolation,
            "--health-cmd",
            "test -e /tmp/ok",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "busybox",
            "sleep",
            "600",
        ])
        .trim()
        .to_string()
    };
    let mut modes = vec!["process"];
    if root.vm_kernel_or_skip("health checks in a VM") {
        modes.push("vm");
    }
    for isolation in modes {
        let id = run(isolation);
        let shown = health_becomes(&root, &id, "unhealthy");
        assert!(
            shown.trim().ends_with("(unhealthy)"),
            "{isolation}: {shown}"
        );
        assert!(
            root.inspect(&id, ".State.Health.FailingStreak")
                .parse::<u32>()
                .unwrap()
                >= 2
        );
        root.ok(&["exec", &id, "touch", "/tmp/ok"]);
        let shown = health_becomes(&root, &id, "healthy");
        assert!(shown.trim().ends_with("(healthy)"), "{isolation}: {shown}");
        assert_eq!(root.inspect(&id, ".State.Health.FailingStreak"), "0");
        let events = root.ok(&[
            "events",
            "--since",
            "5m",
            "--until",
            "0s",
            "--filter",
            &format!("container={id}"),
            "--format",
            "{{.Action}}",
        ]);
        assert!(
            events.contains("health_status: unhealthy\n")
                && events.contains("health_status: healthy\n"),
            "{events}"
        );
        root.ok(&["rm", "-f", &id]);
    }
    // An image's HEALTHCHECK, as isola build stores it; --no-healthcheck
    // turns it off.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nHEALTHCHECK --interval=200ms --retries=1 CMD [\"true\"]\nCMD [\"sleep\", \"600\"]\n",
    )
    .unwrap();
    root.ok(&[
        "build",
        "-q",
        "-t",
        "healthy:1",
        ctx.path().to_str().unwrap(),
    ]);
    let id = root.run_detached(&["healthy:1"]);
    health_becomes(&root, &id, "healthy");
    root.ok(&["rm", "-f", &id]);
    let id = root.run_detached(&["--no-healthcheck", "healthy:1"]);
    assert_eq!(root.inspect(&id, "json .State.Health"), "null");
    root.ok(&["rm", "-f", &id]);
    root.refuses_create(
        &["--health-interval", "soon"],
        "invalid --health-interval \"soon\"",
    );
    root.refuses_create(
        &["--no-healthcheck", "--health-cmd", "true"],
        "--no-healthcheck conflicts",
    );
    root.assert_clean();
}
