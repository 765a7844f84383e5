//! inspect: containers, images, networks and volumes as docker's `inspect` shows them,
//! and the host as docker's `info` and `version` show it, one
//! shape for both clients (the CLI prints it, the API service returns it).
//! Field names and types are docker's (the docker CLI decodes them into its
//! own types, so a field must never change type); isola's own facts are in
//! extra fields docker's readers ignore. Reads only.

use std::path::PathBuf;

use chrono::Utc;
use image::{Image, Reference};
use serde_json::{json, Value};

use crate::lifecycle::{Engine, Error};
use crate::networks::NetworkRecord;
use crate::state::Status;
use crate::store::ContainerRecord;

fn time(t: Option<chrono::DateTime<Utc>>) -> String {
    t.map(|t| crate::monitor::log::format_time(&t))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

/// docker-shaped inspect JSON of one container.
pub fn container(engine: &Engine, r: &ContainerRecord) -> Value {
    let c = &r.config;
    let s = &r.state;
    // A tmpfs mount over /dev/shm (`--shm-size` through the API) sets its
    // size; otherwise it is the engine's own (crate::spec's 64 MiB).
    let mount_size = |m: &crate::state::MountPoint| {
        m.options
            .iter()
            .find_map(|o| o.strip_prefix("size=")?.parse::<u64>().ok())
    };
    let shm_size = c
        .mounts
        .iter()
        .filter(|m| m.kind == "tmpfs" && m.destination == "/dev/shm")
        .find_map(mount_size)
        .unwrap_or(crate::spec::SHM_SIZE);
    let tmpfs: serde_json::Map<String, Value> = c
        .mounts
        .iter()
        .filter(|m| m.kind == "tmpfs" && m.destination != "/dev/shm")
        .map(|m| {
            let mut o = vec![if m.rw { "rw" } else { "ro" }.to_string()];
            o.extend(m.options.iter().cloned());
            (m.destination.clone(), json!(o.join(",")))
        })
        .collect();
    let host_config = json!({
        "Isolation": c.isolation.to_string(),
        "Privileged": c.privileged,
        "IpcMode": c.ipc_mode.as_ref().map_or("private".to_string(), |m| m.as_docker()),
        "PidMode": c.pid_mode.as_ref().map_or(String::new(), |m| m.as_docker()),
        "ShmSize": shm_size,
        "Tmpfs": tmpfs,
        "NetworkMode": c.network.as_docker(),
        "PortBindings": port_bindings(&c.network_options.ports),
        "Dns": c.network_options.dns,
        "DnsSearch": c.network_options.dns_search,
        "DnsOptions": c.network_options.dns_options,
        "ExtraHosts": c.network_options.extra_hosts.iter().map(|(h, ip)| format!("{h}:{ip}")).collect::<Vec<_>>(),
        "PublishAllPorts": c.network_options.publish_all,
        "Memory": c.limits.memory.unwrap_or(0),
        "MemorySwap": c.limits.memory_swap.unwrap_or(0),
        // docker keeps --cpus (NanoCpus) apart from --cpu-quota/--cpu-period.
        "NanoCpus": match c.limits.cpu_period {
            None => c.limits.cpu_quota.map(|q| q * 10_000).unwrap_or(0),
            Some(_) => 0,
        },
        "CpuQuota": match c.limits.cpu_period {
            Some(_) => c.limits.cpu_quota.map(|q| q as i64).unwrap_or(0),
            None => 0,
        },
        "CpuPeriod": c.limits.cpu_period.unwrap_or(0),
        "CpuShares": c.limits.cpu_shares.unwrap_or(0),
        "MemoryReservation": c.limits.memory_reservation.unwrap_or(0),
        "CpusetCpus": c.limits.cpuset_cpus.clone().unwrap_or_default(),
        "Ulimits": if c.ulimits.is_empty() { Value::Null } else { json!(c.ulimits) },
        "Sysctls": if c.sysctls.is_empty() { Value::Null } else { json!(c.sysctls) },
        "LogConfig": {
            "Type": c.log_config.driver,
            "Config": c.log_config.max_size.map(|n| ("max-size", n.to_string()))
                .into_iter()
                .chain(c.log_config.max_file.map(|n| ("max-file", n.to_string())))
                .collect::<std::collections::BTreeMap<_, _>>(),
        },
        "GroupAdd": if c.group_add.is_empty() { Value::Null } else { json!(c.group_add) },
        "Devices": c.devices.iter().map(|d| json!({
            "PathOnHost": d.path_on_host,
            "PathInContainer": d.path_in_container,
            "CgroupPermissions": "rwm",
        })).collect::<Vec<_>>(),
        "PidsLimit": c.limits.pids_limit,
        "RestartPolicy": c.restart_policy,
        "AutoRemove": c.auto_remove,
        "Init": c.init,
        "ReadonlyRootfs": c.read_only,
        "CapAdd": c.cap_add,
        "CapDrop": c.cap_drop,
        "SecurityOpt": c.security_opt,
        "CgroupParent": "/isola",
        // The monitor writes docker's json-file log (compose reads
        // this to know that `logs` can be asked for).
    });
    json!({
        "Id": c.id,
        "Created": crate::monitor::log::format_time(&c.created),
        "Path": c.args.first(),
        "Args": c.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": s.status.as_str(),
            "Running": matches!(s.status, Status::Running | Status::Paused),
            "Paused": s.status == Status::Paused,
            "Restarting": s.status == Status::Restarting,
            "Dead": s.status == Status::Dead,
            "Pid": s.init.map(|p| p.pid).unwrap_or(0),
            "ExitCode": s.exit_code.unwrap_or(0),
            "Error": s.error.clone().unwrap_or_default(),
            "StartedAt": time(s.started_at),
            "FinishedAt": time(s.finished_at),
            "MonitorPid": s.monitor.map(|p| p.pid).unwrap_or(0),
            "Health": s.health,
        },
        "Image": c.image_id,
        "ImageName": c.image,
        "Name": format!("/{}", c.name),
        "RestartCount": s.restart_count,
        "Isolation": c.isolation.to_string(),
        "ImagePlatform": c.platform,
        // The VM's own: its kernel is the host's architecture; another
        // image architecture runs under its emulator inside the VM.
        "VmArchitecture": match c.isolation {
            crate::isolation::Isolation::Vm => crate::isolation::host_platform().1,
            crate::isolation::Isolation::Process => String::new(),
        },
        "LogPath": r.dir.join(crate::monitor::log::LOG_FILE),
        "ConsoleLogPath": match c.isolation {
            crate::isolation::Isolation::Vm => r.dir.join(crate::backend::vm::CONSOLE_LOG).display().to_string(),
            crate::isolation::Isolation::Process => String::new(),
        },
        // The VM worker's jail, read live from /proc while it runs.
        "VmWorker": match (c.isolation, s.init) {
            (crate::isolation::Isolation::Vm, Some(p)) if matches!(s.status, Status::Running | Status::Paused) => {
                json!(crate::backend::vm::worker_jail(p.pid as u32))
            }
            _ => Value::Null,
        },
        "BundlePath": crate::spec::bundle_dir(&r.dir),
        "HostsPath": r.dir.join("hosts"),
        "HostnamePath": r.dir.join("hostname"),
        "ResolvConfPath": r.dir.join("resolv.conf"),
        "Mounts": c.mounts.iter().map(mount_json).collect::<Vec<_>>(),
        "GraphDriver": { "Data": { "MergedDir": c.rootfs }, "SnapshotKey": c.snapshot_key },
        "HostConfig": host_config,
        "Config": {
            "Hostname": c.hostname,
            "User": c.user,
            "Env": c.env,
            "Cmd": c.args,
            "Image": c.image,
            "WorkingDir": c.working_dir,
            "Tty": c.tty,
            "OpenStdin": c.open_stdin,
            "Labels": c.labels,
            "StopSignal": c.stop_signal.clone().unwrap_or_else(|| "SIGTERM".into()),
            "StopTimeout": c.stop_timeout,
        },
        "NetworkSettings": network_settings(r),
        "Root": engine.root(),
    })
}

/// One of docker's `Mounts`: a volume with its name and driver, a bind
/// with its propagation.
fn mount_json(m: &crate::state::MountPoint) -> Value {
    let mut v = json!({
        "Type": m.kind,
        "Source": m.source,
        "Destination": m.destination,
        "Mode": "",
        "RW": m.rw,
        "Propagation": "",
    });
    match m.kind.as_str() {
        crate::state::MOUNT_VOLUME => {
            v["Name"] = json!(m.name);
            v["Driver"] = json!(crate::volumes::LOCAL_DRIVER);
            v["Mode"] = json!("z");
        }
        "bind" => v["Propagation"] = json!("rprivate"),
        _ => {}
    }
    if !m.options.is_empty() {
        v["Options"] = json!(m.options);
    }
    v
}

/// docker's `HostConfig.PortBindings`: "80/tcp" -> [{HostIp, HostPort}].
pub fn port_bindings(ports: &[network::PortMapping]) -> Value {
    let mut out = serde_json::Map::new();
    for m in ports {
        let key = format!("{}/{}", m.container_port, m.protocol.as_str());
        let entry = json!({
            "HostIp": m.host_ip.map(|i| i.to_string()).unwrap_or_default(),
            "HostPort": if m.host_port == 0 { String::new() } else { m.host_port.to_string() },
        });
        match out.get_mut(&key) {
            Some(Value::Array(a)) => a.push(entry),
            _ => {
                out.insert(key, json!([entry]));
            }
        }
    }
    Value::Object(out)
}

/// docker's `NetworkSettings`: the address, gateway and MAC of a running
/// container, its published ports, and its network by name.
/// docker's name of a network: the default one is `bridge`.
fn docker_network_name(network: &str) -> String {
    if network == crate::state::DEFAULT_NETWORK {
        "bridge".to_string()
    } else {
        network.to_string()
    }
}

/// A container's aliases on `network`: none on the default network (as
/// docker's); on a user network the requested ones and the short id, which
/// docker (API < 1.45) lists too and compose checks for before it starts
/// a container (lacking it, compose reconnects the container).
fn aliases(r: &ContainerRecord, network: &str) -> Value {
    if network == crate::state::DEFAULT_NETWORK {
        return Value::Null;
    }
    let mut v = r.config.network_options.aliases.clone();
    let short = crate::ids::short(&r.config.id).to_string();
    if !v.contains(&short) {
        v.push(short);
    }
    json!(v)
}

fn network_settings(r: &ContainerRecord) -> Value {
    let Some(n) = &r.state.network else {
        // Not attached yet (created, or exited): the network it joins when
        // it starts, as docker shows it, without addresses.
        let mut networks = serde_json::Map::new();
        if let crate::state::NetworkMode::Network(net) = &r.config.network {
            networks.insert(
                docker_network_name(net),
                json!({
                    "IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": "",
                    "Aliases": aliases(r, net), "NetworkID": net,
                }),
            );
        }
        return json!({"IPAddress": "", "Gateway": "", "MacAddress": "", "IPPrefixLen": 0, "Ports": {}, "Networks": networks, "SandboxKey": r.config.netns});
    };
    let endpoint = |n: &crate::state::NetworkState| {
        let a = &n.attachment;
        json!({
            "IPAddress": a.ip.to_string(),
            "IPPrefixLen": a.prefix_len,
            "Gateway": a.gateway.map(|g| g.to_string()).unwrap_or_default(),
            "MacAddress": a.mac,
            "Aliases": aliases(r, &n.network),
            "NetworkID": n.network,
        })
    };
    let mut networks = serde_json::Map::new();
    for held in r.state.attachments() {
        networks.insert(docker_network_name(&held.network), endpoint(held));
    }
    // The top level repeats the primary endpoint, as docker's does.
    let mut settings = endpoint(n);
    settings["Ports"] = port_bindings(&n.ports);
    settings["SandboxKey"] = json!(n.netns);
    settings["Networks"] = Value::Object(networks);
    settings
}

/// docker's `network inspect` JSON of one network.
pub fn network(engine: &Engine, net: &NetworkRecord) -> Result<Value, Error> {
    let mut containers = serde_json::Map::new();
    for rec in engine.list()? {
        if let Some(n) = rec.state.attachments().find(|n| n.network == net.name) {
            containers.insert(
                rec.config.id.clone(),
                json!({
                    "Name": rec.config.name,
                    "MacAddress": n.attachment.mac,
                    "IPv4Address": format!("{}/{}", n.attachment.ip, n.attachment.prefix_len),
                }),
            );
        }
    }
    let mut config = json!({"Subnet": net.subnet.to_string(), "Gateway": net.gateway.to_string()});
    if let Some(r) = net.ip_range {
        config["IPRange"] = json!(r.to_string());
    }
    Ok(json!({
        "Name": net.name,
        "Id": net.id,
        "Created": crate::monitor::log::format_time(&net.created),
        "Scope": "local",
        "Driver": net.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [config]},
        "Internal": net.internal,
        "Attachable": false,
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": net.bridge},
        "Labels": net.labels,
    }))
}

/// `image inspect`'s object, fields in docker's order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectImage<'a> {
    id: &'a str,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: &'a str,
    comment: String,
    created: &'a str,
    author: String,
    config: &'a Option<oci_spec::image::Config>,
    /// docker's config of the container an image was committed from;
    /// compose 1.x reads it when it recreates a container. isola builds no
    /// images, so it is the image's own config.
    container_config: &'a Option<oci_spec::image::Config>,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: String,
    size: u64,
    graph_driver: serde_json::Value,
    #[serde(rename = "RootFS")]
    root_fs: serde_json::Value,
    metadata: serde_json::Value,
}

/// `img`'s inspect object; `layer_dirs` are its unpacked layers, top first.
pub fn image<'a>(img: &'a Image, layer_dirs: &[PathBuf]) -> InspectImage<'a> {
    let (os, architecture, variant) = img.platform();
    let history = img.config.history().clone().unwrap_or_default();
    let lower_dirs: Vec<String> = layer_dirs.iter().map(|d| d.display().to_string()).collect();
    InspectImage {
        id: &img.id,
        repo_tags: img.names.iter().map(Reference::familiar).collect(),
        repo_digests: img
            .repo_digests
            .iter()
            .map(|d| {
                Reference::parse(d)
                    .map(|r| r.familiar())
                    .unwrap_or_else(|_| d.clone())
            })
            .collect(),
        parent: "",
        comment: history
            .last()
            .and_then(|h| h.comment().clone())
            .unwrap_or_default(),
        created: img.created.as_deref().unwrap_or_default(),
        author: img.config.author().clone().unwrap_or_default(),
        config: img.config.config(),
        container_config: img.config.config(),
        architecture,
        variant,
        os,
        size: img.size,
        // docker's Data is strings only: the layer directories as overlayfs
        // lowerdir takes them, top first, joined by `:`.
        graph_driver: json!({ "Name": "overlay", "Data": { "LowerDir": lower_dirs.join(":") } }),
        root_fs: json!({ "Type": "layers", "Layers": img.layers }),
        metadata: json!({ "ManifestDigest": img.manifest_digest }),
    }
}

fn map_or_null(m: &std::collections::BTreeMap<String, String>) -> Value {
    if m.is_empty() {
        Value::Null
    } else {
        json!(m)
    }
}

/// docker's `volume inspect` JSON of one volume (`Labels` and `Options`
/// null when empty, as docker's).
pub fn volume(v: &crate::volumes::Volume) -> Value {
    json!({
        "CreatedAt": v.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "Driver": v.driver,
        "Labels": map_or_null(&v.labels),
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": map_or_null(&v.options),
        "Scope": "local",
    })
}

/// docker's `GET /info` (what `docker info --format` reads): counts, the
/// host, and `Isolation`, the host's default; isola's own facts (`Vm`,
/// `VmAcceleration`, `IsolationSource`) in extra fields.
pub fn system_info(engine: &Engine) -> Result<Value, Error> {
    use crate::state::Status;
    let host = crate::info::host_info(engine.root());
    let containers = engine.list()?;
    let count =
        |f: &dyn Fn(Status) -> bool| containers.iter().filter(|c| f(c.state.status)).count();
    let images = engine.list_images()?.len();
    let (_, arch, _) = crate::isolation::host_platform();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Ok(json!({
        "ID": "",
        "Containers": containers.len(),
        "ContainersRunning": count(&|s| matches!(s, Status::Running | Status::Restarting)),
        "ContainersPaused": count(&|s| s == Status::Paused),
        "ContainersStopped": count(&|s| matches!(s, Status::Exited | Status::Created | Status::Dead)),
        "Images": images,
        "Driver": "overlay",
        "DriverStatus": [["Backing Filesystem", "overlayfs snapshots"]],
        "DockerRootDir": host.storage_root,
        "Isolation": host.default_isolation.map(|m| m.to_string()).unwrap_or_default(),
        "IsolationSource": host.default_isolation_source,
        "VmAcceleration": host.vm_acceleration.mode,
        "VmAccelerationReason": host.vm_acceleration.reason,
        "Vm": host.vm,
        "OperatingSystem": host.operating_system,
        "OSType": "linux",
        "OSVersion": "",
        "Architecture": host.architecture,
        "Platform": host.oci_platform,
        "NCPU": host.cpus,
        "MemTotal": host.memory_bytes,
        "Name": hostname,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "KernelVersion": host.kernel_version,
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": host.cgroup_version,
        "LoggingDriver": "json-file",
        "DefaultRuntime": "isola",
        "Runtimes": { "isola": { "path": "isola" } },
        "Plugins": { "Volume": [], "Network": ["bridge", "host", "null"], "Log": ["json-file"] },
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Swarm": { "LocalNodeState": "inactive" },
        "RegistryConfig": { "IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"] },
        "Debug": false,
        "ExperimentalBuild": false,
        "Labels": [],
        "Warnings": [],
        "ArchitectureOci": arch,
    }))
}

/// docker's `GET /version` for a server speaking Docker API versions
/// `min_api_version` to `api_version`.
pub fn server_version(api_version: &str, min_api_version: &str) -> Value {
    let (os, arch, _) = crate::isolation::host_platform();
    let v = env!("CARGO_PKG_VERSION");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    json!({
        "Platform": { "Name": "isola" },
        "Components": [{
            "Name": "Engine",
            "Version": v,
            "Details": {
                "ApiVersion": api_version,
                "MinAPIVersion": min_api_version,
                "Os": os,
                "Arch": arch,
                "KernelVersion": kernel,
                "Isolation": "process, vm (hyperv)",
            },
        }],
        "Version": v,
        "ApiVersion": api_version,
        "MinAPIVersion": min_api_version,
        "GitCommit": "",
        "GoVersion": "",
        "Os": os,
        "Arch": arch,
        "KernelVersion": kernel,
        "BuildTime": "",
    })
}
