//! `ps` and `inspect`: list containers in docker's table (or JSON lines),
//! and show one container's configuration and state as JSON.

use anyhow::bail;
use chrono::Utc;
use engine::filters::LabelFilter;
use engine::state::Status;
use engine::store::ContainerRecord;
use engine::units::human_duration;
use engine::Engine;
use serde_json::{json, Value};

#[derive(Debug, Clone, clap::Args)]
pub struct PsArgs {
    /// Show all containers (default: running ones).
    #[arg(short, long)]
    pub all: bool,
    /// Only print container ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter: status=<created|running|paused|restarting|exited|dead>, name=<substring>, id=<prefix>, isolation=<mode>, label=<key>[=<value>], volume=<name|destination>.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Output format: table (default) or json (one object per line).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Do not truncate ids and commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show the n last created containers (in any state).
    #[arg(short = 'n', long, default_value_t = -1, allow_negative_numbers = true)]
    pub last: i64,
    /// Show the last created container (in any state).
    #[arg(short = 'l', long)]
    pub latest: bool,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A Go-template-like path to print instead of JSON, e.g. '{{.State.Pid}}'.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Only objects of this type: container or image (default: a container,
    /// else an image of that name, as docker looks).
    #[arg(long = "type", value_name = "container|image")]
    pub kind: Option<ObjectKind>,
    /// Container or image names or IDs.
    #[arg(required = true, value_name = "NAME|ID")]
    pub containers: Vec<String>,
}

/// What `inspect --type` may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectKind {
    Container,
    Image,
}

fn matches(rec: &ContainerRecord, filters: &[(String, String)]) -> bool {
    // docker: the same key ORs, different keys AND.
    let keys: std::collections::BTreeSet<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.into_iter().all(|key| {
        filters
            .iter()
            .filter(|(k, _)| k == key)
            .any(|(_, v)| match key {
                "status" => rec.state.status.as_str() == v,
                "name" => rec.config.name.contains(v.as_str()),
                "id" => rec.config.id.starts_with(v.as_str()),
                "isolation" => rec.config.isolation.to_string() == *v,
                // Every label filter must hold (docker's rule), not any.
                "label" => filters
                    .iter()
                    .filter(|(k, _)| k == "label")
                    .all(|(_, l)| LabelFilter::parse(l).matches(&rec.config.labels)),
                "volume" => rec
                    .config
                    .mounts
                    .iter()
                    .any(|m| m.name.as_deref() == Some(v.as_str()) || m.destination == *v),
                _ => false,
            })
    })
}

fn parse_filters(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    raw.iter()
        .map(|f| {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("invalid filter {f:?}: expected key=value"))?;
            match k {
                "status" => {
                    v.parse::<Status>().map_err(anyhow::Error::msg)?;
                }
                "name" | "id" | "isolation" | "label" | "volume" => {}
                _ => bail!("invalid filter {k:?}: isola filters on status, name, id, isolation, label and volume"),
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The COMMAND column: the args, quoted, truncated to 20 characters.
fn command_column(rec: &ContainerRecord, trunc: bool) -> String {
    let cmd = rec.config.args.join(" ");
    let cmd = if trunc && cmd.chars().count() > 20 {
        format!("{}…", cmd.chars().take(19).collect::<String>())
    } else {
        cmd
    };
    format!("\"{cmd}\"")
}

/// Prints rows with columns padded to their widest cell (docker's tabwriter).
pub fn print_table(titles: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                let pad = widths[i] + 3 - c.chars().count();
                s.push_str(&" ".repeat(pad));
            }
        }
        println!("{}", s.trim_end());
    };
    line(titles.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

pub fn ps(engine: &Engine, args: PsArgs) -> anyhow::Result<u8> {
    let filters = parse_filters(&args.filter)?;
    let has_status_filter = filters.iter().any(|(k, _)| k == "status");
    let now = Utc::now();
    // docker: -l is -n 1; a positive -n shows every state, newest first.
    let last = if args.latest && args.last < 0 {
        1
    } else {
        args.last
    };
    let limit = usize::try_from(last).ok().filter(|&n| n > 0);
    let recs: Vec<ContainerRecord> = engine
        .list()?
        .into_iter()
        .filter(|r| args.all || limit.is_some() || has_status_filter || r.state.status.is_active())
        .filter(|r| matches(r, &filters))
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    if args.quiet {
        for r in &recs {
            println!(
                "{}",
                if args.no_trunc {
                    r.config.id.as_str()
                } else {
                    engine::ids::short(&r.config.id)
                }
            );
        }
        return Ok(0);
    }
    match args.format.as_str() {
        "json" | "{{json .}}" => {
            for r in &recs {
                let v = json!({
                    "ID": engine::ids::short(&r.config.id),
                    "Image": r.config.image,
                    "Command": command_column(r, false),
                    "CreatedAt": r.config.created.to_rfc3339(),
                    "RunningFor": format!("{} ago", human_duration(now - r.config.created)),
                    "State": r.state.status.as_str(),
                    "Status": r.state.describe(now),
                    "Ports": ports_column(r),
                    "Names": r.config.name,
                    "Isolation": r.config.isolation.to_string(),
                });
                println!("{v}");
            }
        }
        "table" => {
            let rows: Vec<Vec<String>> = recs
                .iter()
                .map(|r| {
                    vec![
                        if args.no_trunc {
                            r.config.id.clone()
                        } else {
                            engine::ids::short(&r.config.id).to_string()
                        },
                        r.config.image.clone(),
                        command_column(r, !args.no_trunc),
                        format!("{} ago", human_duration(now - r.config.created)),
                        r.state.describe(now),
                        ports_column(r),
                        r.config.name.clone(),
                        r.config.isolation.to_string(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES",
                    "ISOLATION",
                ],
                &rows,
            );
        }
        other => bail!("invalid --format {other:?}: expected table or json"),
    }
    Ok(0)
}

fn time(t: Option<chrono::DateTime<Utc>>) -> String {
    t.map(|t| engine::monitor::log::format_time(&t))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

/// docker-shaped inspect JSON of one container.
pub fn inspect_json(engine: &Engine, r: &ContainerRecord) -> Value {
    let c = &r.config;
    let s = &r.state;
    json!({
        "Id": c.id,
        "Created": engine::monitor::log::format_time(&c.created),
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
            engine::isolation::Isolation::Vm => engine::isolation::host_platform().1,
            engine::isolation::Isolation::Process => String::new(),
        },
        "LogPath": r.dir.join(engine::monitor::log::LOG_FILE),
        "ConsoleLogPath": match c.isolation {
            engine::isolation::Isolation::Vm => r.dir.join(engine::backend::vm::CONSOLE_LOG).display().to_string(),
            engine::isolation::Isolation::Process => String::new(),
        },
        // The VM worker's jail, read live from /proc while it runs.
        "VmWorker": match (c.isolation, s.init) {
            (engine::isolation::Isolation::Vm, Some(p)) if matches!(s.status, Status::Running | Status::Paused) => {
                json!(engine::backend::vm::worker_jail(p.pid as u32))
            }
            _ => Value::Null,
        },
        "BundlePath": engine::spec::bundle_dir(&r.dir),
        "HostsPath": r.dir.join("hosts"),
        "HostnamePath": r.dir.join("hostname"),
        "ResolvConfPath": r.dir.join("resolv.conf"),
        "Mounts": c.mounts.iter().map(mount_json).collect::<Vec<_>>(),
        "GraphDriver": { "Data": { "MergedDir": c.rootfs }, "SnapshotKey": c.snapshot_key },
        "HostConfig": {
            "Isolation": c.isolation.to_string(),
            "NetworkMode": c.network.as_docker(),
            "PortBindings": port_bindings(&c.network_options.ports),
            "Dns": c.network_options.dns,
            "DnsSearch": c.network_options.dns_search,
            "DnsOptions": c.network_options.dns_options,
            "ExtraHosts": c.network_options.extra_hosts.iter().map(|(h, ip)| format!("{h}:{ip}")).collect::<Vec<_>>(),
            "PublishAllPorts": c.network_options.publish_all,
            "Memory": c.limits.memory.unwrap_or(0),
            "NanoCpus": c.limits.cpu_quota.map(|q| q * 10_000).unwrap_or(0),
            "PidsLimit": c.limits.pids_limit,
            "RestartPolicy": c.restart_policy,
            "AutoRemove": c.auto_remove,
            "Init": c.init,
            "ReadonlyRootfs": c.read_only,
            "CapAdd": c.cap_add,
            "CapDrop": c.cap_drop,
            "SecurityOpt": c.security_opt,
            "CgroupParent": "/isola",
        },
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
        },
        "NetworkSettings": network_settings(r),
        "Root": engine.root(),
    })
}

/// One of docker's `Mounts`: a volume with its name and driver, a bind
/// with its propagation.
fn mount_json(m: &engine::state::MountPoint) -> Value {
    let mut v = json!({
        "Type": m.kind,
        "Source": m.source,
        "Destination": m.destination,
        "Mode": "",
        "RW": m.rw,
        "Propagation": "",
    });
    match m.kind.as_str() {
        engine::state::MOUNT_VOLUME => {
            v["Name"] = json!(m.name);
            v["Driver"] = json!(engine::volumes::LOCAL_DRIVER);
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
fn port_bindings(ports: &[network::PortMapping]) -> Value {
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
fn network_settings(r: &ContainerRecord) -> Value {
    let Some(n) = &r.state.network else {
        return json!({"IPAddress": "", "Gateway": "", "MacAddress": "", "IPPrefixLen": 0, "Ports": {}, "Networks": {}, "SandboxKey": r.config.netns});
    };
    let endpoint = |n: &engine::state::NetworkState| {
        let a = &n.attachment;
        json!({
            "IPAddress": a.ip.to_string(),
            "IPPrefixLen": a.prefix_len,
            "Gateway": a.gateway.map(|g| g.to_string()).unwrap_or_default(),
            "MacAddress": a.mac,
            "Aliases": r.config.network_options.aliases,
            "NetworkID": n.network,
        })
    };
    let mut networks = serde_json::Map::new();
    for held in r.state.attachments() {
        let name = if held.network == engine::state::DEFAULT_NETWORK {
            "bridge".to_string()
        } else {
            held.network.clone()
        };
        networks.insert(name, endpoint(held));
    }
    // The top level repeats the primary endpoint, as docker's does.
    let mut settings = endpoint(n);
    settings["Ports"] = port_bindings(&n.ports);
    settings["SandboxKey"] = json!(n.netns);
    settings["Networks"] = Value::Object(networks);
    settings
}

/// The PORTS column: "0.0.0.0:8080->80/tcp, ..." of a running container.
fn ports_column(r: &ContainerRecord) -> String {
    r.state
        .network
        .iter()
        .flat_map(|n| n.ports.iter())
        .map(|m| {
            format!(
                "{}:{}->{}/{}",
                m.host_ip
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                m.host_port,
                m.container_port,
                m.protocol.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Looks up a `{{.A.B}}` path in a JSON value.
fn template(format: &str, v: &Value) -> anyhow::Result<String> {
    let inner = format
        .trim()
        .strip_prefix("{{")
        .and_then(|f| f.strip_suffix("}}"))
        .map(str::trim)
        .ok_or_else(|| anyhow::anyhow!("unsupported --format {format:?}: isola supports {{{{.Path.To.Field}}}} and {{{{json .Path}}}}"))?;
    let (as_json, path) = match inner.strip_prefix("json ") {
        Some(p) => (true, p.trim()),
        None => (false, inner),
    };
    let mut cur = v;
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
    {
        cur = cur
            .get(part)
            .ok_or_else(|| anyhow::anyhow!("template: no field {part:?} in {path}"))?;
    }
    Ok(match cur {
        Value::String(s) if !as_json => s.clone(),
        other => other.to_string(),
    })
}

/// The object `name` names, as docker's `inspect` looks: a container
/// first, then an image; None if neither.
fn inspect_object(
    engine: &Engine,
    name: &str,
    kind: Option<ObjectKind>,
) -> anyhow::Result<Option<Value>> {
    if kind != Some(ObjectKind::Image) {
        match engine.lookup(name) {
            Ok(rec) => return Ok(Some(inspect_json(engine, &rec))),
            Err(engine::Error::Store(engine::store::StoreError::NotFound(_))) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if kind != Some(ObjectKind::Container) {
        if let Some(img) = engine.find_image(name)? {
            let dirs = engine.image_layer_dirs(&img)?;
            return Ok(Some(serde_json::to_value(crate::images::inspect_json(
                &img, &dirs,
            ))?));
        }
    }
    Ok(None)
}

pub fn inspect(engine: &Engine, args: InspectArgs) -> anyhow::Result<u8> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in &args.containers {
        match inspect_object(engine, name, args.kind)? {
            Some(v) => out.push(v),
            None => missing.push(name),
        }
    }
    match &args.format {
        Some(f) => {
            for v in &out {
                println!("{}", template(f, v)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&Value::Array(out))?),
    }
    // docker: what was found is printed, each name not found is one line,
    // and the exit code is 1.
    for name in &missing {
        let what = match args.kind {
            Some(ObjectKind::Container) => "container",
            Some(ObjectKind::Image) => "image",
            None => "object",
        };
        eprintln!("isola: no such {what}: {name}");
    }
    Ok(if missing.is_empty() { 0 } else { 1 })
}
