//! End-to-end: `isola build`, `commit` and `push` through the real binary.
//! One multi-stage Dockerfile (a builder stage writing files with RUN, a
//! final stage COPYing them `--from` it, every config instruction set) is
//! built in process mode and in VM mode; the results run in both modes;
//! rebuilds hit the cache; a changed file reruns only what copies it;
//! `SOURCE_DATE_EPOCH` makes the two modes' images the same digest; push
//! to a registry on 127.0.0.1 is read back by skopeo; bad input fails
//! with the Dockerfile line and leaves nothing behind.

mod common;
mod support;

use std::fs;
use std::process::Command;

use common::Root;

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=busybox:latest
FROM ${BASE} AS builder
ARG GREETING=hello
WORKDIR /src
COPY app.txt ./
RUN mkdir -p /out \
 && cp app.txt /out/app.txt \
 && echo "$GREETING from builder" > /out/greeting
RUN echo second > /out/second && rm /src/app.txt

FROM busybox:latest
ENV APP_HOME=/app MODE=prod
LABEL org.example.team=isola
RUN mkdir -p /opt/real && ln -s /opt/real /opt/link
COPY app.txt /opt/link/
COPY --from=builder /out/ /app/
COPY --chown=1000:1000 --chmod=640 conf/ /app/conf/
ADD files.tar /app/extracted/
COPY . /ctx/
RUN cat /app/conf/x.conf > /app/conf.copy
WORKDIR $APP_HOME
USER 1000:1000
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --retries=2 CMD ["true"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/greeting /app/second; id -u; pwd; echo mode=$MODE"]
"#;

/// A context for [`DOCKERFILE`]: files to copy, a tar for ADD to unpack,
/// and files `.dockerignore` keeps out.
fn app_context() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("isola-build-ctx-")
        .tempdir()
        .unwrap();
    let p = dir.path();
    fs::write(p.join("Dockerfile"), DOCKERFILE).unwrap();
    fs::write(p.join("app.txt"), "the app\n").unwrap();
    fs::create_dir(p.join("conf")).unwrap();
    fs::write(p.join("conf/x.conf"), "setting=1\n").unwrap();
    fs::write(p.join("secret.txt"), "do not ship\n").unwrap();
    fs::write(p.join("debug.log"), "noise\n").unwrap();
    fs::write(p.join(".dockerignore"), "secret.txt\n*.log\n").unwrap();
    // files.tar: inner/file.txt, made by the system tar.
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("inner")).unwrap();
    fs::write(src.path().join("inner/file.txt"), "from the tar\n").unwrap();
    let out = Command::new("tar")
        .arg("-cf")
        .arg(p.join("files.tar"))
        .arg("-C")
        .arg(src.path())
        .arg("inner")
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {out:?}");
    dir
}

/// `isola build -q ...`: the image id.
fn build_id(root: &Root, args: &[&str]) -> String {
    let mut full = vec!["build", "-q"];
    full.extend_from_slice(args);
    let id = root.ok(&full).trim().to_string();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "not an id: {id:?}"
    );
    id
}

/// What the built image's default command prints, and the rest of what
/// a user relies on, in the given isolation.
fn assert_runs(root: &Root, tag: &str, isolation: &str) {
    let out = root.ok(&["run", "--rm", "--isolation", isolation, tag]);
    assert_eq!(
        out, "hello from builder\nsecond\n1000\n/app\nmode=prod\n",
        "{isolation}: the image's entrypoint, cmd, user, workdir and env"
    );
    let check =
        "ls -ln /app/conf/x.conf | awk '{print $1, $3, $4}'; cat /app/extracted/inner/file.txt; \
                 cat /app/conf.copy; ls /ctx; test -e /src/app.txt && echo leaked; \
                 cat /opt/real/app.txt; test -L /opt/link && echo link kept";
    let out = root.ok(&["run", "--rm", "--isolation", isolation, tag, check]);
    assert_eq!(
        out,
        "-rw-r----- 1000 1000\nfrom the tar\nsetting=1\nDockerfile\napp.txt\nconf\nfiles.tar\nthe app\nlink kept\n",
        "{isolation}: --chown/--chmod, ADD's unpacking, .dockerignore, a COPY through the image's symlink"
    );
}

fn assert_no_snapshots(root: &Root) {
    let store = image::store::Store::open(root.path()).unwrap();
    assert_eq!(
        store.snapshots().unwrap(),
        Vec::<String>::new(),
        "snapshots left"
    );
    root.assert_clean();
}

#[test]
fn multi_stage_build_caches_and_reruns_only_what_changed() {
    let root = Root::new();
    let ctx = app_context();
    let c = ctx.path().to_str().unwrap();
    let out = root.ok(&["build", "--isolation", "process", "-t", "app:1", c]);
    for want in [
        "Step 1/25 : ARG BASE=busybox:latest",
        "Step 3/25 : ARG GREETING=hello",
        " ---> Running in ",
        "Removing intermediate container ",
        "Successfully built ",
        "Successfully tagged app:1",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    assert_eq!(out.matches(" ---> Running in ").count(), 4, "{out}");
    assert_runs(&root, "app:1", "process");

    // The config as docker's inspect shows it.
    let cfg = |f: &str| {
        root.ok(&[
            "image",
            "inspect",
            "--format",
            &format!("{{{{json .Config.{f}}}}}"),
            "app:1",
        ])
        .trim()
        .to_string()
    };
    assert_eq!(cfg("ExposedPorts"), r#"{"53/udp":{},"8080/tcp":{}}"#);
    assert_eq!(cfg("Volumes"), r#"{"/data":{}}"#);
    assert_eq!(cfg("Labels"), r#"{"org.example.team":"isola"}"#);
    assert_eq!(cfg("User"), r#""1000:1000""#);
    assert_eq!(cfg("WorkingDir"), r#""/app""#);
    assert_eq!(cfg("StopSignal"), r#""SIGTERM""#);
    assert!(
        cfg("Env").contains(r#""APP_HOME=/app","MODE=prod""#),
        "{}",
        cfg("Env")
    );
    let history = root.ok(&["image", "history", "--no-trunc", "app:1"]);
    for want in [
        "ENV APP_HOME=/app MODE=prod",
        "COPY",
        "cat /app/conf/x.conf > /app/conf.copy",
        "EXPOSE 8080/tcp 53/udp",
    ] {
        assert!(
            history.contains(want),
            "{want:?} not in history:\n{history}"
        );
    }

    // Nothing changed: every step from the cache, the same image.
    let first = root
        .ok(&["image", "inspect", "--format", "{{.Id}}", "app:1"])
        .trim()
        .to_string();
    let again = root.ok(&["build", "-t", "app:1", c]);
    assert!(!again.contains("Running in"), "a RUN ran again:\n{again}");
    assert_eq!(again.matches(" ---> Using cache").count(), 21, "{again}");
    assert_eq!(
        build_id(&root, &["-t", "app:1", c]),
        first,
        "a cached rebuild is the same image"
    );

    // A file only the final stage copies: the builder's RUNs stay cached,
    // the RUN after that COPY reruns.
    fs::write(ctx.path().join("conf/x.conf"), "setting=2\n").unwrap();
    let changed = root.ok(&["build", "-t", "app:2", c]);
    assert_eq!(changed.matches(" ---> Running in ").count(), 1, "{changed}");
    assert_eq!(
        root.ok(&["run", "--rm", "app:2", "cat /app/conf.copy"]),
        "setting=2\n"
    );
    // --no-cache runs everything again.
    let fresh = root.ok(&["build", "--no-cache", "-t", "app:3", c]);
    assert_eq!(fresh.matches(" ---> Running in ").count(), 4, "{fresh}");
    assert!(!fresh.contains("Using cache"), "{fresh}");
    assert_no_snapshots(&root);

    // The cache is the builder's to drop.
    let pruned = root.ok(&["builder", "prune", "-f"]);
    assert!(pruned.contains("Deleted build cache objects:"), "{pruned}");
    let after = root.ok(&["build", "-t", "app:4", c]);
    assert_eq!(after.matches(" ---> Running in ").count(), 4, "{after}");
}

#[test]
fn vm_builds_the_same_image_as_process_mode() {
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    if !root.vm_kernel_or_skip("vm_builds_the_same_image_as_process_mode") {
        return;
    }
    let ctx = app_context();
    let c = ctx.path().to_str().unwrap();
    let epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000"];
    let mut args = vec!["--no-cache", "--isolation", "process", "-t", "app:process"];
    args.extend_from_slice(&epoch);
    args.push(c);
    let process = build_id(&root, &args);
    let mut args = vec!["--no-cache", "--isolation", "vm", "-t", "app:vm"];
    args.extend_from_slice(&epoch);
    args.push(c);
    let vm = build_id(&root, &args);
    assert_eq!(
        vm, process,
        "the same Dockerfile and context make the same image in both modes"
    );
    let created = root.ok(&["image", "inspect", "--format", "{{.Created}}", "app:vm"]);
    assert!(
        created.starts_with("2023-11-14T22:13:20"),
        "config date clamped: {created}"
    );
    // What a VM build made runs in both modes.
    assert_runs(&root, "app:vm", "vm");
    assert_runs(&root, "app:vm", "process");
    // A VM container gets its image's STOPSIGNAL too.
    stop_signal_image(&root);
    assert_stops_with_usr1(&root, "vm");
    assert_no_snapshots(&root);
}

/// A context holding `dockerfile` (and a file to copy).
fn context_with(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("isola-build-ctx-")
        .tempdir()
        .unwrap();
    fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    fs::write(dir.path().join("a.txt"), "a\n").unwrap();
    dir
}

fn one_line_error(root: &Root, args: &[&str]) -> (i32, String) {
    let (code, err) = root.fails(args);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    (code, err)
}

#[test]
fn bad_builds_fail_with_the_line_and_leave_nothing() {
    let root = Root::new();
    let images_before = root.ok(&["images", "-q", "--no-trunc"]);
    let cases: [(&str, &str, &[&str]); 6] = [
        ("FROM busybox\nRUN true\nFROBNICATE now\n", "line 3", &[]),
        (
            "FROM busybox\nCOPY ../outside /x\n",
            "line 2: COPY source \"../outside\" is outside the build context",
            &[],
        ),
        (
            "FROM busybox\n\nCOPY missing.txt /x\n",
            "line 3: COPY source \"missing.txt\": no such file",
            &[],
        ),
        (
            "FROM busybox AS one\nRUN true\n",
            "target stage \"two\" could not be found (stages: one)",
            &["--target", "two"],
        ),
        ("ARG TAG\nFROM busybox${NOPE:+x}:${UNSET}\n", "line 2", &[]),
        ("ENV A=1\nFROM busybox\n", "line 1: expected FROM", &[]),
    ];
    for (dockerfile, want, extra) in cases {
        let ctx = context_with(dockerfile);
        let mut args = vec!["build", "-t", "bad:1"];
        args.extend_from_slice(extra);
        args.push(ctx.path().to_str().unwrap());
        let (code, err) = one_line_error(&root, &args);
        assert!(err.contains(want), "{dockerfile:?}: {want:?} not in {err}");
        assert_ne!(code, 0);
    }

    // An archive ADD would unpack outside its directory, or as a whiteout.
    for (entry, want) in [
        ("../../escaped", "leaves its directory"),
        ("etc/.wh.passwd", "whiteout"),
    ] {
        let ctx = context_with("FROM busybox\nADD evil.tar /x/\n");
        let made = Command::new("python3")
            .args(["-c", "import io,sys,tarfile\nt=tarfile.open(sys.argv[1],'w')\ni=tarfile.TarInfo(sys.argv[2]); i.size=3\nt.addfile(i, io.BytesIO(b'bad'))\nt.close()"])
            .arg(ctx.path().join("evil.tar"))
            .arg(entry)
            .status()
            .unwrap();
        assert!(made.success());
        let (_, err) = one_line_error(
            &root,
            &["build", "-t", "bad:1", ctx.path().to_str().unwrap()],
        );
        assert!(
            err.contains("line 2: ADD: archive entry") && err.contains(want),
            "{entry}: {err}"
        );
    }

    // A failing RUN: its code, its last output, the build stops there.
    let ctx = context_with(
        "FROM busybox\nCOPY a.txt /a.txt\nRUN echo boom-output; exit 3\nRUN echo never\n",
    );
    let out = root.run(&["build", "-t", "bad:1", ctx.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "the RUN's exit code: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("line 3: `RUN echo boom-output; exit 3` returned a non-zero code: 3; last output: boom-output"),
        "{stderr}"
    );
    assert!(!stdout.contains("never"), "the build went on: {stdout}");
    assert!(root
        .fails(&["image", "inspect", "bad:1"])
        .1
        .contains("bad:1"));
    assert_eq!(
        root.ok(&["images", "-q", "--no-trunc"]),
        images_before,
        "no image tagged"
    );
    assert_no_snapshots(&root);
}

#[test]
fn push_to_a_registry_and_commit_a_container() {
    let registry = support::Registry::start();
    let root = Root::new();
    let ctx = context_with("FROM busybox\nCOPY a.txt /a.txt\nRUN echo built > /built\nCMD [\"cat\", \"/a.txt\", \"/built\"]\n");
    let target = format!("{}/app:1", registry.host());
    build_id(&root, &["-t", &target, ctx.path().to_str().unwrap()]);
    let out = root.ok(&["push", &target]);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/app]",
            registry.host()
        )),
        "{out}"
    );
    assert!(out.contains("Pushed"), "{out}");
    let digest = root.ok(&["image", "inspect", "--format", "{{.Id}}", &target]);
    // An independent client sees the image: the manifest skopeo reads is
    // the one push printed, and its config is the image's.
    let inspect = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{target}"),
        ])
        .output()
        .expect("skopeo (scripts/setup.sh installs it)");
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let pushed = image::digest::sha256(&inspect.stdout);
    assert!(
        out.contains(&format!(
            "1: digest: {pushed} size: {}",
            inspect.stdout.len()
        )),
        "{out}"
    );
    assert_eq!(
        manifest["config"]["digest"].as_str(),
        Some(digest.trim()),
        "{manifest}"
    );
    assert_eq!(
        manifest["layers"].as_array().map(Vec::len),
        Some(3),
        "{manifest}"
    );
    // Again: the registry has every blob.
    let again = root.ok(&["push", &target]);
    assert!(
        again.contains("Layer already exists") && !again.contains("Pushed"),
        "{again}"
    );
    // skopeo copies it out; a fresh root pulls it and runs it.
    let layout = tempfile::tempdir().unwrap();
    let copy = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{target}"),
        ])
        .arg(format!("oci:{}:app", layout.path().display()))
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    // A fresh root builds FROM it: --pull=never refuses, the default pulls.
    let other = Root::new();
    let child = context_with(&format!("FROM {target}\nRUN cat /built > /child\n"));
    let c = child.path().to_str().unwrap();
    let (_, err) = one_line_error(&other, &["build", "--pull=never", "-t", "child:1", c]);
    assert!(
        err.contains(&format!("line 1: No such image: {target}")),
        "{err}"
    );
    other.ok(&["build", "-t", "child:1", c]);
    assert_eq!(other.ok(&["run", "--rm", &target]), "a\nbuilt\n");
    assert_eq!(
        other.ok(&["run", "--rm", "child:1", "cat", "/child"]),
        "built\n"
    );
    let again = other.ok(&["build", "--pull", "-t", "child:1", c]);
    assert!(again.contains("Using cache"), "{again}");

    // commit: a container's change, and a --change to the config.
    let id = root.run_detached(&[
        "--name",
        "changer",
        "busybox",
        "sh",
        "-c",
        "echo changed > /changed; sleep 60",
    ]);
    common::eventually("the change written", || {
        root.run(&["exec", &id, "test", "-e", "/changed"])
            .status
            .success()
    });
    let img = root.ok(&[
        "commit",
        "-m",
        "a message",
        "-c",
        "CMD [\"cat\", \"/changed\"]",
        "changer",
        "committed:1",
    ]);
    assert!(img.trim().starts_with("sha256:"), "{img}");
    assert_eq!(
        root.inspect("changer", ".State.Status"),
        "running",
        "unpaused after the commit"
    );
    let (_, err) = root.fails(&["commit", "-c", "RUN true", "changer", "x:1"]);
    assert!(err.contains("RUN") && err.contains("only CMD"), "{err}");
    root.ok(&["rm", "-f", "changer"]);
    assert_eq!(root.ok(&["run", "--rm", "committed:1"]), "changed\n");
    let history = root.ok(&[
        "image",
        "history",
        "--format",
        "{{.Comment}}",
        "committed:1",
    ]);
    assert!(history.lines().next() == Some("a message"), "{history}");
    assert_no_snapshots(&root);
}

/// An image whose STOPSIGNAL is SIGUSR1: its command exits 3 on USR1 and
/// ignores TERM.
fn stop_signal_image(root: &Root) {
    let ctx = context_with(
        "FROM busybox\nSTOPSIGNAL SIGUSR1\nCMD [\"sh\", \"-c\", \"trap 'echo got-usr1; exit 3' USR1; trap '' TERM; echo ready; while true; do sleep 0.1; done\"]\n",
    );
    root.ok(&["build", "-q", "-t", "sig:1", ctx.path().to_str().unwrap()]);
}

/// `stop` of a container of [`stop_signal_image`]: the image's signal
/// reached it.
fn assert_stops_with_usr1(root: &Root, isolation: &str) {
    let id = root.run_detached(&["--isolation", isolation, "sig:1"]);
    common::eventually("the trap set", || root.ok(&["logs", &id]).contains("ready"));
    assert_eq!(root.inspect(&id, ".Config.StopSignal"), "SIGUSR1");
    root.ok(&["stop", &id]);
    assert_eq!(
        root.inspect(&id, ".State.ExitCode"),
        "3",
        "{isolation}: the image's STOPSIGNAL"
    );
    assert!(root.ok(&["logs", &id]).contains("got-usr1"));
    root.ok(&["rm", &id]);
}

#[test]
fn stop_sends_the_images_stop_signal_and_honours_stop_timeout() {
    let root = Root::new();
    stop_signal_image(&root);
    assert_stops_with_usr1(&root, "process");
    // --stop-signal overrides the image's; --stop-timeout bounds the wait
    // for a command that ignores it.
    let id = root.run_detached(&["--stop-signal", "TERM", "--stop-timeout", "1", "sig:1"]);
    common::eventually("the trap set", || root.ok(&["logs", &id]).contains("ready"));
    assert_eq!(root.inspect(&id, ".Config.StopTimeout"), "1");
    let t0 = std::time::Instant::now();
    root.ok(&["stop", &id]);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(8),
        "stop waited the default 10 s"
    );
    assert_eq!(
        root.inspect(&id, ".State.ExitCode"),
        "137",
        "TERM ignored, then killed"
    );
    root.ok(&["rm", &id]);
    let (code, err) = root.fails(&["create", "--stop-signal", "SIGNOPE", "busybox"]);
    assert_eq!(code, 125);
    assert!(err.contains("invalid signal \"SIGNOPE\""), "{err}");
    assert_no_snapshots(&root);
}
