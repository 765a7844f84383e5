//! spec: reads a bundle's config.json and checks it before anything is
//! created, so that a bad bundle fails with an error that names the field and
//! leaves nothing behind. It does not touch the system.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// What is wrong with a bundle's configuration.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path} at field `{field}`")]
    Parse {
        path: PathBuf,
        field: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("field `{field}` {problem}")]
    Invalid { field: String, problem: String },
    #[error("root filesystem {path} (field `root.path`)")]
    Rootfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Reads `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&data, &path)
}

/// Parses config.json text; errors name the JSON path of the bad field.
pub fn parse(data: &[u8], path: &Path) -> Result<Spec, SpecError> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        SpecError::Parse {
            path: path.to_path_buf(),
            field: if field.is_empty() { ".".into() } else { field },
            source: e.into_inner(),
        }
    })
}

/// The absolute rootfs path: `root.path`, relative to the bundle if relative.
pub fn rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf, SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "is missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(invalid("root.path", "is empty"));
    }
    let p = bundle.join(root.path());
    let canon = std::fs::canonicalize(&p).map_err(|source| SpecError::Rootfs {
        path: p.clone(),
        source,
    })?;
    if !canon.is_dir() {
        return Err(SpecError::Rootfs {
            path: p,
            source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
        });
    }
    Ok(canon)
}

/// Checks what the runtime needs beyond the JSON schema, before anything
/// is created (an exec'd process alone: [`validate_process`]).
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    // The runtime spec requires SemVer 2.0.0; a caller that wrote something
    // else is not speaking the format it claims.
    if let Err(e) = semver::Version::parse(spec.version()) {
        return Err(invalid(
            "ociVersion",
            format!(
                "{:?} is not a semantic version such as \"1.2.0\" ({e})",
                spec.version()
            ),
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "is missing"))?;
    validate_process(process, "process")?;

    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let d = m.destination();
        if d.as_os_str().is_empty() {
            return Err(invalid(format!("mounts[{i}].destination"), "is empty"));
        }
        if !d.is_absolute() {
            return Err(invalid(
                format!("mounts[{i}].destination"),
                format!("{} is not an absolute path", d.display()),
            ));
        }
        let bind = m.typ().as_deref() == Some("bind")
            || crate::mounts::parse_options(m.options().as_deref().unwrap_or(&[])).is_bind();
        if bind && m.source().is_none() {
            return Err(invalid(
                format!("mounts[{i}].source"),
                format!("is missing for the bind mount on {}", d.display()),
            ));
        }
    }

    let linux = spec.linux().as_ref();
    let namespaces: Vec<_> = linux
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut seen = HashSet::new();
    for (i, ns) in namespaces.iter().enumerate() {
        if !seen.insert(ns.typ() as u32) {
            return Err(invalid(
                format!("linux.namespaces[{i}].type"),
                format!("{} is listed twice", ns.typ()),
            ));
        }
        if let Some(p) = ns.path() {
            if !p.exists() {
                return Err(invalid(
                    format!("linux.namespaces[{i}].path"),
                    format!("{} does not exist", p.display()),
                ));
            }
        }
    }
    let new_ns = |t: LinuxNamespaceType| {
        namespaces
            .iter()
            .any(|n| n.typ() == t && n.path().is_none())
    };
    let has_ns = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has_ns(LinuxNamespaceType::Uts)
    {
        return Err(invalid(
            "hostname",
            "needs a UTS namespace in linux.namespaces",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty())
        && !has_ns(LinuxNamespaceType::Uts)
    {
        return Err(invalid(
            "domainname",
            "needs a UTS namespace in linux.namespaces",
        ));
    }
    // Without a mount namespace the container runs in the caller's, as with
    // runc; paths can only be masked in a private one.
    if !has_ns(LinuxNamespaceType::Mount) {
        for (field, paths) in [
            (
                "linux.maskedPaths",
                linux.and_then(|l| l.masked_paths().as_ref()),
            ),
            (
                "linux.readonlyPaths",
                linux.and_then(|l| l.readonly_paths().as_ref()),
            ),
        ] {
            if paths.is_some_and(|p| !p.is_empty()) {
                return Err(invalid(
                    field,
                    "needs a mount namespace in linux.namespaces (it would change the caller's)",
                ));
            }
        }
    }
    if let Some(l) = linux {
        let maps = l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if new_ns(LinuxNamespaceType::User) && !maps {
            return Err(invalid(
                "linux.uidMappings",
                "is empty but a new user namespace is requested",
            ));
        }
        if maps && !new_ns(LinuxNamespaceType::User) {
            return Err(invalid(
                "linux.uidMappings",
                "is set but no new user namespace is requested",
            ));
        }
        if l.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
            && !new_ns(LinuxNamespaceType::Time)
        {
            return Err(invalid(
                "linux.timeOffsets",
                "needs a new time namespace in linux.namespaces",
            ));
        }
        if let Some(p) = l.rootfs_propagation().as_deref() {
            if crate::mounts::propagation_flag(p).is_none() {
                return Err(invalid(
                    "linux.rootfsPropagation",
                    format!("{p:?} is not a propagation mode"),
                ));
            }
        }
        for key in l.sysctl().iter().flat_map(|s| s.keys()) {
            validate_sysctl(key, has_ns)?;
        }
        if let Some(p) = l.memory_policy() {
            crate::mempolicy::parse(p)?;
        }
        for (i, d) in l.devices().iter().flatten().enumerate() {
            if !d.path().is_absolute() {
                return Err(invalid(
                    format!("linux.devices[{i}].path"),
                    "must be an absolute path",
                ));
            }
        }
    }
    Ok(())
}

/// A `linux.sysctl` key is written while the init still holds every
/// capability, so only keys of a namespace the container has of its own
/// are accepted (runc's list): the IPC ones with an IPC namespace,
/// `net.*` with a network namespace, the host and domain name with a UTS
/// namespace. Anything else (`kernel.core_pattern`, `vm.*`, `fs.*`) would
/// change the host.
fn validate_sysctl(
    key: &str,
    has_ns: impl Fn(LinuxNamespaceType) -> bool,
) -> Result<(), SpecError> {
    let field = || format!("linux.sysctl[{key:?}]");
    // The key becomes a path under /proc/sys: no way out of it.
    let normal = key.replace('/', ".");
    if normal.is_empty()
        || normal
            .split('.')
            .any(|part| part.is_empty() || part == "..")
    {
        return Err(invalid(field(), "is not a sysctl name"));
    }
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.msg_next_id",
    ]
    .contains(&normal.as_str())
        || normal.starts_with("kernel.shm")
        || normal == "kernel.sem"
        || normal == "kernel.sem_next_id"
        || normal.starts_with("fs.mqueue.");
    let (needed, name) = if ipc {
        (LinuxNamespaceType::Ipc, "IPC")
    } else if normal.starts_with("net.") {
        (LinuxNamespaceType::Network, "network")
    } else if normal == "kernel.hostname" || normal == "kernel.domainname" {
        (LinuxNamespaceType::Uts, "UTS")
    } else {
        return Err(invalid(
            field(),
            "is not in a kernel namespace of the container's own: it would change the host",
        ));
    };
    if has_ns(needed) {
        Ok(())
    } else {
        Err(invalid(
            field(),
            format!("needs a {name} namespace in linux.namespaces (it would change the host's)"),
        ))
    }
}

/// Fields isola-runtime accepts but does not act on (the caller logs them).
pub fn ignored_fields(spec: &Spec) -> Vec<&'static str> {
    let mut out = Vec::new();
    if let Some(p) = spec.process() {
        if p.exec_cpu_affinity().is_some() {
            out.push("process.execCPUAffinity");
        }
        if p.apparmor_profile()
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            out.push("process.apparmorProfile");
        }
        if p.selinux_label().as_deref().is_some_and(|s| !s.is_empty()) {
            out.push("process.selinuxLabel");
        }
    }
    if let Some(l) = spec.linux() {
        if l.intel_rdt().is_some() {
            out.push("linux.intelRdt");
        }
        if l.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
            out.push("linux.netDevices");
        }
        if l.mount_label().as_deref().is_some_and(|s| !s.is_empty()) {
            out.push("linux.mountLabel");
        }
    }
    out
}

/// Checks a process (the init's, or one given to exec).
pub fn validate_process(
    process: &oci_spec::runtime::Process,
    field: &str,
) -> Result<(), SpecError> {
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => return Err(invalid(format!("{field}.args"), "is empty")),
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            format!("{field}.cwd"),
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    for (i, e) in process.env().iter().flatten().enumerate() {
        if !e.contains('=') {
            return Err(invalid(
                format!("{field}.env[{i}]"),
                format!("{e:?} is not KEY=VALUE"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_names_the_field() {
        let json =
            br#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}}"#;
        let err = parse(json, Path::new("config.json")).unwrap_err();
        assert!(
            err.to_string().contains("linux.namespaces[1].type"),
            "{err}"
        );
    }

    #[test]
    fn empty_args_is_invalid() {
        let json = br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"args":[],"cwd":"/","user":{"uid":0,"gid":0}},"linux":{"namespaces":[{"type":"mount"}]}}"#;
        let spec = parse(json, Path::new("config.json")).unwrap();
        let err = validate(&spec).unwrap_err();
        assert!(err.to_string().contains("process.args"), "{err}");
    }

    #[test]
    fn sysctl_keys_must_be_namespaced() {
        use LinuxNamespaceType::{Ipc, Network, Uts};
        let all = |_: LinuxNamespaceType| true;
        for key in [
            "kernel.msgmax",
            "kernel.shmmax",
            "kernel.shm_rmid_forced",
            "kernel.sem",
            "fs.mqueue.msg_max",
            "net.ipv4.ip_forward",
            "net/ipv4/ping_group_range",
            "kernel.domainname",
        ] {
            assert!(validate_sysctl(key, all).is_ok(), "{key} refused");
        }
        for key in [
            "kernel.core_pattern",
            "kernel.modprobe",
            "vm.overcommit_memory",
            "fs.file-max",
            "kernel.sysrq",
            "net..ipv4",
            "net/../kernel/core_pattern",
        ] {
            let err = validate_sysctl(key, all).unwrap_err().to_string();
            assert!(err.contains(&format!("{key:?}")), "{err}");
        }
        let only = |t: LinuxNamespaceType| move |n: LinuxNamespaceType| n == t;
        assert!(validate_sysctl("net.ipv4.ip_forward", only(Ipc)).is_err());
        assert!(validate_sysctl("kernel.shmmax", only(Network)).is_err());
        assert!(validate_sysctl("kernel.hostname", only(Uts)).is_ok());
        assert!(validate_sysctl("kernel.msgmax", only(Ipc)).is_ok());
    }
}
