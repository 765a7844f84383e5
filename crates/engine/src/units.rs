//! units: parsing of the flag values users type (`--memory 512m`, `--cpus 1.5`,
//! `--restart on-failure:3`) and docker's human-readable durations
//! ("Up 3 seconds", "2 hours ago"). Pure functions; no I/O.

use serde::{Deserialize, Serialize};

/// An invalid flag value, with the flag, the value and what is accepted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ValueError {
    #[error("invalid --memory value {value:?}: expected a number with an optional unit b, k, m or g (e.g. 512m)")]
    Memory { value: String },
    #[error("invalid --memory value {value:?}: the minimum memory limit is 6MB ({vm_min} MiB for a VM container, --isolation=vm)", vm_min = vm::cmdline::MIN_CONTAINER_MEMORY_MIB)]
    MemoryTooSmall { value: String },
    #[error("invalid --memory-swap value {value:?}: expected -1 (unlimited swap) or a number with an optional unit b, k, m or g (e.g. 1g)")]
    MemorySwap { value: String },
    #[error("invalid --cpus value {value:?}: expected a number between 0.01 and {host_cpus} (the CPUs this host has)")]
    Cpus { value: String, host_cpus: usize },
    #[error("invalid --pids-limit value {value:?}: expected an integer (0 or -1 for no limit)")]
    Pids { value: String },
    #[error("invalid --restart value {value:?}: expected no, always, unless-stopped or on-failure[:max-retries]")]
    Restart { value: String },
    #[error(
        "invalid signal {value:?}: expected a name like SIGTERM or TERM, or a number from 1 to 64"
    )]
    Signal { value: String },
    #[error("invalid --cpuset-cpus {value:?}: expected CPU numbers and ranges of this host (0-{last}, like 0-2,4)")]
    Cpuset { value: String, last: usize },
    #[error("invalid --log-driver {value:?}: isola logs with json-file (also local) or none")]
    LogDriver { value: String },
    #[error("invalid --log-opt {value:?}: json-file takes max-size=SIZE and max-file=N; none takes nothing")]
    LogOpt { value: String },
    #[error("invalid --device {value:?}: {why}")]
    Device { value: String, why: String },
    #[error("invalid --ulimit {value:?}: {why}")]
    Ulimit { value: String, why: &'static str },
    #[error("invalid --sysctl {value:?}: {why}")]
    Sysctl { value: String, why: String },
}

/// A cpuset (`0-2,4`) of CPUs this host has.
pub fn parse_cpuset(value: &str) -> Result<String, ValueError> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let bad = || ValueError::Cpuset {
        value: value.into(),
        last: cpus - 1,
    };
    let cpu = |s: &str| s.parse::<usize>().ok().filter(|n| *n < cpus);
    for part in value.split(',') {
        let ok = match part.split_once('-') {
            Some((a, b)) => matches!((cpu(a), cpu(b)), (Some(a), Some(b)) if a <= b),
            None => cpu(part).is_some(),
        };
        if !ok {
            return Err(bad());
        }
    }
    Ok(value.to_string())
}

/// `HOST[:CONTAINER[:rwm]]`: a host character or block device, by its
/// numbers now.
pub fn parse_device(value: &str) -> Result<crate::state::Device, ValueError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let bad = |why: String| ValueError::Device {
        value: value.into(),
        why,
    };
    let mut parts = value.splitn(3, ':');
    let host = parts.next().unwrap_or_default();
    let inside = parts.next().filter(|p| !p.is_empty()).unwrap_or(host);
    if let Some(perms) = parts.next() {
        if perms != "rwm" {
            return Err(bad(format!(
                "permissions {perms:?}: isola gives a device rwm, or refuses it"
            )));
        }
    }
    if !host.starts_with('/') || !inside.starts_with('/') {
        return Err(bad("expected absolute paths, HOST[:CONTAINER]".into()));
    }
    let meta = std::fs::metadata(host).map_err(|e| bad(format!("{host}: {e}")))?;
    let kind = if meta.file_type().is_char_device() {
        "c"
    } else if meta.file_type().is_block_device() {
        "b"
    } else {
        return Err(bad(format!("{host} is not a device")));
    };
    let rdev = meta.rdev();
    Ok(crate::state::Device {
        path_on_host: host.into(),
        path_in_container: inside.into(),
        kind: kind.into(),
        major: nix::sys::stat::major(rdev) as i64,
        minor: nix::sys::stat::minor(rdev) as i64,
        file_mode: meta.permissions().mode() & 0o7777,
    })
}

/// docker's `--ulimit` names and the RLIMIT each sets.
const ULIMITS: [(&str, &str); 16] = [
    ("as", "RLIMIT_AS"),
    ("core", "RLIMIT_CORE"),
    ("cpu", "RLIMIT_CPU"),
    ("data", "RLIMIT_DATA"),
    ("fsize", "RLIMIT_FSIZE"),
    ("locks", "RLIMIT_LOCKS"),
    ("memlock", "RLIMIT_MEMLOCK"),
    ("msgqueue", "RLIMIT_MSGQUEUE"),
    ("nice", "RLIMIT_NICE"),
    ("nofile", "RLIMIT_NOFILE"),
    ("nproc", "RLIMIT_NPROC"),
    ("rss", "RLIMIT_RSS"),
    ("rtprio", "RLIMIT_RTPRIO"),
    ("rttime", "RLIMIT_RTTIME"),
    ("sigpending", "RLIMIT_SIGPENDING"),
    ("stack", "RLIMIT_STACK"),
];

/// The OCI `rlimits` type of a docker ulimit name (`nofile` → `RLIMIT_NOFILE`).
pub fn rlimit_type(name: &str) -> Option<&'static str> {
    ULIMITS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// `name=soft[:hard]` (`nofile=1024:2048`; `-1` unlimited), as docker reads it.
pub fn parse_ulimit(value: &str) -> Result<crate::state::Ulimit, ValueError> {
    let bad = |why| ValueError::Ulimit {
        value: value.into(),
        why,
    };
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| bad("expected name=soft[:hard]"))?;
    rlimit_type(name)
        .ok_or_else(|| bad("not a ulimit name (nofile, nproc, core, memlock, stack, ...)"))?;
    let num = |s: &str| s.parse::<i64>().ok().filter(|n| *n >= -1);
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (num(s), num(h)),
        None => (num(limits), num(limits)),
    };
    let (Some(soft), Some(hard)) = (soft, hard) else {
        return Err(bad("limits must be numbers (or -1, unlimited)"));
    };
    let cap = |n: i64| if n == -1 { u64::MAX } else { n as u64 };
    if cap(soft) > cap(hard) {
        return Err(bad("the soft limit is above the hard limit"));
    }
    Ok(crate::state::Ulimit {
        name: name.into(),
        soft,
        hard,
    })
}

/// `key=value` of `--sysctl`, checked as docker checks it: only keys a
/// container's own namespaces hold (IPC: `kernel.msg*`, `kernel.sem`,
/// `kernel.shm*`, `fs.mqueue.*`; network: `net.*`, not with the host's
/// network).
pub fn parse_sysctl(value: &str, host_network: bool) -> Result<(String, String), ValueError> {
    let bad = |why: String| ValueError::Sysctl {
        value: value.into(),
        why,
    };
    let (key, v) = value
        .split_once('=')
        .ok_or_else(|| bad("expected key=value".into()))?;
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        return Ok((key.into(), v.into()));
    }
    if key.starts_with("net.") {
        if host_network {
            return Err(bad(
                "the container shares the host's network namespace, so net.* would change the host's".into(),
            ));
        }
        return Ok((key.into(), v.into()));
    }
    Err(bad(format!(
        "{key} is not in a namespace the container owns (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*)"
    )))
}

/// A signal by name (`SIGTERM`, `term`) or number (`15`).
pub fn parse_signal(value: &str) -> Result<i32, ValueError> {
    let err = || ValueError::Signal {
        value: value.into(),
    };
    if let Ok(n) = value.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(err())
        };
    }
    let upper = value.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| err())
}

/// Parses a byte size the way docker does (`RAMInBytes`): a decimal number, an
/// optional unit k/m/g/t/p (binary multiples), an optional `i` and `b`.
pub fn parse_bytes(value: &str) -> Option<u64> {
    let v = value.trim().to_ascii_lowercase();
    let num_end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(num_end);
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

/// `--memory`: at least 6 MiB, as docker requires.
pub fn parse_memory(value: &str) -> Result<u64, ValueError> {
    let bytes = parse_bytes(value).ok_or_else(|| ValueError::Memory {
        value: value.into(),
    })?;
    if bytes < 6 * 1024 * 1024 {
        return Err(ValueError::MemoryTooSmall {
            value: value.into(),
        });
    }
    Ok(bytes)
}

/// `--memory-swap`: memory plus swap in bytes, or -1 for unlimited swap.
pub fn parse_memory_swap(value: &str) -> Result<i64, ValueError> {
    if value.trim() == "-1" {
        return Ok(-1);
    }
    parse_bytes(value)
        .and_then(|b| i64::try_from(b).ok())
        .ok_or_else(|| ValueError::MemorySwap {
            value: value.into(),
        })
}

/// The CFS period isola uses with `--cpus` (docker's).
pub const CPU_PERIOD_US: u64 = 100_000;

/// `--cpus`: a positive decimal no larger than the host's CPU count; returns
/// the CFS quota in microseconds per [`CPU_PERIOD_US`].
pub fn parse_cpus(value: &str, host_cpus: usize) -> Result<u64, ValueError> {
    let err = || ValueError::Cpus {
        value: value.into(),
        host_cpus,
    };
    let n: f64 = value.trim().parse().map_err(|_| err())?;
    if !n.is_finite() || n < 0.01 || n > host_cpus as f64 {
        return Err(err());
    }
    Ok((n * CPU_PERIOD_US as f64).round() as u64)
}

/// `--pids-limit`: `None` for no limit (0 or negative, as docker).
pub fn parse_pids_limit(value: &str) -> Result<Option<i64>, ValueError> {
    let n: i64 = value.trim().parse().map_err(|_| ValueError::Pids {
        value: value.into(),
    })?;
    Ok((n > 0).then_some(n))
}

/// What the monitor does when the container's main process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "Name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    UnlessStopped,
    OnFailure {
        /// 0 = no limit.
        #[serde(rename = "MaximumRetryCount")]
        max_retries: u32,
    },
}

impl std::str::FromStr for RestartPolicy {
    type Err = ValueError;
    fn from_str(value: &str) -> Result<Self, ValueError> {
        let err = || ValueError::Restart {
            value: value.into(),
        };
        let (name, count) = match value.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (value, None),
        };
        match (name, count) {
            ("no" | "", None) => Ok(RestartPolicy::No),
            ("always", None) => Ok(RestartPolicy::Always),
            ("unless-stopped", None) => Ok(RestartPolicy::UnlessStopped),
            ("on-failure", None) => Ok(RestartPolicy::OnFailure { max_retries: 0 }),
            ("on-failure", Some(c)) => Ok(RestartPolicy::OnFailure {
                max_retries: c.parse().map_err(|_| err())?,
            }),
            _ => Err(err()),
        }
    }
}

impl RestartPolicy {
    /// Whether to restart after an exit with `code`, having restarted
    /// `restarts` times already; `stopped_by_user` is set by `isola stop`.
    pub fn should_restart(&self, code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match *self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { max_retries } => {
                code != 0 && (max_retries == 0 || restarts < max_retries)
            }
        }
    }
}

/// docker's `HumanDuration`: "Less than a second", "3 seconds", "About a minute",
/// "5 minutes", "About an hour", "3 hours", "2 days", "3 weeks", "4 months", "2 years".
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let secs = d.num_seconds().max(0);
    // Rounded, as docker's `int(d.Hours() + 0.5)`: 90 minutes are "2 hours".
    let hours = (secs + 1800) / 3600;
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

/// docker's `BytesSize` for `stats`: "1.5MiB", "512KiB", "2GiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{:.4}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .chars()
            .take(5)
            .collect::<String>()
            .trim_end_matches('.')
            .to_string()
            + UNITS[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_values() {
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_memory("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_memory("8388608").unwrap(), 8 << 20);
        assert!(matches!(
            parse_memory("10q"),
            Err(ValueError::Memory { .. })
        ));
        assert!(matches!(
            parse_memory("1k"),
            Err(ValueError::MemoryTooSmall { .. })
        ));
        assert!(parse_memory("").is_err());
        assert!(parse_memory("-5m").is_err());
    }

    #[test]
    fn cpus_values() {
        assert_eq!(parse_cpus("1.5", 2).unwrap(), 150_000);
        assert_eq!(parse_cpus("0.5", 2).unwrap(), 50_000);
        assert!(parse_cpus("-1", 2).is_err());
        assert!(parse_cpus("0", 2).is_err());
        assert!(parse_cpus("3", 2).is_err());
        assert!(parse_cpus("x", 2).is_err());
    }

    #[test]
    fn pids_values() {
        assert_eq!(parse_pids_limit("100").unwrap(), Some(100));
        assert_eq!(parse_pids_limit("-1").unwrap(), None);
        assert!(parse_pids_limit("lots").is_err());
    }

    #[test]
    fn restart_policies() {
        assert_eq!("no".parse::<RestartPolicy>().unwrap(), RestartPolicy::No);
        assert_eq!(
            "on-failure:3".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure { max_retries: 3 }
        );
        assert!("sometimes".parse::<RestartPolicy>().is_err());
        assert!("always:2".parse::<RestartPolicy>().is_err());
        let p = RestartPolicy::OnFailure { max_retries: 2 };
        assert!(p.should_restart(1, 1, false));
        assert!(!p.should_restart(1, 2, false));
        assert!(!p.should_restart(0, 0, false));
        assert!(!RestartPolicy::Always.should_restart(0, 0, true));
    }

    #[test]
    fn durations_read_like_docker() {
        let s = chrono::TimeDelta::seconds;
        assert_eq!(human_duration(s(0)), "Less than a second");
        assert_eq!(human_duration(s(3)), "3 seconds");
        assert_eq!(human_duration(s(70)), "About a minute");
        assert_eq!(human_duration(s(300)), "5 minutes");
        assert_eq!(human_duration(s(3700)), "About an hour");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
        assert_eq!(human_duration(s(0)), "Less than a second");
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(45)), "45 seconds");
        assert_eq!(human_duration(s(90)), "About a minute");
        assert_eq!(human_duration(s(600)), "10 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(90 * 60)), "2 hours");
        assert_eq!(human_duration(s(20 * 86400)), "2 weeks");
        assert_eq!(human_duration(s(90 * 86400)), "3 months");
        assert_eq!(human_duration(s(800 * 86400)), "2 years");
    }

    #[test]
    fn bytes_read_like_docker() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1536 * 1024), "1.5MiB");
        assert_eq!(human_bytes(2 << 30), "2GiB");
    }
}
