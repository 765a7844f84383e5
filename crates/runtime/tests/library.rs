//! The library API as the engine and the guest agent use it, without the
//! CLI: stdio passed as fds, the pty master returned to the caller, and the
//! caller as the parent that reaps the container's init and exec'd
//! processes. Needs root.

use std::io::Read;
use std::os::fd::OwnedFd;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use runtime::{Console, Container, CreateOptions, ExecOptions, Status, Stdio3};
use serde_json::json;
use testkit::{runtime_config, unique_name, Bundle};

/// Force-deletes the container when the test ends, passed or not.
struct Cleanup<'a>(&'a std::path::Path, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Ok(c) = Container::load(self.0, &self.1) {
            let _ = c.delete(true);
        }
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe().unwrap()
}

fn devnull() -> OwnedFd {
    std::fs::File::open("/dev/null").unwrap().into()
}

fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    std::fs::File::from(fd).read_to_string(&mut s).unwrap();
    s
}

fn exit_code(pid: i32) -> i32 {
    match waitpid(Pid::from_raw(pid), None).unwrap() {
        WaitStatus::Exited(_, c) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn stdio_fds_and_reaping_by_the_caller() {
    let root = tempfile::tempdir().unwrap();
    let bundle = Bundle::new(&runtime_config(&[
        "sh",
        "-c",
        "echo out; echo err >&2; read x; exit 4",
    ]));
    let id = unique_name("lib");
    let _cleanup = Cleanup(root.path(), id.clone());
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let (in_r, in_w) = pipe();
    let created = Container::create(CreateOptions {
        id: id.clone(),
        bundle: bundle.path(),
        root: root.path().to_path_buf(),
        console: Console::None,
        pid_file: None,
        preserve_fds: 0,
        stdio: Some(Stdio3 {
            stdin: in_r,
            stdout: out_w,
            stderr: err_w,
        }),
        spec: None,
        seccomp: None,
    })
    .unwrap();
    assert!(created.console_master.is_none());
    let mut c = created.container;
    assert_eq!(c.status(), Status::Created);
    assert_eq!(Container::list(root.path()).unwrap().len(), 1);
    let pid = c.pid().unwrap();
    c.start().unwrap();
    assert_eq!(
        Container::load(root.path(), &id).unwrap().status(),
        Status::Running
    );
    drop(in_w); // `read` gets EOF
                // The caller is the init's parent: it reaps it and gets the exit code.
    assert_eq!(exit_code(pid), 4);
    assert_eq!(read_all(out_r), "out\n");
    assert_eq!(read_all(err_r), "err\n");
    let c = Container::load(root.path(), &id).unwrap();
    assert_eq!(c.status(), Status::Stopped);
    assert_eq!(c.oci_state().status().to_string(), "stopped");
    c.delete(false).unwrap();
    assert!(matches!(
        Container::load(root.path(), &id),
        Err(runtime::Error::NotFound { .. })
    ));
}

#[test]
fn console_return_and_exec_with_stdio() {
    let root = tempfile::tempdir().unwrap();
    let mut config = runtime_config(&["sh", "-c", "echo on-the-pty; exec sleep 300"]);
    config["process"]["terminal"] = json!(true);
    // The spec is handed over parsed (as the guest agent does): the bundle's
    // config.json, which says something else, is not read.
    let mut on_disk = config.clone();
    on_disk["process"]["args"] = json!(["sh", "-c", "echo from-config-json; exec sleep 300"]);
    let bundle = Bundle::new(&on_disk);
    let id = unique_name("libtty");
    let _cleanup = Cleanup(root.path(), id.clone());
    let created = Container::create(CreateOptions {
        id: id.clone(),
        bundle: bundle.path(),
        root: root.path().to_path_buf(),
        console: Console::Return,
        pid_file: None,
        preserve_fds: 0,
        stdio: None,
        spec: Some(Box::new(serde_json::from_value(config).unwrap())),
        seccomp: None,
    })
    .unwrap();
    let master = created.console_master.expect("pty master returned");
    let mut c = created.container;
    c.start().unwrap();
    let mut f = std::fs::File::from(master);
    let mut buf = [0u8; 64];
    let n = f.read(&mut buf).unwrap();
    assert_eq!(String::from_utf8_lossy(&buf[..n]), "on-the-pty\r\n");

    // exec: joins the container, stdio given as fds, caller reaps.
    let mut process = c.spec().unwrap().process().clone().unwrap();
    process.set_terminal(Some(false));
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "hostname; exit 9".into(),
    ]));
    let (out_r, out_w) = pipe();
    let executed = c
        .exec(
            &process,
            ExecOptions {
                console: Console::None,
                pid_file: None,
                stdio: Some(Stdio3 {
                    stdin: devnull(),
                    stdout: out_w,
                    stderr: devnull(),
                }),
                preserve_fds: 0,
                ignore_paused: false,
                sub_cgroups: Vec::new(),
            },
        )
        .unwrap();
    assert_eq!(exit_code(executed.pid), 9);
    assert_eq!(read_all(out_r), "isola-test\n");
    assert!(c.processes().unwrap().contains(&c.pid().unwrap()));

    c.kill(libc::SIGKILL, false).unwrap();
    assert!(matches!(
        waitpid(Pid::from_raw(c.pid().unwrap()), None).unwrap(),
        WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)
    ));
    Container::load(root.path(), &id)
        .unwrap()
        .delete(false)
        .unwrap();
}
