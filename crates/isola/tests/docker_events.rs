//! End-to-end: events. The real docker client (Debian's, taken out of
//! docker.io by scripts/setup.sh; no dockerd) reads `GET /events` of
//! `isola system service`, and `isola events` reads the same log, for
//! containers run through the API and through the CLI. Process isolation.

mod common;
mod docker_service;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Root;
use docker_service::{docker_or_skip, Service};
use serde_json::Value;

/// Now as the Unix timestamp docker's `--since` takes.
fn now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// `docker events ... --format '{{json .}}'`, parsed.
fn docker_events(svc: &Service, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["events"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--format", "{{json .}}"]);
    svc.ok(&full)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The actions of the container events about the container named `name`.
fn actions_of(events: &[Value], name: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["Type"] == "container" && e["Actor"]["Attributes"]["name"] == name)
        .map(|e| e["Action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn docker_and_isola_events_show_a_run_rm_lifecycle_in_order() {
    let Some(docker) = docker_or_skip("docker events") else {
        return;
    };
    let svc = Service::start(Root::new(), docker);
    let t0 = now();
    let out = svc.docker(&[
        "run", "--rm", "--name", "evweb", "busybox", "sh", "-c", "exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A container run by the CLI, not the service: its events are in the
    // same log.
    svc.root
        .ok(&["run", "--rm", "--name", "evcli", "busybox", "true"]);
    let t1 = now();

    let all = docker_events(&svc, &["--since", &t0, "--until", &t1]);
    assert_eq!(
        actions_of(&all, "evweb"),
        ["create", "attach", "start", "die", "destroy"],
        "{all:#?}"
    );
    assert_eq!(
        actions_of(&all, "evcli"),
        ["create", "attach", "start", "die", "destroy"]
    );
    let die = all
        .iter()
        .find(|e| e["Action"] == "die" && e["Actor"]["Attributes"]["name"] == "evweb")
        .unwrap();
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "3");
    assert_eq!(die["Actor"]["Attributes"]["image"], "busybox");
    assert_eq!(die["status"], "die", "the legacy fields old clients read");
    assert_eq!(die["from"], "busybox");
    assert_eq!(die["scope"], "local");
    let id = die["Actor"]["ID"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);

    // Filters: the event, the container, the type.
    let dies = docker_events(
        &svc,
        &["--since", &t0, "--until", &t1, "--filter", "event=die"],
    );
    assert_eq!(dies.len(), 2, "{dies:#?}");
    assert!(dies.iter().all(|e| e["Action"] == "die"));
    let web = docker_events(
        &svc,
        &[
            "--since",
            &t0,
            "--until",
            &t1,
            "--filter",
            "container=evweb",
        ],
    );
    assert!(
        web.iter().all(|e| e["Actor"]["ID"] == id.as_str()),
        "{web:#?}"
    );
    assert_eq!(web.len(), 5, "{web:#?}");
    let none = docker_events(
        &svc,
        &["--since", &t0, "--until", &t1, "--filter", "type=volume"],
    );
    assert!(none.is_empty(), "{none:#?}");
    // Before t0: nothing of these.
    let before = docker_events(&svc, &["--since", "1", "--until", &t0]);
    assert!(actions_of(&before, "evweb").is_empty());

    // isola events: docker's text line, the same events in the same order.
    let text = svc.root.ok(&["events", "--since", &t0, "--until", &t1]);
    let mine: Vec<&str> = text.lines().filter(|l| l.contains(&id)).collect();
    let shown: Vec<String> = mine
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            format!("{} {}", f[1], f[2])
        })
        .filter(|l| l.starts_with("container"))
        .collect();
    assert_eq!(
        shown,
        [
            "container create",
            "container attach",
            "container start",
            "container die",
            "container destroy"
        ],
        "{text}"
    );
    let die_line = mine.iter().find(|l| l.contains(" die ")).unwrap();
    assert!(
        die_line.ends_with(&format!(
            "container die {id} (exitCode=3, image=busybox, name=evweb)"
        )),
        "{die_line}"
    );
    let stamp = die_line.split(' ').next().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.len() >= 30,
        "nanosecond RFC 3339: {stamp}"
    );
    let json = svc.root.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "event=die",
        "--format",
        "json",
    ]);
    let parsed: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed, dies, "the CLI's JSON is the API's");
    // A bad filter is refused.
    let (code, err) = svc
        .root
        .fails(&["events", "--filter", "colour=red", "--until", "0s"]);
    assert_ne!(code, 0);
    assert!(err.contains("colour"), "{err}");
    let bad = svc.docker(&["events", "--filter", "colour=red", "--until", &t1]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("colour"));
}

/// The actions of `name`'s events but the kills (a stop sends one or two,
/// by how fast the process dies).
fn lifecycle_of(events: &[Value], name: &str) -> Vec<String> {
    let mut a = actions_of(events, name);
    a.retain(|a| a != "kill");
    a
}

#[test]
fn restart_adds_dockers_restart_event_after_the_stop_and_the_start() {
    let root = Root::new();
    let t0 = now();
    root.run_detached(&["--name", "rscli", "busybox", "sleep", "1000"]);
    root.ok(&["restart", "-t", "0", "rscli"]);
    let t1 = now();
    let out = root.ok(&["events", "--since", &t0, "--until", &t1, "--format", "json"]);
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lifecycle_of(&events, "rscli"),
        ["create", "start", "die", "stop", "start", "restart"],
        "{out}"
    );
    let text = root.ok(&["events", "--since", &t0, "--until", &t1]);
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.contains(" container restart ") && last.ends_with("name=rscli)"),
        "{text}"
    );

    // The API's restart (docker restart) the same.
    let Some(docker) = docker_or_skip("docker restart events") else {
        return;
    };
    let svc = Service::start(root, docker);
    svc.ok(&["run", "-d", "--name", "rsapi", "busybox", "sleep", "1000"]);
    let t2 = now();
    svc.ok(&["restart", "-t", "0", "rsapi"]);
    let t3 = now();
    let all = docker_events(&svc, &["--since", &t2, "--until", &t3]);
    assert_eq!(
        lifecycle_of(&all, "rsapi"),
        ["die", "stop", "start", "restart"],
        "{all:#?}"
    );
    svc.ok(&["rm", "-f", "rsapi", "rscli"]);
}

#[test]
fn docker_events_follows_new_events_until_the_client_goes() {
    let Some(docker) = docker_or_skip("docker events (follow)") else {
        return;
    };
    let svc = Service::start(Root::new(), docker);
    // Without --since/--until: only what happens from now on, streamed.
    let mut follower = svc
        .cmd(&[
            "events",
            "--filter",
            "container=evfol",
            "--format",
            "{{json .}}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The stream is open before the container is made: wait for the request.
    std::thread::sleep(Duration::from_millis(500));
    svc.root
        .ok(&["run", "--rm", "--name", "evfol", "busybox", "true"]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|a| a == "destroy") {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no destroy event streamed; saw {seen:?}"));
        let v: Value = serde_json::from_str(&line).unwrap();
        seen.push(v["Action"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["create", "attach", "start", "die", "destroy"]);
    assert!(follower.try_wait().unwrap().is_none(), "still following");
    let _ = follower.kill();
    let _ = follower.wait();
}
