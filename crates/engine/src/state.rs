//! state: what the engine records about one container. [`ContainerConfig`] is
//! what the user asked for (fixed at create, except the name); [`ContainerState`]
//! is what happened since (written by the CLI and by the monitor). Both are
//! plain serde types; the store owns how they reach the disk.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::isolation::Isolation;
use crate::units::{human_duration, RestartPolicy};

/// The network a container gets. Stored and shown as docker writes it:
/// `none`, `host`, `container:<id>`, or a network's name (the default
/// network is [`DEFAULT_NETWORK`], which `bridge` also names).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// Its own network namespace with only a loopback interface.
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// The network namespace of another container (its id).
    Container(String),
    /// Its own namespace, attached to a network (its name).
    Network(String),
}

/// The network every container joins unless told otherwise (docker's
/// `bridge`); its bridge device is `isola0`.
pub const DEFAULT_NETWORK: &str = "isola";

impl NetworkMode {
    /// The value `--network` takes (`bridge` is the default network).
    pub fn parse(value: &str) -> NetworkMode {
        match value {
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            "bridge" | "default" => NetworkMode::Network(DEFAULT_NETWORK.into()),
            v => match v.strip_prefix("container:") {
                Some(id) => NetworkMode::Container(id.into()),
                None => NetworkMode::Network(v.into()),
            },
        }
    }

    /// docker's `HostConfig.NetworkMode` text.
    pub fn as_docker(&self) -> String {
        match self {
            NetworkMode::None => "none".into(),
            NetworkMode::Host => "host".into(),
            NetworkMode::Container(id) => format!("container:{id}"),
            NetworkMode::Network(n) if n == DEFAULT_NETWORK => "bridge".into(),
            NetworkMode::Network(n) => n.clone(),
        }
    }

    /// The network it attaches to, if any.
    pub fn network(&self) -> Option<&str> {
        match self {
            NetworkMode::Network(n) => Some(n),
            _ => None,
        }
    }
}

impl Serialize for NetworkMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            NetworkMode::Network(n) => s.serialize_str(&format!("network:{n}")),
            other => s.serialize_str(&other.as_docker()),
        }
    }
}

impl<'de> Deserialize<'de> for NetworkMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<NetworkMode, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.strip_prefix("network:") {
            Some(n) => NetworkMode::Network(n.into()),
            None => NetworkMode::parse(&text),
        })
    }
}

/// What the user asked of the container's network beyond its mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkOptions {
    /// `-p`, one entry per port (host port 0: picked at start).
    pub ports: Vec<network::PortMapping>,
    /// `-P`: the image's exposed ports, each on a picked host port.
    pub publish_all: bool,
    /// The image's `ExposedPorts` ("80/tcp").
    pub exposed: Vec<String>,
    pub ip: Option<std::net::Ipv4Addr>,
    pub mac: Option<String>,
    pub aliases: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `--add-host name:ip` (`host-gateway` already resolved).
    pub extra_hosts: Vec<(String, String)>,
    /// Networks joined with `network connect`, beside the one of its mode
    /// (interfaces eth1, eth2, ... in the order joined).
    pub extra_networks: Vec<String>,
}

/// One of a container's mounts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// "bind", "tmpfs" or "volume" ([`MOUNT_VOLUME`]).
    #[serde(rename = "Type")]
    pub kind: String,
    /// A bind's host path; a volume's `_data` directory (filled in at
    /// create, from [`MountPoint::name`]).
    pub source: String,
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    /// Extra mount options (tmpfs size/mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// A volume's name; `None` in a request: a new anonymous volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A volume made for this container alone (`-v /path`, the image's
    /// `VOLUME`s): `rm -v` and `run --rm` remove it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// `nocopy`: a new volume does not get the image's content at the
    /// destination.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
}

/// [`MountPoint::kind`] of a volume.
pub const MOUNT_VOLUME: &str = "volume";

/// Resource limits applied through cgroups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Limits {
    /// Bytes.
    pub memory: Option<u64>,
    /// CFS quota in microseconds per [`Limits::period_us`].
    pub cpu_quota: Option<u64>,
    pub pids_limit: Option<i64>,
    /// The CFS period in microseconds when the user gave one with the
    /// quota (docker's CpuQuota/CpuPeriod, `--cpu-quota`/`--cpu-period`);
    /// `None`: [`crate::units::CPU_PERIOD_US`], the quota then being a
    /// number of CPUs (docker's NanoCpus, `--cpus`).
    #[serde(default)]
    pub cpu_period: Option<u64>,
    /// The relative CPU weight (docker's CpuShares; 1024 is the default).
    #[serde(default)]
    pub cpu_shares: Option<u64>,
    /// Memory plus swap, bytes (docker's MemorySwap); -1 is unlimited swap.
    #[serde(default)]
    pub memory_swap: Option<i64>,
    /// The soft memory limit, bytes (docker's MemoryReservation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<u64>,
    /// The CPUs the container may run on, cpuset syntax (`0-2,4`; docker's CpusetCpus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<String>,
}

impl Limits {
    /// The CFS period the quota counts in, microseconds.
    pub fn period_us(&self) -> u64 {
        self.cpu_period.unwrap_or(crate::units::CPU_PERIOD_US)
    }

    /// The CPU limit as a number of CPUs, however it was given.
    pub fn cpus(&self) -> Option<f64> {
        self.cpu_quota
            .map(|q| q as f64 / self.period_us().max(1) as f64)
    }
}

/// What the user asked for, resolved against the image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
    /// The image reference as the user typed it.
    pub image: String,
    /// The image's id (config digest).
    pub image_id: String,
    pub isolation: Isolation,
    /// The process: args, env, working directory, user as typed.
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub hostname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub auto_remove: bool,
    pub restart_policy: RestartPolicy,
    pub network: NetworkMode,
    #[serde(default)]
    pub network_options: NetworkOptions,
    /// The persistent network namespace the container joins (process
    /// mode, every mode but `host`): its own, or the one of the container
    /// it shares (`container:<id>`).
    #[serde(default)]
    pub netns: Option<PathBuf>,
    pub read_only: bool,
    pub mounts: Vec<MountPoint>,
    pub limits: Limits,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    /// Run a minimal init (tini) as PID 1 that reaps zombies and forwards signals.
    #[serde(default)]
    pub init: bool,
    /// The image store's snapshot key holding this container's rootfs.
    pub snapshot_key: String,
    /// The snapshot's root filesystem path.
    pub rootfs: PathBuf,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The image's platform (`linux/arm64`); empty for a hand-made image
    /// that names none (taken as the host's).
    #[serde(default)]
    pub platform: String,
    /// What `stop` sends first (`--stop-signal`, else the image's
    /// STOPSIGNAL; SIGTERM when neither).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (`--stop-timeout`; 10 when None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
    /// `--ulimit`: resource limits of the container's processes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    /// `--sysctl`: namespaced kernel parameters set in the container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// `--group-add`: more groups (names in the container's /etc/group, or
    /// numbers) for its processes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// `--device`: host devices made in the container (process mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// `--pid`: its own PID namespace (None), the host's, or another
    /// container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<NamespaceMode>,
    /// `--ipc`: the same for the IPC namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<NamespaceMode>,
    /// `--log-driver` and `--log-opt`.
    #[serde(default)]
    pub log_config: LogConfig,
    /// `--privileged`: every capability, no seccomp filter, every host
    /// device, /sys and the cgroup tree writable, nothing masked.
    #[serde(default)]
    pub privileged: bool,
    /// Its health check (the image's HEALTHCHECK, `--health-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::health::Healthcheck>,
}

/// The json-file driver, isola's log.
pub const LOG_JSON_FILE: &str = "json-file";
/// No log: `logs` has nothing to read.
pub const LOG_NONE: &str = "none";

/// How the container's output is logged (docker's LogConfig).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    /// [`LOG_JSON_FILE`] or [`LOG_NONE`].
    pub driver: String,
    /// Bytes at which the file rotates (`max-size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Files kept, the current one included (`max-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file: Option<u32>,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            driver: LOG_JSON_FILE.into(),
            max_size: None,
            max_file: None,
        }
    }
}

impl LogConfig {
    /// A driver and its options (`max-size=10m`, `max-file=3`), checked.
    pub fn parse(
        driver: Option<&str>,
        opts: &[(String, String)],
    ) -> Result<LogConfig, crate::units::ValueError> {
        use crate::units::ValueError;
        let driver = match driver.unwrap_or(LOG_JSON_FILE) {
            "" | "json-file" | "local" => LOG_JSON_FILE,
            "none" => LOG_NONE,
            other => {
                return Err(ValueError::LogDriver {
                    value: other.into(),
                })
            }
        };
        let mut config = LogConfig {
            driver: driver.into(),
            ..Default::default()
        };
        for (k, v) in opts {
            let bad = || ValueError::LogOpt {
                value: format!("{k}={v}"),
            };
            match k.as_str() {
                _ if driver == LOG_NONE => return Err(bad()),
                "max-size" => {
                    config.max_size = Some(
                        crate::units::parse_bytes(v)
                            .filter(|n| *n > 0)
                            .ok_or_else(bad)?,
                    )
                }
                "max-file" => {
                    config.max_file = Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?)
                }
                // Options json-file has and isola has no use for.
                "compress" | "labels" | "env" | "tag" | "mode" => {}
                _ => return Err(bad()),
            }
        }
        Ok(config)
    }
}

/// A namespace shared rather than the container's own (docker's
/// PidMode/IpcMode `host` and `container:<name|id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceMode {
    Host,
    /// The container's id.
    Container(String),
}

impl NamespaceMode {
    /// docker's form: `host`, `container:<id>`.
    pub fn as_docker(&self) -> String {
        match self {
            NamespaceMode::Host => "host".into(),
            NamespaceMode::Container(id) => format!("container:{id}"),
        }
    }
}

/// One `--device HOST[:CONTAINER]`: the node is made in the container's
/// /dev with the host device's numbers, and the device rules allow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Device {
    pub path_on_host: String,
    pub path_in_container: String,
    /// `c` or `b`.
    pub kind: String,
    pub major: i64,
    pub minor: i64,
    pub file_mode: u32,
}

/// One `--ulimit name=soft[:hard]` (docker's Ulimits entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

impl ContainerConfig {
    /// The signal `stop` sends first, as a number.
    pub fn stop_signal_number(&self) -> i32 {
        self.stop_signal
            .as_deref()
            .and_then(|s| crate::units::parse_signal(s).ok())
            .unwrap_or(libc::SIGTERM)
    }

    /// How long `stop` waits when the caller names no time.
    pub fn stop_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.stop_timeout.unwrap_or(10))
    }
}

/// Lifecycle states, docker's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether a process may be alive (the states `stop`/`rm -f` must act on).
    pub fn is_active(&self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "created" => Status::Created,
            "running" => Status::Running,
            "paused" => Status::Paused,
            "restarting" => Status::Restarting,
            "exited" => Status::Exited,
            "dead" => Status::Dead,
            _ => {
                return Err(format!(
                    "invalid status {s:?}: expected created, running, paused, restarting, exited or dead"
                ))
            }
        })
    }
}

/// A process identity that survives pid reuse: the pid and its start time
/// (field 22 of /proc/<pid>/stat, in clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessId {
    pub pid: i32,
    pub start_time: u64,
}

/// What happened to the container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    pub status: Status,
    /// The container's init process on the host (process mode) or the backend's
    /// main process (vm mode).
    pub init: Option<ProcessId>,
    /// The monitor process that owns the container's stdio and waits for it.
    pub monitor: Option<ProcessId>,
    pub exit_code: Option<i32>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub restart_count: u32,
    /// Set by `stop`: the restart policy must not bring the container back.
    pub stopped_by_user: bool,
    /// Why the last start failed or why the exit code is unknown.
    pub error: Option<String>,
    /// The network the running container holds (written by its monitor
    /// when attached, cleared when released).
    #[serde(default)]
    pub network: Option<NetworkState>,
    /// What it holds on the networks of `network connect`.
    #[serde(default)]
    pub extra_networks: Vec<NetworkState>,
    /// Its health checks' record, when it has a check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::Health>,
}

impl ContainerState {
    /// Every network attachment it holds: its mode's, then the connected ones.
    pub fn attachments(&self) -> impl Iterator<Item = &NetworkState> {
        self.network.iter().chain(self.extra_networks.iter())
    }
}

/// A container's attachment to its network while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkState {
    /// The network's name.
    pub network: String,
    /// The persistent namespace file.
    pub netns: PathBuf,
    pub attachment: network::Attachment,
    /// The published ports, host ports picked.
    pub ports: Vec<network::PortMapping>,
}

impl ContainerState {
    pub fn new() -> ContainerState {
        ContainerState {
            status: Status::Created,
            init: None,
            monitor: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            restart_count: 0,
            stopped_by_user: false,
            error: None,
            network: None,
            extra_networks: Vec::new(),
            health: None,
        }
    }

    /// The STATUS column of `ps`, docker's wording.
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        let ago = |t: Option<DateTime<Utc>>| t.map(|t| human_duration(now - t)).unwrap_or_default();
        match self.status {
            Status::Created => "Created".into(),
            Status::Running => match self.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => format!("Up {} (health: starting)", ago(self.started_at)),
                Some(h) => format!("Up {} ({h})", ago(self.started_at)),
                None => format!("Up {}", ago(self.started_at)),
            },
            Status::Paused => format!("Up {} (Paused)", ago(self.started_at)),
            Status::Restarting => format!(
                "Restarting ({}) {} ago",
                self.exit_code.unwrap_or(0),
                ago(self.finished_at)
            ),
            Status::Exited => format!(
                "Exited ({}) {} ago",
                self.exit_code.unwrap_or(-1),
                ago(self.finished_at)
            ),
            Status::Dead => "Dead".into(),
        }
    }
}

impl Default for ContainerState {
    fn default() -> Self {
        ContainerState::new()
    }
}

/// The start time of a live (non-zombie) process, for [`ProcessId`].
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state); starttime is field 22.
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

impl ProcessId {
    /// Identifies the live process `pid`.
    pub fn of(pid: i32) -> Option<ProcessId> {
        process_start_time(pid).map(|start_time| ProcessId { pid, start_time })
    }

    /// Whether this very process (not a later one with the same pid) still runs.
    pub fn is_alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.start_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_identified() {
        let me = ProcessId::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let other = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
    }

    #[test]
    fn status_column() {
        let now = Utc::now();
        let mut s = ContainerState::new();
        assert_eq!(s.describe(now), "Created");
        s.status = Status::Exited;
        s.exit_code = Some(7);
        s.finished_at = Some(now - chrono::TimeDelta::seconds(2));
        assert_eq!(s.describe(now), "Exited (7) 2 seconds ago");
        s.status = Status::Running;
        s.started_at = Some(now - chrono::TimeDelta::seconds(3));
        assert_eq!(s.describe(now), "Up 3 seconds");
    }
}
