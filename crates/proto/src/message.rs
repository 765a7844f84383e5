//! message: the control calls and their answers, carried as JSON in
//! Request/Response frames, and the small types stdio frames use.
//! Versioned by [`PROTOCOL_VERSION`]; `Hello` checks it first thing.

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; the host refuses an agent that differs.
pub const PROTOCOL_VERSION: u32 = 5;

/// Where the agent mounts the host's rootfs share in the guest.
pub const GUEST_ROOTFS: &str = "/run/isola/rootfs";
/// Where the agent mounts the 9p share `tag` (a `MountShare`): the guest path
/// a host puts in a spec as the bind source, before or after asking.
pub fn share_path(tag: &str) -> String {
    format!("/run/isola/shares/{tag}")
}

/// Where the guest finds the container's root filesystem, mounted at
/// [`GUEST_ROOTFS`] by the Init call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootfsSource {
    /// A host directory, over the 9p share tagged `rootfs`.
    #[default]
    Share,
    /// Two virtio-blk disks: the image, read-only (EROFS, serial
    /// [`IMAGE_DISK_SERIAL`]), and the container's writable layer (ext4,
    /// serial [`WRITABLE_DISK_SERIAL`], holding `upper/` and `work/`),
    /// overlaid in the guest.
    Disks,
}

/// The virtio-blk serial of the image disk ([`RootfsSource::Disks`]).
pub const IMAGE_DISK_SERIAL: &str = "isola-image";
/// The virtio-blk serial of the writable-layer disk ([`RootfsSource::Disks`]).
pub const WRITABLE_DISK_SERIAL: &str = "isola-writable";

/// A seccomp BPF program: the kernel's `sock_filter` array in bytes (the
/// guest's endianness) and the seccomp(2) flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledSeccomp {
    pub filter: Vec<u8>,
    pub flags: u64,
}

/// A host → guest control call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// First call on a connection: answered by [`Response::Hello`].
    Hello { version: u32 },
    /// Create a container from an OCI spec (config.json) whose rootfs is at
    /// `rootfs` inside the guest (the 9p share). Its init's stdio becomes `stream`.
    /// Answered by [`Response::Created`] once the container is in state `created`.
    CreateContainer {
        id: String,
        spec: Box<oci_spec::runtime::Spec>,
        rootfs: String,
        terminal: bool,
        stream: u32,
        /// The spec's linux.seccomp compiled by the host (natively, where the
        /// guest would run libseccomp emulated); absent, the guest compiles it.
        #[serde(default)]
        seccomp: Option<CompiledSeccomp>,
    },
    /// Second call, once per VM: make the guest ready for containers. Mix
    /// `entropy` into the guest's random pool and reseed it, set the clock to
    /// `unix_time_ns`, mount the rootfs share at [`GUEST_ROOTFS`]. A VM started
    /// from a template gets here with the template's random state and clock,
    /// so this is what makes each one its own. Answered by `Ok`.
    Init {
        entropy: Vec<u8>,
        unix_time_ns: u64,
        /// Where the container's root filesystem comes from.
        #[serde(default)]
        rootfs: RootfsSource,
    },
    /// Release the created container's init.
    Start { container: String },
    /// Run another process in a running container; its stdio becomes `stream`.
    /// Answered by [`Response::Executed`].
    Exec {
        container: String,
        process: Box<oci_spec::runtime::Process>,
        terminal: bool,
        stream: u32,
    },
    /// Send `signal` to the process of `stream` if given, else to the
    /// container's init, or with `all` to every process of the container.
    Signal {
        container: String,
        stream: Option<u32>,
        signal: i32,
        all: bool,
    },
    /// Answered by [`Response::Exit`] when the process of `stream` has exited
    /// (at once if it already has).
    Wait { stream: u32 },
    /// The container's processes, as the guest sees them: [`Response::Processes`].
    Top { container: String },
    /// The container's cgroup figures inside the guest: [`Response::Stats`].
    Stats { container: String },
    /// Changes the container's cgroup limits in the guest, as `runc update`
    /// does on a host: answered by [`Response::Ok`].
    Update {
        container: String,
        resources: Box<oci_spec::runtime::LinuxResources>,
    },
    /// Mount the host's 9p share `tag` (a volume) in the guest, at
    /// `/run/isola/shares/<tag>`: answered by [`Response::Mounted`]. Idempotent.
    MountShare { tag: String, read_only: bool },
    /// Configure the guest's NIC with the container's MAC (a VM restored
    /// from a template has the template's), its address on its network and
    /// the default route: answered by [`Response::Ok`].
    Network {
        mac: String,
        address: std::net::Ipv4Addr,
        prefix_len: u8,
        gateway: Option<std::net::Ipv4Addr>,
        mtu: u32,
    },
    /// Register a foreign-architecture emulator with the guest's
    /// binfmt_misc: the share `tag` (holding it, read-only) is mounted
    /// first, then `line` goes to `register` (its interpreter path lies in
    /// that share). Answered by [`Response::Ok`]; idempotent.
    RegisterBinfmt { tag: String, line: String },
    /// Sync filesystems and power the VM off (after answering Ok).
    Shutdown,
}

/// A guest → host answer, one per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Hello {
        version: u32,
        kernel_release: String,
        /// Guest uptime in ms when the agent began serving: how long the
        /// guest took to boot (kept out of the console, whose every byte is
        /// a trap to QEMU).
        #[serde(default)]
        serving_at_ms: u64,
    },
    Ok,
    /// `pid` is the container init's pid in the guest.
    Created {
        pid: i32,
    },
    Executed {
        pid: i32,
    },
    Exit {
        code: i32,
    },
    /// Where a share is mounted in the guest (use it as a bind mount source).
    Mounted {
        path: String,
    },
    Processes {
        processes: Vec<ProcessInfo>,
    },
    Stats {
        stats: ContainerStats,
    },
    /// The call failed; `message` is the whole error chain, one cause per `: `.
    Error {
        message: String,
    },
}

/// One process in the guest, as `top` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    /// Command line, arguments joined by spaces (the comm in brackets for kernel threads).
    pub command: String,
}

/// Resource figures of one container inside the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    pub cpu_usage_ns: u64,
    pub memory_usage_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
    pub pids_current: u64,
    /// The guest's MemTotal and MemAvailable (/proc/meminfo), in bytes.
    pub guest_memory_total_bytes: u64,
    pub guest_memory_available_bytes: u64,
}

/// Terminal size carried by a Resize frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

/// Which stdio stream an Eof frame closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StdioFd {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
}

impl StdioFd {
    pub fn from_byte(b: u8) -> Option<StdioFd> {
        match b {
            0 => Some(StdioFd::Stdin),
            1 => Some(StdioFd::Stdout),
            2 => Some(StdioFd::Stderr),
            _ => None,
        }
    }
}
