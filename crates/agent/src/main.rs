//! agent: PID 1 of isola's utility VM. Prepares the guest (guest.rs), opens
//! the virtio-serial port the host listens on and serves the proto protocol
//! (serve.rs), running containers with the runtime library (containers.rs).
//! When the container's main process has exited and the host has its exit
//! code, it syncs and powers the VM off; on any fatal error it prints the
//! cause on the console (the host's console.log) and powers off too.

mod containers;
mod guest;
mod procs;
mod serve;
mod sys;
mod top;

use std::fs::OpenOptions;
use std::time::Duration;

use anyhow::{Context, Result};

fn main() {
    if std::process::id() != 1 {
        eprintln!("isola-agent: this is the guest init of isola's utility VM; it runs as PID 1 inside the VM only");
        std::process::exit(2);
    }
    if let Err(e) = run() {
        eprintln!("isola-agent: fatal: {e:#}");
    }
    guest::unmount_rootfs();
    let err = sys::power_off();
    eprintln!("isola-agent: power off failed: {err}");
    // Returning from PID 1 panics the kernel, which (panic=-1, reboot=t) ends QEMU too.
}

fn run() -> Result<()> {
    guest::setup().context("prepare the guest")?;
    let port_path = guest::find_port(Duration::from_secs(10))?;
    let port = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&port_path)
        .with_context(|| format!("open {}", port_path.display()))?;
    let sigchld = sys::sigchld_pipe().context("install the SIGCHLD handler")?;
    // The boot time goes to the host in the Hello answer, not to the console:
    // under TCG every console byte is a trap to QEMU (a line costs ~10 ms).
    serve::Agent::new(port, sigchld, guest::uptime_ms()).run()
}
