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

/// Like [`under_pty`], but types `input` only once `ready` holds (before
/// isola's terminal is raw, the pty's line discipline would eat a Ctrl-Q
/// as flow control).
fn under_pty_once(shell_cmd: &str, ready: impl Fn() -> bool, input: &str) -> (i32, String) {
    let mut child = Command::new("script")
        .args(["-qec", shell_cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .env_remove("ISOLA_ISOLATION")
        .spawn()
        .expect("script (util-linux) runs");
    common::eventually("the session to start", &ready);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Ctrl-P Ctrl-Q (or `--detach-keys`) leaves `run -it` and `attach`, the
/// container running; a Ctrl-P alone passes through.
#[test]
fn detach_keys_leave_the_container_running() {
    let root = Root::new();
    let running = || {
        root.run(&["inspect", "--format", "{{.State.Status}}", "away"])
            .stdout
            .starts_with(b"running")
    };
    let (code, out) = under_pty_once(
        &format!("{} run -it --name away busybox sh", isola(&root)),
        running,
        "\x10echo still-here > /mark\n\x10\x11",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(root.inspect("away", ".State.Status"), "running", "{out}");
    // The lone Ctrl-P went through (to the shell's line editor), and the
    // line after it ran.
    common::eventually("the typed line to run", || {
        root.run(&["exec", "away", "cat", "/mark"]).stdout == b"still-here\n"
    });
    let (code, out) = under_pty_once(
        &format!("{} attach --detach-keys ctrl-a away", isola(&root)),
        || true,
        "\x01",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(root.inspect("away", ".State.Status"), "running");
    let (code, err) = root.fails(&["run", "-it", "--detach-keys", "ctrl-1", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("--detach-keys"), "{err}");
    root.ok(&["rm", "-f", "away"]);
    root.assert_clean();
}
