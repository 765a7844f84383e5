//! security: the capability set (docker's defaults, `--cap-add`, `--cap-drop`)
//! and `--security-opt` (`no-new-privileges`, `seccomp=unconfined|<file>`),
//! including isola's default seccomp profile and turning a docker seccomp
//! profile into the OCI form. Validates and computes; applying them is the
//! runtime's job.

use std::path::PathBuf;
use std::sync::OnceLock;

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

/// A container's capabilities and security options from its flags:
/// `--privileged` gives every capability and no seccomp filter (docker's
/// meaning), before `--cap-drop`.
pub fn for_container(
    cap_add: &[String],
    cap_drop: &[String],
    security_opt: &[String],
    privileged: bool,
) -> Result<(Vec<String>, SecurityOptions), SecurityError> {
    let mut caps = capabilities(cap_add, cap_drop)?;
    if privileged {
        // Every capability this host's kernel has and isola holds (the
        // bounding set: a newer name than the kernel knows fails capset).
        let bounding = caps::read(None, caps::CapSet::Bounding).unwrap_or_default();
        let drop: Vec<String> = cap_drop
            .iter()
            .map(|c| canonical_cap(c))
            .collect::<Result<_, _>>()?;
        caps = ALL_CAPS
            .iter()
            .filter(|c| {
                c.parse::<caps::Capability>()
                    .is_ok_and(|cap| bounding.contains(&cap))
            })
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c) && !drop.iter().any(|d| d == "ALL"))
            .collect();
    }
    let mut security = security_options(security_opt, &caps)?;
    if privileged {
        security.seccomp = None;
    }
    Ok((caps, security))
}

/// isola's default seccomp profile, in docker's format: an allow list with
/// EPERM for everything else (so a syscall the kernel gains later is refused
/// until the list names it), capability-gated groups and argument rules as in
/// docker's default. Data, not code, so that it reads like the profile it is
/// and can be diffed against docker's.
const DEFAULT_PROFILE: &str = include_str!("../profiles/seccomp.json");

/// The seccomp profile (OCI `linux.seccomp`) every container gets unless
/// `--security-opt seccomp=` says otherwise, for its capability set `caps`.
pub fn default_seccomp(caps: &[String]) -> Value {
    static PROFILE: OnceLock<Value> = OnceLock::new();
    let profile = PROFILE.get_or_init(|| {
        serde_json::from_str(DEFAULT_PROFILE)
            .expect("profiles/seccomp.json is valid JSON (a unit test parses it)")
    });
    to_oci_seccomp(profile, caps)
        .expect("profiles/seccomp.json has a defaultAction (a unit test checks it)")
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

/// How docker profiles name the host's architecture in `includes.arches` and
/// `excludes.arches` (Go's GOARCH), with the kernel's and libseccomp's names.
fn host_arch_names() -> &'static [&'static str] {
    match std::env::consts::ARCH {
        "x86_64" => &["amd64", "x86_64", "SCMP_ARCH_X86_64"],
        "aarch64" => &["arm64", "aarch64", "SCMP_ARCH_AARCH64"],
        "x86" => &["386", "x86", "SCMP_ARCH_X86"],
        "arm" => &["arm", "SCMP_ARCH_ARM"],
        "s390x" => &["s390x", "SCMP_ARCH_S390X"],
        "riscv64" => &["riscv64", "SCMP_ARCH_RISCV64"],
        _ => &[],
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
    // docker's rules: a rule applies if the container holds every
    // capability its `includes.caps` names and the host is one of its
    // `includes.arches`; it is dropped if the container holds any capability
    // of `excludes.caps` or the host is one of `excludes.arches`.
    // (`includes.minKernel` is not honoured: a VM's guest kernel is not the
    // host's, and isola's own profile does not use it.)
    let host_names = host_arch_names();
    let arch_hit = |cond: &Value| {
        strings(cond.get("arches"))
            .iter()
            .any(|a| host_names.iter().any(|h| a.eq_ignore_ascii_case(h)))
    };
    let applies = |rule: &Value| -> bool {
        if let Some(inc) = rule.get("includes") {
            let need = strings(inc.get("caps"));
            if !need.iter().all(|c| caps.contains(c)) {
                return false;
            }
            if !strings(inc.get("arches")).is_empty() && !arch_hit(inc) {
                return false;
            }
        }
        if let Some(exc) = rule.get("excludes") {
            if strings(exc.get("caps")).iter().any(|c| caps.contains(c)) || arch_hit(exc) {
                return false;
            }
        }
        true
    };
    let mut syscalls = Vec::new();
    for rule in profile
        .get("syscalls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !applies(rule) {
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

    /// What an OCI profile does with `name` called with arguments no rule
    /// looks at: a rule without arguments decides; rules with arguments only
    /// make it depend on them.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Verdict {
        Allow,
        DependsOnArgs,
        Errno(u64),
    }

    fn verdict(oci: &Value, name: &str) -> Verdict {
        let mut depends = false;
        for rule in oci["syscalls"].as_array().unwrap() {
            if !rule["names"].as_array().unwrap().iter().any(|n| n == name) {
                continue;
            }
            if rule.get("args").is_some() {
                depends = true;
                continue;
            }
            return match rule["action"].as_str().unwrap() {
                "SCMP_ACT_ALLOW" => Verdict::Allow,
                "SCMP_ACT_ERRNO" => Verdict::Errno(rule["errnoRet"].as_u64().unwrap_or(1)),
                other => panic!("unexpected action {other} for {name}"),
            };
        }
        if depends {
            return Verdict::DependsOnArgs;
        }
        assert_eq!(oci["defaultAction"], "SCMP_ACT_ERRNO");
        Verdict::Errno(oci["defaultErrnoRet"].as_u64().unwrap())
    }

    fn with_caps(add: &[&str], drop: &[&str]) -> Vec<String> {
        let s = |l: &[&str]| l.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        capabilities(&s(add), &s(drop)).unwrap()
    }

    #[test]
    fn the_embedded_profile_is_an_allow_list() {
        let profile: Value = serde_json::from_str(DEFAULT_PROFILE).unwrap();
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(profile["defaultErrnoRet"], 1);
        let oci = default_seccomp(&with_caps(&[], &[]));
        assert_eq!(oci["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(oci["defaultErrnoRet"], 1);
        let arches: Vec<&str> = oci["architectures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        match std::env::consts::ARCH {
            "x86_64" => assert_eq!(
                arches,
                ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
            ),
            "aarch64" => assert_eq!(arches, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
            _ => {}
        }
        // The clone rule lets threads and processes through, not namespaces.
        let clone = oci["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"] == json!(["clone"]))
            .unwrap();
        assert_eq!(
            clone["args"],
            json!([{"index": 0, "value": 0x7E02_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}])
        );
    }

    #[test]
    fn the_default_profile_allows_by_capability() {
        use Verdict::*;
        let eperm = Errno(1);
        let table: &[(&[&str], &[&str], &str, Verdict)] = &[
            // What ordinary programs need, with docker's default capabilities.
            (&[], &[], "read", Allow),
            (&[], &[], "openat", Allow),
            (&[], &[], "openat2", Allow),
            (&[], &[], "statx", Allow),
            (&[], &[], "faccessat2", Allow),
            (&[], &[], "epoll_pwait", Allow),
            (&[], &[], "futex", Allow),
            (&[], &[], "futex_waitv", Allow),
            (&[], &[], "rseq", Allow),
            (&[], &[], "memfd_create", Allow),
            (&[], &[], "pidfd_open", Allow),
            (&[], &[], "pidfd_send_signal", Allow),
            (&[], &[], "close_range", Allow),
            (&[], &[], "landlock_create_ruleset", Allow),
            (&[], &[], "io_setup", Allow),
            (&[], &[], "execve", Allow),
            (&[], &[], "mknodat", Allow),
            (&[], &[], "chroot", Allow),
            (&[], &[], "clone", DependsOnArgs),
            (&[], &[], "socket", DependsOnArgs),
            (&[], &[], "personality", DependsOnArgs),
            (&[], &[], "clone3", Errno(38)),
            // Refused to everyone.
            (&["ALL"], &[], "keyctl", eperm),
            (&["ALL"], &[], "add_key", eperm),
            (&["ALL"], &[], "request_key", eperm),
            (&["ALL"], &[], "io_uring_setup", eperm),
            (&["ALL"], &[], "io_uring_enter", eperm),
            (&["ALL"], &[], "userfaultfd", eperm),
            (&["ALL"], &[], "kexec_load", eperm),
            (&["ALL"], &[], "uselib", eperm),
            (&["ALL"], &[], "nfsservctl", eperm),
            // Each capability-gated group: refused by default, allowed with it.
            (&[], &[], "process_vm_readv", eperm),
            (&[], &[], "process_vm_writev", eperm),
            (&[], &[], "kcmp", eperm),
            (&[], &[], "pidfd_getfd", eperm),
            (&[], &[], "ptrace", eperm),
            (&["SYS_PTRACE"], &[], "process_vm_readv", Allow),
            (&["SYS_PTRACE"], &[], "kcmp", Allow),
            (&["SYS_PTRACE"], &[], "pidfd_getfd", Allow),
            (&["SYS_PTRACE"], &[], "ptrace", Allow),
            (&[], &[], "mount", eperm),
            (&[], &[], "unshare", eperm),
            (&[], &[], "setns", eperm),
            (&[], &[], "bpf", eperm),
            (&[], &[], "sethostname", eperm),
            (&["SYS_ADMIN"], &[], "mount", Allow),
            (&["SYS_ADMIN"], &[], "unshare", Allow),
            (&["SYS_ADMIN"], &[], "setns", Allow),
            (&["SYS_ADMIN"], &[], "clone", Allow),
            (&["SYS_ADMIN"], &[], "clone3", Allow),
            (&["SYS_ADMIN"], &[], "keyctl", eperm),
            (&["BPF"], &[], "bpf", Allow),
            (&[], &[], "perf_event_open", eperm),
            (&["PERFMON"], &[], "perf_event_open", Allow),
            (&[], &[], "reboot", eperm),
            (&["SYS_BOOT"], &[], "reboot", Allow),
            (&[], &[], "init_module", eperm),
            (&["SYS_MODULE"], &[], "finit_module", Allow),
            (&[], &[], "settimeofday", eperm),
            (&["SYS_TIME"], &[], "clock_settime", Allow),
            (&[], &[], "iopl", eperm),
            (&["SYS_RAWIO"], &[], "ioperm", Allow),
            (&[], &[], "acct", eperm),
            (&["SYS_PACCT"], &[], "acct", Allow),
            (&[], &[], "mbind", eperm),
            (&["SYS_NICE"], &[], "set_mempolicy", Allow),
            (&[], &[], "open_by_handle_at", eperm),
            (&["DAC_READ_SEARCH"], &[], "open_by_handle_at", Allow),
            (&[], &[], "syslog", eperm),
            (&["SYSLOG"], &[], "syslog", Allow),
            (&[], &[], "vhangup", eperm),
            (&["SYS_TTY_CONFIG"], &[], "vhangup", Allow),
            (&[], &["SYS_CHROOT"], "chroot", eperm),
            // A name no rule lists, such as a syscall newer than the profile.
            (&["ALL"], &[], "some_future_syscall", eperm),
        ];
        for (add, drop, name, want) in table {
            let oci = default_seccomp(&with_caps(add, drop));
            assert_eq!(
                &verdict(&oci, name),
                want,
                "{name} with --cap-add {add:?} --cap-drop {drop:?}"
            );
        }
        let host = default_seccomp(&with_caps(&[], &[]));
        match std::env::consts::ARCH {
            "x86_64" => {
                assert_eq!(verdict(&host, "arch_prctl"), Allow);
                assert_eq!(verdict(&host, "set_tls"), eperm);
            }
            "aarch64" => {
                assert_eq!(verdict(&host, "set_tls"), Allow);
                assert_eq!(verdict(&host, "arch_prctl"), eperm);
            }
            _ => {}
        }
    }

    #[test]
    fn the_default_profile_compiles() {
        for caps in [with_caps(&[], &[]), with_caps(&["ALL"], &[]), vec![]] {
            let oci: oci_spec::runtime::LinuxSeccomp =
                serde_json::from_value(default_seccomp(&caps)).unwrap();
            let program = runtime::seccomp::compile(&oci).unwrap();
            assert!(program.len() > 100, "{}", program.len());
        }
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
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_KILL", "CAP_SYS_ADMIN"]}},
                {"names": ["rmdir"], "action": "SCMP_ACT_ALLOW", "excludes": {}},
                {"names": ["tee"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_KILL"]}},
                {"names": ["uname"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": host_arch_names()}},
                {"names": ["times"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": host_arch_names()}},
                {"names": ["sync"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["no-such-arch"]}}
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
        // kill needs both capabilities; an empty excludes drops nothing.
        assert_eq!(names, ["read", "write", "mkdir", "rmdir", "uname"]);
        assert_eq!(oci["syscalls"][1]["errnoRet"], 38);
        assert_eq!(oci["defaultErrnoRet"], 1);
        assert_eq!(oci["architectures"][0], host_seccomp_arch());
    }
}
