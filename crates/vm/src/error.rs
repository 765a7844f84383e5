//! error: everything the vm library can report. Each variant says what
//! failed, on what, and (for what a user can fix) how to fix it.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no guest kernel found (looked at {}): build it with scripts/guest-kernel.sh (make setup does), or point vm.kernel / --vm-kernel at a bzImage", looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    KernelMissing { looked: Vec<PathBuf> },
    #[error("guest kernel {path} does not exist (check vm.kernel / --vm-kernel, or build one with scripts/guest-kernel.sh)")]
    KernelNotFound { path: PathBuf },
    #[error("QEMU ({binary}) is not installed: apt-get install qemu-system-x86")]
    QemuMissing { binary: String },
    #[error("the guest agent binary was not found (looked at {}): build it statically with RUSTFLAGS=\"-C target-feature=+crt-static\" LIBSECCOMP_LINK_TYPE=static cargo build -p agent --target x86_64-unknown-linux-gnu", looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    AgentMissing { looked: Vec<PathBuf> },
    #[error("the guest agent {path} is not a statically linked ELF ({reason}); rebuild it with RUSTFLAGS=\"-C target-feature=+crt-static\" LIBSECCOMP_LINK_TYPE=static --target x86_64-unknown-linux-gnu")]
    AgentNotStatic { path: PathBuf, reason: String },
    #[error("vm.accel = kvm, but KVM is not usable here: {reason} (use vm.accel = auto or tcg)")]
    KvmUnusable { reason: String },
    #[error("invalid vm.accel {value:?}: expected auto, kvm or tcg")]
    InvalidAccel { value: String },
    #[error("memory limit of {requested_mib} MiB is below the minimum of {minimum_mib} MiB for a VM container")]
    MemoryTooSmall {
        requested_mib: u64,
        minimum_mib: u64,
    },
    #[error("invalid share tag {tag:?}: use 1-31 of A-Z a-z 0-9 - _ (and not \"rootfs\")")]
    InvalidShareTag { tag: String },
    #[error("{path} is on a filesystem without user extended attributes (tmpfs before Linux 6.6): a writable volume or bind in a VM container needs them, so that the guest's owners, modes and device nodes stay off the host's files; mount it read-only (:ro) or use a directory on ext4, xfs or btrfs")]
    ShareWithoutXattrs { path: PathBuf },
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {binary}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot put QEMU (pid {pid}) in host cgroup {path}")]
    Cgroup {
        pid: u32,
        path: String,
        #[source]
        source: runtime::cgroups::Error,
    },
    #[error("no emulator for {arch} images: VM mode runs them with Debian's {package} (scripts/setup.sh unpacks it into /var/cache/isola/qemu-user without registering it on the host; or apt-get install {package})")]
    EmulatorMissing { arch: String, package: &'static str },
    #[error("cannot jail QEMU: {step}")]
    Jail {
        step: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make the system user {user:?} that QEMU runs as: {message}")]
    JailUser { user: String, message: String },
    #[error("the VM exited unexpectedly ({status}): see {console}")]
    VmExited { status: String, console: PathBuf },
    #[error(
        "the guest agent sent a malformed frame ({what}), so its channel was closed: see {console}"
    )]
    Malformed {
        what: crate::client::Malformed,
        console: PathBuf,
    },
    #[error("the guest agent did not answer within {waited:?}; the VM was killed: see {console}")]
    BootTimeout { waited: Duration, console: PathBuf },
    #[error("the guest agent speaks protocol version {guest}, this host {host}: rebuild the agent with this isola")]
    VersionMismatch { host: u32, guest: u32 },
    #[error("the guest agent failed to {call}: {message}")]
    Agent { call: &'static str, message: String },
    #[error("the guest agent answered {call} with an unexpected {got}")]
    UnexpectedResponse { call: &'static str, got: String },
    #[error("compiling the container's seccomp profile")]
    Seccomp {
        #[source]
        source: runtime::seccomp::Error,
    },
    #[error("VM template: cannot {step}: {message}")]
    Template { step: String, message: String },
    #[error("the channel to the guest agent broke")]
    Channel {
        #[source]
        source: proto::FrameError,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
