//! End-to-end: the host side never trusts what a container controls. Its
//! /etc/passwd, made a FIFO, a device, a link to a host file or a huge
//! file, fails `exec -u` and `run -u` at once with a one-line error that
//! names it (it used to hang the CLI, read without end, or read the
//! host's file). And no unprivileged host user reaches an image's files
//! (a setuid binary) through the engine's root.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{eventually, Root};

/// A refusal must come this fast (the hang it replaces never ends).
const FAST: Duration = Duration::from_secs(5);

/// Runs isola under a 2 GiB address-space limit (an unbounded read of
/// /dev/zero, the bug, fails there instead of eating the host's memory),
/// killed after [`FAST`] * 2; returns the output and how long it took.
fn timed(root: &Root, args: &[&str]) -> (Output, Duration) {
    let mut script = String::from("ulimit -v 2097152; exec \"$0\" --root \"$1\"");
    for i in 0..args.len() {
        script.push_str(&format!(" \"${}\"", i + 2));
    }
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_isola"))
        .arg(root.path())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > FAST * 2 {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), start.elapsed())
}

/// Asserts `args` fails within [`FAST`] with one line on stderr that names
/// /etc/passwd and contains `needle`.
fn refused_fast(root: &Root, args: &[&str], needle: &str) {
    let (out, took) = timed(root, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(took < FAST, "isola {args:?} took {took:?} (hung?): {err}");
    assert!(
        !out.status.success(),
        "isola {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(err.contains("/etc/passwd"), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
}

/// A host-only file holding a passwd line for `hostuser` (uid 4242); a
/// container that reads it could only have got it from the host.
struct HostSecret(std::path::PathBuf);

impl HostSecret {
    fn new() -> HostSecret {
        let path = std::env::temp_dir().join(testkit::unique_name("isola-host-secret"));
        std::fs::write(&path, "hostuser:x:4242:4242::/:/bin/sh\n").unwrap();
        HostSecret(path)
    }
    /// The same file reached by climbing out of the rootfs with "..".
    fn climbing(&self) -> String {
        format!("{}{}", "../".repeat(32), self.0.display())
    }
}

impl Drop for HostSecret {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A running busybox container in which `setup` (sh) has run.
fn running(root: &Root, setup: &str) -> String {
    let id = root.run_detached(&[
        "busybox",
        "sh",
        "-c",
        &format!("{setup} && touch /ready; sleep 1000"),
    ]);
    eventually("the container's setup", || {
        root.run(&["exec", &id, "test", "-e", "/ready"])
            .status
            .success()
    });
    id
}

#[test]
fn exec_u_refuses_a_fifo_passwd_at_once() {
    let root = Root::new();
    let id = running(&root, "rm /etc/passwd && mkfifo /etc/passwd");
    refused_fast(&root, &["exec", "-u", "nobody", &id, "id"], "FIFO");
    // The default user (root) still works, so the container can be repaired
    // (`id` itself would block on the FIFO: the container's own business).
    assert_eq!(
        root.ok(&["exec", &id, "sh", "-c", "rm /etc/passwd && echo ok"])
            .trim(),
        "ok"
    );
}

#[test]
fn exec_u_refuses_a_device_passwd() {
    let root = Root::new();
    // A real character device (1:5 is /dev/zero) made inside the container.
    let id = running(&root, "rm /etc/passwd && mknod /etc/passwd c 1 5");
    refused_fast(
        &root,
        &["exec", "-u", "nobody", &id, "id"],
        "character device",
    );
    // A link to the container's /dev/zero: resolved inside the rootfs,
    // never the host's /dev/zero.
    root.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "rm /etc/passwd && ln -s /dev/zero /etc/passwd",
    ]);
    refused_fast(&root, &["exec", "-u", "nobody", &id, "id"], "");
}

#[test]
fn exec_u_never_reads_a_host_file() {
    let root = Root::new();
    let secret = HostSecret::new();
    for target in [secret.0.display().to_string(), secret.climbing()] {
        let id = running(
            &root,
            &format!("rm /etc/passwd && ln -s {target} /etc/passwd"),
        );
        refused_fast(
            &root,
            &["exec", "-u", "hostuser", &id, "id"],
            "unable to find user hostuser",
        );
        root.ok(&["rm", "-f", &id]);
    }
}

#[test]
fn exec_u_refuses_an_oversized_passwd() {
    let root = Root::new();
    // A valid entry first: without a limit, the lookup would succeed.
    let id = running(
        &root,
        "{ echo nobody:x:65534:65534::/:/bin/sh; head -c 5000000 /dev/zero; } > /etc/passwd",
    );
    refused_fast(&root, &["exec", "-u", "nobody", &id, "id"], "larger than");
}

/// What the image's `etc/passwd` is.
enum Passwd<'a> {
    Fifo,
    /// A character device, major and minor.
    Char(u32, u32),
    Symlink(&'a str),
    File(Vec<u8>),
}

/// Loads image `evil:<tag>`: busybox with a second layer whose only entry
/// is `etc/passwd` as `passwd` says.
fn evil_image(root: &Root, tag: &str, passwd: Passwd<'_>) -> String {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_size(0);
    match passwd {
        Passwd::Fifo => {
            header.set_entry_type(tar::EntryType::Fifo);
            builder.append_data(&mut header, "etc/passwd", &[][..])
        }
        Passwd::Char(major, minor) => {
            header.set_entry_type(tar::EntryType::Char);
            header.set_device_major(major).unwrap();
            header.set_device_minor(minor).unwrap();
            builder.append_data(&mut header, "etc/passwd", &[][..])
        }
        Passwd::Symlink(target) => {
            header.set_entry_type(tar::EntryType::Symlink);
            builder.append_link(&mut header, "etc/passwd", target)
        }
        Passwd::File(data) => {
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, "etc/passwd", data.as_slice())
        }
    }
    .unwrap();
    let layer = builder.into_inner().unwrap();
    let image = testkit::LayoutImage::new(
        "evil",
        tag,
        vec![testkit::busybox_layer_tar(), layer],
        serde_json::json!({ "Cmd": ["sh"], "Env": ["PATH=/bin"] }),
    );
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("image.tar");
    common::layout_tar(&image, &tar);
    root.load(&tar);
    format!("evil:{tag}")
}

#[test]
fn run_u_refuses_an_image_whose_passwd_is_not_a_regular_file() {
    let root = Root::new();
    let fifo = evil_image(&root, "fifo", Passwd::Fifo);
    refused_fast(&root, &["run", "--rm", "-u", "nobody", &fifo, "id"], "FIFO");
    let device = evil_image(&root, "device", Passwd::Char(1, 5));
    refused_fast(
        &root,
        &["run", "--rm", "-u", "nobody", &device, "id"],
        "character device",
    );
    let zero = evil_image(&root, "zero", Passwd::Symlink("/dev/zero"));
    refused_fast(&root, &["run", "--rm", "-u", "nobody", &zero, "id"], "");
    let mut data = b"nobody:x:65534:65534::/:/bin/sh\n".to_vec();
    data.resize(5_000_000, b'#');
    let big = evil_image(&root, "big", Passwd::File(data));
    refused_fast(
        &root,
        &["run", "--rm", "-u", "nobody", &big, "id"],
        "larger than",
    );
    assert_eq!(root.container_dirs(), Vec::<String>::new());
}

#[test]
fn run_u_never_reads_a_host_file() {
    let root = Root::new();
    let secret = HostSecret::new();
    let absolute = secret.0.display().to_string();
    let climbing = secret.climbing();
    for (tag, target) in [("abs", &absolute), ("climb", &climbing)] {
        let image = evil_image(&root, tag, Passwd::Symlink(target));
        refused_fast(
            &root,
            &["run", "--rm", "-u", "hostuser", &image, "id"],
            "unable to find user hostuser",
        );
    }
}

/// Runs `program args` as `nobody` on the host (runuser, util-linux; not
/// setpriv, which execs its program before the capabilities are gone).
fn as_nobody(program: &Path, args: &[&str]) -> Output {
    std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("runuser (util-linux) is missing")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn host_users_cannot_run_an_images_setuid_binary() {
    let root = Root::new();
    // A setuid-root copy of the host's `id` (busybox drops setuid itself):
    // run by nobody, it would print euid=0.
    let mut builder = tar::Builder::new(Vec::new());
    let binary = std::fs::read("/usr/bin/id").unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o4755);
    header.set_mtime(0);
    header.set_size(binary.len() as u64);
    builder
        .append_data(&mut header, "bin/suid-id", binary.as_slice())
        .unwrap();
    let image = testkit::LayoutImage::new(
        "suid",
        "latest",
        vec![testkit::busybox_layer_tar(), builder.into_inner().unwrap()],
        serde_json::json!({ "Cmd": ["sh"], "Env": ["PATH=/bin"] }),
    );
    let dir = tempfile::tempdir().unwrap();
    common::layout_tar(&image, &dir.path().join("image.tar"));
    root.load(&dir.path().join("image.tar"));
    // As mkdir leaves /var/lib/isola on a stock host, and as an older isola
    // left its store and state: world-traversable.
    let runtime_root = root.path().join("runtime");
    std::fs::create_dir_all(&runtime_root).unwrap();
    for d in [root.path(), &root.path().join("image"), &runtime_root] {
        chmod(d, 0o755);
    }
    let id = root.run_detached(&["suid", "sleep", "1000"]);
    let merged = root.inspect(&id, ".GraphDriver.Data.MergedDir");
    let layer = std::fs::read_dir(root.path().join("image/layers"))
        .unwrap()
        .map(|e| e.unwrap().path().join("diff/bin/suid-id"))
        .find(|p| p.exists())
        .expect("the setuid layer's unpacked binary");
    for binary in [layer, Path::new(&merged).join("bin/suid-id")] {
        // The binary is there and setuid: only the way to it is closed.
        assert_eq!(mode(&binary), 0o4755, "{}", binary.display());
        let out = as_nobody(&binary, &[]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            !out.status.success() && stderr.contains("Permission denied"),
            "nobody ran {}: {stdout}{stderr}",
            binary.display()
        );
    }
    for d in [root.path(), &root.path().join("image"), &runtime_root] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    let snapshot = Path::new(&merged).parent().unwrap();
    assert_eq!(mode(snapshot), 0o700, "{}", snapshot.display());
}

/// Env var naming the socket [`connect_as_helper`] connects to.
const CONNECT_ENV: &str = "ISOLA_TEST_CONNECT";

/// Not a test by itself: run as another user by [`connect_as`], it
/// connects to the socket named in [`CONNECT_ENV`] and prints `errno N`,
/// or `read N` with the bytes the server sent within 2 s (0: it hung up).
#[test]
#[ignore]
fn connect_as_helper() {
    use std::io::Read;
    let Some(path) = std::env::var_os(CONNECT_ENV) else {
        return;
    };
    // Through /proc/self/fd: the socket's path is longer than sun_path.
    let path = Path::new(&path);
    let connected = std::fs::File::open(path.parent().unwrap()).and_then(|dir| {
        std::os::unix::net::UnixStream::connect(format!(
            "/proc/self/fd/{}/{}",
            std::os::fd::AsRawFd::as_raw_fd(&dir),
            path.file_name().unwrap().to_string_lossy()
        ))
    });
    match connected {
        Err(e) => println!("errno {}", e.raw_os_error().unwrap_or(-1)),
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            println!("read {n}");
        }
    }
}

/// Runs [`connect_as_helper`] on `socket` as `user`: its one-line verdict.
fn connect_as(user: &str, socket: &Path) -> String {
    // A copy of this test binary that any user can run, wherever the
    // checkout is.
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let exe = dir.path().join("helper");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    chmod(&exe, 0o755);
    let out = std::process::Command::new("runuser")
        .args(["-u", user, "--", "env"])
        .arg(format!("{CONNECT_ENV}={}", socket.display()))
        .arg(&exe)
        .args(["--exact", "connect_as_helper", "--ignored", "--nocapture"])
        .output()
        .expect("runuser (util-linux) is missing");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find(|l| l.starts_with("errno ") || l.starts_with("read "))
        .unwrap_or_else(|| panic!("helper said nothing: {stdout}{out:?}"))
        .to_string()
}

#[test]
fn the_monitor_socket_is_private_and_checks_its_peer() {
    let root = Root::new();
    // Output every 0.1 s: a connected, admitted client gets some at once.
    let id = root.run_detached(&[
        "busybox",
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.1; done",
    ]);
    let dir = root.containers_dir().join(&id);
    let socket = dir.join("monitor.sock");
    eventually("the monitor's socket", || socket.exists());
    assert_eq!(mode(&socket) & 0o777, 0o600);
    assert_eq!(mode(&dir), 0o700);
    // EACCES (13): the way to the socket is closed to nobody.
    assert_eq!(connect_as("nobody", &socket), "errno 13");
    // Opened by hand, the server still refuses another uid's connection
    // (SO_PEERCRED) and hangs up; root's is served.
    for d in [root.path(), &root.containers_dir(), &dir] {
        chmod(d, 0o755);
    }
    chmod(&socket, 0o666);
    assert_eq!(connect_as("nobody", &socket), "read 0");
    assert_ne!(connect_as("root", &socket), "read 0");
}
