//! Shared by the isola-runtime end-to-end tests: a private --root whose
//! containers are force-deleted when the test ends, helpers to run the real
//! binary, and checks that a failed create left nothing behind.

#![allow(dead_code)]

use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::Bundle;

pub const BIN: &str = env!("CARGO_BIN_EXE_isola-runtime");

/// One runtime binary (isola-runtime unless told otherwise) with its own
/// --root directory; deletes every container it knows on drop.
pub struct Runtime {
    pub root: tempfile::TempDir,
    pub bin: PathBuf,
    ids: RefCell<Vec<String>>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn new() -> Runtime {
        Runtime::with_binary(Path::new(BIN))
    }

    /// Another runtime with runc's command line (runc, crun), to hold
    /// isola-runtime's behaviour against.
    pub fn with_binary(bin: &Path) -> Runtime {
        Runtime {
            root: tempfile::Builder::new()
                .prefix("isola-rt-root-")
                .tempdir()
                .unwrap(),
            bin: bin.to_path_buf(),
            ids: RefCell::new(Vec::new()),
        }
    }

    /// The binary's file name, for assertion messages.
    pub fn name(&self) -> String {
        self.bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(self.root.path()).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    pub fn track(&self, id: &str) {
        self.ids.borrow_mut().push(id.to_string());
    }

    /// Runs a command that must succeed and returns its stdout. Not for
    /// one that leaves a container process holding stdout (`create`,
    /// `run --detach`): reading to the end would wait for that process.
    pub fn ok(&self, args: &[&str]) -> String {
        stdout_ok(&mut self.cmd(args))
    }

    /// `run` in the foreground; returns once the container exited.
    pub fn run(&self, bundle: &Bundle, id: &str) -> Output {
        self.track(id);
        self.cmd(&["run", "--bundle", bundle.path().to_str().unwrap(), id])
            .output()
            .unwrap()
    }

    /// `run` that must succeed; returns the container's stdout.
    pub fn run_ok(&self, bundle: &Bundle, id: &str) -> String {
        let out = self.run(bundle, id);
        assert!(
            out.status.success(),
            "run {id} failed ({}): stdout {} stderr {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `create`, with the container's stdout/stderr (and the CLI's) going to
    /// files, because the container keeps them open after create returns.
    pub fn create(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> Created {
        self.track(id);
        let out = self.root.path().join(format!("{id}.out"));
        let err = self.root.path().join(format!("{id}.err"));
        let path = bundle.path();
        let mut args = vec!["create", "--bundle", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(id);
        let status = self
            .cmd(&args)
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .status()
            .unwrap();
        Created {
            success: status.success(),
            stdout: out,
            stderr: err,
        }
    }

    pub fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Waits (bounded) until the container reports `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        wait_until(&format!("{id} to be {status}"), || {
            self.status(id) == status
        });
    }

    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.path().join(id)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self
                .cmd(&["delete", "--force", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub struct Created {
    pub success: bool,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Created {
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }
    pub fn assert_ok(&self) {
        assert!(self.success, "create failed: {}", self.stderr());
    }
}

/// isola-runtime, then each of the peer runtimes in `peers` (e.g. "runc")
/// found on PATH: a compatibility test runs the same bundle against each,
/// so that what it expects is the peer's behaviour, not only ours. A peer
/// that is missing is skipped with a note, unless CI is set: then the test
/// fails and names it.
pub fn runtimes(peers: &[&str]) -> Vec<Runtime> {
    let mut out = vec![Runtime::new()];
    for peer in peers {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(peer))
                .find(|p| p.is_file())
        });
        match found {
            Some(p) => out.push(Runtime::with_binary(&p)),
            None if std::env::var_os("CI").is_some() => {
                panic!("{peer} is not installed (apt-get install {peer}); CI needs it")
            }
            None => eprintln!("note: {peer} is not installed; comparing with it is skipped"),
        }
    }
    out
}

/// Runs `cmd` to the end; asserts it succeeded (showing its stderr
/// otherwise) and returns its stdout.
pub fn stdout_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls `cond` every 10 ms for up to 20 s; panics naming `what` otherwise.
/// A wait for an event, not a timing assertion.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Cgroup directories named `id` anywhere under /sys/fs/cgroup/<hierarchy>/
/// (searched a few levels deep).
pub fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, id: &str, depth: u32, out: &mut Vec<PathBuf>) {
        if depth == 0 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let p = e.path();
                if e.file_name().to_str() == Some(id) {
                    out.push(p.clone());
                }
                walk(&p, id, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), id, 5, &mut out);
    out
}

/// Mount points in this process's namespace under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&dir))
        .collect()
}

/// Host pids whose cgroup path (any hierarchy) has a component `id`.
pub fn processes_in_cgroup_named(id: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| {
                c.lines().any(|l| {
                    l.rsplit(':')
                        .next()
                        .is_some_and(|p| p.split('/').any(|x| x == id))
                })
            })
        })
        .collect()
}

/// Asserts a failed create left no state dir, cgroup, mount or process.
pub fn assert_nothing_left(rt: &Runtime, id: &str, bundle: &Bundle) {
    assert!(!rt.state_dir(id).exists(), "state dir of {id} left behind");
    assert_eq!(
        cgroup_dirs_named(id),
        Vec::<PathBuf>::new(),
        "cgroup of {id} left behind"
    );
    assert_eq!(
        mounts_under(&bundle.path()),
        Vec::<String>::new(),
        "mounts left under the bundle"
    );
    assert_eq!(
        processes_in_cgroup_named(id),
        Vec::<i32>::new(),
        "container processes left"
    );
}

/// The value of a `Name:\tvalue` line of /proc/<pid>/status output.
pub fn status_field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

/// Why VM containers cannot run here, if they cannot: no guest kernel (make
/// setup builds it) or no QEMU.
pub fn vm_missing() -> Option<String> {
    let kernel = std::env::var_os("ISOLA_VM_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/isola/kernel/latest/bzImage"));
    if !kernel.is_file() {
        return Some(format!(
            "no guest kernel at {} (run make setup)",
            kernel.display()
        ));
    }
    let qemu = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join("qemu-system-x86_64").is_file());
    (!qemu).then(|| "qemu-system-x86_64 not installed (Debian package qemu-system-x86)".into())
}

/// `isola-runtime-vm` beside the built binary (a link to it, as `make
/// install` makes one): the runtime in VM mode. It outlives every test, so
/// that cleanup at the end of a test still finds it.
pub fn vm_binary() -> PathBuf {
    let link = Path::new(BIN).with_file_name("isola-runtime-vm");
    match std::os::unix::fs::symlink("isola-runtime", &link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("link {}: {e}", link.display()),
    }
    link
}

/// QEMU processes of the VM whose host cgroup is /isola-vm/<id> (its
/// keeper shares the cgroup, so the process name tells them apart).
pub fn qemus_of(id: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            comm.starts_with("isola-vm-") && cgroup.contains(&format!("/isola-vm/{id}/"))
        })
        .collect()
}
