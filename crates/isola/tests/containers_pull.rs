//! End-to-end: `run` and `create` pull their image as docker's `--pull`
//! says (missing by default, always, never), from a real Debian
//! docker-registry on 127.0.0.1, with the pull's progress on stderr.

mod support;

use support::*;

/// A busybox layout whose image sets `MARK=<mark>`, tagged `latest`.
fn marked_layout(mark: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("isola-layout-")
        .tempdir()
        .unwrap();
    let img = testkit::LayoutImage::new(
        "busybox",
        "latest",
        vec![testkit::busybox_layer_tar()],
        serde_json::json!({ "Cmd": ["sh"], "Env": [format!("MARK={mark}")] }),
    );
    testkit::write_oci_layout(dir.path(), &img);
    dir
}

#[test]
fn run_pulls_a_missing_image_with_progress_on_stderr() {
    let reg = Registry::start();
    let (layout, _) = busybox_layout();
    reg.push(layout.path(), "latest", "busybox:latest", None);
    let root = engine_root();
    let name = format!("{}/busybox", reg.host());
    let out = isola(
        root.path(),
        &["run", "--rm", &name, "echo", "pulled-and-ran"],
        &[],
        None,
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // stdout is the container's alone.
    assert_eq!(stdout(&out), "pulled-and-ran\n");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        format!("Unable to find image '{name}:latest' locally"),
        "{err}"
    );
    for expected in [
        "latest: Pulling from busybox".to_string(),
        format!("Status: Downloaded newer image for {name}:latest"),
    ] {
        assert!(lines.contains(&expected.as_str()), "{expected:?} in {err}");
    }
    assert!(err.contains(": Pull complete"), "{err}");
    // Now it is local: no second pull.
    let out = isola(root.path(), &["run", "--rm", &name, "true"], &[], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

#[test]
fn create_pulls_a_missing_image_and_prints_only_the_id() {
    let reg = Registry::start();
    let (layout, _) = busybox_layout();
    reg.push(layout.path(), "latest", "busybox:latest", None);
    let root = engine_root();
    let name = format!("{}/busybox:latest", reg.host());
    let out = isola(root.path(), &["create", &name, "true"], &[], None);
    let err = stderr(&out);
    assert!(err.contains("latest: Pulling from busybox"), "{err}");
    let id = ok(out);
    assert_eq!(id.trim().len(), 64, "{id}");
    assert_eq!(store_images(root.path()), 1);
    ok(isola(root.path(), &["rm", id.trim()], &[], None));
}

#[test]
fn pull_never_refuses_an_absent_image_with_docker_words() {
    let reg = Registry::start();
    let (layout, _) = busybox_layout();
    reg.push(layout.path(), "latest", "busybox:latest", None);
    let root = engine_root();
    let name = format!("{}/busybox", reg.host());
    for cmd in ["run", "create"] {
        let out = isola(
            root.path(),
            &[cmd, "--pull=never", &name, "true"],
            &[],
            None,
        );
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        assert_eq!(
            stderr(&out),
            format!("isola: No such image: {name}:latest\n")
        );
    }
    assert_eq!(store_images(root.path()), 0, "--pull never pulled");
    // Once here, never is content.
    ok(isola(root.path(), &["pull", "-q", &name], &[], None));
    let out = isola(
        root.path(),
        &["run", "--rm", "--pull", "never", &name, "echo", "ok"],
        &[],
        None,
    );
    assert_eq!(ok(out), "ok\n");
}

#[test]
fn pull_always_pulls_again_and_gets_the_new_image() {
    let reg = Registry::start();
    let first = marked_layout("one");
    reg.push(first.path(), "latest", "busybox:latest", None);
    let root = engine_root();
    let name = format!("{}/busybox:latest", reg.host());
    let mark = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&name, "sh", "-c", "echo $MARK"]);
        isola(root.path(), &args, &[], None)
    };
    assert_eq!(ok(mark(&[])), "one\n");
    // The tag moves in the registry.
    let second = marked_layout("two");
    reg.push(second.path(), "latest", "busybox:latest", None);
    // missing: the local image is used, no pull.
    let out = mark(&[]);
    assert_eq!(stderr(&out), "");
    assert_eq!(ok(out), "one\n");
    // always: pulled again, the new image runs.
    let out = mark(&["--pull", "always"]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("Status: Downloaded newer image for {name}")),
        "{err}"
    );
    assert!(!err.contains("Unable to find image"), "{err}");
    assert_eq!(ok(out), "two\n");
    // always, nothing new: pulled, up to date.
    let out = mark(&["--pull=always", "-q"]);
    assert_eq!(stderr(&out), "", "-q silences the pull");
    assert_eq!(ok(out), "two\n");
    let out = mark(&["--pull=always"]);
    assert!(
        stderr(&out).contains(&format!("Status: Image is up to date for {name}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_pull_policy_is_a_usage_error() {
    let root = engine_root();
    let out = isola(
        root.path(),
        &["run", "--pull", "sometimes", "busybox", "true"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.starts_with("isola: invalid argument \"sometimes\" for \"--pull\" flag:"),
        "{err}"
    );
    assert!(err.ends_with("See 'isola run --help'.\n"), "{err}");
}

#[test]
fn run_refuses_a_bad_reference_as_tag_and_pull_do() {
    let root = engine_root();
    for bad in ["Bad_Image:UPPER", "busybox:", "a//b"] {
        let tag_err = fails(isola(root.path(), &["tag", "x", bad], &[], None));
        let pull_err = fails(isola(root.path(), &["pull", bad], &[], None));
        assert_eq!(tag_err, pull_err, "{bad}");
        assert!(tag_err.contains("invalid reference"), "{tag_err}");
        for cmd in ["run", "create"] {
            let out = isola(root.path(), &[cmd, bad, "true"], &[], None);
            assert_eq!(out.status.code(), Some(125));
            assert_eq!(stderr(&out), tag_err, "isola {cmd} {bad}");
        }
    }
}
