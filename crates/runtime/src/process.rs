//! process: the attributes of the process about to execve, shared by a
//! container's init and by exec: rlimits, oom score, user and groups,
//! capabilities (all five sets), umask, cwd, no_new_privs, environment and
//! the executable's path. Runs inside the container, after its rootfs is set.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use nix::sys::resource::{setrlimit, Resource};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, PosixRlimitType, Process};

use crate::init::SetupError;
use crate::sys;

/// Applies rlimits, I/O priority and scheduler (before privileges are dropped).
pub fn apply_limits(process: &Process) -> Result<(), SetupError> {
    for rl in process.rlimits().iter().flatten() {
        let res = rlimit_resource(rl.typ());
        setrlimit(res, rl.soft(), rl.hard()).map_err(|e| SetupError::Sys {
            op: format!(
                "set rlimit {} (soft {}, hard {})",
                rl.typ(),
                rl.soft(),
                rl.hard()
            ),
            source: e,
        })?;
    }
    if let Some(io) = process.io_priority() {
        let class = match io.class() {
            oci_spec::runtime::IOPriorityClass::IoprioClassRt => 1,
            oci_spec::runtime::IOPriorityClass::IoprioClassBe => 2,
            oci_spec::runtime::IOPriorityClass::IoprioClassIdle => 3,
        };
        sys::set_io_priority(class, io.priority()).map_err(|e| SetupError::Sys {
            op: format!("set I/O priority {} {}", io.class(), io.priority()),
            source: e,
        })?;
    }
    if let Some(s) = process.scheduler() {
        apply_scheduler(s)?;
    }
    Ok(())
}

/// oomScoreAdj, written through whatever /proc the caller can see (the
/// init does it before pivot_root, so it needs no /proc in the container).
pub fn apply_oom_score(process: &Process) -> Result<(), SetupError> {
    if let Some(score) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", score.to_string()).map_err(|e| {
            SetupError::Io {
                op: "write",
                path: "/proc/self/oom_score_adj".into(),
                source: e,
            }
        })?;
    }
    Ok(())
}

fn apply_scheduler(s: &oci_spec::runtime::Scheduler) -> Result<(), SetupError> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let flags = s.flags().iter().flatten().fold(0u64, |acc, f| {
        acc | match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        }
    });
    let mut attr = sys::SchedAttr {
        size: 0,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    };
    sys::sched_setattr(&mut attr).map_err(|e| SetupError::Sys {
        op: format!("set process.scheduler (policy {})", s.policy()),
        source: e,
    })
}

fn rlimit_resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

fn to_caps(set: Option<&Capabilities>, supported: &CapsHashSet) -> CapsHashSet {
    set.into_iter()
        .flatten()
        .filter_map(|c| format!("CAP_{c}").parse::<Capability>().ok())
        .filter(|c| supported.contains(c))
        .collect()
}

/// Switches to the process's user and groups and sets its capabilities:
/// bounding set first (needs CAP_SETPCAP), keep caps across setuid, then
/// inheritable, effective, permitted and ambient.
pub fn apply_user_and_caps(process: &Process) -> Result<(), SetupError> {
    let supported = caps::runtime::thread_all_supported();
    let c = process.capabilities().as_ref();
    // No capabilities object means none (runtime-spec); an absent set is empty.
    let (b, e, p, i, a) = match c {
        Some(c) => (
            to_caps(c.bounding().as_ref(), &supported),
            to_caps(c.effective().as_ref(), &supported),
            to_caps(c.permitted().as_ref(), &supported),
            to_caps(c.inheritable().as_ref(), &supported),
            to_caps(c.ambient().as_ref(), &supported),
        ),
        None => Default::default(),
    };
    for cap in &supported {
        if !b.contains(cap) {
            caps::drop(None, CapSet::Bounding, *cap)
                .map_err(|e| SetupError::caps("drop from bounding set", cap, e))?;
        }
    }
    sys::prctl(libc::PR_SET_KEEPCAPS, 1)
        .map_err(|e| SetupError::sys("prctl(PR_SET_KEEPCAPS)", e))?;

    let user = process.user();
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups is denied in a user namespace whose setgroups file says so.
    match nix::unistd::setgroups(&gids) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) if gids.is_empty() => {}
        Err(e) => {
            return Err(SetupError::sys(
                format!("setgroups({:?})", user.additional_gids()),
                e,
            ))
        }
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| SetupError::sys(format!("setgid({})", user.gid()), e))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| SetupError::sys(format!("setuid({})", user.uid()), e))?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 0)
        .map_err(|e| SetupError::sys("prctl(PR_SET_KEEPCAPS)", e))?;

    // E := current P gives CAP_SETPCAP (if permitted) to raise I beyond P.
    let cur_p = caps::read(None, CapSet::Permitted)
        .map_err(|e| SetupError::caps_set("read permitted", e))?;
    caps::set(None, CapSet::Effective, &cur_p)
        .map_err(|e| SetupError::caps_set("raise effective", e))?;
    caps::set(None, CapSet::Inheritable, &i)
        .map_err(|e| SetupError::caps_set("set inheritable", e))?;
    caps::set(None, CapSet::Effective, &e).map_err(|e| SetupError::caps_set("set effective", e))?;
    caps::set(None, CapSet::Permitted, &p)
        .map_err(|e| SetupError::caps_set("set permitted (effective must be a subset)", e))?;
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(|e| SetupError::caps_set("clear ambient", e))?;
        for cap in &a {
            // Ambient needs the cap in both permitted and inheritable; runc skips others too.
            if p.contains(cap) && i.contains(cap) {
                caps::raise(None, CapSet::Ambient, *cap)
                    .map_err(|e| SetupError::caps("raise ambient", cap, e))?;
            }
        }
    }
    Ok(())
}

/// umask and no_new_privs; chdir to cwd (after the user switch, so
/// permissions are the user's).
pub fn apply_misc(process: &Process) -> Result<(), SetupError> {
    if let Some(m) = process.user().umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m));
    } else {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    }
    nix::unistd::chdir(process.cwd())
        .map_err(|e| SetupError::path("chdir to process.cwd", process.cwd(), e))?;
    if process.no_new_privileges().unwrap_or(false) {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
            .map_err(|e| SetupError::sys("prctl(PR_SET_NO_NEW_PRIVS)", e))?;
    }
    Ok(())
}

/// The environment for execve: process.env, plus HOME from /etc/passwd if unset.
pub fn environment(process: &Process) -> Vec<CString> {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let home = home_of(process.user().uid()).unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    env.into_iter()
        .filter_map(|e| CString::new(e).ok())
        .collect()
}

fn home_of(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok()? == uid).then(|| f[5].to_string())
    })
}

/// Finds args[0] like execvp, using the PATH of the process's environment.
pub fn resolve_executable(process: &Process) -> Result<PathBuf, SetupError> {
    let arg0 = &process.args().as_ref().expect("validated")[0];
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match executable(&p) {
            Some(true) => Ok(p),
            Some(false) => Err(SetupError::NotExecutable { path: p }),
            None => Err(SetupError::NotFound { path: p }),
        };
    }
    let path = process
        .env()
        .iter()
        .flatten()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    let mut seen = HashSet::new();
    // As a shell: the first executable match wins; a match that is not
    // executable makes it "permission denied" rather than "not found".
    let mut denied = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        if !seen.insert(dir) {
            continue;
        }
        let p = Path::new(dir).join(arg0);
        match executable(&p) {
            Some(true) => return Ok(p),
            Some(false) => denied = denied.or(Some(p)),
            None => {}
        }
    }
    match denied {
        Some(p) => Err(SetupError::NotExecutable { path: p }),
        None => Err(SetupError::NotFound {
            path: PathBuf::from(format!("{arg0} (searched $PATH {path})")),
        }),
    }
}

/// Whether `p` is an executable file; None if nothing is there.
fn executable(p: &Path) -> Option<bool> {
    let m = std::fs::metadata(p).ok()?;
    Some(m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// execve; returns only on failure.
pub fn exec(path: &Path, process: &Process, env: &[CString]) -> SetupError {
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return SetupError::NotExecutable { path: path.into() };
    };
    let args: Vec<CString> = process
        .args()
        .iter()
        .flatten()
        .filter_map(|a| CString::new(a.as_str()).ok())
        .collect();
    match nix::unistd::execve(&cpath, &args, env) {
        Err(e) => SetupError::path("execve", path, e),
        Ok(never) => match never {},
    }
}
