//! security: the capability set (docker's defaults, `--cap-add`, `--cap-drop`)
//! and `--security-opt` (`no-new-privileges`, `seccomp=unconfined|<file>`),
//! including isola's default seccomp profile and turning a docker seccomp
//! profile into the OCI form. Validates and computes; applying them is the
//! runtime's job.

use std::path::PathBuf;

use serde_json::{json, Value};

/// docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Linux defines (up to 6.x).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("unknown capability {0:?} (names like NET_ADMIN or CAP_NET_ADMIN, or ALL)")]
    UnknownCapability(String),
    #[error("invalid --security-opt {0:?}: expected no-new-privileges[=true|false], seccomp=unconfined or seccomp=<profile.json>")]
    InvalidOption(String),
    #[error("reading seccomp profile {path}")]
    ReadProfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing seccomp profile {path}")]
    ParseProfile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("seccomp profile {path} has no defaultAction")]
    ProfileWithoutDefault { path: PathBuf },
}

fn canonical_cap(name: &str) -> Result<String, SecurityError> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SecurityError::UnknownCapability(name.into()))
    }
}

/// The final capability list: docker's defaults, then drops, then adds
/// (`ALL` in either list means every capability).
pub fn capabilities(add: &[String], drop: &[String]) -> Result<Vec<String>, SecurityError> {
    let add: Vec<String> = add
        .iter()
        .map(|c| canonical_cap(c))
        .collect::<Result<_, _>>()?;
    let drop: Vec<String> = drop
        .iter()
        .map(|c| canonical_cap(c))
        .collect::<Result<_, _>>()?;
    let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
        ALL_CAPS.iter().map(|s| s.to_string()).collect()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    if drop.iter().any(|c| c == "ALL") {
        caps.clear();
    } else {
        caps.retain(|c| !drop.contains(c));
    }
    for c in add {
        if c != "ALL" && !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

/// What `--security-opt` asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityOptions {
    pub no_new_privileges: bool,
    /// The OCI `linux.seccomp` object, if any.
    pub seccomp: Option<Value>,
}

/// System calls the default seccomp profile refuses with EPERM, grouped by
/// the capability that makes them legitimate: a container given it
/// (`--cap-add`) gets them back; `None` marks those refused to every
/// container (the kernel keyring is not namespaced, io_uring bypasses the
/// filter, the rest are obsolete). In the spirit of docker's default profile,
/// written as a deny list: everything else is allowed.
const DENIED: &[(Option<&str>, &[&str])] = &[
    (
        None,
        &[
            "add_key",
            "keyctl",
            "request_key",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "nfsservctl",
            "sysfs",
            "_sysctl",
            "uselib",
            "userfaultfd",
            "ustat",
            "vm86",
            "vm86old",
            "create_module",
            "get_kernel_syms",
            "query_module",
        ],
    ),
    (
        Some("CAP_SYS_ADMIN"),
        &[
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "bpf",
            "perf_event_open",
            "fanotify_init",
            "swapon",
            "swapoff",
            "vhangup",
        ],
    ),
    (
        Some("CAP_SYS_MODULE"),
        &["init_module", "finit_module", "delete_module"],
    ),
    (
        Some("CAP_SYS_BOOT"),
        &["reboot", "kexec_load", "kexec_file_load"],
    ),
    (
        Some("CAP_SYS_TIME"),
        &["settimeofday", "stime", "clock_settime", "clock_adjtime"],
    ),
    (Some("CAP_SYS_RAWIO"), &["iopl", "ioperm"]),
    (Some("CAP_SYS_PACCT"), &["acct"]),
    (
        Some("CAP_SYS_NICE"),
        &["mbind", "set_mempolicy", "migrate_pages", "move_pages"],
    ),
    (Some("CAP_DAC_READ_SEARCH"), &["open_by_handle_at"]),
    (Some("CAP_SYSLOG"), &["syslog"]),
];

/// clone(2) flags that make namespaces (CLONE_NEWNS, NEWCGROUP, NEWUTS,
/// NEWIPC, NEWUSER, NEWPID, NEWNET): refused without CAP_SYS_ADMIN, as unshare.
const CLONE_NAMESPACE_FLAGS: [u64; 7] = [
    0x0002_0000,
    0x0200_0000,
    0x0400_0000,
    0x0800_0000,
    0x1000_0000,
    0x2000_0000,
    0x4000_0000,
];

/// The seccomp profile (OCI `linux.seccomp`) every container gets unless
/// `--security-opt seccomp=` says otherwise, for its capability set `caps`.
pub fn default_seccomp(caps: &[String]) -> Value {
    let has = |cap: &str| caps.iter().any(|c| c == cap);
    let eperm =
        |names: Vec<&str>| json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": 1});
    let mut syscalls: Vec<Value> = DENIED
        .iter()
        .filter(|(cap, _)| !cap.is_some_and(has))
        .map(|(_, names)| eperm(names.to_vec()))
        .collect();
    if !has("CAP_SYS_ADMIN") {
        // One rule whose comparisons all test argument 0: the runtime makes
        // it one rule per flag, so any namespace flag refuses the clone.
        let mut clone = eperm(vec!["clone"]);
        clone["args"] = CLONE_NAMESPACE_FLAGS
            .iter()
            .map(|f| json!({"index": 0, "value": f, "valueTwo": f, "op": "SCMP_CMP_MASKED_EQ"}))
            .collect();
        syscalls.push(clone);
        // clone3 takes its flags in memory, out of a filter's sight: ENOSYS
        // makes the C library fall back to clone.
        syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}));
    }
    let mut arches = vec![host_seccomp_arch()];
    if arches[0] == "SCMP_ARCH_X86_64" {
        // The 32-bit ABIs reach the same kernel: the rules cover them too.
        arches.extend(["SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    }
    json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": arches, "syscalls": syscalls})
}

/// Parses every `--security-opt` value; loads a seccomp profile file now so
/// that a bad one fails the create. Without a `seccomp=` option the
/// container gets [`default_seccomp`].
pub fn security_options(
    opts: &[String],
    caps: &[String],
) -> Result<SecurityOptions, SecurityError> {
    let mut out = SecurityOptions {
        no_new_privileges: false,
        seccomp: Some(default_seccomp(caps)),
    };
    for opt in opts {
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match (key, value) {
            ("no-new-privileges", None | Some("true")) => out.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => out.no_new_privileges = false,
            ("seccomp", Some("unconfined")) => out.seccomp = None,
            ("seccomp", Some(file)) if !file.is_empty() => {
                out.seccomp = Some(load_profile(&PathBuf::from(file), caps)?)
            }
            _ => return Err(SecurityError::InvalidOption(opt.clone())),
        }
    }
    Ok(out)
}

fn load_profile(path: &PathBuf, caps: &[String]) -> Result<Value, SecurityError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecurityError::ReadProfile {
        path: path.clone(),
        source,
    })?;
    let profile: Value =
        serde_json::from_str(&text).map_err(|source| SecurityError::ParseProfile {
            path: path.clone(),
            source,
        })?;
    to_oci_seccomp(&profile, caps)
        .ok_or_else(|| SecurityError::ProfileWithoutDefault { path: path.clone() })
}

fn host_seccomp_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "x86" => "SCMP_ARCH_X86",
        "arm" => "SCMP_ARCH_ARM",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        _ => "SCMP_ARCH_NATIVE",
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Converts a docker seccomp profile (archMap, includes/excludes by
/// capability and architecture) or an OCI one into the OCI `linux.seccomp`
/// object for this host and capability set. `None` without a defaultAction.
pub fn to_oci_seccomp(profile: &Value, caps: &[String]) -> Option<Value> {
    let default_action = profile.get("defaultAction")?.clone();
    let host_arch = host_seccomp_arch();
    let mut arches = strings(profile.get("architectures"));
    if let Some(map) = profile.get("archMap").and_then(Value::as_array) {
        for m in map {
            if m.get("architecture").and_then(Value::as_str) == Some(host_arch) {
                arches.push(host_arch.into());
                arches.extend(strings(m.get("subArchitectures")));
            }
        }
    }
    let applies = |rule: &Value, include: bool| -> bool {
        let Some(cond) = rule.get(if include { "includes" } else { "excludes" }) else {
            return include;
        };
        let rule_caps = strings(cond.get("caps"));
        let rule_arches = strings(cond.get("arches"));
        let arch_name = host_arch
            .trim_start_matches("SCMP_ARCH_")
            .to_ascii_lowercase();
        let arch_hit = rule_arches
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&arch_name) || a == host_arch);
        let cap_hit = rule_caps.iter().any(|c| caps.contains(c));
        if include {
            (rule_caps.is_empty() || cap_hit) && (rule_arches.is_empty() || arch_hit)
        } else {
            (rule_caps.is_empty() && rule_arches.is_empty()) || cap_hit || arch_hit
        }
    };
    let mut syscalls = Vec::new();
    for rule in profile
        .get("syscalls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !applies(rule, true) || (rule.get("excludes").is_some() && applies(rule, false)) {
            continue;
        }
        let mut names = strings(rule.get("names"));
        if let Some(n) = rule.get("name").and_then(Value::as_str) {
            names.push(n.into());
        }
        let mut s = json!({ "names": names, "action": rule.get("action").cloned().unwrap_or(json!("SCMP_ACT_ALLOW")) });
        for key in ["args", "errnoRet"] {
            if let Some(v) = rule.get(key) {
                s[key] = v.clone();
            }
        }
        syscalls.push(s);
    }
    let mut out = json!({ "defaultAction": default_action, "syscalls": syscalls });
    if !arches.is_empty() {
        out["architectures"] = json!(arches);
    }
    if let Some(e) = profile.get("defaultErrnoRet") {
        out["defaultErrnoRet"] = e.clone();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_add_drop_all() {
        let c = capabilities(&[], &[]).unwrap();
        assert_eq!(c.len(), DEFAULT_CAPS.len());
        let c = capabilities(&["net_admin".into()], &["CAP_CHOWN".into(), "mknod".into()]).unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".into()));
        assert!(!c.contains(&"CAP_CHOWN".into()) && !c.contains(&"CAP_MKNOD".into()));
        assert_eq!(
            capabilities(&["ALL".into()], &[]).unwrap().len(),
            ALL_CAPS.len()
        );
        assert_eq!(
            capabilities(&["KILL".into()], &["all".into()]).unwrap(),
            vec!["CAP_KILL"]
        );
        assert!(capabilities(&["FLY".into()], &[]).is_err());
    }

    #[test]
    fn the_default_profile_refuses_by_capability() {
        let denied = |caps: &[&str]| -> Vec<String> {
            let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
            let p = default_seccomp(&caps);
            assert_eq!(p["defaultAction"], "SCMP_ACT_ALLOW");
            p["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["names"].as_array().unwrap().clone())
                .map(|n| n.as_str().unwrap().to_string())
                .collect()
        };
        let plain = denied(&["CAP_CHOWN"]);
        for s in [
            "mount", "unshare", "setns", "keyctl", "clone", "clone3", "reboot",
        ] {
            assert!(plain.contains(&s.to_string()), "{s} allowed by default");
        }
        let admin = denied(&["CAP_SYS_ADMIN"]);
        for s in ["mount", "unshare", "setns", "clone", "clone3"] {
            assert!(
                !admin.contains(&s.to_string()),
                "{s} refused despite CAP_SYS_ADMIN"
            );
        }
        assert!(admin.contains(&"keyctl".to_string()) && admin.contains(&"reboot".to_string()));
        // It is an OCI profile the runtime compiles.
        let oci: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_value(default_seccomp(&[])).unwrap();
        assert!(runtime::seccomp::compile(&oci).unwrap().len() > 10);
    }

    #[test]
    fn security_opts() {
        let o = security_options(&["no-new-privileges".into()], &[]).unwrap();
        assert!(
            o.no_new_privileges && o.seccomp.is_some(),
            "the default profile applies"
        );
        assert!(security_options(&["seccomp=unconfined".into()], &[])
            .unwrap()
            .seccomp
            .is_none());
        assert!(security_options(&["apparmor=x".into()], &[]).is_err());
        let e = security_options(&["seccomp=/no/such.json".into()], &[]).unwrap_err();
        assert!(e.to_string().contains("/no/such.json"));
    }

    #[test]
    fn docker_profile_converts() {
        let profile = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "archMap": [{"architecture": host_seccomp_arch(), "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        });
        let oci = to_oci_seccomp(&profile, &["CAP_KILL".into()]).unwrap();
        let names: Vec<&str> = oci["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap())
            })
            .collect();
        assert_eq!(names, ["read", "write", "mkdir"]);
        assert_eq!(oci["syscalls"][1]["errnoRet"], 38);
        assert_eq!(oci["defaultErrnoRet"], 1);
        assert_eq!(oci["architectures"][0], host_seccomp_arch());
    }
}
