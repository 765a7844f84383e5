//! End-to-end: a terminal container hands its pty master over
//! --console-socket the way runc does (containerd's shim listens there), and
//! the OCI hooks run in lifecycle order with the state on stdin. Needs root.

mod common;

use std::io::{IoSliceMut, Read};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use common::{wait_until, Runtime};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;
use testkit::{runtime_config, unique_name, Bundle};

/// Accepts one connection and receives the fd sent with SCM_RIGHTS, and the
/// message text (runc sends the terminal's name).
fn receive_console(listener: UnixListener) -> (OwnedFd, String) {
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 4096];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        std::os::fd::AsRawFd::as_raw_fd(&conn),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel installed this fd for us just now.
            fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    let n = msg.bytes;
    (
        fd.expect("an fd with the message"),
        String::from_utf8_lossy(&buf[..n]).into_owned(),
    )
}

#[test]
fn a_terminal_container_gets_a_pty_through_the_console_socket() {
    let rt = Runtime::new();
    let mut config = runtime_config(&[
        "sh",
        "-c",
        "tty; test -t 0 && test -t 1 && echo both-ttys; echo hello-pty",
    ]);
    config["process"]["terminal"] = json!(true);
    config["process"]["consoleSize"] = json!({"height": 40, "width": 100});
    let bundle = Bundle::new(&config);
    let sock = rt.root.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || receive_console(listener));

    let id = unique_name("tty");
    rt.create(&bundle, &id, &["--console-socket", sock.to_str().unwrap()])
        .assert_ok();
    let (master, name) = receiver.join().unwrap();
    assert!(!name.is_empty());
    rt.ok(&["start", &id]);

    // Read until the slave side closes (EIO once the process has exited).
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&out).replace("\r\n", "\n");
    assert_eq!(text, "/dev/pts/0\nboth-ttys\nhello-pty\n");
}

#[test]
fn a_terminal_without_console_socket_is_refused() {
    let rt = Runtime::new();
    let mut config = runtime_config(&["true"]);
    config["process"]["terminal"] = json!(true);
    let bundle = Bundle::new(&config);
    let id = unique_name("notty");
    let c = rt.create(&bundle, &id, &[]);
    assert!(!c.success);
    assert!(c.stderr().contains("console-socket"), "{}", c.stderr());
    common::assert_nothing_left(&rt, &id, &bundle);
}

/// A hook that appends its name to `log` (a host path for hooks run in the
/// runtime's namespaces).
fn hook(name: &str, log: &Path) -> serde_json::Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} >> {}", log.display())]})
}

#[test]
fn hooks_run_in_lifecycle_order_with_the_state_on_stdin() {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let state = dir.path().join("state.json");
    let mut config = runtime_config(&["sh", "-c", "exec sleep 300"]);
    // startContainer runs inside the container: it writes through a bind mount.
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/hooks", "type": "bind", "source": dir.path(), "options": ["rbind"]}));
    config["hooks"] = json!({
        "prestart": [hook("prestart", &log)],
        "createRuntime": [
            hook("createRuntime", &log),
            {"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", state.display())]}
        ],
        "createContainer": [hook("createContainer", &log)],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer >> /hooks/log"]}],
        "poststart": [hook("poststart", &log)],
        "poststop": [hook("poststop", &log)]
    });
    let bundle = Bundle::new(&config);
    let id = unique_name("hooks");
    rt.create(&bundle, &id, &[]).assert_ok();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(read(), "prestart\ncreateRuntime\ncreateContainer\n");

    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["status"], "created");
    assert_eq!(st["bundle"], bundle.path().to_str().unwrap());
    assert_eq!(st["pid"], rt.state(&id)["pid"]);

    rt.ok(&["start", &id]);
    // poststart runs before start returns; startContainer before the process execs.
    assert_eq!(
        read(),
        "prestart\ncreateRuntime\ncreateContainer\nstartContainer\npoststart\n"
    );
    rt.ok(&["delete", "--force", &id]);
    wait_until("poststop", || read().ends_with("poststop\n"));
    assert_eq!(
        read(),
        "prestart\ncreateRuntime\ncreateContainer\nstartContainer\npoststart\npoststop\n"
    );
}

#[test]
fn a_failing_or_hanging_hook_fails_create_and_leaves_nothing() {
    let rt = Runtime::new();
    let mut config = runtime_config(&["true"]);
    config["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-broke >&2; exit 4"]}]});
    let bundle = Bundle::new(&config);
    let id = unique_name("badhook");
    let c = rt.create(&bundle, &id, &[]);
    assert!(!c.success);
    let err = c.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("createRuntime hook /bin/sh"), "{err}");
    assert!(err.contains("hook-broke"), "{err}");
    common::assert_nothing_left(&rt, &id, &bundle);

    let mut config = runtime_config(&["true"]);
    config["hooks"] =
        json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    let bundle = Bundle::new(&config);
    let id = unique_name("slowhook");
    let c = rt.create(&bundle, &id, &[]);
    assert!(!c.success);
    assert!(c.stderr().contains("timeout of 1s"), "{}", c.stderr());
    common::assert_nothing_left(&rt, &id, &bundle);
}
