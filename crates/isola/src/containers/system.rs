//! `info` and `version`: what this host offers and which isola this is.

use engine::Engine;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Output format: text (default) or json.
    #[arg(short, long, default_value = "text")]
    pub format: String,
}

pub fn info(engine: &Engine, args: InfoArgs) -> anyhow::Result<u8> {
    let host = engine::info::host_info(engine.root());
    let containers = engine.list()?;
    let count =
        |s: engine::state::Status| containers.iter().filter(|c| c.state.status == s).count();
    let images = image::store::Store::open(engine.root())
        .and_then(|s| s.list())
        .map(|l| l.len())
        .unwrap_or(0);
    if args.format == "json" {
        let mut v = serde_json::to_value(&host)?;
        v["Containers"] = serde_json::json!(containers.len());
        v["Images"] = serde_json::json!(images);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if args.format != "text" {
        anyhow::bail!("invalid --format {:?}: expected text or json", args.format);
    }
    use engine::state::Status::*;
    println!("Containers: {}", containers.len());
    println!(" Running: {}", count(Running));
    println!(" Paused: {}", count(Paused));
    println!(" Stopped: {}", count(Exited) + count(Created) + count(Dead));
    println!("Images: {images}");
    println!("Server Version: {}", env!("CARGO_PKG_VERSION"));
    println!("Storage Root: {}", host.storage_root.display());
    println!("Cgroup Driver: cgroupfs");
    println!("Cgroup Version: {}", host.cgroup_version);
    match host.default_isolation {
        Some(m) => println!("Default Isolation: {m} ({})", host.default_isolation_source),
        None => println!(
            "Default Isolation: unknown ({})",
            host.default_isolation_source
        ),
    }
    println!("Isolation Modes:");
    println!(" process: available (namespaces, cgroups, capabilities on the host kernel)");
    println!(" vm: a utility VM per container, with its own guest kernel (alias hyperv)");
    println!(
        "VM Acceleration: {} ({})",
        host.vm_acceleration.mode, host.vm_acceleration.reason
    );
    let vm = &host.vm;
    println!("VM Kernel: {}", vm.kernel);
    println!("VM QEMU: {}", vm.qemu);
    println!("VM Agent: {}", vm.agent);
    println!("VM Template: {}", vm.template);
    println!(
        "VM Defaults: {} MiB guest memory without --memory, else --memory + {} MiB overhead (--memory at least {} MiB); {} vCPU without --cpus; QEMU host overhead {} MiB",
        vm.default_memory_mib,
        vm.memory_overhead_mib,
        vm.minimum_memory_mib,
        vm.default_cpus,
        vm.qemu_host_overhead_mib
    );
    println!(
        "VM Architectures: {} (others under Debian's qemu-user-static, inside the VM)",
        vm.architectures.join(", ")
    );
    let jail = &vm.jail;
    println!(
        "VM Worker Jail: user {}; own {} namespaces; capabilities {}; no_new_privs; {}; nofile {}; pids {}; memory: {}",
        jail.user,
        jail.namespaces.join(", "),
        jail.capabilities.join(", "),
        jail.seccomp,
        jail.nofile,
        jail.pids_limit,
        jail.memory_limit
    );
    println!("VM Worker Root: {}", jail.root);
    println!("VM Shares: {}", jail.shares);
    println!("Kernel Version: {}", host.kernel_version);
    println!("Operating System: {}", host.operating_system);
    println!(
        "Architecture: {} ({})",
        host.architecture, host.oci_platform
    );
    println!("CPUs: {}", host.cpus);
    println!(
        "Total Memory: {}",
        engine::units::human_bytes(host.memory_bytes)
    );
    Ok(0)
}

pub fn version() -> anyhow::Result<u8> {
    let (os, arch, _) = engine::isolation::host_platform();
    println!("Version:    {}", env!("CARGO_PKG_VERSION"));
    println!("OS/Arch:    {os}/{arch}");
    println!("Runtime:    isola runtime library (built in)");
    println!("Isolation:  process, vm (hyperv)");
    Ok(0)
}
