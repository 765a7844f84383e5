//! End-to-end: behaviours where isola-runtime must do what runc does. Each
//! test runs the same bundle against isola-runtime and against runc (found
//! on PATH; with CI set a missing runc fails the test), so what it expects
//! is runc's behaviour, not only ours. Needs root.

mod common;

use std::os::unix::fs::symlink;

use common::{mounts_under, runtimes};
use testkit::{runtime_config, unique_name, Bundle};

/// A `proc` or `sysfs` mount whose destination in the rootfs is a symlink
/// is refused, as runc refuses it: following the link would mount procfs
/// (or sysfs) wherever the image points it, e.g. over a directory that a
/// later bind mount exposes, or one the runtime trusts.
#[test]
fn proc_or_sys_on_a_symlink_is_refused() {
    for dir in ["proc", "sys"] {
        for rt in runtimes(&["runc"]) {
            let bundle = Bundle::new(&runtime_config(&["true"]));
            let rootfs = bundle.rootfs();
            std::fs::remove_dir(rootfs.join(dir)).unwrap();
            std::fs::create_dir(rootfs.join("elsewhere")).unwrap();
            symlink("elsewhere", rootfs.join(dir)).unwrap();
            let id = unique_name("symproc");
            let c = rt.create(&bundle, &id, &[]);
            let err = c.stderr();
            assert!(
                !c.success,
                "{}: create with /{dir} a symlink succeeded",
                rt.name()
            );
            assert!(
                err.contains("must be mounted on ordinary directory"),
                "{}: {err}",
                rt.name()
            );
            assert!(err.contains(&format!("/{dir}")), "{}: {err}", rt.name());
            assert_eq!(
                mounts_under(&bundle.path()),
                Vec::<String>::new(),
                "{}: mounts left",
                rt.name()
            );
            assert_eq!(
                std::fs::read_dir(rootfs.join("elsewhere")).unwrap().count(),
                0,
                "{}: something was mounted at the link's target",
                rt.name()
            );
        }
    }
}

/// Runs a command that must fail; returns its stderr.
fn fails(rt: &common::Runtime, args: &[&str]) -> String {
    let out = rt.cmd(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{}: {args:?} succeeded: {err}",
        rt.name()
    );
    err
}

/// Asserts `err` (the stderr of a failed command) says "error" and each of
/// `words`: what containerd's shim, go-runc and podman look for in a
/// runtime's output to tell a missing container from a running one.
fn says(rt: &common::Runtime, args: &[&str], err: &str, words: &[&str]) {
    assert!(
        err.contains("error"),
        "{}: {args:?}: no \"error\" in {err:?}",
        rt.name()
    );
    for w in words {
        assert!(
            err.contains(w),
            "{}: {args:?}: no {w:?} in {err:?}",
            rt.name()
        );
    }
}

/// The errors callers tell apart by their words, worded as runc words them.
#[test]
fn errors_say_what_runc_says() {
    for rt in runtimes(&["runc"]) {
        let nosuch = unique_name("nosuch");
        for cmd in ["delete", "state", "kill", "start", "pause", "resume"] {
            let args = [cmd, nosuch.as_str()];
            let err = fails(&rt, &args);
            says(&rt, &args, &err, &["does not exist"]);
        }
        let args = ["exec", nosuch.as_str(), "true"];
        let err = fails(&rt, &args);
        says(&rt, &args, &err, &["does not exist"]);

        let bundle = Bundle::new(&runtime_config(&["sleep", "100"]));
        let id = unique_name("errs");
        rt.create(&bundle, &id, &[]).assert_ok();
        let c = rt.create(&bundle, &id, &[]);
        assert!(!c.success, "{}: second create of {id} succeeded", rt.name());
        says(&rt, &["create", &id], &c.stderr(), &["already exists"]);

        rt.ok(&["start", &id]);
        for (args, words) in [
            (vec!["delete", &id], &["not stopped", "running"][..]),
            (vec!["start", &id], &["already running"][..]),
            (vec!["resume", &id], &["not paused"][..]),
        ] {
            let err = fails(&rt, &args);
            says(&rt, &args, &err, words);
        }
        rt.ok(&["pause", &id]);
        let args = ["delete", id.as_str()];
        let err = fails(&rt, &args);
        says(&rt, &args, &err, &["not stopped", "paused"]);
        rt.ok(&["resume", &id]);

        rt.ok(&["kill", &id, "KILL"]);
        rt.wait_status(&id, "stopped");
        for (args, words) in [
            (vec!["kill", &id, "KILL"], &["not running"][..]),
            (vec!["pause", &id], &["not running"][..]),
            (vec!["start", &id], &["stopped"][..]),
            (vec!["exec", &id, "true"], &["stopped"][..]),
        ] {
            let err = fails(&rt, &args);
            says(&rt, &args, &err, words);
        }
        rt.ok(&["delete", &id]);
    }
}
