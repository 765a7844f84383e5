//! Shared helpers of the container end-to-end tests: a fresh isola root with a
//! real busybox image in its store, a runner for the real `isola` binary, and
//! the leak checks (mounts, cgroups, processes) every test ends with.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Writes `image` as an OCI-layout tar at `tar`.
pub fn layout_tar(image: &testkit::LayoutImage, tar: &Path) {
    let layout = tempfile::Builder::new()
        .prefix("isola-e2e-layout-")
        .tempdir()
        .unwrap();
    testkit::write_oci_layout(layout.path(), image);
    testkit::tar_dir(layout.path(), tar);
}

/// The busybox image (its config runs `sh`) as an OCI-layout tar. Made
/// once and cached in the temp directory (written atomically, so parallel
/// test processes never see half of it).
fn busybox_archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let tar = std::env::temp_dir().join("isola-e2e-busybox-image.tar");
        if !tar.exists() {
            let tmp = tar.with_extension(format!("tmp.{}", std::process::id()));
            let layout = tempfile::Builder::new()
                .prefix("isola-e2e-layout-")
                .tempdir()
                .unwrap();
            testkit::oci_layout(layout.path(), "busybox", "latest");
            testkit::tar_dir(layout.path(), &tmp);
            std::fs::rename(&tmp, &tar).unwrap();
        }
        tar
    })
}

/// A temporary isola root holding `busybox:latest`. Removes every container
/// (rm -f) before deleting the directory.
pub struct Root {
    pub dir: tempfile::TempDir,
    /// Set on every isola command this root runs.
    env: Vec<(&'static str, std::ffi::OsString)>,
}

impl Root {
    pub fn new() -> Root {
        let dir = tempfile::Builder::new()
            .prefix("isola-e2e-")
            .tempdir()
            .unwrap();
        let store = image::store::Store::open(dir.path()).unwrap();
        let mut f = std::fs::File::open(busybox_archive()).unwrap();
        let images = image::archive::load(&store, &mut f).unwrap();
        let reference = image::Reference::parse("busybox:latest").unwrap();
        store.tag(&images[0].id, &reference).unwrap();
        Root {
            dir,
            env: Vec::new(),
        }
    }

    /// This root with `key=value` in the environment of every isola it runs.
    pub fn with_env(mut self, key: &'static str, value: impl Into<std::ffi::OsString>) -> Root {
        self.env.push((key, value.into()));
        self
    }

    /// Loads another image (an OCI-layout tar) into this root's store.
    pub fn load(&self, tar: &Path) {
        let store = image::store::Store::open(self.path()).unwrap();
        let mut f = std::fs::File::open(tar).unwrap();
        image::archive::load(&store, &mut f).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// An `isola --root <root> ...` command.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_isola"));
        c.arg("--root").arg(self.path()).args(args);
        c.stdin(Stdio::null());
        // Keep the tests' view of the default isolation independent of the caller's.
        c.env_remove("ISOLA_ISOLATION");
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs isola; returns the output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs isola, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "isola {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs isola, asserting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "isola {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// `create ARGS... busybox` fails as a usage of isola's should: exit
    /// 125, one line on stderr, saying `says`.
    pub fn refuses_create(&self, args: &[&str], says: &str) {
        let mut full = vec!["create"];
        full.extend_from_slice(args);
        full.push("busybox");
        let (code, err) = self.fails(&full);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(
            err.contains(says) && err.trim_end().lines().count() == 1,
            "{args:?}: {err}"
        );
    }

    /// `run -d`; returns the container id.
    pub fn run_detached(&self, args: &[&str]) -> String {
        let mut full = vec!["run", "-d"];
        full.extend_from_slice(args);
        self.ok(&full).trim().to_string()
    }

    /// Whether the guest kernel VM containers need exists (`isola info`
    /// says); outside CI a test skips without it, saying why, and with
    /// `CI` set it fails ([`testkit::require`]).
    pub fn vm_kernel_or_skip(&self, test: &str) -> bool {
        let out = self.cmd(&["info", "--format", "json"]).output().unwrap();
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let kernel = info["Vm"]["Kernel"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        testkit::require(test, kernel.starts_with("missing").then_some(kernel))
    }

    /// A field of `inspect` via --format.
    pub fn inspect(&self, container: &str, path: &str) -> String {
        self.ok(&["inspect", "--format", &format!("{{{{{path}}}}}"), container])
            .trim()
            .to_string()
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.path().join("containers")
    }

    /// Container directories still on disk.
    pub fn container_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.containers_dir())
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts nothing of any container is left: records, runtime state,
    /// snapshots, mounts under the root, cgroups.
    pub fn assert_clean(&self) {
        assert_eq!(
            self.container_dirs(),
            Vec::<String>::new(),
            "container records left"
        );
        // (The runtime's cache of compiled seccomp programs, `.seccomp`, is
        // no container's state.)
        let runtime: Vec<_> = std::fs::read_dir(self.path().join("runtime"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name())
                    .filter(|n| !n.to_string_lossy().starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        assert!(runtime.is_empty(), "runtime state left: {runtime:?}");
        let root = std::fs::canonicalize(self.path()).unwrap();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let ours: Vec<&str> = mounts
            .lines()
            .filter(|l| {
                l.split(' ')
                    .nth(4)
                    .is_some_and(|m| Path::new(m).starts_with(&root))
            })
            .collect();
        assert!(ours.is_empty(), "mounts left under the root: {ours:?}");
        // A VM container's writable disk is loop-mounted while the host reads it.
        let loops: Vec<String> = std::fs::read_dir("/sys/block")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        std::fs::read_to_string(e.path().join("loop/backing_file")).ok()
                    })
                    .filter(|f| Path::new(f.trim()).starts_with(&root))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            loops.is_empty(),
            "loop devices left on files under the root: {loops:?}"
        );
        let snapshots: Vec<_> = std::fs::read_dir(self.path().join("image/snapshots"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(snapshots.is_empty(), "snapshots left: {snapshots:?}");
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        for id in self.container_dirs() {
            let _ = self.run(&["rm", "-f", &id]);
        }
        // The root's networks have bridges on the host: they go with it.
        if let Ok(networks) = engine::networks::Networks::open(self.path()) {
            let _ = networks.destroy();
        }
    }
}

/// Waits (bounded, generously) until `cond` holds; panics with `what` otherwise.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next();
            !matches!(state, Some('Z') | Some('X'))
        })
        .unwrap_or(false)
}

/// Whether the cgroup of container `id` exists in any hierarchy.
pub fn cgroup_exists(id: &str) -> bool {
    ["memory", "pids", "cpu", "freezer", "unified", ""]
        .iter()
        .any(|h| {
            Path::new("/sys/fs/cgroup")
                .join(h)
                .join("isola")
                .join(id)
                .exists()
        })
}

/// Host processes named `comm` in container `id`'s cgroups.
pub fn host_processes_of(id: &str, comm: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if name.trim() == comm && cgroup.contains(id) {
            out.push(pid);
        }
    }
    out
}

/// Host pids whose command line mentions `needle`.
pub fn host_pids_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            if String::from_utf8_lossy(&cmd)
                .replace('\0', " ")
                .contains(needle)
            {
                out.push(pid);
            }
        }
    }
    out
}
