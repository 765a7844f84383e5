//! End-to-end: errors of the CLI itself read and exit as docker's do: one
//! line naming what was wrong, one line pointing at the help, exit code 125;
//! help and version still print and exit 0; diagnostics on a pipe carry no
//! colour codes.

use std::process::{Command, Output};

fn isola(root: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_isola"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("ISOLA_LOG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn usage_errors_exit_125_with_docker_lines() {
    let root = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["run", "--foo", "busybox"],
            "isola: unknown flag: --foo",
            "See 'isola run --help'.",
        ),
        (
            &["run", "-z", "busybox"],
            "isola: unknown shorthand flag: 'z' in -z",
            "See 'isola run --help'.",
        ),
        (
            &["runx"],
            "isola: 'runx' is not an isola command.",
            "See 'isola --help'.",
        ),
        (
            &["image", "frob"],
            "isola: 'frob' is not an isola image command.",
            "See 'isola image --help'.",
        ),
        (
            &["run"],
            "isola: \"isola run\" requires at least 1 argument.",
            "See 'isola run --help'.",
        ),
        (
            &["tag", "busybox"],
            "isola: \"isola tag\" requires exactly 2 arguments.",
            "See 'isola tag --help'.",
        ),
        (
            &["ps", "extra"],
            "isola: \"isola ps\" accepts no arguments.",
            "See 'isola ps --help'.",
        ),
        (
            &["run", "--name"],
            "isola: flag needs an argument: --name",
            "See 'isola run --help'.",
        ),
        (
            &["--root", "/nowhere", "image", "ls", "--bogus"],
            "isola: unknown flag: --bogus",
            "See 'isola image ls --help'.",
        ),
    ];
    for (args, first, second) in cases {
        let out = isola(root.path(), args);
        assert_eq!(
            out.status.code(),
            Some(125),
            "isola {args:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            stderr(&out),
            format!("{first}\n{second}\n"),
            "isola {args:?}"
        );
        assert!(out.stdout.is_empty(), "isola {args:?} wrote to stdout");
    }
}

#[test]
fn help_and_version_print_to_stdout_and_exit_0() {
    let root = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["--version"],
        &["container"],
    ] {
        let out = isola(root.path(), args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "isola {args:?}: {}",
            stderr(&out)
        );
        assert!(!out.stdout.is_empty(), "isola {args:?} printed nothing");
    }
}

#[test]
fn a_negative_memory_value_is_a_value_error_not_an_unknown_flag() {
    let root = tempfile::tempdir().unwrap();
    let out = isola(root.path(), &["run", "-m", "-5m", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.contains("invalid --memory value \"-5m\""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn warnings_on_a_pipe_carry_no_colour_codes() {
    let root = tempfile::tempdir().unwrap();
    let tar = root.path().join("busybox.tar");
    let layout = tempfile::tempdir().unwrap();
    testkit::oci_layout(layout.path(), "busybox", "latest");
    testkit::tar_dir(layout.path(), &tar);
    let store_root = root.path().join("root");
    let out = isola(&store_root, &["load", "-q", "-i", tar.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Damage the image's record (its config blob goes): `images` warns.
    let id = String::from_utf8(isola(&store_root, &["images", "-q", "--no-trunc"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    let hex = id.strip_prefix("sha256:").unwrap();
    std::fs::remove_file(store_root.join("image/blobs/sha256").join(hex)).unwrap();
    let out = isola(&store_root, &["images"]);
    let err = stderr(&out);
    assert!(err.contains("skipping a damaged image record"), "{err}");
    assert!(!err.contains('\x1b'), "colour codes on a pipe: {err:?}");
}
