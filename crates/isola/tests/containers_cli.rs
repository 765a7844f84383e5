//! End-to-end: the container commands as a docker user types them:
//! `inspect` falling back to images, `container <verb>` for every
//! container command, and labels.

mod common;

use std::path::Path;

use common::Root;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn inspect_falls_back_to_the_image_when_no_container_has_the_name() {
    let root = Root::new();
    let image_id = root.ok(&["images", "-q", "--no-trunc", "busybox"]);
    let image_id = image_id.trim();
    let v = json(&root.ok(&["inspect", "busybox"]));
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v[0]["Id"], image_id, "{v}");
    assert_eq!(v[0]["RepoTags"][0], "busybox:latest", "{v}");
    assert_eq!(
        root.ok(&["inspect", "-f", "{{.Id}}", "busybox"]).trim(),
        image_id
    );

    // A container of that name comes first, as with docker; --type picks.
    let id = root.ok(&["create", "--name", "busybox", "busybox", "true"]);
    let id = id.trim();
    let v = json(&root.ok(&["inspect", "busybox"]));
    assert_eq!(v[0]["Id"], id, "{v}");
    let v = json(&root.ok(&["inspect", "--type", "image", "busybox"]));
    assert_eq!(v[0]["Id"], image_id, "{v}");
    let v = json(&root.ok(&["inspect", "--type", "container", "busybox"]));
    assert_eq!(v[0]["Id"], id, "{v}");

    // Found and not found together: what was found, one line per miss, exit 1.
    let out = root.run(&["inspect", "busybox", "nothing-here", image_id]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v[1]["Id"], image_id, "{v}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "isola: no such object: nothing-here\n"
    );
    let (_, err) = root.fails(&["inspect", "--type", "container", image_id]);
    assert_eq!(err, format!("isola: no such container: {image_id}\n"));
    root.ok(&["rm", id]);
}

#[test]
fn every_container_command_is_also_a_container_verb() {
    let root = Root::new();
    for verb in [
        "run", "create", "start", "inspect", "logs", "top", "stats", "exec", "attach", "wait",
        "stop", "kill", "restart", "pause", "unpause", "rm", "rename", "ls", "list", "ps", "prune",
        "port",
    ] {
        let help = root.ok(&["container", verb, "--help"]);
        assert!(
            help.contains("Usage: isola container "),
            "container {verb}: {help}"
        );
    }
    let id = root.ok(&[
        "container",
        "create",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo started; sleep 1000",
    ]);
    let id = id.trim();
    assert_eq!(root.ok(&["container", "start", "c1"]), "c1\n");
    for ls in ["ls", "list", "ps"] {
        let out = root.ok(&["container", ls, "-q", "--no-trunc"]);
        assert_eq!(out.trim(), id, "container {ls}");
    }
    assert_eq!(
        root.ok(&["container", "inspect", "-f", "{{.State.Status}}", "c1"])
            .trim(),
        "running"
    );
    assert_eq!(root.ok(&["container", "exec", "c1", "echo", "hi"]), "hi\n");
    assert!(root.ok(&["container", "top", "c1"]).contains("sleep 1000"));
    common::eventually("the container's first line", || {
        root.ok(&["container", "logs", "c1"]) == "started\n"
    });
    root.ok(&["container", "pause", "c1"]);
    assert_eq!(root.inspect("c1", ".State.Status"), "paused");
    root.ok(&["container", "unpause", "c1"]);
    assert!(root
        .ok(&["container", "stats", "--no-stream", "c1"])
        .contains("c1"));
    assert_eq!(root.ok(&["container", "port", "c1"]), "");
    root.ok(&["container", "rename", "c1", "c2"]);
    root.ok(&["container", "restart", "-t", "1", "c2"]);
    root.ok(&["container", "kill", "c2"]);
    assert_eq!(root.ok(&["container", "wait", "c2"]).trim(), "137");
    root.ok(&["container", "start", "c2"]);
    root.ok(&["container", "stop", "-t", "1", "c2"]);
    assert_eq!(root.ok(&["container", "rm", "c2"]).trim(), "c2");
    assert_eq!(
        root.ok(&["container", "run", "--rm", "busybox", "echo", "ok"]),
        "ok\n"
    );
    let stopped = root.ok(&["container", "create", "busybox", "true"]);
    let pruned = root.ok(&["container", "prune", "-f"]);
    assert!(
        pruned.starts_with("Deleted Containers:\n") && pruned.contains(stopped.trim()),
        "{pruned}"
    );
    assert_eq!(root.ok(&["container", "ls", "-aq"]), "");
    // container inspect is about containers only: no image fallback.
    let (_, err) = root.fails(&["container", "inspect", "busybox"]);
    assert_eq!(err, "isola: no such container: busybox\n");
    root.assert_clean();
}

#[test]
fn ps_last_and_latest_show_the_newest_in_any_state() {
    let root = Root::new();
    let mut ids = Vec::new();
    for name in ["c1", "c2", "c3"] {
        let id = root.ok(&["create", "--name", name, "busybox", "true"]);
        ids.push(id.trim().to_string());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let q = |extra: &[&str]| {
        let mut args = vec!["ps", "-q", "--no-trunc"];
        args.extend_from_slice(extra);
        root.ok(&args)
    };
    // None runs: plain ps shows nothing.
    assert_eq!(q(&[]), "");
    assert_eq!(q(&["-l"]), format!("{}\n", ids[2]));
    assert_eq!(q(&["--latest"]), format!("{}\n", ids[2]));
    assert_eq!(q(&["-n", "2"]), format!("{}\n{}\n", ids[2], ids[1]));
    assert_eq!(q(&["--last", "2"]), format!("{}\n{}\n", ids[2], ids[1]));
    assert_eq!(q(&["--last=5"]).lines().count(), 3);
    // -n 0 is no limit: running ones only, as docker.
    assert_eq!(q(&["-n", "0"]), "");
    // Filters first, then the limit.
    assert_eq!(q(&["-l", "--filter", "name=c1"]), format!("{}\n", ids[0]));
    let table = root.ok(&["ps", "-l"]);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(
        table.lines().nth(1).unwrap().starts_with(&ids[2][..12]),
        "{table}"
    );
    let (code, err) = root.fails(&["ps", "-n", "x"]);
    assert_eq!(code, 125, "{err}");
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn logs_until_stops_at_the_time_given() {
    let root = Root::new();
    root.run_detached(&[
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "echo early; sleep 3; echo late",
    ]);
    common::eventually("the first line", || {
        root.ok(&["logs", "talker"]).contains("early")
    });
    let until = format!("{:.3}", unix_now());
    assert_eq!(root.ok(&["wait", "talker"]).trim(), "0");
    assert_eq!(root.ok(&["logs", "talker"]), "early\nlate\n");
    assert_eq!(root.ok(&["logs", "--until", &until, "talker"]), "early\n");
    assert_eq!(root.ok(&["logs", "--until", "1h", "talker"]), "");
    assert_eq!(
        root.ok(&[
            "logs",
            "--since",
            &until,
            "--until",
            &format!("{:.3}", unix_now()),
            "talker"
        ]),
        "late\n"
    );
    let (code, err) = root.fails(&["logs", "--until", "soon", "talker"]);
    assert_eq!(code, 125);
    assert!(err.contains("invalid --until \"soon\""), "{err}");

    // -f with --until ends at that time, though the container runs on.
    root.run_detached(&[
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.2; done",
    ]);
    let until = format!("{:.3}", unix_now() + 1.5);
    let started = std::time::Instant::now();
    let out = root.ok(&["logs", "-f", "--until", &until, "ticker"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(
        out.lines().count() >= 1 && out.lines().all(|l| l == "tick"),
        "{out}"
    );
    assert_eq!(root.inspect("ticker", ".State.Status"), "running");
    root.ok(&["rm", "-f", "talker", "ticker"]);
}

#[test]
fn labels_are_kept_shown_and_filtered_on() {
    let root = Root::new();
    let web = root.ok(&[
        "create",
        "--label",
        "com.example.app=shop",
        "-l",
        "tier=web",
        "--label",
        "flag",
        "busybox",
        "true",
    ]);
    let db = root.ok(&[
        "create",
        "--label",
        "com.example.app=shop",
        "--label",
        "tier=db",
        "busybox",
        "true",
    ]);
    let (web, db) = (web.trim(), db.trim());
    assert_eq!(
        json(&root.inspect(web, "json .Config.Labels")),
        serde_json::json!({"com.example.app": "shop", "tier": "web", "flag": ""})
    );
    let q = |filters: &[&str]| {
        let mut args = vec!["ps", "-a", "-q", "--no-trunc"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        let mut ids: Vec<String> = root.ok(&args).lines().map(str::to_string).collect();
        ids.sort();
        ids
    };
    let mut both = vec![web.to_string(), db.to_string()];
    both.sort();
    assert_eq!(q(&["label=com.example.app=shop"]), both);
    assert_eq!(q(&["label=com.example.app"]), both);
    assert_eq!(q(&["label=flag"]), [web]);
    // Every label filter must hold, as docker's.
    assert_eq!(q(&["label=com.example.app=shop", "label=tier=db"]), [db]);
    assert_eq!(
        q(&["label=tier=web", "label=tier=db"]),
        Vec::<String>::new()
    );
    assert_eq!(q(&["label=com.example.app=other"]), Vec::<String>::new());
    let (code, err) = root.fails(&["create", "--label", "=x", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("--label"), "{err}");
    root.ok(&["rm", web, db]);
    root.assert_clean();
}

/// `--format` takes Go templates, as scripts written for docker use them.
#[test]
fn format_takes_go_templates_for_inspect_ps_and_images() {
    let root = Root::new();
    let id = root.run_detached(&[
        "--name", "tmpl", "-l", "tier=web", "busybox", "sleep", "300",
    ]);
    let pid = root.inspect(&id, ".State.Pid");
    let got = |args: &[&str]| root.ok(args).trim_end().to_string();
    assert_eq!(
        got(&["inspect", "-f", "pid={{.State.Pid}} {{.Name}}", "tmpl"]),
        format!("pid={pid} /tmpl")
    );
    assert_eq!(
        got(&["inspect", "-f", "{{index .Config.Cmd 0}}", "tmpl"]),
        "sleep"
    );
    assert_eq!(
        got(&[
            "inspect",
            "-f",
            "{{range .Config.Cmd}}<{{.}}>{{end}}",
            "tmpl"
        ]),
        "<sleep><300>"
    );
    assert_eq!(
        got(&["inspect", "-f", "{{json .Config.Cmd}}", "tmpl"]),
        "[\"sleep\",\"300\"]"
    );
    assert_eq!(
        got(&[
            "inspect",
            "-f",
            "{{if .State.Running}}up{{else}}down{{end}} {{index .Config.Labels \"tier\"}}",
            "tmpl"
        ]),
        "up web"
    );
    assert_eq!(
        got(&["ps", "--format", "{{.Names}}\\t{{.Image}}"]),
        "tmpl\tbusybox"
    );
    assert_eq!(
        got(&["ps", "--format", "table {{.Names}}\\t{{.Labels}}"]),
        "NAMES     LABELS\ntmpl      tier=web"
    );
    assert_eq!(
        got(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "busybox:latest"
    );
    assert_eq!(
        got(&[
            "image",
            "inspect",
            "--format",
            "{{index .RepoTags 0}} {{.Os}}",
            "busybox"
        ]),
        "busybox:latest linux"
    );
    // A broken template is one line naming it, exit 125.
    let (code, err) = root.fails(&["inspect", "-f", "{{.State.Pid", "tmpl"]);
    assert_eq!(code, 125, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("{{.State.Pid"), "{err}");
    root.ok(&["rm", "-f", "tmpl"]);
    root.assert_clean();
}

/// `--format` for info, version, networks and volumes: docker's field
/// names, Go templates, and `table` with docker's column titles.
#[test]
fn format_takes_go_templates_for_info_version_networks_and_volumes() {
    let root = Root::new();
    let id = root.run_detached(&["busybox", "sleep", "300"]);
    let net = format!("tnet{}", std::process::id());
    let net_id = root.ok(&["network", "create", &net]).trim().to_string();
    root.ok(&["volume", "create", "--label", "tier=web", "tvol"]);
    let version = env!("CARGO_PKG_VERSION");
    let info = root.ok(&["info"]);
    let isolation = info
        .lines()
        .find_map(|l| l.strip_prefix("Default Isolation: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let name_filter = format!("name={net}");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["info", "--format", "{{.ServerVersion}}"],
            version.into(),
        ),
        (vec!["info", "-f", "{{.Isolation}}"], isolation),
        (
            vec![
                "info",
                "--format",
                "{{.Containers}} {{.ContainersRunning}} {{.Images}} {{.OSType}}",
            ],
            "1 1 1 linux".into(),
        ),
        (
            vec!["info", "--format", "{{json .Plugins.Log}}"],
            "[\"json-file\"]".into(),
        ),
        (
            vec!["version", "--format", "{{.Server.Version}}"],
            version.into(),
        ),
        (
            vec!["version", "-f", "{{.Client.Version}} {{.Server.Os}}"],
            format!("{version} linux"),
        ),
        (
            vec![
                "network",
                "ls",
                "--filter",
                &name_filter,
                "--format",
                "{{.Name}} {{.Driver}} {{.Scope}}",
            ],
            format!("{net} bridge local"),
        ),
        (
            vec![
                "network",
                "ls",
                "--filter",
                &name_filter,
                "--format",
                "table {{.ID}}\\t{{.Name}}",
            ],
            format!("NETWORK ID     NAME\n{}   {net}", &net_id[..12]),
        ),
        (
            vec![
                "network",
                "inspect",
                "-f",
                "{{.Name}} {{.Driver}} {{.Internal}}",
                &net,
            ],
            format!("{net} bridge false"),
        ),
        (vec!["volume", "ls", "--format", "{{.Name}}"], "tvol".into()),
        (
            vec!["volume", "ls", "--format", "table {{.Name}}\\t{{.Driver}}"],
            "VOLUME NAME   DRIVER\ntvol          local".into(),
        ),
        (
            vec![
                "volume",
                "inspect",
                "--format",
                "{{.Name}} {{.Driver}} {{index .Labels \"tier\"}}",
                "tvol",
            ],
            "tvol local web".into(),
        ),
        (
            vec!["images", "--format", "table {{.ID}}"],
            format!("IMAGE ID\n{}", root.ok(&["images", "-q"]).trim()),
        ),
    ];
    for (args, want) in &cases {
        assert_eq!(root.ok(args).trim_end(), want, "isola {args:?}");
    }
    // JSON is docker's object, one line.
    let v: serde_json::Value =
        serde_json::from_str(&root.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(v["ServerVersion"], version);
    let v: serde_json::Value =
        serde_json::from_str(&root.ok(&["version", "--format", "json"])).unwrap();
    assert_eq!(v["Server"]["Version"], version);
    // A broken template: one line, exit 125.
    let (code, err) = root.fails(&["network", "inspect", "-f", "{{.Name", &net]);
    assert_eq!(code, 125, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    root.ok(&["rm", "-f", &id]);
    root.ok(&["network", "rm", &net]);
    root.ok(&["volume", "rm", "tvol"]);
    root.assert_clean();
}

/// `diff` lists what a container changed (A, C, D by path) and `export`
/// writes its whole filesystem as a tar archive.
#[test]
fn diff_and_export_show_the_containers_filesystem() {
    let root = Root::new();
    let id = root.run_detached(&[
        "busybox",
        "sh",
        "-c",
        "echo x > /new; echo extra >> /etc/passwd; rm /bin/vi; touch /ready; sleep 300",
    ]);
    common::eventually("the container's changes", || {
        root.run(&["exec", &id, "test", "-f", "/ready"])
            .status
            .success()
    });
    let diff = root.ok(&["diff", &id]);
    let lines: Vec<&str> = diff.lines().collect();
    for want in ["A /new", "C /etc", "C /etc/passwd", "D /bin/vi", "A /ready"] {
        assert!(lines.contains(&want), "{want} missing from diff: {diff}");
    }
    assert!(
        !diff.contains("/bin/busybox"),
        "an unchanged file is listed: {diff}"
    );
    assert!(
        !diff.contains("/etc/hosts"),
        "isola's own mount points are listed: {diff}"
    );
    let paths: Vec<&str> = lines.iter().map(|l| &l[2..]).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "diff is sorted by path");

    let tar_path = root.path().join("export.tar");
    root.ok(&["export", "-o", tar_path.to_str().unwrap(), &id]);
    let mut archive = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    for want in ["new", "bin/busybox", "etc/passwd"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from the export: {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n == "bin/vi"),
        "a deleted file is exported"
    );
    // stdout on a terminal is refused; to a pipe it is the same archive.
    let piped = root.run(&["container", "export", &id]);
    assert!(piped.status.success());
    assert_eq!(
        piped.stdout.len() as u64,
        std::fs::metadata(&tar_path).unwrap().len()
    );
    let (code, err) = root.fails(&["diff", "nosuch"]);
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "{err}");
    root.ok(&["rm", "-f", &id]);
    root.assert_clean();
}

/// `stats --format` and `image history` (with its formats) as docker's.
#[test]
fn stats_format_and_image_history() {
    let root = Root::new();
    let id = root.run_detached(&["--name", "counted", "busybox", "sleep", "300"]);
    let out = root.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}}",
        &id,
    ]);
    assert_eq!(out.trim(), "counted 1", "{out}");
    let out = root.ok(&["stats", "--no-stream", "--format", "table {{.Name}}", &id]);
    assert_eq!(out.trim(), "NAME\ncounted", "{out}");
    root.ok(&["rm", "-f", &id]);

    // An imported image has one history entry, its layer's.
    let rootfs = tempfile::tempdir().unwrap();
    testkit::write_busybox_rootfs(rootfs.path());
    let tar = root.path().join("rootfs.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(rootfs.path())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    root.ok(&["import", tar.to_str().unwrap(), "imported:1"]);
    let table = root.ok(&["image", "history", "imported:1"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE") && lines[0].contains("CREATED BY"),
        "{table}"
    );
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[1].contains("isola import") && lines[1].contains("MB"),
        "{table}"
    );
    let id = root.ok(&["images", "-q", "imported:1"]);
    assert!(lines[1].starts_with(id.trim()), "{table}");
    let out = root.ok(&[
        "image",
        "history",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "imported:1",
    ]);
    assert_eq!(out.trim(), "isola import|imported from a tarball");
    let (_, err) = root.fails(&["image", "history", "nosuch:1"]);
    assert!(err.contains("No such image: nosuch:1"), "{err}");
    root.assert_clean();
}

/// `images --filter` as docker's: reference patterns, dangling, bad keys.
#[test]
fn images_filter_by_reference_and_dangling() {
    let root = Root::new();
    root.ok(&["tag", "busybox", "busybox:other"]);
    root.ok(&["tag", "busybox", "tools/box:1"]);
    let list = |filter: &str| {
        let mut v: Vec<String> = root
            .ok(&[
                "images",
                "--filter",
                filter,
                "--format",
                "{{.Repository}}:{{.Tag}}",
            ])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(list("reference=busy*"), ["busybox:latest", "busybox:other"]);
    assert_eq!(list("reference=*/*:1"), ["tools/box:1"]);
    assert!(list("reference=*:1").is_empty(), "* crossed a /");
    assert_eq!(list("reference=*/box"), ["tools/box:1"]);
    assert!(list("dangling=true").is_empty());
    assert_eq!(list("dangling=false").len(), 3);
    let (code, err) = root.fails(&["images", "--filter", "colour=red"]);
    assert_eq!(code, 125, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("colour"), "{err}");
}

/// `system df` counts images, containers and volumes; `system prune`
/// removes what nothing uses, and only that.
#[test]
fn system_df_and_prune() {
    let root = Root::new();
    let keep = root.run_detached(&["--name", "keep", "busybox", "sleep", "300"]);
    root.ok(&["create", "--name", "stopped", "busybox", "true"]);
    root.ok(&["network", "create", "unused-net"]);
    root.ok(&["volume", "create", "named-vol"]);
    root.ok(&["tag", "busybox", "spare:1"]);
    let df = root.ok(&["system", "df"]);
    let row = |kind: &str| -> Vec<String> {
        df.lines()
            .find(|l| l.starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} in {df}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(row("Images")[1..3], ["1", "1"], "{df}");
    assert_eq!(row("Containers")[1..3], ["2", "1"], "{df}");
    assert_eq!(row("Local")[2..4], ["1", "0"], "{df}");
    let out = root.ok(&["system", "prune", "-f"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert!(out.contains("unused-net"), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(root.ok(&["ps", "-aq"]).trim(), engine_short(&keep));
    assert!(!root.ok(&["network", "ls"]).contains("unused-net"));
    // A named volume and a tagged image are kept (not dangling, no --volumes -a).
    assert!(root.ok(&["volume", "ls", "-q"]).contains("named-vol"));
    assert!(root.ok(&["images"]).contains("spare"));
    root.ok(&["rm", "-f", "keep"]);
    root.ok(&["volume", "rm", "named-vol"]);
    root.assert_clean();
}

fn engine_short(id: &str) -> &str {
    &id[..12]
}

/// `ps -s` shows the writable layer's size (and with the image), `logs
/// --details` docker's attribute prefix (empty: a space).
#[test]
fn ps_size_and_logs_details() {
    let root = Root::new();
    let id = root.run_detached(&[
        "--name",
        "sized",
        "busybox",
        "sh",
        "-c",
        "head -c 3000000 /dev/zero > /big; echo hello; sleep 300",
    ]);
    common::eventually("the file written", || {
        root.ok(&["logs", &id]).contains("hello")
    });
    let ps = root.ok(&["ps", "-s"]);
    assert!(ps.lines().next().unwrap().ends_with("SIZE"), "{ps}");
    let line = ps.lines().find(|l| l.contains("sized")).unwrap();
    assert!(line.contains("3MB (virtual"), "{ps}");
    let size = root.ok(&["ps", "-s", "--format", "{{.Size}}"]);
    assert!(size.starts_with("3MB (virtual "), "{size}");
    assert_eq!(root.ok(&["logs", "--details", &id]), " hello\n");
    root.ok(&["rm", "-f", &id]);
    root.assert_clean();
}

/// `cp` both ways, of a file, a directory and a symlink; a symlink the
/// container places never leads a copy to a host file.
#[test]
fn cp_copies_both_ways_and_never_leaves_the_rootfs() {
    let root = Root::new();
    let host = tempfile::tempdir_in(root.path()).unwrap();
    let h = host.path();
    // A host file the container's symlinks point at.
    std::fs::write(h.join("secret"), "host-secret\n").unwrap();
    let secret = h.join("secret").display().to_string();
    let id = root.run_detached(&[
        "busybox",
        "sh",
        "-c",
        &format!(
            "mkdir -p /d/sub && echo inside > /d/sub/f && ln -s f /d/sub/l && \
             ln -s {secret} /escape && ln -s / /rootlink && touch /ready; sleep 300"
        ),
    ]);
    common::eventually("the container's files", || {
        root.run(&["exec", &id, "test", "-f", "/ready"])
            .status
            .success()
    });
    let hp = |p: &str| h.join(p).display().to_string();
    // Out: a directory (with a symlink kept as one), to a new host name.
    root.ok(&["cp", &format!("{id}:/d"), &hp("out")]);
    assert_eq!(
        std::fs::read_to_string(h.join("out/sub/f")).unwrap(),
        "inside\n"
    );
    assert_eq!(
        std::fs::read_link(h.join("out/sub/l")).unwrap(),
        Path::new("f")
    );
    // Out: a file into an existing directory.
    root.ok(&["cp", &format!("{id}:/d/sub/f"), &hp("out")]);
    assert_eq!(
        std::fs::read_to_string(h.join("out/f")).unwrap(),
        "inside\n"
    );
    // Out through the container's symlink to a host path: the container's
    // view (no such file there), never the host's file.
    let out = root.run(&["cp", &format!("{id}:/escape"), &hp("got"), "-L"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !h.join("got").exists()
            || std::fs::read_to_string(h.join("got")).unwrap() != "host-secret\n"
    );
    // In: a host file and a directory.
    std::fs::write(h.join("in.txt"), "from-host\n").unwrap();
    std::fs::create_dir_all(h.join("indir/deep")).unwrap();
    std::fs::write(h.join("indir/deep/x"), "x\n").unwrap();
    root.ok(&["cp", &hp("in.txt"), &format!("{id}:/d/")]);
    root.ok(&["cp", &hp("indir"), &format!("{id}:/copied")]);
    assert_eq!(root.ok(&["exec", &id, "cat", "/d/in.txt"]), "from-host\n");
    assert_eq!(root.ok(&["exec", &id, "cat", "/copied/deep/x"]), "x\n");
    assert_eq!(
        root.ok(&["exec", &id, "stat", "-c", "%u", "/d/in.txt"])
            .trim(),
        "0"
    );
    // In through the container's symlinks: they resolve inside its rootfs,
    // so the host's file and directory stay untouched.
    root.ok(&["cp", &hp("in.txt"), &format!("{id}:/escape")]);
    assert_eq!(
        std::fs::read_to_string(h.join("secret")).unwrap(),
        "host-secret\n"
    );
    // (there, that directory does not exist: refused, one line)
    let (_, err) = root.fails(&[
        "cp",
        &hp("in.txt"),
        &format!("{id}:/rootlink{}/planted", h.display()),
    ]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        !h.join("planted").exists(),
        "a copy left the rootfs through a symlink"
    );
    // A tar stream both ways.
    let tar = root.run(&["cp", &format!("{id}:/d/sub/f"), "-"]);
    assert!(tar.status.success());
    let mut a = tar::Archive::new(&tar.stdout[..]);
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["f"]);
    let (code, err) = root.fails(&["cp", &format!("{id}:/nosuch"), &hp("x")]);
    assert_ne!(code, 0);
    assert!(err.contains("/nosuch"), "{err}");
    root.ok(&["rm", "-f", &id]);
    root.assert_clean();
}
