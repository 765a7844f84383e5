//! End-to-end: isola's Docker Engine API driven by the clients people
//! bring, all from Debian and never a mock or a dockerd: the docker CLI
//! (taken out of docker.io by scripts/setup.sh, never installed) for
//! volumes and concurrency, docker-compose 1.29 for a two-service project
//! with one service in a utility VM, and docker-py. Each test serves its
//! own isola root on its own socket.

mod common;
mod docker_service;
mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Root;
use docker_service::{docker_or_skip, tool_or_skip, Service};

fn volume_names(svc: &Service) -> Vec<String> {
    let mut v: Vec<String> = svc
        .ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn docker_volumes_create_ls_inspect_rm_prune_and_persist_across_containers() {
    let Some(docker) = docker_or_skip("docker volume") else {
        return;
    };
    let svc = Service::start(Root::new(), docker);
    assert_eq!(
        svc.ok(&["volume", "create", "--label", "a=1", "data"]),
        "data\n"
    );
    svc.ok(&["volume", "create", "other"]);
    assert_eq!(
        svc.ok(&[
            "volume",
            "ls",
            "--filter",
            "label=a=1",
            "--format",
            "{{.Name}}"
        ]),
        "data\n"
    );
    assert_eq!(volume_names(&svc), ["data", "other"]);
    assert_eq!(
        svc.ok(&["volume", "ls", "-q", "--filter", "name=oth"]),
        "other\n"
    );
    let mountpoint = svc.ok(&[
        "volume",
        "inspect",
        "--format",
        "{{.Driver}} {{.Labels.a}} {{.Mountpoint}}",
        "data",
    ]);
    assert_eq!(
        mountpoint.trim(),
        format!("local 1 {}/volumes/data/_data", svc.root.path().display())
    );

    // -v NAME:/path (HostConfig.Binds): what one container writes the next
    // one reads; a name not yet made is made on first use.
    svc.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/x",
        "busybox",
        "sh",
        "-c",
        "echo persisted > /x/f",
    ]);
    assert_eq!(
        svc.ok(&["run", "--rm", "-v", "data:/x:ro", "busybox", "cat", "/x/f"]),
        "persisted\n"
    );
    // --mount type=volume (HostConfig.Mounts) reaches the same volume.
    assert_eq!(
        svc.ok(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=data,target=/y",
            "busybox",
            "cat",
            "/y/f"
        ]),
        "persisted\n"
    );
    svc.ok(&["run", "--rm", "-v", "fresh:/z", "busybox", "true"]);
    assert_eq!(volume_names(&svc), ["data", "fresh", "other"]);

    // In use: 409, with -f too (docker's rule); the volume stays.
    let user = svc
        .ok(&["create", "-v", "data:/x", "busybox", "true"])
        .trim()
        .to_string();
    let err = svc.fails(&["volume", "rm", "-f", "data"]);
    assert!(err.contains("volume is in use"), "{err}");
    let (status, body) = svc.http_json("DELETE", "/volumes/data", None);
    assert_eq!(status, 409, "{body}");
    // dangling=false: the used one.
    assert_eq!(
        svc.ok(&["volume", "ls", "-q", "--filter", "dangling=false"]),
        "data\n"
    );
    svc.ok(&["rm", &user]);

    // Anonymous volumes: `rm -v` (DELETE ?v=1) removes them, plain rm not.
    let anon_user = svc
        .ok(&["create", "-v", "/anon", "busybox", "true"])
        .trim()
        .to_string();
    let anon = svc
        .ok(&[
            "inspect",
            "--format",
            "{{range .Mounts}}{{.Name}}{{end}}",
            &anon_user,
        ])
        .trim()
        .to_string();
    assert_eq!(anon.len(), 64, "{anon}");
    assert!(volume_names(&svc).contains(&anon));
    svc.ok(&["rm", "-v", &anon_user]);
    assert!(!volume_names(&svc).contains(&anon), "rm -v kept {anon}");
    let kept_user = svc
        .ok(&["create", "-v", "/anon", "busybox", "true"])
        .trim()
        .to_string();
    svc.ok(&["rm", &kept_user]);
    let kept: Vec<String> = volume_names(&svc)
        .into_iter()
        .filter(|n| n.len() == 64)
        .collect();
    assert_eq!(kept.len(), 1, "plain rm keeps the anonymous volume");

    // Docker's errors: 404 with its words; a bad filter 400.
    let (status, body) = svc.http_json("GET", "/volumes/nosuch", None);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["message"], "get nosuch: no such volume");
    let err = svc.fails(&["volume", "rm", "nosuch"]);
    assert!(err.to_lowercase().contains("no such volume"), "{err}");
    let (status, _) = svc.http_json(
        "GET",
        "/volumes?filters=%7B%22colour%22%3A%5B%22x%22%5D%7D",
        None,
    );
    assert_eq!(status, 400);
    let (status, body) = svc.http_json(
        "POST",
        "/volumes/create",
        Some(r#"{"Name": "nfs", "Driver": "nfs"}"#),
    );
    assert_eq!(status, 400, "{body}");

    // Prune on API 1.43: only anonymous volumes unless all=true.
    let (status, body) = svc.http_json("POST", "/v1.43/volumes/prune", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["VolumesDeleted"], serde_json::json!(kept));
    assert_eq!(volume_names(&svc), ["data", "fresh", "other"]);
    let (status, body) = svc.http_json(
        "POST",
        "/v1.43/volumes/prune?filters=%7B%22label%22%3A%5B%22a%3D1%22%5D%2C%22all%22%3A%5B%22true%22%5D%7D",
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["VolumesDeleted"], serde_json::json!(["data"]));
    assert!(body["SpaceReclaimed"].as_u64().unwrap() > 0, "{body}");
    // The docker CLI of Debian 12 speaks 1.41: prune there means every
    // unused volume, named ones too (moby keeps that for old clients).
    let out = svc.ok(&["volume", "prune", "-f"]);
    assert!(out.contains("fresh") && out.contains("other"), "{out}");
    assert_eq!(volume_names(&svc), Vec::<String>::new());
    svc.root.assert_clean();
}

/// A TCP port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` from 127.0.0.1:`port`, the body (HTTP/1.0: read to the end).
fn http_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

const COMPOSE: &str = "/usr/bin/docker-compose";

#[test]
fn docker_compose_runs_a_vm_service_and_a_process_service_on_one_network() {
    let Some(docker) = docker_or_skip("docker-compose") else {
        return;
    };
    let Some(compose) = tool_or_skip(
        "docker-compose",
        COMPOSE,
        "scripts/setup.sh installs Debian's docker-compose",
    ) else {
        return;
    };
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    if !root.vm_kernel_or_skip("docker-compose with isolation: hyperv") {
        return;
    }
    let svc = Service::start(root, docker);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let project = testkit::unique_name("cmp").replace('-', "");
    // web: busybox httpd in a utility VM serving a page it writes; client:
    // a host process fetching it by the service's name until it answers.
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            r#"version: "2.4"
services:
  web:
    image: busybox:latest
    isolation: hyperv
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:{port}:80"]
    networks: [front]
  client:
    image: busybox:latest
    isolation: process
    command: ["sh", "-c", "until timeout 5 wget -q -O - http://web/ > /data/page; do sleep 1; done; echo fetched: $$(cat /data/page); exec sleep 3600"]
    volumes: ["data:/data"]
    networks: [front]
    depends_on: [web]
networks:
  front: {{}}
volumes:
  data: {{}}
"#
        ),
    )
    .unwrap();
    let compose_cmd = |args: &[&str]| -> Output {
        svc.client(&compose)
            .args(["-p", &project])
            .args(args)
            .current_dir(dir.path())
            // exec through the API (docker-py), not a docker binary.
            .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
            .output()
            .unwrap()
    };
    let compose_ok = |args: &[&str]| -> String {
        let out = compose_cmd(args);
        assert!(
            out.status.success(),
            "docker-compose {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    compose_ok(&["up", "-d"]);
    let (web, client) = (format!("{project}_web_1"), format!("{project}_client_1"));

    let ps = compose_ok(&["ps"]);
    for name in [&web, &client] {
        assert!(
            ps.lines()
                .any(|l| l.starts_with(name.as_str()) && l.contains("Up")),
            "{ps}"
        );
    }
    // The client fetched the page by the service's name.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = compose_cmd(&["logs", "--no-color"]);
        let logs = String::from_utf8_lossy(&out.stdout);
        if logs.contains("fetched: hello-from-web") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the client did not fetch the page; logs: {logs}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // So does an exec, and the published port answers on the host.
    assert_eq!(
        compose_ok(&[
            "exec",
            "-T",
            "client",
            "timeout",
            "10",
            "wget",
            "-q",
            "-O",
            "-",
            "http://web/"
        ]),
        "hello-from-web\n"
    );
    assert_eq!(http_get(port).as_deref(), Some("hello-from-web\n"));
    assert_eq!(
        compose_ok(&["exec", "-T", "web", "cat", "/www/index.html"]),
        "hello-from-web\n"
    );

    // web runs in a VM: isola says so, and its host process is the VM
    // worker named for it; client is an ordinary host process.
    let root = &svc.root;
    assert_eq!(root.inspect(&web, ".HostConfig.Isolation"), "vm");
    assert_eq!(root.inspect(&client, ".HostConfig.Isolation"), "process");
    let web_id = root.inspect(&web, ".Id");
    let client_id = root.inspect(&client, ".Id");
    let worker: i32 = root.inspect(&web, ".State.Pid").parse().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{worker}/comm")).unwrap();
    assert_eq!(comm.trim(), format!("isola-vm-{}", &web_id[..6]));
    let vm_kernel = compose_ok(&["exec", "-T", "web", "uname", "-r"]);
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_ne!(vm_kernel.trim(), host_kernel.trim());
    // compose found its things by label.
    let labelled = svc.ok(&[
        "ps",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.Names}}",
    ]);
    let mut names: Vec<&str> = labelled.lines().collect();
    names.sort();
    assert_eq!(names, [client.as_str(), web.as_str()]);

    // down -v: nothing is left.
    compose_ok(&["down", "-v"]);
    assert_eq!(svc.ok(&["ps", "-aq"]), "");
    let nets = svc.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains(&project), "{nets}");
    assert_eq!(volume_names(&svc), Vec::<String>::new());
    assert!(!common::alive(worker), "the VM worker outlived down");
    for id in [&web_id, &client_id] {
        assert!(
            common::host_pids_with(id).is_empty(),
            "processes of {id} left"
        );
        assert!(!common::cgroup_exists(id), "cgroup of {id} left");
    }
    assert!(http_get(port).is_none(), "the published port still answers");
    svc.root.assert_clean();
}

/// docker-py (Debian's python3-docker): a detached container, its logs
/// streamed, an exec with its exit code and output, and its removal.
const DOCKER_PY: &str = r#"
import docker
client = docker.from_env()
ct = client.containers.run(
    "busybox", ["sh", "-c", "echo one; echo two >&2; exec sleep 3600"], detach=True)
got = b""
for chunk in ct.logs(stream=True, follow=True):
    got += chunk
    if b"one" in got and b"two" in got:
        break
# stdout and stderr are two pipes: their order is not kept.
print("logs:", " ".join(sorted(got.decode().split())))
r = ct.exec_run(["sh", "-c", "echo exec-out; exit 3"])
print("exec:", r.exit_code, r.output.decode().strip())
ct.reload()
print("status:", ct.status)
ct.remove(force=True)
print("left:", len(client.containers.list(all=True)))
"#;

#[test]
fn docker_py_runs_streams_logs_execs_and_removes() {
    let Some(docker) = docker_or_skip("docker-py") else {
        return;
    };
    let python = "/usr/bin/python3";
    let missing = Command::new(python)
        .args(["-c", "import docker"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
        .then_some(())
        .is_none()
        .then(|| "no docker module for python3 (scripts/setup.sh installs python3-docker)".into());
    if !testkit::require("docker-py", missing) {
        return;
    }
    let svc = Service::start(Root::new(), docker);
    let out = svc.client(python).args(["-c", DOCKER_PY]).output().unwrap();
    assert!(
        out.status.success(),
        "the docker-py script failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "logs: one two\nexec: 3 exec-out\nstatus: running\nleft: 0\n"
    );
    svc.root.assert_clean();
}

#[test]
fn fifty_concurrent_docker_runs_all_succeed_and_leave_nothing() {
    let Some(docker) = docker_or_skip("concurrent docker run") else {
        return;
    };
    let svc = Service::start(Root::new(), docker);
    let cids = tempfile::tempdir().unwrap();
    let cidfile = |i: usize| cids.path().join(format!("{i}.cid"));
    let runs: Vec<Child> = (0..50)
        .map(|i| {
            let cid = cidfile(i).display().to_string();
            svc.cmd(&[
                "run",
                "--cidfile",
                &cid,
                "--rm",
                "busybox",
                "echo",
                &format!("run-{i}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        let out = run.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "run {i} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("run-{i}\n"));
    }
    assert_eq!(svc.ok(&["ps", "-aq"]), "");
    // --rm removal is the monitor's, after the exit the client saw.
    common::eventually("every container's directory removed", || {
        svc.root.container_dirs().is_empty()
    });
    for i in 0..50 {
        let id = std::fs::read_to_string(cidfile(i)).unwrap();
        assert_eq!(id.len(), 64, "{id}");
        assert!(!common::cgroup_exists(&id), "cgroup of {id} left");
        assert!(
            common::host_pids_with(&id).is_empty(),
            "processes of {id} left"
        );
    }
    svc.root.assert_clean();
}

#[test]
fn a_client_that_disconnects_mid_attach_leaves_the_container_running() {
    let Some(docker) = docker_or_skip("attach disconnect") else {
        return;
    };
    let svc = Service::start(Root::new(), docker);
    let id = svc
        .ok(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "while true; do echo tick; sleep 0.1; done",
        ])
        .trim()
        .to_string();
    // A raw attach, upgraded; read some output, then drop the connection.
    let mut s = UnixStream::connect(&svc.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /containers/{id}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("tick") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the attach ended: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    drop(s);
    // The container keeps running, and a new attach still gets its output.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        svc.ok(&["inspect", "--format", "{{.State.Running}}", &id])
            .trim(),
        "true"
    );
    let before = svc.ok(&["logs", &id]).lines().count();
    common::eventually("more output after the disconnect", || {
        svc.ok(&["logs", &id]).lines().count() > before
    });
    svc.ok(&["rm", "-f", &id]);
    svc.root.assert_clean();
}

/// A build context with `dockerfile` and a file to copy.
fn build_context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.path().join("page.txt"), "a page\n").unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "secret\n").unwrap();
    std::fs::write(dir.path().join("secret"), "kept out\n").unwrap();
    dir
}

#[test]
fn docker_build_and_compose_build_through_the_api() {
    let Some(docker) = docker_or_skip("docker build") else {
        return;
    };
    let Some(compose) = tool_or_skip(
        "docker-compose build",
        COMPOSE,
        "scripts/setup.sh installs Debian's docker-compose",
    ) else {
        return;
    };
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    let vm = root.vm_kernel_or_skip("docker build --isolation=hyperv");
    let svc = Service::start(root, docker);
    // docker build: the classic builder's output, build args, the context
    // as the CLI sends it (.dockerignore applied), the tags.
    let ctx = build_context(
        "FROM busybox\nARG WHO=nobody\nCOPY . /site/\nRUN echo \"built for $WHO\" > /site/who\nCMD [\"sh\", \"-c\", \"cat /site/page.txt /site/who; ls /site\"]\n",
    );
    let c = ctx.path().to_str().unwrap();
    let out = svc.ok(&[
        "build",
        "--build-arg",
        "WHO=docker",
        "-t",
        "site:1",
        "-t",
        "site:latest",
        c,
    ]);
    for want in [
        "Step 1/5 : FROM busybox",
        " ---> Running in ",
        "Successfully built ",
        "Successfully tagged site:1",
        "Successfully tagged site:latest",
    ] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }
    assert_eq!(
        svc.ok(&["run", "--rm", "site:1"]),
        "a page\nbuilt for docker\nDockerfile\npage.txt\nwho\n"
    );
    let again = svc.ok(&[
        "build",
        "--build-arg",
        "WHO=docker",
        "-q",
        "-t",
        "site:1",
        c,
    ]);
    let id = svc.ok(&["image", "inspect", "--format", "{{.Id}}", "site:1"]);
    assert_eq!(
        again.trim(),
        id.trim(),
        "a cached rebuild is the same image"
    );

    // STOPSIGNAL and --stop-timeout through the API: docker stop sends the
    // image's signal.
    let sig = build_context("FROM busybox\nSTOPSIGNAL SIGUSR1\nCMD [\"sh\", \"-c\", \"trap 'exit 3' USR1; trap '' TERM; echo ready; while true; do sleep 0.1; done\"]\n");
    svc.ok(&["build", "-q", "-t", "sig:1", sig.path().to_str().unwrap()]);
    let id = svc.ok(&["run", "-d", "--stop-timeout", "20", "sig:1"]);
    let id = id.trim();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        svc.ok(&[
            "inspect",
            "--format",
            "{{.Config.StopSignal}} {{.Config.StopTimeout}}",
            id
        ])
        .trim(),
        "SIGUSR1 20"
    );
    svc.ok(&["stop", id]);
    assert_eq!(
        svc.ok(&["inspect", "--format", "{{.State.ExitCode}}", id])
            .trim(),
        "3"
    );
    svc.ok(&["rm", id]);

    // --health-cmd through the API: docker inspect reads the health.
    let id = svc.ok(&[
        "run",
        "-d",
        "--health-cmd",
        "true",
        "--health-interval",
        "200ms",
        "busybox",
        "sleep",
        "60",
    ]);
    let id = id.trim();
    let deadline = Instant::now() + Duration::from_secs(30);
    while svc
        .ok(&["inspect", "--format", "{{.State.Health.Status}}", id])
        .trim()
        != "healthy"
    {
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    svc.ok(&["rm", "-f", id]);

    // A failing RUN: docker's client shows the message and exits with its code.
    let bad = build_context("FROM busybox\nRUN echo broke; exit 7\n");
    let failed = svc.docker(&["build", bad.path().to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(7), "{failed:?}");
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("returned a non-zero code: 7") && err.contains("last output: broke"),
        "{err}"
    );

    // --isolation=hyperv: the RUN runs in a utility VM (its kernel is the
    // guest's, not the host's).
    if vm {
        let ctx = build_context("FROM busybox\nRUN uname -r > /built-on\n");
        svc.ok(&[
            "build",
            "--isolation",
            "hyperv",
            "-t",
            "vm-built:1",
            ctx.path().to_str().unwrap(),
        ]);
        let built_on = svc.ok(&["run", "--rm", "vm-built:1", "cat", "/built-on"]);
        let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_ne!(
            built_on.trim(),
            host.trim(),
            "the RUN ran on the host's kernel"
        );
    }

    // docker-compose build: docker-py's build call, then the service runs.
    let dir =
        build_context("FROM busybox\nCOPY page.txt /page.txt\nCMD [\"cat\", \"/page.txt\"]\n");
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "version: \"2.4\"\nservices:\n  app:\n    build: .\n    image: composed:1\n",
    )
    .unwrap();
    let compose_out = svc
        .client(&compose)
        .args(["-p", "bld", "build"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        compose_out.status.success(),
        "docker-compose build: {}{}",
        String::from_utf8_lossy(&compose_out.stdout),
        String::from_utf8_lossy(&compose_out.stderr)
    );
    assert_eq!(svc.ok(&["run", "--rm", "composed:1"]), "a page\n");
    let pruned = svc.ok(&["builder", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
}
