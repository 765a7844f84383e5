//! vm: isola's utility VM, one per `--isolation=vm` container. It finds the
//! guest kernel and the static agent ([`kernel`]), writes the initramfs
//! ([`initramfs`]), picks KVM or TCG ([`accel`]), builds QEMU's command line
//! ([`cmdline`]), runs and cleans up after QEMU ([`vmm`]), starts VMs from
//! saved template VMs ([`template`]) and speaks the agent protocol from the
//! host ([`client`]). It knows nothing of images or the
//! engine's state; the engine's VM backend drives it.
//!
//! ```no_run
//! # fn main() -> Result<(), vm::Error> {
//! use std::path::Path;
//! let kernel = vm::GuestKernel::locate(None)?;
//! let agent = vm::AgentBinary::locate(None)?;
//! let cfg = vm::VmConfig::new("web", "3f9a2c1b", kernel, agent, Path::new("/snap/rootfs"), Path::new("/run/isola/vm/3f9a2c1b"));
//! let mut vm = vm::Vm::boot(&cfg)?;
//! let spec: oci_spec::runtime::Spec = serde_json::from_str("{}").unwrap();
//! let (_pid, io) = vm.client().create_container("3f9a2c1b", &spec, vm::GUEST_ROOTFS, false)?;
//! vm.client().start("3f9a2c1b")?;
//! let code = io.wait()?;
//! vm.shutdown(std::time::Duration::from_secs(10));
//! # let _ = code; Ok(()) }
//! ```

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod accel;
pub mod client;
pub mod cmdline;
pub mod console;
pub mod emulator;
mod error;
pub mod guest_spec;
pub mod host_cgroup;
pub mod initramfs;
pub mod jail;
pub mod kernel;
pub mod stdio;
mod sys;
pub mod template;
pub mod vmm;

pub use accel::{Accel, AccelChoice};
pub use client::{AgentClient, Collected, ExitWatch, Malformed, Output, ProcessInput, ProcessIo};
pub use cmdline::Share;
pub use error::Error;
pub use jail::JailUser;
pub use kernel::{AgentBinary, GuestKernel};
pub use proto::{share_path, ContainerStats, ProcessInfo, GUEST_ROOTFS};
pub use vmm::{Nic, Rootfs, Vm, VmConfig};

#[cfg(test)]
mod tests {
    /// The engine's monitor moves these between threads.
    #[test]
    fn handles_are_send() {
        fn send<T: Send>() {}
        send::<super::Vm>();
        send::<super::AgentClient>();
        send::<super::ProcessIo>();
        fn sync<T: Sync>() {}
        sync::<super::AgentClient>();
    }
}
