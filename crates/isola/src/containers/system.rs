//! `info` and `version`: what this host offers and which isola this is.

use engine::Engine;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Output format: text (default), json, or a Go template over
    /// docker's info fields (e.g. '{{.ServerVersion}} {{.Isolation}}').
    #[arg(short, long, default_value = "text")]
    pub format: String,
}

#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Output format: text (default), json, or a Go template over
    /// docker's fields (e.g. '{{.Server.Version}}').
    #[arg(short, long, default_value = "text")]
    pub format: String,
}

/// Prints `v` as a non-text `--format` asks: JSON on one line, or a template.
fn print_formatted(format: &str, v: &serde_json::Value) -> anyhow::Result<()> {
    match crate::format::Format::parse(format) {
        crate::format::Format::Template { template, .. } => {
            println!("{}", crate::format::render(&template, v)?)
        }
        _ => println!("{v}"),
    }
    Ok(())
}

pub fn info(engine: &Engine, args: InfoArgs) -> anyhow::Result<u8> {
    if !matches!(args.format.as_str(), "text" | "" | "table") {
        print_formatted(&args.format, &engine::inspect::system_info(engine)?)?;
        return Ok(0);
    }
    let host = engine::info::host_info(engine.root());
    let containers = engine.list()?;
    let count =
        |s: engine::state::Status| containers.iter().filter(|c| c.state.status == s).count();
    let images = image::store::Store::open(engine.root())
        .and_then(|s| s.list())
        .map(|l| l.len())
        .unwrap_or(0);
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
    println!("VM Rootfs: {}", vm.rootfs);
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

pub fn version(args: VersionArgs) -> anyhow::Result<u8> {
    let (os, arch, _) = engine::isolation::host_platform();
    if !matches!(args.format.as_str(), "text" | "" | "table") {
        // docker's: the client's facts and the server's (here one program).
        let v = serde_json::json!({
            "Client": {
                "Platform": {"Name": "isola"},
                "Version": env!("CARGO_PKG_VERSION"),
                "ApiVersion": api::API_VERSION,
                "DefaultAPIVersion": api::API_VERSION,
                "GitCommit": "",
                "GoVersion": "",
                "Os": os,
                "Arch": arch,
                "BuildTime": "",
                "Context": "default",
            },
            "Server": engine::inspect::server_version(api::API_VERSION, api::MIN_API_VERSION),
        });
        print_formatted(&args.format, &v)?;
        return Ok(0);
    }
    println!("Version:    {}", env!("CARGO_PKG_VERSION"));
    println!("OS/Arch:    {os}/{arch}");
    println!("Runtime:    isola runtime library (built in)");
    println!("Isolation:  process, vm (hyperv)");
    Ok(0)
}
