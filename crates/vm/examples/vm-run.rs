//! vm-run: boots one utility VM on a rootfs directory, runs a command in a
//! container inside it and prints its output and exit code: the vm library
//! end to end without the engine (bench/vm.sh times it).
//!
//!   cargo run -p vm --example vm-run -- --rootfs /path/to/rootfs -- uname -r
//!   vm-run --rootfs DIR --idle 30 -- sleep 1000   # stays up: measure its PSS

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Host directory holding the container's root filesystem.
    #[arg(long)]
    rootfs: PathBuf,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 128)]
    memory: u64,
    /// auto, kvm or tcg.
    #[arg(long, default_value = "auto")]
    accel: String,
    /// TCG translation cache in MiB.
    #[arg(long, default_value_t = vm::accel::DEFAULT_TB_SIZE_MIB)]
    tb_size: u32,
    /// Print QEMU's pid, stay up this many seconds after start, then stop the VM.
    #[arg(long)]
    idle: Option<u64>,
    /// Keep console.log and qemu.log in this directory (default: a temporary one, removed).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Leave QEMU in the caller's cgroup (no host cgroup with a memory limit).
    #[arg(long)]
    no_host_cgroup: bool,
    /// Boot the kernel rather than start from a saved template VM.
    #[arg(long)]
    no_template: bool,
    /// Print phase timings on stderr.
    #[arg(long)]
    timings: bool,
    /// The command to run in the container.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn spec(args: &[String]) -> Result<oci_spec::runtime::Spec> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(serde_json::from_value(testkit::vm_container_config(&args))?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let t0 = Instant::now();
    let id = format!("vmrun{}", std::process::id());
    let keep = args.run_dir.is_some();
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("isola-{id}")));
    let mut cfg = vm::VmConfig::new(
        &id,
        &id,
        vm::GuestKernel::locate(None)?,
        vm::AgentBinary::locate(None)?,
        &args.rootfs,
        &run_dir,
    );
    cfg.memory_mib = args.memory;
    cfg.accel = args.accel.parse()?;
    cfg.tb_size_mib = args.tb_size;
    cfg.host_cgroup = !args.no_host_cgroup;
    if args.no_template {
        cfg.template_dir = None;
    }
    let mut vm = vm::Vm::boot(&cfg)?;
    let booted = t0.elapsed();
    let serving_at = vm.agent_serving_at();
    let (_pid, io) = vm
        .client()
        .create_container(&id, &spec(&args.command)?, vm::GUEST_ROOTFS, false)
        .context("create the container")?;
    vm.client().start(&id)?;
    let started = t0.elapsed();
    if let Some(secs) = args.idle {
        println!("{}", vm.pid());
        std::io::stdout().flush()?;
        std::thread::sleep(Duration::from_secs(secs));
        vm.shutdown(Duration::from_secs(10));
        if !keep {
            let _ = std::fs::remove_dir_all(&run_dir);
        }
        return Ok(());
    }
    let out = io.collect()?;
    let exited = t0.elapsed();
    vm.shutdown(Duration::from_secs(10));
    let stopped = t0.elapsed();
    std::io::stdout().write_all(&out.stdout)?;
    std::io::stderr().write_all(&out.stderr)?;
    if args.timings {
        eprintln!("vm-run: booted {booted:?}, started {started:?}, exited {exited:?}, powered off {stopped:?}");
        eprintln!(
            "vm-run: the agent was serving at {:.2} s of guest uptime",
            serving_at.as_secs_f64()
        );
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    std::process::exit(out.code);
}
