//! spec: writes a container's OCI runtime bundle: `bundle/config.json` made
//! from the container config (image defaults already merged with the user's
//! flags), with docker's default namespaces, mounts, masked paths and
//! capabilities, plus the `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`
//! files it bind-mounts from the container directory. It does not run anything.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::security::SecurityOptions;
use crate::state::{ContainerConfig, NetworkMode};
use crate::user::ResolvedUser;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the generated OCI config is invalid")]
    Invalid(#[source] serde_json::Error),
}

/// docker's masked paths.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// docker's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The host's static init that `--init` bind-mounts into the container
/// (Debian's `tini` package; docker's `--init` is the same program).
pub const INIT_BINARY: &str = "/usr/bin/tini-static";
/// Where `--init` puts it inside the container.
pub const INIT_IN_CONTAINER: &str = "/sbin/isola-init";

/// The cgroup path of a container (relative to each hierarchy's root).
pub fn cgroups_path(id: &str) -> String {
    format!("/isola/{id}")
}

/// `linux.resources` for `limits` (memory, CPU quota, pids), without devices.
pub fn limit_resources(limits: &crate::state::Limits) -> Value {
    let mut resources = json!({});
    if let Some(m) = limits.memory {
        resources["memory"]["limit"] = json!(m);
    }
    if let Some(s) = limits.memory_swap {
        resources["memory"]["swap"] = json!(s);
    }
    if let Some(q) = limits.cpu_quota {
        resources["cpu"]["quota"] = json!(q);
        resources["cpu"]["period"] = json!(limits.period_us());
    }
    if let Some(s) = limits.cpu_shares {
        resources["cpu"]["shares"] = json!(s);
    }
    if let Some(r) = limits.memory_reservation {
        resources["memory"]["reservation"] = json!(r);
    }
    if let Some(c) = &limits.cpuset_cpus {
        resources["cpu"]["cpus"] = json!(c);
    }
    if let Some(p) = limits.pids_limit {
        resources["pids"] = json!({ "limit": p });
    }
    resources
}

/// Rewrites the limits in the bundle's `linux.resources` (for the next
/// start), keeping the rest of the spec.
pub fn update_bundle_limits(
    container_dir: &Path,
    limits: &crate::state::Limits,
) -> Result<(), SpecError> {
    edit_bundle(container_dir, |spec| {
        let resources = &mut spec["linux"]["resources"];
        for key in ["memory", "cpu", "pids"] {
            if let Some(r) = resources.as_object_mut() {
                r.remove(key);
            }
        }
        if let (Some(r), Value::Object(new)) = (resources.as_object_mut(), limit_resources(limits))
        {
            r.extend(new);
        }
    })
}

/// Points the bundle's `kind` namespaces at `path`s (another container's
/// init now), keeping the rest of the spec.
pub fn update_bundle_namespaces(
    container_dir: &Path,
    paths: &[(&str, String)],
) -> Result<(), SpecError> {
    edit_bundle(container_dir, |spec| {
        for ns in spec["linux"]["namespaces"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if let Some((_, p)) = paths.iter().find(|(k, _)| ns["type"] == *k) {
                ns["path"] = json!(p);
            }
        }
    })
}

/// Reads the bundle's config.json, lets `edit` change it, writes it back
/// whole (atomically).
fn edit_bundle(container_dir: &Path, edit: impl FnOnce(&mut Value)) -> Result<(), SpecError> {
    let path = bundle_dir(container_dir).join("config.json");
    let text = std::fs::read(&path).map_err(|source| SpecError::Write {
        path: path.clone(),
        source,
    })?;
    let mut spec: Value = serde_json::from_slice(&text).map_err(SpecError::Invalid)?;
    edit(&mut spec);
    crate::store::write_json_atomic(&path, &spec).map_err(|e| SpecError::Write {
        path: path.clone(),
        source: std::io::Error::other(e),
    })
}

/// The bundle directory of a container directory.
pub fn bundle_dir(container_dir: &Path) -> PathBuf {
    container_dir.join("bundle")
}

fn write(path: &Path, data: &[u8]) -> Result<(), SpecError> {
    std::fs::write(path, data).map_err(|source| SpecError::Write {
        path: path.into(),
        source,
    })
}

/// The environment: the config's, plus PATH/HOSTNAME/HOME/TERM defaults as
/// docker adds them.
fn environment(config: &ContainerConfig, user: &ResolvedUser) -> Vec<String> {
    let mut env = config.env.clone();
    let has = |env: &[String], key: &str| env.iter().any(|e| e.split('=').next() == Some(key));
    if !has(&env, "PATH") {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    if !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={}", config.hostname));
    }
    if config.tty && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    if !has(&env, "HOME") {
        env.push(format!(
            "HOME={}",
            user.home.clone().unwrap_or_else(|| "/".into())
        ));
    }
    env
}

/// Writes hosts, hostname and resolv.conf into the container directory.
fn write_etc_files(config: &ContainerConfig, dir: &Path) -> Result<(), SpecError> {
    let hostname = &config.hostname;
    write(&dir.join("hostname"), format!("{hostname}\n").as_bytes())?;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (hosts, resolv) = match config.network {
        NetworkMode::Host => (
            std::fs::read("/etc/hosts").unwrap_or_default(),
            host_resolv.into_bytes(),
        ),
        // Until its network is attached (its monitor rewrites the file
        // then) the container is only itself on loopback.
        _ => (
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t{hostname}\n"
            )
            .into_bytes(),
            crate::netattach::resolv_conf(&host_resolv, config).into_bytes(),
        ),
    };
    write(&dir.join("hosts"), &hosts)?;
    write(&dir.join("resolv.conf"), &resolv)
}

/// The size of every container's /dev/shm (docker's default too), unless
/// a tmpfs mount of its own covers it.
pub const SHM_SIZE: u64 = 64 << 20;

fn default_mounts() -> Vec<Value> {
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={SHM_SIZE}")]}),
    ]
}

/// Every character and block device in the host's /dev (not those of
/// /dev/pts, /dev/shm, /dev/mqueue, which the container has its own of):
/// what `--privileged` makes in the container.
fn host_devices() -> Vec<crate::state::Device> {
    fn walk(dir: &Path, out: &mut Vec<crate::state::Device>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                continue;
            }
            if meta.is_dir() {
                if !["/dev/pts", "/dev/shm", "/dev/mqueue"].contains(&path.to_str().unwrap_or("")) {
                    walk(&path, out);
                }
                continue;
            }
            if let Ok(d) = crate::units::parse_device(&path.display().to_string()) {
                out.push(d);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out);
    out.retain(|d| {
        !["/dev/console", "/dev/ptmx", "/dev/tty"].contains(&d.path_in_container.as_str())
    });
    out.sort_by(|a, b| a.path_in_container.cmp(&b.path_in_container));
    out
}

fn device_rules() -> Vec<Value> {
    let allow = |t: &str, major: i64, minor: Option<i64>, access: &str| json!({"allow": true, "type": t, "major": major, "minor": minor, "access": access});
    vec![
        json!({"allow": false, "access": "rwm"}),
        allow("c", 1, Some(3), "rwm"),    // null
        allow("c", 1, Some(5), "rwm"),    // zero
        allow("c", 1, Some(7), "rwm"),    // full
        allow("c", 1, Some(8), "rwm"),    // random
        allow("c", 1, Some(9), "rwm"),    // urandom
        allow("c", 5, Some(0), "rwm"),    // tty
        allow("c", 5, Some(1), "rwm"),    // console
        allow("c", 5, Some(2), "rwm"),    // ptmx
        allow("c", 136, None, "rwm"),     // pts/*
        allow("c", 10, Some(200), "rwm"), // net/tun
    ]
}

/// Builds the OCI runtime config of a container. `caps` is the final
/// capability list; `user` is resolved against the rootfs.
pub fn runtime_config(
    config: &ContainerConfig,
    dir: &Path,
    user: &ResolvedUser,
    caps: &[String],
    security: &SecurityOptions,
) -> Value {
    // `--pid`/`--ipc host` leave the namespace out (the host's); a
    // container's is joined by path, set at each start
    // ([`update_bundle_namespaces`]).
    let shared = |kind: &str, m: &Option<crate::state::NamespaceMode>| match m {
        None => Some(json!({ "type": kind })),
        Some(crate::state::NamespaceMode::Host) => None,
        Some(crate::state::NamespaceMode::Container(_)) => {
            Some(json!({ "type": kind, "path": format!("/proc/self/ns/{kind}") }))
        }
    };
    let mut namespaces: Vec<Value> = [
        shared("pid", &config.pid_mode),
        Some(json!({"type": "mount"})),
        shared("ipc", &config.ipc_mode),
        Some(json!({"type": "uts"})),
        Some(json!({"type": "cgroup"})),
    ]
    .into_iter()
    .flatten()
    .collect();
    // A VM container's namespace on the host holds its VM's tap, not the
    // container: in the guest the agent gives it the guest's stack.
    let joins_host_netns = config.isolation == crate::isolation::Isolation::Process;
    match (&config.network, &config.netns) {
        (NetworkMode::Host, _) => {}
        (_, Some(path)) if joins_host_netns => {
            namespaces.push(json!({"type": "network", "path": path}))
        }
        _ => namespaces.push(json!({"type": "network"})),
    }
    let mut mounts = default_mounts();
    if config.privileged {
        // /sys and the cgroup tree writable, as docker's --privileged.
        for m in &mut mounts {
            if m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup" {
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|o| o != "ro");
                }
            }
        }
    }
    if config.read_only {
        // A read-only root still gets a writable /dev and /dev/shm (tmpfs above);
        // the rest follows root.readonly.
    }
    for m in &config.mounts {
        let mut options: Vec<String> = match m.kind.as_str() {
            "tmpfs" => vec!["nosuid".into(), "nodev".into()],
            _ => vec!["rbind".into()],
        };
        if !m.rw {
            options.push("ro".into());
        }
        options.extend(m.options.iter().cloned());
        // A volume is its `_data` directory bound in (the VM backend shares
        // it with the guest as it does any directory bind).
        let kind = match m.kind.as_str() {
            crate::state::MOUNT_VOLUME => "bind",
            k => k,
        };
        mounts.push(json!({"destination": m.destination, "type": kind, "source": m.source, "options": options}));
    }
    let mut args = config.args.clone();
    if config.init {
        mounts.push(json!({
            "destination": INIT_IN_CONTAINER,
            "type": "bind",
            "source": INIT_BINARY,
            "options": ["rbind", "ro"],
        }));
        args = [INIT_IN_CONTAINER.to_string(), "--".to_string()]
            .into_iter()
            .chain(args)
            .collect();
    }
    let etc_ro = if config.read_only { vec!["ro"] } else { vec![] };
    for name in ["hosts", "hostname", "resolv.conf"] {
        let mut options = vec!["rbind"];
        options.extend(etc_ro.iter().copied());
        mounts.push(json!({
            "destination": format!("/etc/{name}"),
            "type": "bind",
            "source": dir.join(name),
            "options": options,
        }));
    }
    let mut resources = limit_resources(&config.limits);
    resources["devices"] = match config.privileged {
        true => json!([{"allow": true, "access": "rwm"}]),
        false => Value::Array(device_rules()),
    };
    let (masked, readonly): (&[&str], &[&str]) = match config.privileged {
        true => (&[], &[]),
        false => (MASKED_PATHS, READONLY_PATHS),
    };
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": cgroups_path(&config.id),
        "resources": resources,
        "maskedPaths": masked,
        "readonlyPaths": readonly,
    });
    if let Some(s) = &security.seccomp {
        linux["seccomp"] = s.clone();
    }
    if !config.sysctls.is_empty() {
        linux["sysctl"] = json!(config.sysctls);
    }
    let host_devices = if config.privileged {
        host_devices()
    } else {
        Vec::new()
    };
    if !config.devices.is_empty() || !host_devices.is_empty() {
        // The runtime allows each in the device rules (rwm), as runc does.
        linux["devices"] = Value::Array(
            host_devices
                .iter()
                .chain(&config.devices)
                .map(|d| {
                    json!({
                        "path": d.path_in_container,
                        "type": d.kind,
                        "major": d.major,
                        "minor": d.minor,
                        "fileMode": d.file_mode,
                        "uid": 0,
                        "gid": 0,
                    })
                })
                .collect(),
        );
    }
    let mut user_json = json!({ "uid": user.uid, "gid": user.gid });
    if !user.additional_gids.is_empty() {
        user_json["additionalGids"] = json!(user.additional_gids);
    }
    let cwd = if config.working_dir.is_empty() {
        "/"
    } else {
        config.working_dir.as_str()
    };
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": config.tty,
            "user": user_json,
            "args": args,
            "env": environment(config, user),
            "cwd": cwd,
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
            },
            "noNewPrivileges": security.no_new_privileges,
            "rlimits": rlimits(config),
        },
        "root": { "path": config.rootfs, "readonly": config.read_only },
        "hostname": config.hostname,
        "mounts": mounts,
        "linux": linux,
    })
}

/// `process.rlimits` of `--ulimit` (-1: unlimited).
fn rlimits(config: &ContainerConfig) -> Value {
    let n = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    Value::Array(
        config
            .ulimits
            .iter()
            .filter_map(|u| {
                Some(json!({
                    "type": crate::units::rlimit_type(&u.name)?,
                    "soft": n(u.soft),
                    "hard": n(u.hard),
                }))
            })
            .collect(),
    )
}

/// Writes the bundle (`bundle/config.json`) and the /etc files.
pub fn write_bundle(
    config: &ContainerConfig,
    dir: &Path,
    user: &ResolvedUser,
    caps: &[String],
    security: &SecurityOptions,
) -> Result<PathBuf, SpecError> {
    write_etc_files(config, dir)?;
    let spec = runtime_config(config, dir, user, caps, security);
    // Parse with oci-spec so a field we get wrong fails here, not in the runtime.
    let _: oci_spec::runtime::Spec =
        serde_json::from_value(spec.clone()).map_err(SpecError::Invalid)?;
    let bundle = bundle_dir(dir);
    std::fs::create_dir_all(&bundle).map_err(|source| SpecError::Write {
        path: bundle.clone(),
        source,
    })?;
    let data = serde_json::to_vec_pretty(&spec).map_err(SpecError::Invalid)?;
    write(&bundle.join("config.json"), &data)?;
    Ok(bundle)
}

/// What `exec` asks for.
#[derive(Debug, Clone)]
pub struct ExecRequest<'a> {
    pub args: &'a [String],
    /// Extra `KEY=VALUE`s over the container's environment.
    pub env: &'a [String],
    pub user: &'a ResolvedUser,
    pub cwd: Option<&'a str>,
    pub tty: bool,
}

/// The OCI process for `exec`, inheriting the container's env and user
/// unless overridden.
pub fn exec_process(
    config: &ContainerConfig,
    req: &ExecRequest<'_>,
    caps: &[String],
    security: &SecurityOptions,
) -> Value {
    let ExecRequest {
        args,
        env,
        user,
        cwd,
        tty,
    } = req.clone();
    let mut full_env = environment(config, user);
    for e in env {
        let key = e.split('=').next().unwrap_or_default();
        full_env.retain(|x| x.split('=').next() != Some(key));
        full_env.push(e.clone());
    }
    let mut user_json = json!({ "uid": user.uid, "gid": user.gid });
    if !user.additional_gids.is_empty() {
        user_json["additionalGids"] = json!(user.additional_gids);
    }
    let cwd = cwd
        .filter(|c| !c.is_empty())
        .unwrap_or(if config.working_dir.is_empty() {
            "/"
        } else {
            &config.working_dir
        });
    json!({
        "terminal": tty,
        "user": user_json,
        "args": args,
        "env": full_env,
        "cwd": cwd,
        "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
        "noNewPrivileges": security.no_new_privileges,
        "rlimits": rlimits(config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::capabilities;
    use crate::state::{Limits, MountPoint};

    fn config() -> ContainerConfig {
        let mut c = crate::store::tests_support::config("a".repeat(64).as_str(), "web");
        c.limits = Limits {
            memory: Some(512 << 20),
            cpu_quota: Some(50_000),
            pids_limit: Some(64),
            ..Default::default()
        };
        c.mounts.push(MountPoint {
            kind: "bind".into(),
            source: "/tmp".into(),
            destination: "/data".into(),
            rw: false,
            ..Default::default()
        });
        c
    }

    #[test]
    fn config_has_docker_defaults_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let c = config();
        let caps = capabilities(&[], &[]).unwrap();
        let user = ResolvedUser {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![29],
            home: Some("/srv".into()),
        };
        write_bundle(&c, dir.path(), &user, &caps, &SecurityOptions::default()).unwrap();
        let v: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("bundle/config.json")).unwrap())
                .unwrap();
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "mount", "ipc", "uts", "cgroup", "network"]);
        assert_eq!(v["linux"]["cgroupsPath"], format!("/isola/{}", c.id));
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 512 << 20);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 64);
        assert_eq!(v["hostname"], c.hostname);
        assert_eq!(v["root"]["path"], "/nonexistent");
        assert_eq!(v["process"]["user"]["additionalGids"][0], 29);
        assert!(v["process"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "HOME=/srv"));
        let data = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/data")
            .unwrap();
        assert!(data["options"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "ro"));
        assert!(v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["destination"] == "/etc/hosts"));
        assert!(std::fs::read_to_string(dir.path().join("hosts"))
            .unwrap()
            .contains("localhost"));
        assert_eq!(
            v["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
    }

    #[test]
    fn host_network_keeps_the_host_namespace() {
        let mut c = config();
        c.network = NetworkMode::Host;
        let v = runtime_config(
            &c,
            Path::new("/x"),
            &ResolvedUser::default(),
            &[],
            &SecurityOptions::default(),
        );
        assert!(!v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network"));
    }
}
