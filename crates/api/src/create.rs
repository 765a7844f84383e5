//! create: docker's `POST /containers/create` body turned into the engine's
//! [`engine::CreateRequest`]. Every field isola honours is mapped; a field
//! it cannot honour that the client set (anything but docker's zero value)
//! is refused with a 400 naming it, never silently dropped. A malformed
//! body is a 400 naming the field too.

use std::collections::BTreeMap;

use engine::isolation::IsolationChoice;
use engine::state::{Limits, NetworkMode, NetworkOptions};
use engine::units::{self, RestartPolicy};
use serde::Deserialize;
use serde_json::Value;

use crate::ApiError;

/// A string or a list of strings (docker's `strslice`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StrSlice {
    One(String),
    Many(Vec<String>),
}

impl StrSlice {
    fn into_vec(self) -> Vec<String> {
        match self {
            StrSlice::One(s) => vec![s],
            StrSlice::Many(v) => v,
        }
    }
}

/// The fields of docker's container config isola reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Body {
    image: String,
    cmd: Option<StrSlice>,
    entrypoint: Option<StrSlice>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    hostname: Option<String>,
    tty: bool,
    open_stdin: bool,
    labels: Option<BTreeMap<String, String>>,
    exposed_ports: Option<BTreeMap<String, Value>>,
    volumes: Option<BTreeMap<String, Value>>,
    stop_signal: Option<String>,
    stop_timeout: Option<i64>,
    healthcheck: Option<engine::health::Healthcheck>,
    mac_address: Option<String>,
    host_config: HostConfig,
    networking_config: Option<NetworkingConfig>,
}

/// One of `HostConfig.Devices`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeviceMapping {
    path_on_host: String,
    #[serde(default)]
    path_in_container: Option<String>,
    #[serde(default)]
    cgroup_permissions: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct HostConfig {
    isolation: Option<String>,
    memory: Option<i64>,
    memory_swap: Option<i64>,
    cpu_shares: Option<i64>,
    memory_reservation: Option<i64>,
    cpuset_cpus: Option<String>,
    ulimits: Option<Vec<engine::state::Ulimit>>,
    sysctls: Option<BTreeMap<String, String>>,
    group_add: Option<Vec<String>>,
    devices: Option<Vec<DeviceMapping>>,
    pid_mode: Option<String>,
    privileged: bool,
    nano_cpus: Option<i64>,
    cpu_quota: Option<i64>,
    cpu_period: Option<i64>,
    pids_limit: Option<i64>,
    auto_remove: bool,
    port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    publish_all_ports: bool,
    network_mode: Option<String>,
    binds: Option<Vec<String>>,
    mounts: Option<Vec<Mount>>,
    init: Option<bool>,
    readonly_rootfs: bool,
    cap_add: Option<StrSlice>,
    cap_drop: Option<StrSlice>,
    security_opt: Option<Vec<String>>,
    restart_policy: Option<RestartPolicyBody>,
    dns: Option<Vec<String>>,
    dns_search: Option<Vec<String>>,
    dns_options: Option<Vec<String>>,
    extra_hosts: Option<Vec<String>>,
    console_size: Option<Vec<u16>>,
    log_config: Option<LogConfig>,
    tmpfs: Option<BTreeMap<String, String>>,
    shm_size: Option<i64>,
    ipc_mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PortBinding {
    #[serde(rename = "HostIp")]
    host_ip: String,
    #[serde(rename = "HostPort")]
    host_port: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Mount {
    #[serde(rename = "Type")]
    kind: String,
    source: String,
    target: String,
    read_only: bool,
    consistency: String,
    bind_options: Option<BindOptions>,
    volume_options: Option<VolumeOptions>,
    tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct BindOptions {
    propagation: String,
    non_recursive: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct VolumeOptions {
    no_copy: bool,
    labels: Option<BTreeMap<String, String>>,
    driver_config: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TmpfsOptions {
    size_bytes: i64,
    mode: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RestartPolicyBody {
    name: String,
    maximum_retry_count: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct LogConfig {
    #[serde(rename = "Type")]
    kind: String,
    config: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkingConfig {
    endpoints_config: BTreeMap<String, Option<EndpointConfig>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointConfig {
    aliases: Option<Vec<String>>,
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<IpamConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IpamConfig {
    #[serde(rename = "IPv4Address")]
    ipv4_address: String,
}

/// Top-level fields read above, or harmless whatever their value (how the
/// client attaches is decided by its attach call, not by these).
const KNOWN: &[&str] = &[
    "Image",
    "Cmd",
    "Entrypoint",
    "Env",
    "WorkingDir",
    "User",
    "Hostname",
    "Domainname",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "StopTimeout",
    "Healthcheck",
    "MacAddress",
    "HostConfig",
    "NetworkingConfig",
    "ArgsEscaped",
];

const KNOWN_HOST: &[&str] = &[
    "Isolation",
    "Ulimits",
    "Sysctls",
    "Devices",
    "Privileged",
    "PidMode",
    "GroupAdd",
    "Memory",
    "MemorySwap",
    "CpuShares",
    "MemoryReservation",
    "CpusetCpus",
    "NanoCpus",
    "CpuQuota",
    "CpuPeriod",
    "PidsLimit",
    "AutoRemove",
    "PortBindings",
    "PublishAllPorts",
    "NetworkMode",
    "Binds",
    "Mounts",
    "Init",
    "ReadonlyRootfs",
    "CapAdd",
    "CapDrop",
    "SecurityOpt",
    "RestartPolicy",
    "Dns",
    "DnsSearch",
    "DnsOptions",
    "ExtraHosts",
    "ConsoleSize",
    "LogConfig",
    "Tmpfs",
    "ShmSize",
    "IpcMode",
    // The client writes the id file itself (`docker run --cidfile`).
    "ContainerIDFile",
];

/// docker's zero value, as its clients send every field they know: null,
/// false, 0, "", and lists or objects of nothing else.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(is_zero),
        // A struct of zero fields is zero; a map with an entry (Volumes'
        // {"/data": {}}, Sysctls' {"net.x": ""}) says something even where
        // the entry's value is empty. docker's struct fields are PascalCase
        // words, its maps' keys paths, ports and dotted names.
        Value::Object(o) => o.iter().all(|(k, v)| is_field_name(k) && is_zero(v)),
    }
}

fn is_field_name(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_uppercase()) && k.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The first field set that isola cannot honour, as a dotted path.
fn unsupported_field(body: &Value) -> Option<String> {
    let obj = body.as_object()?;
    for (k, v) in obj {
        if !KNOWN.contains(&k.as_str()) && !is_zero(v) {
            return Some(k.clone());
        }
    }
    if let Some(host) = obj.get("HostConfig").and_then(Value::as_object) {
        for (k, v) in host {
            // docker's defaults that mean what isola does anyway.
            let default = (k == "MemorySwappiness" && v.as_i64() == Some(-1))
                || (k == "CgroupnsMode" && v == "private");
            if !KNOWN_HOST.contains(&k.as_str()) && !is_zero(v) && !default {
                return Some(format!("HostConfig.{k}"));
            }
        }
    }
    None
}

fn bad(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("invalid {field}: {e}"))
}

/// docker's `Isolation` value: `""`/`default` is the host's default,
/// `process`, and `hyperv` or `vm` (case-insensitive, as docker compares).
pub fn isolation(value: &str) -> Result<IsolationChoice, ApiError> {
    value.parse::<IsolationChoice>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid isolation {value:?}: isola supports process, hyperv (also vm) and default"
        ))
    })
}

fn port_mappings(
    bindings: &BTreeMap<String, Option<Vec<PortBinding>>>,
) -> Result<Vec<network::PortMapping>, ApiError> {
    let mut out = Vec::new();
    for (port, binds) in bindings {
        let (number, proto) = port.split_once('/').unwrap_or((port.as_str(), "tcp"));
        let binds = binds.as_deref().unwrap_or_default();
        let one = [PortBinding::default()];
        let binds = if binds.is_empty() { &one[..] } else { binds };
        for b in binds {
            let spec = match (b.host_ip.as_str(), b.host_port.as_str()) {
                ("", "") => format!("{number}/{proto}"),
                ("", hp) => format!("{hp}:{number}/{proto}"),
                (ip, hp) => format!("{ip}:{hp}:{number}/{proto}"),
            };
            out.extend(network::ports::parse(&spec).map_err(|e| {
                bad(
                    &format!("HostConfig.PortBindings[{port:?}]"),
                    crate::error::chain(&e),
                )
            })?);
        }
    }
    Ok(out)
}

fn restart(policy: Option<RestartPolicyBody>) -> Result<RestartPolicy, ApiError> {
    let Some(p) = policy else {
        return Ok(RestartPolicy::No);
    };
    let text = match (p.name.as_str(), p.maximum_retry_count) {
        ("", _) => return Ok(RestartPolicy::No),
        ("on-failure", n) if n > 0 => format!("on-failure:{n}"),
        (name, _) => name.to_string(),
    };
    text.parse()
        .map_err(|e: units::ValueError| bad("HostConfig.RestartPolicy", e))
}

/// One of `HostConfig.Mounts` as the engine's mount, through the same
/// parser as `--mount` (so a volume there is made on first use, as with
/// `-v`); an option isola cannot honour is refused.
fn mount(m: Mount) -> Result<engine::state::MountPoint, String> {
    if !matches!(m.kind.as_str(), "bind" | "volume" | "tmpfs") {
        return Err(format!(
            "isola does not support mounts of type {:?} (bind, volume and tmpfs)",
            m.kind
        ));
    }
    let mut spec = format!("type={},target={}", m.kind, m.target);
    if !m.source.is_empty() {
        spec.push_str(&format!(",source={}", m.source));
    }
    if m.read_only {
        spec.push_str(",readonly");
    }
    // Consistency is a macOS hint, meaningless on Linux (docker ignores it).
    let _ = m.consistency;
    if let Some(b) = m.bind_options {
        if b.non_recursive {
            return Err("isola does not support BindOptions.NonRecursive".into());
        }
        if !matches!(b.propagation.as_str(), "" | "rprivate" | "private") {
            return Err(format!(
                "isola does not support BindOptions.Propagation {:?}",
                b.propagation
            ));
        }
    }
    if let Some(v) = m.volume_options {
        if v.no_copy {
            spec.push_str(",volume-nocopy");
        }
        if v.labels.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(
                "isola does not support VolumeOptions.Labels (create the volume with its labels first)"
                    .into(),
            );
        }
        if v.driver_config.as_ref().is_some_and(|d| !is_zero(d)) {
            return Err(
                "isola does not support VolumeOptions.DriverConfig (local volumes only)".into(),
            );
        }
    }
    if let Some(t) = m.tmpfs_options {
        if t.size_bytes > 0 {
            spec.push_str(&format!(",tmpfs-size={}", t.size_bytes));
        }
        if t.mode != 0 {
            spec.push_str(&format!(",tmpfs-mode={:o}", t.mode));
        }
    }
    engine::mounts::parse_mount(&spec).map_err(|e| crate::error::chain(&e))
}

/// `HostConfig.Tmpfs` (`docker run --tmpfs /t:size=8m,mode=1777`): the
/// engine's tmpfs mount, as `isola run --mount type=tmpfs` makes it. docker
/// passes the options to mount(2); isola takes those its mounts honour and
/// refuses the rest.
fn tmpfs(target: &str, options: &str) -> Result<engine::state::MountPoint, String> {
    let mut spec = format!("type=tmpfs,target={target}");
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", v)) => spec.push_str(&format!(",tmpfs-size={v}")),
            Some(("mode", v)) => spec.push_str(&format!(",tmpfs-mode={v}")),
            None if o == "ro" => spec.push_str(",readonly"),
            // isola's tmpfs mounts are nosuid and nodev already.
            None if matches!(o, "rw" | "nosuid" | "nodev") => {}
            _ => {
                return Err(format!(
                    "isola does not support the tmpfs option {o:?} (size, mode, ro and rw)"
                ))
            }
        }
    }
    engine::mounts::parse_mount(&spec).map_err(|e| crate::error::chain(&e))
}

/// `HostConfig.ShmSize` other than the engine's own 64 MiB: a tmpfs of
/// that size over the engine's /dev/shm, as `isola run --mount
/// type=tmpfs,target=/dev/shm,tmpfs-size=N,tmpfs-mode=1777` makes it.
fn shm(size: i64) -> Result<Option<engine::state::MountPoint>, ApiError> {
    match size {
        0 => Ok(None),
        n if n as u64 == engine::spec::SHM_SIZE => Ok(None),
        n if n < 0 => Err(bad("HostConfig.ShmSize", format!("{n} is negative"))),
        n => engine::mounts::parse_mount(&format!(
            "type=tmpfs,target=/dev/shm,tmpfs-size={n},tmpfs-mode=1777"
        ))
        .map(Some)
        .map_err(|e| bad("HostConfig.ShmSize", crate::error::chain(&e))),
    }
}

/// What a create body asks for.
pub struct Parsed {
    pub request: engine::CreateRequest,
}

/// Parses docker's create body (`name` from the query).
pub fn parse(raw: &[u8], name: Option<String>) -> Result<Parsed, ApiError> {
    let value: Value = serde_json::from_slice(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid JSON body: expected an object (docker's container config)",
        ));
    }
    let body: Body = serde_path_to_error::deserialize(&value)
        .map_err(|e| ApiError::bad_request(format!("invalid field {}: {}", e.path(), e.inner())))?;
    if let Some(field) = unsupported_field(&value) {
        return Err(ApiError::bad_request(format!(
            "isola does not support {field} (it cannot honour it): leave it unset"
        )));
    }
    if body.image.is_empty() {
        return Err(ApiError::bad_request(
            "invalid field Image: an image is required",
        ));
    }
    let h = body.host_config;
    let log_config = match &h.log_config {
        None => engine::state::LogConfig::default(),
        Some(log) => {
            let opts: Vec<(String, String)> = log.config.clone().into_iter().collect();
            engine::state::LogConfig::parse(Some(&log.kind), &opts)
                .map_err(|e| bad("HostConfig.LogConfig", e))?
        }
    };
    let isolation = isolation(h.isolation.as_deref().unwrap_or(""))?;
    let host_cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let cpu_quota = match (h.nano_cpus, h.cpu_quota, h.cpu_period) {
        (Some(n), _, _) if n > 0 => {
            if n as f64 / 1e9 > host_cpus {
                return Err(bad(
                    "HostConfig.NanoCpus",
                    format!("{n} is more than the host's {host_cpus} CPUs"),
                ));
            }
            Some((n as u64) / 10_000)
        }
        (_, Some(q), p) if q > 0 => {
            let period = p.filter(|p| *p > 0).unwrap_or(100_000) as u64;
            Some((q as u64) * 100_000 / period)
        }
        _ => None,
    };
    let memory = match h.memory {
        Some(m) if m > 0 => {
            Some(units::parse_memory(&m.to_string()).map_err(|e| bad("HostConfig.Memory", e))?)
        }
        _ => None,
    };
    // docker's device mappings, checked as `--device` is.
    let devices = h
        .devices
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let inside = d.path_in_container.unwrap_or_default();
            let mut spec = format!("{}:{inside}", d.path_on_host);
            if let Some(p) = d.cgroup_permissions.filter(|p| !p.is_empty()) {
                spec = format!("{spec}:{p}");
            }
            engine::units::parse_device(&spec).map_err(|e| bad("HostConfig.Devices", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // docker's ulimit names and numbers, checked as `--ulimit` is.
    let ulimits = h
        .ulimits
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|u| {
            engine::units::parse_ulimit(&format!("{}={}:{}", u.name, u.soft, u.hard))
                .map_err(|e| bad("HostConfig.Ulimits", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let limits = Limits {
        memory,
        cpu_quota,
        pids_limit: h.pids_limit.filter(|p| *p > 0),
        // docker's 0 is "not set"; -1 unlimited swap.
        memory_swap: match h.memory_swap {
            Some(s) if s < -1 => return Err(bad("HostConfig.MemorySwap", s)),
            Some(0) | None => None,
            s => s,
        },
        cpu_shares: match h.cpu_shares {
            Some(s) if s < 0 => return Err(bad("HostConfig.CpuShares", s)),
            Some(0) | None => None,
            s => s.map(|s| s as u64),
        },
        memory_reservation: match h.memory_reservation {
            Some(r) if r < 0 => return Err(bad("HostConfig.MemoryReservation", r)),
            Some(0) | None => None,
            r => r.map(|r| r as u64),
        },
        cpuset_cpus: match h.cpuset_cpus.as_deref() {
            None | Some("") => None,
            Some(c) => Some(units::parse_cpuset(c).map_err(|e| bad("HostConfig.CpusetCpus", e))?),
        },
        ..Default::default()
    };
    let mut network = match h.network_mode.as_deref() {
        None | Some("") | Some("default") => None,
        Some(n) => Some(NetworkMode::parse(n)),
    };
    let mut aliases = Vec::new();
    let mut ip = None;
    if let Some(nc) = body.networking_config {
        for (net, ep) in nc.endpoints_config {
            // The endpoint names the container's network (the CLI sends
            // the one of --network); a second one would need a connect.
            let mode = NetworkMode::parse(&net);
            match &network {
                None => network = Some(mode),
                Some(m) if *m == mode => {}
                Some(m) => {
                    return Err(ApiError::bad_request(format!(
                        "isola does not support NetworkingConfig.EndpointsConfig[{net:?}] beside network {}: connect it after create",
                        m.as_docker()
                    )))
                }
            }
            if let Some(ep) = ep {
                aliases.extend(ep.aliases.unwrap_or_default());
                if let Some(a) = ep.ipam_config.filter(|a| !a.ipv4_address.is_empty()) {
                    ip = Some(a.ipv4_address.parse().map_err(|e| {
                        bad(
                            &format!(
                                "NetworkingConfig.EndpointsConfig[{net:?}].IPAMConfig.IPv4Address"
                            ),
                            e,
                        )
                    })?);
                }
            }
        }
    }
    // The default network takes no aliases in docker; isola's may.
    if network
        .as_ref()
        .is_some_and(|n| *n == NetworkMode::parse("bridge"))
    {
        network = None;
    }
    let mut extra_hosts = Vec::new();
    for e in h.extra_hosts.unwrap_or_default() {
        let Some((host, addr)) = e.split_once(':') else {
            return Err(bad(
                "HostConfig.ExtraHosts",
                format!("{e:?}: expected host:ip"),
            ));
        };
        extra_hosts.push((host.to_string(), addr.to_string()));
    }
    let ports = match &h.port_bindings {
        Some(b) => port_mappings(b)?,
        None => Vec::new(),
    };
    let mut mounts = Vec::new();
    for b in h.binds.unwrap_or_default() {
        mounts.push(
            engine::mounts::parse_volume(&b)
                .map_err(|e| bad("HostConfig.Binds", crate::error::chain(&e)))?,
        );
    }
    for (i, m) in h.mounts.unwrap_or_default().into_iter().enumerate() {
        mounts.push(mount(m).map_err(|e| bad(&format!("HostConfig.Mounts[{i}]"), e))?);
    }
    for (target, options) in h.tmpfs.unwrap_or_default() {
        mounts.push(
            tmpfs(&target, &options)
                .map_err(|e| bad(&format!("HostConfig.Tmpfs[{target:?}]"), e))?,
        );
    }
    if let Some(m) = shm(h.shm_size.unwrap_or(0))? {
        mounts.push(m);
    }
    // Config.Volumes (`docker run -v /path`): an anonymous volume at each
    // path no bind or mount above already covers.
    for path in body.volumes.unwrap_or_default().into_keys() {
        if mounts.iter().any(|m| m.destination == path) {
            continue;
        }
        mounts.push(
            engine::mounts::parse_volume(&path)
                .map_err(|e| bad(&format!("Volumes[{path:?}]"), crate::error::chain(&e)))?,
        );
    }
    let restart = restart(h.restart_policy)?;
    if h.auto_remove && restart != RestartPolicy::No {
        return Err(ApiError::conflict(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    // ConsoleSize needs no keeping: docker's clients resize the terminal
    // right after the start. ExposedPorts adds nothing to PortBindings and
    // the image's own ports, which is what isola publishes with -P.
    let _ = (h.console_size, body.exposed_ports);
    let request = engine::CreateRequest {
        image: body.image,
        name: name.map(|n| n.trim_start_matches('/').to_string()),
        cmd: body.cmd.map(StrSlice::into_vec).unwrap_or_default(),
        entrypoint: body.entrypoint.map(|e| {
            let v = e.into_vec();
            // `--entrypoint ""` arrives as [""]: no entrypoint.
            if v.iter().all(String::is_empty) {
                Vec::new()
            } else {
                v
            }
        }),
        env: body.env.unwrap_or_default(),
        workdir: body.working_dir.filter(|w| !w.is_empty()),
        user: body.user.filter(|u| !u.is_empty()),
        hostname: body.hostname.filter(|h| !h.is_empty()),
        tty: body.tty,
        open_stdin: body.open_stdin,
        auto_remove: h.auto_remove,
        restart,
        network,
        network_options: NetworkOptions {
            ports,
            publish_all: h.publish_all_ports,
            ip,
            mac: body.mac_address.filter(|m| !m.is_empty()),
            aliases,
            dns: h.dns.unwrap_or_default(),
            dns_search: h.dns_search.unwrap_or_default(),
            dns_options: h.dns_options.unwrap_or_default(),
            extra_hosts,
            ..NetworkOptions::default()
        },
        read_only: h.readonly_rootfs,
        mounts,
        limits,
        cap_add: h.cap_add.map(StrSlice::into_vec).unwrap_or_default(),
        cap_drop: h.cap_drop.map(StrSlice::into_vec).unwrap_or_default(),
        security_opt: h.security_opt.unwrap_or_default(),
        isolation: Some(isolation),
        init: h.init.unwrap_or(false),
        labels: body.labels.unwrap_or_default(),
        base: None,
        stop_signal: body.stop_signal.filter(|s| !s.is_empty()),
        ulimits,
        sysctls: h.sysctls.clone().unwrap_or_default(),
        group_add: h.group_add.clone().unwrap_or_default(),
        devices,
        pid_mode: h.pid_mode.clone().filter(|m| !m.is_empty()),
        log_config,
        privileged: h.privileged,
        no_healthcheck: body
            .healthcheck
            .as_ref()
            .is_some_and(|c| c.test.first().map(String::as_str) == Some("NONE")),
        healthcheck: body
            .healthcheck
            .clone()
            .filter(|c| c.test.first().map(String::as_str) != Some("NONE")),
        ipc_mode: h.ipc_mode.clone().filter(|m| !m.is_empty()),
        stop_timeout: body.stop_timeout.map(|t| t.max(0) as u64),
    };
    Ok(Parsed { request })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::isolation::Isolation;

    fn parse_json(v: serde_json::Value) -> Result<Parsed, ApiError> {
        parse(&serde_json::to_vec(&v).unwrap(), None)
    }

    #[test]
    fn isolation_values_map_as_docker_compares_them() {
        for (v, want) in [
            ("", IsolationChoice::Default),
            ("default", IsolationChoice::Default),
            ("process", IsolationChoice::Explicit(Isolation::Process)),
            ("HyperV", IsolationChoice::Explicit(Isolation::Vm)),
            ("vm", IsolationChoice::Explicit(Isolation::Vm)),
        ] {
            assert_eq!(isolation(v).unwrap(), want, "{v}");
        }
        let e = isolation("kvm").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.message.contains("process, hyperv"), "{}", e.message);
    }

    #[test]
    fn a_docker_cli_body_maps_to_the_request() {
        let p = parse_json(serde_json::json!({
            "Image": "busybox", "Cmd": ["echo", "hi"], "Env": ["A=1"], "Tty": false,
            "Domainname": "", "AttachStdout": true, "Labels": {"a": "b"},
            "HostConfig": {"Isolation": "hyperv", "Memory": 268435456, "NanoCpus": 500000000,
                "AutoRemove": true, "NetworkMode": "default", "CpuShares": 0,
                "LogConfig": {"Type": "", "Config": {}}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}},
        }))
        .unwrap();
        let r = p.request;
        assert_eq!(r.cmd, ["echo", "hi"]);
        assert_eq!(r.isolation, Some(IsolationChoice::Explicit(Isolation::Vm)));
        assert_eq!(r.limits.memory, Some(268435456));
        assert_eq!(r.limits.cpu_quota, Some(50_000));
        assert!(r.auto_remove);
        assert_eq!(r.network, None);
        assert_eq!(r.network_options.ports.len(), 1);
        assert_eq!(r.labels.get("a").map(String::as_str), Some("b"));
    }

    #[test]
    fn fields_isola_cannot_honour_are_refused_by_name() {
        let e = parse_json(serde_json::json!({
            "Image": "busybox", "HostConfig": {"OomKillDisable": true}
        }))
        .err()
        .unwrap();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(
            e.message.contains("HostConfig.OomKillDisable"),
            "{}",
            e.message
        );
        let e = parse_json(serde_json::json!({"Image": "busybox", "OnBuild": ["RUN true"]}))
            .err()
            .unwrap();
        assert!(e.message.contains("OnBuild"), "{}", e.message);
    }

    #[test]
    fn volumes_binds_and_mounts_become_the_engines_mounts() {
        let r = parse_json(serde_json::json!({
            "Image": "busybox",
            "Volumes": {"/anon": {}, "/x": {}},
            "HostConfig": {
                "Binds": ["data:/x:ro"],
                "Mounts": [
                    {"Type": "volume", "Source": "db", "Target": "/db",
                     "VolumeOptions": {"NoCopy": true, "Labels": {}}},
                    {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576}},
                ],
            },
        }))
        .unwrap()
        .request;
        let got: Vec<(&str, Option<&str>, &str, bool)> = r
            .mounts
            .iter()
            .map(|m| {
                (
                    m.kind.as_str(),
                    m.name.as_deref(),
                    m.destination.as_str(),
                    m.nocopy,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("volume", Some("data"), "/x", false),
                ("volume", Some("db"), "/db", true),
                ("tmpfs", None, "/t", false),
                ("volume", None, "/anon", false),
            ]
        );
        assert!(r.mounts[2].options.iter().any(|o| o == "size=1048576"));
        let e = parse_json(serde_json::json!({
            "Image": "busybox",
            "HostConfig": {"Mounts": [{"Type": "npipe", "Target": "/p"}]},
        }))
        .err()
        .unwrap();
        assert!(e.message.contains("HostConfig.Mounts[0]"), "{}", e.message);
    }

    #[test]
    fn a_map_with_an_empty_entry_is_not_dockers_zero() {
        let e = parse_json(serde_json::json!({
            "Image": "busybox", "HostConfig": {"StorageOpt": {"size": ""}}
        }))
        .err()
        .unwrap();
        assert!(e.message.contains("HostConfig.StorageOpt"), "{}", e.message);
        // Zero structs stay zero.
        parse_json(serde_json::json!({
            "Image": "busybox", "HostConfig": {"BlkioWeightDevice": [], "Ulimits": null,
                "KernelMemoryTCP": 0, "LogConfig": {"Type": "", "Config": {}}}
        }))
        .unwrap();
    }

    #[test]
    fn tmpfs_and_shm_size_become_tmpfs_mounts() {
        let r = parse_json(serde_json::json!({
            "Image": "busybox",
            "HostConfig": {"Tmpfs": {"/t": "rw,size=1m,mode=700"}, "ShmSize": 8388608},
        }))
        .unwrap()
        .request;
        let got: Vec<(&str, &[String])> = r
            .mounts
            .iter()
            .map(|m| (m.destination.as_str(), &m.options[..]))
            .collect();
        assert_eq!(
            got,
            [
                ("/t", &["size=1048576".to_string(), "mode=700".into()][..]),
                (
                    "/dev/shm",
                    &["size=8388608".to_string(), "mode=1777".into()][..]
                ),
            ]
        );
        // The engine's own /dev/shm is docker's default size: no mount.
        let r = parse_json(
            serde_json::json!({"Image": "busybox", "HostConfig": {"ShmSize": 67108864}}),
        )
        .unwrap()
        .request;
        assert!(r.mounts.is_empty());
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        let e =
            parse_json(serde_json::json!({"Image": "busybox", "HostConfig": {"Memory": "lots"}}))
                .err()
                .unwrap();
        assert!(e.message.contains("HostConfig.Memory"), "{}", e.message);
        let e = parse(b"{\"Image\": ", None).err().unwrap();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
    }
}
