//! runtime: turns an OCI runtime bundle (config.json + rootfs) into a running,
//! isolated process, and manages it afterwards (state, kill, pause, exec, delete).
//!
//! It must not know about images, VMs or any command line: the `isola-runtime`
//! binary, the engine's process backend and the guest agent all call it.
//!
//! Processes are made with fork(2): call [`Container::create`] and
//! [`Container::exec`] from a process that has not started other threads yet
//! (or accept that only the calling thread exists in the child).
//!
//! Public contract (other crates are written against it; change it only with care):
//! - [`CreateOptions`] / [`Container::create`]: parse and validate the bundle, fork the
//!   container init into its namespaces, set up rootfs, mounts, devices, cgroups, run the
//!   createRuntime/createContainer hooks, and leave the init blocked until `start`.
//!   Returns once the container is in state `created`. The caller is the init's parent.
//! - [`Container::load`] / [`Container::list`]: read state from `<root>/<id>/state.json`.
//! - [`Container::start`], [`Container::kill`], [`Container::pause`], [`Container::resume`],
//!   [`Container::delete`], [`Container::processes`], [`Container::exec`],
//!   [`Container::oci_state`] (the runtime-spec state JSON).
//! - Also: [`Container::create_no_pivot`] (MS_MOVE + chroot, for a ramfs root such as
//!   the guest's initramfs), [`Container::update`] (cgroup limits), [`Container::spec`].
//! - [`rootfile::read`]: reads a file a container controls (its /etc/passwd) from the
//!   host side: resolved inside the rootfs, a regular file only, with a size limit.
//!
//! How a container is made (create.rs drives it, init.rs runs in the children):
//! the caller forks an intermediate child, which moves itself into the cgroup, joins
//! namespaces by path and unshares the new ones (user first; the caller writes its
//! id maps). The intermediate clones the init with CLONE_PARENT, so the init is the
//! caller's child, reports its pid and exits. The init sets up the rootfs
//! (rootfs.rs, mounts.rs, cgroupfs.rs, devices.rs), has the caller run the
//! prestart/createRuntime hooks, pivots, sets up the process (process.rs,
//! console.rs), reports Ready and blocks opening `<root>/<id>/exec.fifo` for
//! writing until `start` opens it for reading; then it runs the startContainer
//! hooks, installs seccomp and execs. Messages go over one SOCK_SEQPACKET pair
//! (sync.rs); raw system calls live in sys.rs.

pub mod cgroups;
pub mod seccomp;

mod cgroupfs;
mod console;
mod container;
mod create;
mod devices;
pub mod error;
mod exec;
pub mod hooks;
mod init;
mod mempolicy;
mod mounts;
mod process;
pub mod rootfile;
mod rootfs;
pub mod spec;
mod state;
mod sync;
mod sys;

pub use container::{
    Console, Container, CreateOptions, Created, ExecOptions, Executed, Status, Stdio3,
};
pub use error::{chain as error_chain, Error};
pub use spec::SpecError;
pub use state::private_dir;

/// The runtime's record keeping, for a caller that keeps containers of its
/// own beside the runtime's under the same root (isola-runtime's VM mode):
/// the same id rules, atomic writes, locks, pid files and liveness checks.
pub mod records {
    pub use crate::create::{validate_id, write_pid_file};
    pub use crate::state::{is_alive, lock, now_ns, proc_stat, write_atomic, Lock, ProcStat};
    pub use crate::sys::{recv_with_fds, send_with_fds};
}

/// Marks every descriptor >= `from` close-on-exec (close_range(2), or fcntl
/// up to the fd limit on older kernels). Async-signal-safe: the engine and
/// the vm crate call it between fork and exec of the processes they start,
/// so that only the descriptors they place survive.
pub fn close_on_exec_from(from: std::os::fd::RawFd) -> Result<(), nix::errno::Errno> {
    sys::cloexec_from(from)
}

impl Container {
    /// Runs `process` in this container (joins its namespaces and cgroup);
    /// the caller becomes its parent and must reap it.
    pub fn exec(
        &self,
        process: &oci_spec::runtime::Process,
        opts: ExecOptions,
    ) -> Result<Executed, Error> {
        exec::exec(self, process, opts)
    }
}
