//! End-to-end: `run -it` and `exec -it` under a real pseudo-terminal, driven
//! with util-linux `script` (it gives isola a pty as its stdin and stdout).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Root;

/// Runs `shell_cmd` under `script` with `input` on its stdin; returns the
/// exit code and everything the terminal showed.
fn under_pty(shell_cmd: &str, input: &str) -> (i32, String) {
    let mut child = Command::new("script")
        .args(["-qec", shell_cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .env_remove("ISOLA_ISOLATION")
        .spawn()
        .expect("script (util-linux) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn isola(root: &Root) -> String {
    format!(
        "{} --root {}",
        env!("CARGO_BIN_EXE_isola"),
        root.path().display()
    )
}

#[test]
fn run_it_gives_the_container_a_terminal_and_its_size() {
    let root = Root::new();
    // The outer terminal's size reaches the container's pty.
    let (code, out) = under_pty(
        &format!(
            "stty rows 33 cols 101; {} run -it --rm busybox sh -c 'tty; stty size; test -t 0 && echo stdin-is-a-tty; exit 5'",
            isola(&root)
        ),
        "",
    );
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("33 101"), "{out}");
    assert!(out.contains("stdin-is-a-tty"), "{out}");
    // Typed input reaches an interactive shell.
    let (code, out) = under_pty(
        &format!("{} run -it --rm busybox sh", isola(&root)),
        "echo typed-$((6*7))\nexit 4\n",
    );
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("typed-42"), "{out}");
    root.assert_clean();
}

#[test]
fn exec_it_runs_a_shell_on_a_terminal() {
    let root = Root::new();
    let id = root.run_detached(&["busybox", "sleep", "1000"]);
    let (code, out) = under_pty(
        &format!("stty rows 20 cols 70; {} exec -it {id} sh", isola(&root)),
        "tty; stty size; exit 6\n",
    );
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("20 70"), "{out}");
    root.ok(&["rm", "-f", &id]);
    root.assert_clean();
}
