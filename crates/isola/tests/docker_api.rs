//! End-to-end: the Docker Engine API (`isola system service`) driven by the
//! real docker client from Debian's docker.io package (taken out with
//! `apt-get download` + `dpkg -x` by scripts/setup.sh, never installed, so
//! no dockerd ever runs), and by raw HTTP where the bytes matter (attach
//! framing, error codes). Each test serves its own isola root on its own
//! socket.

mod common;
mod docker_service;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, Root};
use docker_service::{docker_or_skip, Service};

#[test]
fn docker_version_info_images_and_the_socket() {
    let Some(docker) = docker_or_skip("docker version/info/images") else {
        return;
    };
    let svc = Service::start(Root::new().with_env("ISOLA_ISOLATION", "vm"), docker);
    let version = svc.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(version.trim(), "1.43 linux");
    // The host's default isolation (here from the environment).
    assert_eq!(svc.ok(&["info", "--format", "{{.Isolation}}"]).trim(), "vm");
    let images = svc.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), "busybox:latest");
    // Root and group isola, 0660.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&svc.socket).unwrap();
    assert_eq!(m.mode() & 0o777, 0o660);
    assert_eq!(m.uid(), 0);
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(m.gid()))
        .unwrap()
        .unwrap();
    assert_eq!(group.name, "isola");
    // Versions: prefixed, unversioned, and too new.
    assert_eq!(svc.http("GET", "/v1.24/_ping", None), (200, b"OK".to_vec()));
    assert_eq!(svc.http("GET", "/_ping", None), (200, b"OK".to_vec()));
    let (status, body) = svc.http_json("GET", "/v1.44/version", None);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("too new"),
        "{body}"
    );
}

#[test]
fn docker_run_prints_exits_and_leaves_nothing() {
    let Some(docker) = docker_or_skip("docker run") else {
        return;
    };
    let svc = Service::start(Root::new(), docker);
    let out = svc.docker(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        svc.root.container_dirs(),
        Vec::<String>::new(),
        "--rm left it"
    );

    // docker's exit codes: the command's, 125 for docker's own errors,
    // 126 for a command that cannot run, 127 for a missing one.
    for (args, code) in [
        (&["run", "--rm", "busybox", "false"][..], 1),
        (&["run", "--rm", "busybox", "sh", "-c", "exit 3"][..], 3),
        (
            &["run", "--rm", "--isolation=bogus", "busybox", "true"][..],
            125,
        ),
        (&["run", "--rm", "busybox", "/etc/passwd"][..], 126),
        (&["run", "--rm", "busybox", "no-such-command"][..], 127),
    ] {
        let out = svc.docker(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = svc.docker(&["run", "--rm", "--isolation=bogus", "busybox", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("process, hyperv"),
        "names the allowed values: {err}"
    );

    // stdin, and its end: `cat` sees EOF and exits.
    let mut cat = svc
        .cmd(&["run", "--rm", "-i", "busybox", "sh", "-c", "cat; exit 4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    cat.stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let out = cat.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");
    assert_eq!(out.status.code(), Some(4));
    eventually("every --rm container is gone", || {
        svc.root.container_dirs().is_empty()
    });
    svc.root.assert_clean();
}

#[test]
fn docker_detached_container_ps_logs_exec_top_inspect_rename_stop_rm() {
    let Some(docker) = docker_or_skip("docker run -d") else {
        return;
    };
    let svc = Service::start(Root::new(), docker);
    let id = svc
        .ok(&[
            "run",
            "-d",
            "--name",
            "pinger",
            "--isolation=process",
            "busybox",
            "ping",
            "localhost",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ps = svc.ok(&["ps", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);
    assert!(ps.starts_with(&format!("{} pinger Up", &id[..12])), "{ps}");
    eventually("ping output in docker logs", || {
        String::from_utf8_lossy(&svc.docker(&["logs", "pinger"]).stdout)
            .contains("bytes from 127.0.0.1")
    });
    assert_eq!(
        svc.ok(&["exec", "pinger", "echo", "from-exec"]),
        "from-exec\n"
    );
    let out = svc.docker(&["exec", "pinger", "sh", "-c", "echo err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(
        svc.ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.Isolation}} {{.State.Running}}",
            "pinger"
        ])
        .trim(),
        "process true"
    );

    // The seed's demonstration, process isolation: docker top shows the
    // host pid that pgrep finds.
    let top = svc.ok(&["top", "pinger"]);
    let row = top
        .lines()
        .find(|l| l.ends_with("ping localhost"))
        .unwrap_or_else(|| panic!("top lacks ping: {top}"));
    let pid: String = row.split_whitespace().next().unwrap().to_string();
    let pgrep = Command::new("pgrep").args(["-x", "ping"]).output().unwrap();
    let host_pings = String::from_utf8_lossy(&pgrep.stdout);
    assert!(
        host_pings.lines().any(|l| l == pid),
        "pgrep -x ping ({host_pings}) lacks {pid}"
    );

    // docker update: the new limits are the container's cgroup's and inspect's.
    svc.ok(&["update", "-m", "96m", "--pids-limit", "40", "pinger"]);
    assert_eq!(
        svc.ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
            "pinger"
        ])
        .trim(),
        format!("{} 40", 96u64 << 20)
    );
    let cgroup = |v1: &str, v2: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{v1}/isola/{id}/{v2}"))
            .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/isola/{id}/{v2}")))
            .unwrap_or_default()
    };
    let limit = match cgroup("memory", "memory.limit_in_bytes") {
        l if !l.is_empty() => l,
        _ => cgroup("", "memory.max"),
    };
    assert_eq!(limit.trim(), (96u64 << 20).to_string());
    // The rest of docker update's flags, the restart policy among them.
    svc.ok(&[
        "update",
        "--cpu-shares",
        "512",
        "--restart",
        "on-failure:4",
        "pinger",
    ]);
    assert_eq!(
        svc.ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.CpuShares}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            "pinger"
        ])
        .trim(),
        "512 on-failure 4"
    );
    // v2 weighs 512 shares as 20 (runc's conversion).
    match cgroup("cpu", "cpu.shares") {
        s if !s.is_empty() => assert_eq!(s.trim(), "512"),
        _ => assert_eq!(cgroup("", "cpu.weight").trim(), "20"),
    }
    let out = svc.docker(&["update", "--blkio-weight", "300", "pinger"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("BlkioWeight"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    svc.ok(&["rename", "pinger", "pinger2"]);
    assert!(svc
        .ok(&["ps", "--format", "{{.Names}}"])
        .contains("pinger2"));
    svc.ok(&["stop", "-t", "1", "pinger2"]);
    let all = svc.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(all.starts_with("pinger2 Exited (137)"), "{all}");
    assert_eq!(svc.ok(&["ps", "-q"]), "");
    svc.ok(&["rm", "-f", "pinger2"]);
    assert_eq!(svc.ok(&["ps", "-aq"]), "");
    svc.root.assert_clean();
}

#[test]
fn docker_talks_to_a_socket_activated_service() {
    let Some(docker) = docker_or_skip("socket activation") else {
        return;
    };
    // As systemd with isola.socket: the socket is listening before the
    // service starts, so the first request waits in its backlog.
    let mut svc = Service::start_activated(Root::new(), docker);
    let out = svc.docker(&["run", "--rm", "busybox", "echo", "hi"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let id = svc.ok(&["run", "-d", "busybox", "sleep", "600"]);
    svc.stop();
    // The socket is systemd's: the service leaves it in place, and no
    // container's monitor inherited it (a leaked listening fd would accept
    // connections into a backlog nobody serves).
    assert!(svc.socket.exists());
    let err = std::os::unix::net::UnixStream::connect(&svc.socket).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // The container runs on without the service.
    assert_eq!(svc.root.inspect(id.trim(), ".State.Status"), "running");
}

#[test]
fn fd_listen_refuses_sockets_meant_for_another_process() {
    let root = Root::new();
    let out = root
        .cmd(&["system", "service", "--listen", "fd://"])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("isola.socket"), "{err}");
}

#[test]
fn docker_run_host_config_flags_take_effect_inside_the_container() {
    let Some(docker) = docker_or_skip("docker run HostConfig flags") else {
        return;
    };
    let svc = Service::start(Root::new(), docker);
    let flags = [
        "--cap-drop",
        "ALL",
        "--read-only",
        "--tmpfs",
        "/t:size=1m",
        "--shm-size",
        "8m",
        "-m",
        "64m",
        "--pids-limit",
        "20",
        "--cpu-shares",
        "512",
        "--memory-swap",
        "128m",
        "--ulimit",
        "nofile=100:200",
        "--sysctl",
        "kernel.shmmax=123456789",
        "--group-add",
        "10",
        "--device",
        "/dev/null:/dev/other-null",
        "--init",
        "--add-host",
        "foo.test:10.1.2.3",
        "--dns",
        "10.9.9.9",
    ];
    // Each line names what it checks, so a failure shows which.
    let script = r#"
        echo "caps $(grep CapEff /proc/self/status | cut -f2)"
        touch /rootfile 2>/dev/null && echo "root writable" || echo "root read-only"
        echo "tmpfs $(grep ' /t ' /proc/mounts | cut -d' ' -f3,4)"
        touch /t/x && echo "tmpfs writable"
        echo "shm $(df -k /dev/shm | tail -1 | awk '{print $2}')"
        m=/sys/fs/cgroup/memory/memory.limit_in_bytes; [ -f $m ] || m=/sys/fs/cgroup/memory.max
        echo "memory $(cat $m)"
        p=/sys/fs/cgroup/pids/pids.max; [ -f $p ] || p=/sys/fs/cgroup/pids.max
        echo "pids $(cat $p)"
        c=/sys/fs/cgroup/cpu/cpu.shares; [ -f $c ] || c=/sys/fs/cgroup/cpu.weight
        echo "shares $(cat $c)"
        echo "nofile $(ulimit -n) $(ulimit -Hn)"
        echo "shmmax $(cat /proc/sys/kernel/shmmax)"
        echo "groups $(id -G)"
        echo "device $(echo x > /dev/other-null && stat -c %t:%T /dev/other-null)"
        echo "init $(cat /proc/1/comm)"
        echo "hosts $(grep foo.test /etc/hosts | cut -f1)"
        echo "dns $(grep nameserver /etc/resolv.conf)"
    "#;
    let mut args = vec!["run", "--rm"];
    args.extend(flags);
    args.extend(["busybox", "sh", "-c", script]);
    let out = svc.ok(&args);
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "caps 0000000000000000",
        "root read-only",
        "tmpfs tmpfs rw,nosuid,nodev,relatime,size=1024k",
        "tmpfs writable",
        "shm 8192",
        "memory 67108864",
        "pids 20",
        // v2 weighs 512 shares as 20 (runc's conversion).
        if std::path::Path::new("/sys/fs/cgroup/cpu").is_dir() {
            "shares 512"
        } else {
            "shares 20"
        },
        "nofile 100 200",
        "shmmax 123456789",
        "groups 0 10",
        "device 1:3",
        "hosts 10.1.2.3",
        "dns nameserver 10.9.9.9",
    ] {
        assert!(lines.contains(&want), "{want:?} not in:\n{out}");
    }
    assert!(
        !lines.contains(&"init sh"),
        "--init: sh is not PID 1:\n{out}"
    );

    // inspect gives them back in HostConfig.
    let mut args = vec!["create"];
    args.extend(flags);
    args.extend(["busybox", "true"]);
    let id = svc.ok(&args);
    let got = svc.ok(&[
        "inspect",
        "--format",
        "{{json .HostConfig.CapDrop}} {{.HostConfig.ReadonlyRootfs}} {{json .HostConfig.Tmpfs}} {{.HostConfig.ShmSize}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.Init}} {{json .HostConfig.ExtraHosts}} {{json .HostConfig.Dns}} {{.HostConfig.CpuShares}} {{.HostConfig.MemorySwap}}",
        id.trim(),
    ]);
    assert_eq!(
        got.trim(),
        r#"["ALL"] true {"/t":"rw,size=1048576"} 8388608 67108864 20 true ["foo.test:10.1.2.3"] ["10.9.9.9"] 512 134217728"#
    );

    // What isola cannot honour is refused by name, never dropped.
    for (flag, field) in [
        (&["--oom-kill-disable"][..], "HostConfig.OomKillDisable"),
        (&["--tmpfs", "/t:noexec"][..], "HostConfig.Tmpfs"),
    ] {
        let mut args = vec!["create"];
        args.extend(flag);
        args.extend(["busybox", "true"]);
        let err = svc.fails(&args);
        assert!(err.contains(field), "{flag:?}: {err}");
    }
    // --privileged: no seccomp filter, every capability the host has.
    let out = svc.ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status",
    ]);
    assert_eq!(out.split_whitespace().nth(1), Some("0"), "{out}");
}

#[test]
fn docker_save_load_history_and_image_prune() {
    let Some(docker) = docker_or_skip("docker save/load/history/prune") else {
        return;
    };
    let svc = Service::start(Root::new(), docker.clone());
    let id = svc.ok(&["images", "-q", "--no-trunc", "busybox"]);
    let id = id.trim();
    // What the CLI shows is what the API returns.
    let history = svc.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}",
        "busybox",
    ]);
    let cli = svc.root.ok(&[
        "image",
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}",
        "busybox",
    ]);
    assert_eq!(history, cli);
    assert!(history.starts_with(&format!("{id}|")), "{history}");
    assert!(svc
        .fails(&["history", "nosuch"])
        .contains("No such image: nosuch"));

    // docker save | docker load, through the socket both ways.
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("busybox.tar");
    svc.ok(&["save", "-o", tar.to_str().unwrap(), "busybox"]);
    svc.ok(&["rmi", "busybox"]);
    assert_eq!(svc.ok(&["images", "-q"]), "");
    let piped = Command::new("sh")
        .arg("-c")
        .arg(r#""$D" load -i "$T" && "$D" save busybox:latest | "$D" load -q"#)
        .env("D", &docker)
        .env("T", &tar)
        .env("DOCKER_HOST", svc.host())
        .env("DOCKER_CONFIG", svc.config.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&piped.stdout);
    assert!(
        piped.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert_eq!(
        said,
        "Loaded image: busybox:latest\nLoaded image: busybox:latest\n"
    );
    assert_eq!(
        svc.ok(&["images", "-q", "--no-trunc", "busybox"]).trim(),
        id
    );
    svc.ok(&["run", "--rm", "busybox", "true"]);
    assert!(svc
        .fails(&["save", "-o", tar.to_str().unwrap(), "nosuch"])
        .contains("No such image"));

    // A dangling image (loaded from an archive saved by id, so nameless)
    // goes with `docker image prune -f`; a tagged one stays.
    let by_id = dir.path().join("by-id.tar");
    svc.ok(&["save", "-o", by_id.to_str().unwrap(), id]);
    svc.ok(&["rmi", "busybox"]);
    svc.ok(&["load", "-i", by_id.to_str().unwrap()]);
    assert_eq!(
        svc.ok(&["images", "-q", "--filter", "dangling=true"])
            .trim()
            .len(),
        12
    );
    let pruned = svc.ok(&["image", "prune", "-f"]);
    assert!(pruned.contains(&format!("deleted: {id}")), "{pruned}");
    assert_eq!(svc.ok(&["images", "-q"]), "");
    svc.ok(&["load", "-i", tar.to_str().unwrap()]);
    let pruned = svc.ok(&["image", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space: 0B"), "{pruned}");
    assert_eq!(svc.ok(&["images", "-q", "--no-trunc"]).trim(), id);
}

#[test]
fn exec_records_are_freed_not_kept_forever() {
    let Some(docker) = docker_or_skip("exec records") else {
        return;
    };
    let svc = Service::start(Root::new(), docker);
    let id = svc.ok(&["run", "-d", "busybox", "sleep", "600"]);
    let id = id.trim();
    // 200 execs, as a health check or a CI job runs them over a day.
    let mut execs = Vec::new();
    for i in 0..200 {
        let (status, v) = svc.http_json(
            "POST",
            &format!("/containers/{id}/exec"),
            Some(&format!(r#"{{"Cmd": ["sh", "-c", "exit {}"]}}"#, i % 7)),
        );
        assert_eq!(status, 201, "{v}");
        let exec = v["Id"].as_str().unwrap().to_string();
        let (status, _) = svc.http(
            "POST",
            &format!("/exec/{exec}/start"),
            Some(r#"{"Detach": true}"#),
        );
        assert_eq!(status, 200);
        // Each ends before the next starts, as a script's execs do.
        eventually("the exec to end", || {
            let (_, v) = svc.http_json("GET", &format!("/exec/{exec}/json"), None);
            v["Running"] == false && v["ExitCode"] == i % 7
        });
        execs.push(exec);
    }
    // The oldest are gone, as moby's are once their container is; the
    // newest still give their exit codes.
    let (status, v) = svc.http_json("GET", &format!("/exec/{}/json", execs[0]), None);
    assert_eq!(status, 404, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("No such exec instance"),
        "{v}"
    );
    let last = execs.last().unwrap();
    let (status, v) = svc.http_json("GET", &format!("/exec/{last}/json"), None);
    assert_eq!(
        (status, v["ExitCode"].as_i64()),
        (200, Some(199 % 7)),
        "{v}"
    );
    // A removed container takes its execs' records with it.
    svc.ok(&["rm", "-f", id]);
    let (status, _) = svc.http_json("GET", &format!("/exec/{last}/json"), None);
    assert_eq!(status, 404);
}

#[test]
fn docker_network_create_ls_rm() {
    let Some(docker) = docker_or_skip("docker network") else {
        return;
    };
    let svc = Service::start(Root::new(), docker);
    let name = testkit::unique_name("apinet");
    let id = svc.ok(&["network", "create", &name]).trim().to_string();
    assert!(!id.is_empty());
    let ls = svc.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(ls.lines().any(|l| l == format!("{name} bridge")), "{ls}");
    assert_eq!(
        svc.ok(&["network", "inspect", "--format", "{{.Name}}", &name])
            .trim(),
        name
    );
    svc.ok(&["network", "rm", &name]);
    let ls = svc.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.lines().any(|l| l == name), "{ls}");
    let out = svc.docker(&["network", "rm", &name]);
    assert!(!out.status.success());
}

#[test]
fn raw_attach_framing_and_dockers_errors() {
    let Some(docker) = docker_or_skip("attach framing") else {
        return;
    };
    let svc = Service::start(Root::new(), docker);
    let (status, created) = svc.http_json(
        "POST",
        "/v1.41/containers/create?name=framed",
        Some(r#"{"Image": "busybox", "Cmd": ["echo", "isola"]}"#),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["Id"].as_str().unwrap().to_string();
    let (status, _) = svc.http("POST", &format!("/containers/{id}/start"), Some(""));
    assert_eq!(status, 204);
    let (status, waited) = svc.http_json("POST", &format!("/containers/{id}/wait"), Some(""));
    assert_eq!(
        (status, waited["StatusCode"].as_i64()),
        (200, Some(0)),
        "{waited}"
    );
    let (status, bytes) = svc.http(
        "POST",
        &format!("/containers/{id}/attach?logs=1&stream=0&stdout=1"),
        Some(""),
    );
    assert_eq!(status, 200);
    assert_eq!(
        bytes,
        [0x01, 0, 0, 0, 0, 0, 0, 0x06, b'i', b's', b'o', b'l', b'a', b'\n'],
        "{bytes:02x?}"
    );

    // docker's errors and codes.
    let (status, body) = svc.http_json("GET", "/containers/no-such-thing/json", None);
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("No such container: no-such-thing"))
    );
    let (status, body) = svc.http_json(
        "POST",
        "/containers/create?name=framed",
        Some(r#"{"Image": "busybox"}"#),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("is already in use"),
        "{body}"
    );
    let (status, body) = svc.http_json(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "Cmd": "#),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = svc.http_json(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "HostConfig": {"Memory": "lots"}}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("HostConfig.Memory"),
        "{body}"
    );
    let (status, body) = svc.http_json(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "HostConfig": {"Isolation": "kvm"}}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("process, hyperv"),
        "{body}"
    );
    let (status, body) = svc.http_json(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "HostConfig": {"OomKillDisable": true}}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("HostConfig.OomKillDisable"),
        "{body}"
    );
    let (status, body) = svc.http_json("GET", "/swarm", None);
    assert_eq!(status, 501, "{body}");
    let (status, body) = svc.http_json("POST", &format!("/containers/{id}/kill"), Some(""));
    assert_eq!(status, 409, "{body}");
    let (status, _) = svc.http("DELETE", &format!("/containers/{id}"), None);
    assert_eq!(status, 204);

    // An attach waiting on a container that the isola CLI, not the
    // service, starts still gets its output.
    let (status, created) = svc.http_json(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "Cmd": ["sh", "-c", "sleep 2; echo late"]}"#),
    );
    assert_eq!(status, 201, "{created}");
    let late = created["Id"].as_str().unwrap().to_string();
    let attached = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            svc.http(
                "POST",
                &format!("/containers/{late}/attach?stream=1&stdout=1"),
                Some(""),
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        svc.root.ok(&["start", &late]);
        reader.join().unwrap()
    });
    assert_eq!(
        attached,
        (200, [&[1u8, 0, 0, 0, 0, 0, 0, 5][..], b"late\n"].concat())
    );
    svc.root.ok(&["rm", "-f", &late]);
    svc.root.assert_clean();
}

#[test]
fn docker_run_isolation_hyperv_runs_the_seed_demonstration_in_a_vm() {
    let Some(docker) = docker_or_skip("docker --isolation=hyperv") else {
        return;
    };
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    if !root.vm_kernel_or_skip("docker --isolation=hyperv") {
        return;
    }
    let svc = Service::start(root, docker);
    let id = svc
        .ok(&[
            "run",
            "-d",
            "--isolation=hyperv",
            "busybox",
            "ping",
            "localhost",
        ])
        .trim()
        .to_string();
    assert_eq!(
        svc.ok(&["inspect", "--format", "{{.HostConfig.Isolation}}", &id])
            .trim(),
        "vm"
    );
    eventually("ping output", || {
        String::from_utf8_lossy(&svc.docker(&["logs", &id]).stdout).contains("bytes from 127.0.0.1")
    });
    // docker top: the guest's pid, not a host ping.
    let top = svc.ok(&["top", &id]);
    let row = top
        .lines()
        .find(|l| l.ends_with("ping localhost"))
        .unwrap_or_else(|| panic!("top lacks ping: {top}"));
    let guest_pid: i32 = row.split_whitespace().next().unwrap().parse().unwrap();
    let host_comm = std::fs::read_to_string(format!("/proc/{guest_pid}/comm")).unwrap_or_default();
    assert_ne!(host_comm.trim(), "ping", "pid {guest_pid} is a host ping");
    assert_eq!(
        common::host_processes_of(&id, "ping"),
        Vec::<i32>::new(),
        "no ping on the host"
    );
    // The VM worker, named for the container.
    let worker: i32 = svc
        .ok(&["inspect", "--format", "{{.State.Pid}}", &id])
        .trim()
        .parse()
        .unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{worker}/comm")).unwrap();
    assert_eq!(comm.trim(), format!("isola-vm-{}", &id[..6]));
    // exec reaches the guest kernel.
    let release = svc.ok(&["exec", &id, "uname", "-r"]);
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_ne!(release.trim(), host.trim());
    svc.ok(&["rm", "-f", &id]);
    assert!(!common::alive(worker), "the VM worker outlived rm -f");
    svc.root.assert_clean();
}
