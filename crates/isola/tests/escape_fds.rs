//! End-to-end: only the intended descriptors cross into a container. The
//! `isola` CLI is started holding descriptors of its caller's (without
//! close-on-exec, as a shell passes them); the container's init and an
//! exec'd process hold stdio only, and so does the monitor hold none of them.

mod common;

use std::path::Path;
use std::process::Output;

use common::{host_pids_with, Root};

/// A file only this test opens: a descriptor pointing at it anywhere
/// else came from the CLI's caller.
struct Marker(std::path::PathBuf);

impl Marker {
    fn new() -> Marker {
        let path = std::env::temp_dir().join(testkit::unique_name("isola-fd-marker"));
        std::fs::write(&path, "").unwrap();
        Marker(path)
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `isola --root <root> args` from a shell that leaves the marker
/// open at fds 7 and 9, as a caller's descriptors are inherited.
fn run_holding(root: &Root, marker: &Marker, args: &[&str]) -> Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg("m=$1; shift; exec \"$@\" 7<\"$m\" 9<\"$m\"")
        .arg("sh")
        .arg(&marker.0)
        .arg(env!("CARGO_BIN_EXE_isola"))
        .arg("--root")
        .arg(root.path())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "isola failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The descriptors `ls /proc/self/fd` printed, less ls's own (3, the
/// lowest free number once 0-2 are taken).
fn listed(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    assert_eq!(v.iter().filter(|f| *f == "3").count(), 1, "{out}");
    v.retain(|f| f != "3");
    v
}

/// Host pid `pid`'s descriptors: (number, target).
fn host_fds(pid: i32) -> Vec<(String, String)> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            (
                e.file_name().to_string_lossy().into_owned(),
                target.display().to_string(),
            )
        })
        .collect()
}

#[test]
fn containers_and_exec_get_stdio_only_and_the_monitor_none_of_the_callers() {
    let root = Root::new();
    let marker = Marker::new();
    let fg = ok(run_holding(
        &root,
        &marker,
        &["run", "--rm", "busybox", "ls", "/proc/self/fd"],
    ));
    assert_eq!(listed(&fg), ["0", "1", "2"], "run in the foreground");

    let id = ok(run_holding(
        &root,
        &marker,
        &["run", "-d", "busybox", "sleep", "1000"],
    ))
    .trim()
    .to_string();
    let pid: i32 = root.inspect(&id, ".State.Pid").parse().unwrap();
    let mut init: Vec<String> = host_fds(pid).into_iter().map(|(n, _)| n).collect();
    init.sort();
    assert_eq!(init, ["0", "1", "2"], "the init of run -d");

    let exec = ok(run_holding(
        &root,
        &marker,
        &["exec", &id, "ls", "/proc/self/fd"],
    ));
    assert_eq!(listed(&exec), ["0", "1", "2"], "exec");

    let monitors = host_pids_with(&format!("container-monitor {id}"));
    assert!(!monitors.is_empty(), "no monitor of {id}");
    let marker_path = marker.0.display().to_string();
    for m in monitors {
        let fds = host_fds(m);
        assert!(
            !fds.iter().any(|(_, t)| Path::new(t) == marker.0),
            "the monitor holds the CLI caller's {marker_path}: {fds:?}"
        );
    }
}
