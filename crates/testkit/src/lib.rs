//! Test fixtures shared by isola's end-to-end tests. Everything here is real:
//! the rootfs is Debian's `busybox-static` binary with its applet links.
//! Nothing in this crate is used outside tests.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's busybox-static puts its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Writes a minimal busybox root filesystem into `dir` (which must exist):
/// `/bin/busybox`, a link per applet, `/etc/passwd` and `/etc/group`
/// with root and nobody, and the empty directories a container expects.
pub fn write_busybox_rootfs(dir: &Path) {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: install Debian's busybox-static (make test does)"
    );
    write_busybox_rootfs_of(dir, Path::new(BUSYBOX));
}

/// Where `scripts/setup.sh` unpacks Debian's arm64 `busybox-static`: the
/// foreign-architecture image of the tests.
pub const BUSYBOX_ARM64: &str = "/var/cache/isola/fixtures/busybox-arm64/bin/busybox";

/// An uncompressed tar of a busybox root filesystem made of the arm64
/// busybox, or why there is none ([`require`] takes it).
pub fn busybox_arm64_layer_tar() -> Result<Vec<u8>, String> {
    if !Path::new(BUSYBOX_ARM64).exists() {
        return Err(format!(
            "{BUSYBOX_ARM64} (Debian's busybox-static:arm64; scripts/setup.sh fetches it)"
        ));
    }
    let root = tempfile::Builder::new()
        .prefix("isola-busybox-arm64-")
        .tempdir()
        .unwrap();
    write_busybox_rootfs_of(root.path(), Path::new(BUSYBOX_ARM64));
    Ok(oci::layer_tar_of(root.path()))
}

/// [`write_busybox_rootfs`] with the busybox binary `busybox` (of any
/// architecture: its applets are listed by the host's busybox).
fn write_busybox_rootfs_of(dir: &Path, busybox: &Path) {
    for d in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "home",
    ] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    let out = Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let link = dir.join("bin").join(applet);
        if applet != "busybox" && !link.exists() {
            symlink("busybox", &link).unwrap();
        }
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    )
    .unwrap();
    fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// A temporary OCI bundle: `rootfs/` holding busybox and a `config.json`
/// made by the caller. Removed on drop.
pub struct Bundle {
    pub dir: tempfile::TempDir,
}

impl Bundle {
    /// A bundle with a busybox rootfs and the given config.json value.
    pub fn new(config: &serde_json::Value) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("isola-bundle-")
            .tempdir()
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir(&rootfs).unwrap();
        write_busybox_rootfs(&rootfs);
        let b = Bundle { dir };
        b.write_config(config);
        b
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn write_config(&self, config: &serde_json::Value) {
        fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
    }
}

/// The guest agent, statically linked (debug build), built once per test
/// process by crates/agent/build-static.sh (cargo makes it a no-op when it
/// is fresh), so that a clean clone's `make test` has it.
pub fn static_agent() -> &'static Path {
    static AGENT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/build-static.sh");
        let out = Command::new(&script)
            .arg("--debug")
            .env("CARGO", env!("CARGO"))
            .output()
            .expect("run crates/agent/build-static.sh");
        assert!(
            out.status.success(),
            "building the static agent failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// The escape probe (`probe/escape-probe.c`), a static binary the escape
/// tests run inside containers: each subcommand makes one call and prints
/// `ok` or `errno=<NAME>`. Built once per source version with
/// `cc -static -O2` and cached in the temp directory, alone in its directory
/// so that a test can mount that directory as a volume (`-v dir:/probe:ro`),
/// in process and in VM mode.
pub fn escape_probe() -> &'static Path {
    static PROBE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROBE.get_or_init(|| {
        const SOURCE: &str = include_str!("../probe/escape-probe.c");
        let digest = sha256_digest(SOURCE.as_bytes());
        let dir = std::env::temp_dir().join(format!("isola-escape-probe-{}", &digest[7..19]));
        let probe = dir.join("escape-probe");
        if probe.exists() {
            return probe;
        }
        fs::create_dir_all(&dir).unwrap();
        // Built beside the directory and renamed in, so that parallel test
        // processes never run half a binary.
        let work = tempfile::Builder::new()
            .prefix("isola-escape-probe-build-")
            .tempdir()
            .unwrap();
        let source = work.path().join("escape-probe.c");
        let binary = work.path().join("escape-probe");
        fs::write(&source, SOURCE).unwrap();
        let out = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&binary)
            .arg(&source)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run cc to build the escape probe ({e}): install build-essential (make test does)")
            });
        assert!(
            out.status.success(),
            "cc -static failed to build crates/testkit/probe/escape-probe.c (build-essential installs cc and the static C library): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let staged = dir.join(format!(".escape-probe.{}", std::process::id()));
        fs::copy(&binary, &staged).unwrap();
        fs::rename(&staged, &probe).unwrap();
        probe
    })
}

/// A minimal runtime-spec config.json for a container in a utility VM,
/// running `args` (root on the guest's rootfs share, read-only; proc, /dev,
/// devpts, /tmp, sysfs; pid, ipc, uts and mount namespaces; CAP_NET_RAW for
/// ping). The vm library's tests and its vm-run example use it.
pub fn vm_container_config(args: &[&str]) -> serde_json::Value {
    let caps = [
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_RAW",
    ];
    serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0}, "args": args, "cwd": "/",
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "isola-vm",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]}
    })
}

/// Whether a test may go on: `missing` is `None` when what it needs is
/// there, else what is missing (and how to get it). Outside CI the test
/// skips, saying why; with `CI` set it fails naming it, since CI installs
/// everything (`make test` runs scripts/setup.sh) and a skip there would
/// hide a broken set-up.
pub fn require(test: &str, missing: Option<String>) -> bool {
    let Some(missing) = missing else {
        return true;
    };
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test}: {missing} (CI is set: nothing may be skipped)");
    }
    eprintln!("SKIP {test}: {missing}");
    false
}

/// A unique, short name for a container, cgroup or image in one test run.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

mod oci;
pub use oci::{
    busybox_layer_tar, host_arch, oci_layout, sha256_digest, tar_dir, write_oci_layout, LayoutImage,
};

/// A runtime-spec config.json for a busybox bundle, shaped like `runc spec`'s
/// (proc, /dev tmpfs, devpts, shm, mqueue, sysfs, cgroup mounts; pid, ipc,
/// uts, mount and network namespaces; runc's three default capabilities;
/// masked and read-only /proc paths), without a terminal and with a writable
/// root, running `args`. Tests change fields of the returned value.
pub fn runtime_config(args: &[&str]) -> serde_json::Value {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "isola-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}
