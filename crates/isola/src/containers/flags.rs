//! The flags of `run` and `create`, and their conversion into an engine
//! [`engine::CreateRequest`]. Values are parsed here (not by clap) so that a
//! bad value is a one-line error with exit code 125, like docker's.

use std::path::PathBuf;

use anyhow::{bail, Context};
use engine::isolation::IsolationChoice;
use engine::state::{Limits, NetworkMode};
use engine::units;

#[derive(Debug, clap::Args)]
pub struct CreateFlags {
    /// Keep stdin open (attach it with run, or later with attach).
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Name the container (default: a random adjective_noun).
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from here).
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines).
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// User: name|uid[:group|gid], resolved in the image's /etc/passwd.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Override the image's entrypoint ("" clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Mount a volume or a host path: NAME:/container[:ro|nocopy] (a named
    /// volume, made on first use), /host:/container[:ro] (a bind), or
    /// /container (a new anonymous volume).
    #[arg(short, long = "volume", value_name = "NAME|/HOST:CONTAINER[:ro]")]
    pub volume: Vec<String>,
    /// Mount: type=bind,source=/a,target=/b[,readonly], type=volume[,source=name],target=/b or type=tmpfs,target=/t[,tmpfs-size=64m].
    #[arg(long)]
    pub mount: Vec<String>,
    /// Set a label on the container (key=value).
    #[arg(short = 'l', long)]
    pub label: Vec<String>,
    /// Container host name (default: the short id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Memory limit, e.g. 512m or 1g.
    #[arg(short, long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// CPU limit as a number of CPUs, e.g. 1.5.
    #[arg(long, allow_negative_numbers = true)]
    pub cpus: Option<String>,
    /// Maximum number of processes (0 or -1: unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub pids_limit: Option<String>,
    /// Memory plus swap (e.g. 1g; at least --memory); -1 for unlimited swap.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Relative CPU weight (1024 by default).
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<u64>,
    /// A soft memory limit, below --memory (e.g. 32m).
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// The CPUs it may run on (0-2, 0,3).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Add a capability (e.g. NET_ADMIN, or ALL).
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop a capability (e.g. CHOWN, or ALL).
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// no-new-privileges, seccomp=unconfined or seccomp=<profile.json>.
    #[arg(long)]
    pub security_opt: Vec<String>,
    /// Network: bridge (the default network), a network's name, none (its
    /// own namespace with only loopback), host, or container:<name|id>.
    /// VM containers get none unless told otherwise.
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// Publish a port: [ip:][hostPort:]containerPort[/tcp|udp] (ranges too).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes, each on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// The container's IPv4 address on its network.
    #[arg(long)]
    pub ip: Option<String>,
    /// The container's MAC address.
    #[arg(long)]
    pub mac_address: Option<String>,
    /// Another name for the container on its (user-defined) network.
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// A DNS server for the container's /etc/resolv.conf.
    #[arg(long)]
    pub dns: Vec<String>,
    /// A DNS search domain.
    #[arg(long)]
    pub dns_search: Vec<String>,
    /// A resolv.conf option (e.g. ndots:2).
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// An /etc/hosts entry: host:ip (ip may be host-gateway).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Restart policy: no, always, unless-stopped, on-failure[:max-retries].
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Isolation: process, vm (alias hyperv) or default (the host's default: see `isola info`).
    #[arg(long, default_value = "default")]
    pub isolation: String,
    /// Run an init (tini) as PID 1 that forwards signals and reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// A resource limit, name=soft[:hard] (nofile=1024:2048; -1 unlimited); repeatable.
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// A namespaced kernel parameter, key=value (net.*, kernel.shm*, ...); repeatable.
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// A command that says whether the container is healthy (run with
    /// /bin/sh -c; exit 0: healthy).
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between checks (e.g. 30s, 1m30s).
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Time a check may take before it counts as failed.
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Failures in a row that make it unhealthy.
    #[arg(long = "health-retries")]
    pub health_retries: Option<u32>,
    /// Time after the start during which failures do not count.
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// No health check, not even the image's HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Every capability, no seccomp filter, every host device, /sys writable
    /// (process mode): no isolation from the host's kernel worth the name.
    #[arg(long)]
    pub privileged: bool,
    /// The logging driver: json-file (the default) or none.
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// A logging option, max-size=SIZE or max-file=N; repeatable.
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// The PID namespace: host, or container:NAME (process mode; default its own).
    #[arg(long)]
    pub pid: Option<String>,
    /// The IPC namespace: host, container:NAME or private (process mode).
    #[arg(long)]
    pub ipc: Option<String>,
    /// A host device in the container, HOST[:CONTAINER] (process mode); repeatable.
    #[arg(long)]
    pub device: Vec<String>,
    /// Another group for the container's processes (a name in its /etc/group, or a gid); repeatable.
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// The signal `stop` sends first (default: the image's STOPSIGNAL, else SIGTERM).
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10).
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<u64>,
    /// Pull the image before creating: missing (only when the store lacks
    /// it), always, or never.
    #[arg(long, default_value = "missing", value_name = "missing|always|never")]
    pub pull: engine::images::PullPolicy,
    /// Suppress the pull output.
    #[arg(short, long)]
    pub quiet: bool,
    /// The image's platform, os/arch[/variant] (pulls that variant of a
    /// multi-platform image; another architecture runs with --isolation=vm).
    #[arg(long)]
    pub platform: Option<String>,
    /// The image (name[:tag], or id).
    pub image: String,
    /// The command and its arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn env_from(entry: &str, out: &mut Vec<String>) {
    if entry.contains('=') {
        out.push(entry.to_string());
    } else if let Ok(v) = std::env::var(entry) {
        out.push(format!("{entry}={v}"));
    }
}

impl CreateFlags {
    /// `--health-*` as a check over the image's (None: none given).
    fn healthcheck(&self) -> anyhow::Result<Option<engine::health::Healthcheck>> {
        let given = self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some();
        if !given {
            return Ok(None);
        }
        if self.no_healthcheck {
            anyhow::bail!("--no-healthcheck conflicts with --health-* options");
        }
        let ns = |flag: &str, v: &Option<String>| -> anyhow::Result<u64> {
            match v {
                None => Ok(0),
                Some(v) => {
                    let d = humantime::parse_duration(v)
                        .map_err(|e| anyhow::anyhow!("invalid {flag} {v:?}: {e}"))?;
                    if d < std::time::Duration::from_millis(1) {
                        anyhow::bail!("invalid {flag} {v:?}: at least 1ms");
                    }
                    Ok(d.as_nanos() as u64)
                }
            }
        };
        Ok(Some(engine::health::Healthcheck {
            test: self
                .health_cmd
                .as_ref()
                .map(|c| vec!["CMD-SHELL".to_string(), c.clone()])
                .unwrap_or_default(),
            interval: ns("--health-interval", &self.health_interval)?,
            timeout: ns("--health-timeout", &self.health_timeout)?,
            start_period: ns("--health-start-period", &self.health_start_period)?,
            retries: self.health_retries.unwrap_or(0),
        }))
    }

    /// Parses every value; returns the engine's request.
    pub fn to_request(&self) -> anyhow::Result<engine::CreateRequest> {
        let mut env = Vec::new();
        for file in &self.env_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading env file {}", file.display()))?;
            for line in text.lines() {
                let line = line.trim();
                if !line.is_empty() && !line.starts_with('#') {
                    env_from(line, &mut env);
                }
            }
        }
        for e in &self.env {
            if e.starts_with('=') || e.is_empty() {
                bail!("invalid environment variable {e:?}: expected KEY=VALUE");
            }
            env_from(e, &mut env);
        }
        let host_cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let limits = Limits {
            memory: self
                .memory
                .as_deref()
                .map(units::parse_memory)
                .transpose()?,
            cpu_quota: self
                .cpus
                .as_deref()
                .map(|c| units::parse_cpus(c, host_cpus))
                .transpose()?,
            pids_limit: match self.pids_limit.as_deref() {
                Some(p) => units::parse_pids_limit(p)?,
                None => None,
            },
            memory_swap: self
                .memory_swap
                .as_deref()
                .map(units::parse_memory_swap)
                .transpose()?,
            cpu_shares: self.cpu_shares.filter(|s| *s != 0),
            memory_reservation: self
                .memory_reservation
                .as_deref()
                .map(units::parse_memory)
                .transpose()?,
            cpuset_cpus: self
                .cpuset_cpus
                .as_deref()
                .map(units::parse_cpuset)
                .transpose()?,
            ..Default::default()
        };
        let network = match self.network.as_deref() {
            Some("") => {
                bail!("invalid --network \"\": name a network, or none, host or container:<name>")
            }
            Some(n) => Some(NetworkMode::parse(n)),
            None => None,
        };
        let mut ports = Vec::new();
        for p in &self.publish {
            ports.extend(network::ports::parse(p)?);
        }
        let ip = match &self.ip {
            Some(ip) => Some(
                ip.parse::<std::net::Ipv4Addr>()
                    .map_err(|_| anyhow::anyhow!("invalid --ip {ip:?}: not an IPv4 address"))?,
            ),
            None => None,
        };
        if let Some(mac) = &self.mac_address {
            let ok = mac.split(':').count() == 6
                && mac
                    .split(':')
                    .all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok());
            if !ok {
                bail!(
                    "invalid --mac-address {mac:?}: expected six hex bytes like 02:42:ac:11:00:02"
                );
            }
        }
        let mut extra_hosts = Vec::new();
        for h in &self.add_host {
            let Some((host, addr)) = h.split_once(':') else {
                bail!("invalid --add-host {h:?}: expected host:ip");
            };
            if host.is_empty()
                || (addr != "host-gateway" && addr.parse::<std::net::IpAddr>().is_err())
            {
                bail!("invalid --add-host {h:?}: expected host:ip (ip may be host-gateway)");
            }
            extra_hosts.push((host.to_string(), addr.to_string()));
        }
        let network_options = engine::state::NetworkOptions {
            ports,
            publish_all: self.publish_all,
            exposed: Vec::new(),
            ip,
            mac: self.mac_address.clone(),
            aliases: self.network_alias.clone(),
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            dns_options: self.dns_option.clone(),
            extra_hosts,
            extra_networks: Vec::new(),
        };
        let isolation: IsolationChoice = self.isolation.parse()?;
        let restart: units::RestartPolicy = self.restart.parse()?;
        if self.rm && restart != units::RestartPolicy::No {
            bail!("conflicting options: --restart and --rm");
        }
        let mut mounts = Vec::new();
        for v in &self.volume {
            mounts.push(engine::mounts::parse_volume(v)?);
        }
        for m in &self.mount {
            mounts.push(engine::mounts::parse_mount(m)?);
        }
        Ok(engine::CreateRequest {
            image: self.image.clone(),
            name: self.name.clone(),
            cmd: self.command.clone(),
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    Vec::new()
                } else {
                    vec![e.clone()]
                }
            }),
            env,
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            tty: self.tty,
            open_stdin: self.interactive,
            auto_remove: self.rm,
            restart,
            network,
            network_options,
            read_only: self.read_only,
            mounts,
            limits,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            security_opt: self.security_opt.clone(),
            isolation: Some(isolation),
            init: self.init,
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            ulimits: self
                .ulimit
                .iter()
                .map(|u| units::parse_ulimit(u))
                .collect::<Result<_, _>>()?,
            sysctls: self
                .sysctl
                .iter()
                .map(|s| {
                    s.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| {
                            anyhow::anyhow!("invalid --sysctl {s:?}: expected key=value")
                        })
                })
                .collect::<anyhow::Result<_>>()?,
            group_add: self.group_add.clone(),
            pid_mode: self.pid.clone(),
            privileged: self.privileged,
            healthcheck: self.healthcheck()?,
            no_healthcheck: self.no_healthcheck,
            log_config: engine::state::LogConfig::parse(
                self.log_driver.as_deref(),
                &self
                    .log_opt
                    .iter()
                    .map(|o| {
                        o.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .ok_or_else(|| {
                                anyhow::anyhow!("invalid --log-opt {o:?}: expected key=value")
                            })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
            )?,
            ipc_mode: self.ipc.clone(),
            devices: self
                .device
                .iter()
                .map(|d| units::parse_device(d))
                .collect::<Result<_, _>>()?,
            labels: crate::networks::key_values("--label", &self.label)?,
            base: None,
        })
    }
}
