//! backend: the one interface between the engine and an isolation mode.
//! Everything above it (lifecycle, monitor, CLI) is mode-blind: it calls
//! [`Backend`] through [`open`]. The process backend (namespaces and cgroups on
//! the host, over the `runtime` library) and the VM backend (a utility VM per
//! container, over the `vm` library) are here. Backends do not touch the
//! engine's records; they only act on the isolated process.

pub mod process;
pub mod vm;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::isolation::Isolation;
use crate::state::{ContainerConfig, Limits};

/// Errors from an isolation backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("VM isolation cannot be used on this host")]
    VmUnavailable {
        #[source]
        source: Box<::vm::Error>,
    },
    #[error("container {id}: a memory limit of {requested_mib} MiB is above its VM's {guest_mib} MiB (a VM's memory is set when the container is created)")]
    VmMemoryAbove {
        id: String,
        requested_mib: u64,
        guest_mib: u64,
    },
    #[error("invalid --memory for a VM container")]
    VmMemory {
        #[source]
        source: Box<::vm::Error>,
    },
    #[error("starting the utility VM of container {id}")]
    VmBoot {
        id: String,
        #[source]
        source: Box<::vm::Error>,
    },
    #[error("handing the files of container {id} to its VM")]
    VmRootfs {
        id: String,
        #[source]
        source: Box<image::store::Error>,
    },
    #[error("the guest agent of container {id} failed to {op}")]
    Agent {
        op: &'static str,
        id: String,
        #[source]
        source: Box<::vm::Error>,
    },
    #[error("ps options ({options}) select host processes, and container {short} runs in a VM: use isola exec {short} ps {options}")]
    TopOptions { short: String, options: String },
    #[error("VM settings")]
    VmSettings {
        #[source]
        source: Box<vm::settings::SettingsError>,
    },
    #[error("container {id}: {message}")]
    VmFault { id: String, message: String },
    #[error("talking to the VM of container {id} through {path}")]
    VmControl {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the VM of container {id} refused the request: {message}")]
    VmRefused { id: String, message: String },
    #[error("runtime: {op} container {id}")]
    Runtime {
        op: &'static str,
        id: String,
        #[source]
        source: Box<runtime::Error>,
    },
    #[error("container {id} is not running")]
    NotRunning { id: String },
    #[error("running {command}")]
    Command {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    CommandFailed { command: String, stderr: String },
    #[error("connecting the VM of container {id} to its network")]
    VmNetwork {
        id: String,
        #[source]
        source: Box<network::Error>,
    },
    #[error("bringing up lo in the network namespace of container {id}")]
    Loopback {
        id: String,
        #[source]
        source: network::Error,
    },
    #[error("waiting for process {pid}")]
    Wait {
        pid: i32,
        #[source]
        source: nix::Error,
    },
    #[error("reading cgroup statistics of container {id}")]
    Stats {
        id: String,
        #[source]
        source: Box<runtime::cgroups::Error>,
    },
}

/// The container's stdio: three fds the backend makes its 0, 1 and 2, or a
/// terminal whose master the backend returns.
#[derive(Debug)]
pub enum ContainerIo {
    Pipes {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Terminal,
}

/// A created, not yet started container.
pub struct CreatedContainer {
    /// The host process that stands for the container (the container init in
    /// process mode, the VM worker in vm mode): `ps` and `inspect` show it,
    /// and the engine's truth check watches it. A child of the caller.
    pub pid: i32,
    /// The terminal master with [`ContainerIo::Terminal`].
    pub console: Option<OwnedFd>,
    /// Waits until the container's main process exits; returns its exit
    /// code (128+signal if killed). Called once, from the caller's process.
    pub wait: Box<dyn FnOnce() -> Result<i32, BackendError> + Send>,
}

/// A process started by [`Backend::exec`].
pub struct ExecutedProcess {
    /// The process's host pid (process mode); `None` in a VM, where it
    /// has only a guest pid.
    pub pid: Option<i32>,
    pub console: Option<OwnedFd>,
    /// Waits for the process; returns its exit code (128+signal if killed).
    pub wait: Box<dyn FnOnce() -> Result<i32, BackendError> + Send>,
}

/// `top`: column titles and one row per process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// Resource usage of a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Usage {
    /// Total CPU time, nanoseconds.
    pub cpu_ns: u64,
    pub memory_bytes: u64,
    /// The memory limit (the host's memory when unlimited).
    pub memory_limit: u64,
    pub pids: u64,
    /// VM mode: the VM worker (QEMU) on the host, CPU time in nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_cpu_ns: Option<u64>,
    /// VM mode: the VM worker's resident memory on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_memory_bytes: Option<u64>,
}

/// Where the engine keeps what a backend needs between calls.
#[derive(Debug, Clone)]
pub struct BackendPaths {
    /// The engine root (`--root`).
    pub root: PathBuf,
}

/// One isolation mode. Implementations must be usable from a fresh process
/// for every call (the CLI and the monitor are separate processes): all state
/// lives on disk.
pub trait Backend: Send + Sync {
    fn isolation(&self) -> Isolation;
    /// Checks, before anything is written, that a container with these
    /// limits can run in this mode on this host (VM mode: kernel, QEMU,
    /// agent, memory minimum).
    fn preflight(&self, _limits: &Limits) -> Result<(), BackendError> {
        Ok(())
    }
    /// Creates the isolated container from its bundle, init blocked until
    /// [`Backend::start`], with what the config asks of its network (with
    /// `none`, a loopback interface that is up). Must be called before the
    /// caller starts threads.
    fn create(
        &self,
        config: &ContainerConfig,
        bundle: &Path,
        io: ContainerIo,
    ) -> Result<CreatedContainer, BackendError>;
    fn start(&self, id: &str) -> Result<(), BackendError>;
    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), BackendError>;
    fn pause(&self, id: &str) -> Result<(), BackendError>;
    fn resume(&self, id: &str) -> Result<(), BackendError>;
    /// Gives the running container of `config` the cgroup limits in `resources`.
    fn update(
        &self,
        config: &ContainerConfig,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), BackendError>;
    /// Starts `process` in the running container; stdio `None` inherits the
    /// caller's. The caller becomes responsible for waiting.
    fn exec(
        &self,
        id: &str,
        process: &oci_spec::runtime::Process,
        io: Option<ContainerIo>,
        tty: bool,
    ) -> Result<ExecutedProcess, BackendError>;
    /// The container's processes in `ps` form; `ps_args` are extra `ps` options.
    fn top(&self, id: &str, ps_args: &[String]) -> Result<Top, BackendError>;
    fn usage(&self, id: &str) -> Result<Usage, BackendError>;
    /// Removes what the backend holds for the container (runtime state,
    /// cgroups); `force` kills what still runs. Gone already is not an error.
    fn delete(&self, id: &str, force: bool) -> Result<(), BackendError>;
}

/// The backend for `mode`.
pub fn open(mode: Isolation, paths: &BackendPaths) -> Result<Box<dyn Backend>, BackendError> {
    match mode {
        Isolation::Process => Ok(Box::new(process::ProcessBackend::new(paths))),
        Isolation::Vm => Ok(Box::new(vm::VmBackend::new(paths))),
    }
}

/// The exit code of a wait status, the shell's way: the code, or 128+signal.
pub fn exit_code(status: nix::sys::wait::WaitStatus) -> Option<i32> {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Waits for a child process; returns its exit code.
pub fn wait_child(pid: i32) -> Result<i32, BackendError> {
    loop {
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(status) => {
                if let Some(code) = exit_code(status) {
                    return Ok(code);
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(source) => return Err(BackendError::Wait { pid, source }),
        }
    }
}
