//! init: what runs in the forked children while a container is created.
//! The intermediate child joins and unshares namespaces and clones the
//! container's init (CLONE_PARENT: the init becomes the caller's child);
//! the init sets up the rootfs and process, reports `Ready`, blocks on
//! exec.fifo until `start`, and execs. Errors go back over the sync channel
//! as one line; these functions never return.

use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::console;
use crate::sync::{Channel, Message};
use crate::{hooks, process, rootfs, seccomp, sys};

/// A failure inside a forked child, with the path or operation it concerns.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{op} {path}")]
    Path {
        op: String,
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("{op}")]
    Sys {
        op: String,
        #[source]
        source: Errno,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} {cap}")]
    Capability {
        op: &'static str,
        cap: String,
        #[source]
        source: caps::errors::CapsError,
    },
    /// The runtime sent something other than what this step waits for.
    #[error("unexpected message from the runtime: {got}")]
    UnexpectedMessage { got: String },
    /// A proc or sysfs mount whose destination is a symlink or a file.
    #[error("mount {fstype} on {dest}: filesystem {fstype:?} must be mounted on ordinary directory (it is a symlink or not a directory)")]
    NotOrdinaryDirectory { fstype: String, dest: PathBuf },
    /// A terminal was asked for but nowhere was given to send its master.
    #[error("process.terminal is true but no console socket was given (--console-socket)")]
    NoConsoleSocket,
    /// A configuration value only the setup itself can check.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// The command does not exist (a shell's, and docker's, exit 127).
    #[error("exec {path}: executable file not found")]
    NotFound { path: PathBuf },
    /// The command exists but cannot be executed (exit 126).
    #[error("exec {path}: permission denied (not an executable file)")]
    NotExecutable { path: PathBuf },
    #[error(transparent)]
    Hook(#[from] hooks::Error),
    #[error("seccomp")]
    Seccomp(#[source] seccomp::Error),
    #[error("join the container's cgroup")]
    Cgroup(#[source] crate::cgroups::Error),
    #[error(transparent)]
    Sync(#[from] crate::sync::Error),
}

impl SetupError {
    pub fn path(op: impl Into<String>, path: impl AsRef<Path>, source: Errno) -> SetupError {
        SetupError::Path {
            op: op.into(),
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
    pub fn mount(what: &str, dest: &Path, source: Errno) -> SetupError {
        SetupError::Path {
            op: format!("mount {what} on"),
            path: dest.to_path_buf(),
            source,
        }
    }
    pub fn sys(op: impl Into<String>, source: Errno) -> SetupError {
        SetupError::Sys {
            op: op.into(),
            source,
        }
    }
    pub fn caps(
        op: &'static str,
        cap: &caps::Capability,
        source: caps::errors::CapsError,
    ) -> SetupError {
        SetupError::Capability {
            op,
            cap: cap.to_string(),
            source,
        }
    }
    pub fn caps_set(op: &'static str, source: caps::errors::CapsError) -> SetupError {
        SetupError::Capability {
            op,
            cap: "set".into(),
            source,
        }
    }
}

/// Everything the children need; they are forks, so references to the
/// parent's memory stay valid in them.
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// O_PATH fd of exec.fifo, reopened for writing through /proc/self/fd.
    pub fifo_fd: RawFd,
    pub console_socket: Option<RawFd>,
    pub console_to_parent: bool,
    pub preserve_fds: u32,
    pub seccomp: Option<&'a seccomp::Program>,
    pub no_pivot: bool,
    pub id: &'a str,
    /// The container's cgroup, which the intermediate child moves itself into.
    pub cgroup: &'a crate::cgroups::JoinTargets,
}

/// Reports `err` to the parent and exits.
pub fn fail(chan: &Channel, err: &SetupError) -> ! {
    let _ = chan.send(&Message::Failed(crate::error::chain(err)));
    sys::exit_now(1)
}

pub fn wait_continue(chan: &Channel) -> Result<(), SetupError> {
    match chan.recv()?.0 {
        Message::Continue => Ok(()),
        other => Err(SetupError::UnexpectedMessage {
            got: format!("{other:?}"),
        }),
    }
}

fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(t as i32)
}

/// Joins namespaces given by path (user first), unshares the new ones
/// (user first, then the rest, which the new user namespace then owns).
/// Returns after the unshare; the caller forks the init next.
pub fn enter_namespaces(spec: &Spec, chan: &Channel) -> Result<(), SetupError> {
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    // Open all paths first: joining a mount namespace changes what paths mean.
    let mut joins = Vec::new();
    for ns in &namespaces {
        if let Some(p) = ns.path() {
            let fd = nix::fcntl::open(p, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| SetupError::path("open namespace", p, e))?;
            joins.push((ns.typ(), p.clone(), fd));
        }
    }
    joins.sort_by_key(|(t, _, _)| (*t != LinuxNamespaceType::User) as u8);
    for (t, p, fd) in &joins {
        setns(fd, clone_flag(*t))
            .map_err(|e| SetupError::path(format!("join {t} namespace"), p, e))?;
    }
    let new: Vec<_> = namespaces
        .iter()
        .filter(|n| n.path().is_none())
        .map(|n| n.typ())
        .collect();
    if new.contains(&LinuxNamespaceType::User) {
        unshare(CloneFlags::CLONE_NEWUSER)
            .map_err(|e| SetupError::sys("unshare user namespace", e))?;
        chan.send(&Message::WriteIdMaps)?;
        wait_continue(chan)?;
        let root_u = nix::unistd::Uid::from_raw(0);
        let root_g = nix::unistd::Gid::from_raw(0);
        nix::unistd::setresgid(root_g, root_g, root_g)
            .map_err(|e| SetupError::sys("setgid(0) in the user namespace", e))?;
        nix::unistd::setresuid(root_u, root_u, root_u)
            .map_err(|e| SetupError::sys("setuid(0) in the user namespace", e))?;
    }
    let mut flags = CloneFlags::empty();
    for t in new.iter().filter(|t| **t != LinuxNamespaceType::User) {
        flags |= clone_flag(*t);
    }
    unshare(flags).map_err(|e| SetupError::sys(format!("unshare namespaces {:?}", new), e))?;
    if new.contains(&LinuxNamespaceType::Time) {
        write_time_offsets(spec)?;
    }
    Ok(())
}

/// linux.timeOffsets, written after unshare(CLONE_NEWTIME) and before the
/// first process enters the new time namespace (the init, cloned next).
fn write_time_offsets(spec: &Spec) -> Result<(), SetupError> {
    let offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref());
    let text: String = offsets
        .into_iter()
        .flatten()
        .map(|(clock, o)| {
            format!(
                "{clock} {} {}\n",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            )
        })
        .collect();
    if text.is_empty() {
        return Ok(());
    }
    // After setresuid into a new user namespace the kernel made us
    // non-dumpable, which gives /proc/self to the host's root, a uid the
    // namespace's root (us) cannot write as: be dumpable just for the write,
    // as runc's nsexec is. Nothing else runs in the namespace yet.
    let was_dumpable = sys::dumpable().map_err(|e| SetupError::sys("prctl(PR_GET_DUMPABLE)", e))?;
    if !was_dumpable {
        sys::prctl(libc::PR_SET_DUMPABLE, 1)
            .map_err(|e| SetupError::sys("prctl(PR_SET_DUMPABLE)", e))?;
    }
    let written = std::fs::write("/proc/self/timens_offsets", &text).map_err(|e| SetupError::Io {
        op: "write linux.timeOffsets to",
        path: "/proc/self/timens_offsets".into(),
        source: e,
    });
    if !was_dumpable {
        sys::prctl(libc::PR_SET_DUMPABLE, 0)
            .map_err(|e| SetupError::sys("prctl(PR_SET_DUMPABLE)", e))?;
    }
    written
}

/// Places the caller-provided stdio on 0, 1, 2 (in whatever order they were).
pub fn install_stdio(fds: [RawFd; 3]) -> Result<(), SetupError> {
    let mut tmp = [0; 3];
    for (i, fd) in fds.iter().enumerate() {
        // F_DUPFD takes the lowest free number >= 3: never one of 0-2 we are
        // about to overwrite, never a preserved fd (those are open).
        tmp[i] = sys::dup_above(*fd, 3).map_err(|e| SetupError::sys("dup stdio", e))?;
    }
    for (i, fd) in tmp.iter().enumerate() {
        sys::dup2(*fd, i as RawFd).map_err(|e| SetupError::sys(format!("dup2 onto fd {i}"), e))?;
        let _ = nix::unistd::close(*fd);
    }
    Ok(())
}

/// The intermediate child of create. Never returns.
pub fn intermediate(args: &InitArgs<'_>, chan: &Channel) -> ! {
    let r = (|| -> Result<i32, SetupError> {
        // Before any namespace exists, so that they are the cgroup's from
        // the start (and a new cgroup namespace is rooted at it).
        args.cgroup.join_self().map_err(SetupError::Cgroup)?;
        enter_namespaces(args.spec, chan)?;
        match sys::fork_with_flags(libc::CLONE_PARENT)
            .map_err(|e| SetupError::sys("clone the container init", e))?
        {
            sys::Forked::Child => container_init(args, chan),
            sys::Forked::Parent(pid) => Ok(pid),
        }
    })();
    match r {
        Ok(pid) => {
            let _ = chan.send(&Message::InitPid(pid));
            sys::exit_now(0)
        }
        Err(e) => fail(chan, &e),
    }
}

/// The container's init (pid 1 of a new pid namespace). Never returns.
fn container_init(args: &InitArgs<'_>, chan: &Channel) -> ! {
    match init_steps(args, chan) {
        Ok(never) => match never {},
        Err(e) => fail(chan, &e),
    }
}

/// A result type for code that only returns on failure.
pub enum Never {}

fn init_steps(args: &InitArgs<'_>, chan: &Channel) -> Result<Never, SetupError> {
    let spec = args.spec;
    let process = spec.process().as_ref().expect("validated");
    // Wait until the parent has our pid (the intermediate child reports it):
    // otherwise our next message could overtake that report.
    wait_continue(chan)?;
    sys::reset_signals();
    nix::unistd::setsid().map_err(|e| SetupError::sys("setsid", e))?;
    // Kernels without keyrings (ENOSYS) or policies denying it leave the
    // container in the caller's session keyring, as runc tolerates too.
    if let Err(e) = sys::join_new_session_keyring(&format!("_ses.{}", args.id)) {
        if e != nix::errno::Errno::ENOSYS && e != nix::errno::Errno::EACCES {
            return Err(SetupError::sys("join a new session keyring", e));
        }
    }

    let _root = rootfs::prepare(spec, args.rootfs, args.bundle)?;

    // prestart and createRuntime hooks run in the runtime's namespaces.
    chan.send(&Message::RunCreateRuntimeHooks)?;
    let state_json = match chan.recv()?.0 {
        Message::HookState(s) => s,
        other => {
            return Err(SetupError::UnexpectedMessage {
                got: format!("{other:?}"),
            })
        }
    };
    if let Some(h) = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().as_ref())
    {
        nix::unistd::chdir(args.rootfs).map_err(|e| SetupError::path("chdir", args.rootfs, e))?;
        let env = process.env().as_deref().unwrap_or(&[]);
        hooks::run_all(
            "createContainer",
            h,
            &state_json,
            hooks::DefaultEnv::Process(env),
        )?;
    }

    // exec.fifo is reopened for writing through our fd table in the host's
    // /proc, held open across pivot_root: it works whether or not the
    // container mounts a /proc of its own. Close-on-exec.
    process::apply_oom_score(process)?;
    let host_fds = nix::fcntl::open(
        "/proc/self/fd",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SetupError::path("open", "/proc/self/fd", e))?;

    rootfs::pivot(
        args.rootfs,
        args.no_pivot,
        rootfs::own_mount_namespace(spec),
    )?;

    console::setup_for(
        process,
        args.console_socket,
        args.console_to_parent,
        chan,
        true,
    )?;

    rootfs::finalize(spec)?;
    let linux = spec.linux().as_ref();
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        let domain = match p.domain() {
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0x0000,
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
        };
        sys::set_personality(domain)
            .map_err(|e| SetupError::sys(format!("personality({})", p.domain()), e))?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h)
            .map_err(|e| SetupError::sys(format!("sethostname({h:?})"), e))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        sys::set_domainname(d).map_err(|e| SetupError::sys(format!("setdomainname({d:?})"), e))?;
    }
    for (k, v) in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, v).map_err(|e| SetupError::Io {
            op: "write sysctl",
            path: path.clone(),
            source: e,
        })?;
    }
    if let Some(p) = linux.and_then(|l| l.readonly_paths().as_ref()) {
        rootfs::readonly_paths(p)?;
    }
    if let Some(p) = linux.and_then(|l| l.masked_paths().as_ref()) {
        rootfs::mask_paths(p)?;
    }

    if let Some(p) = linux.and_then(|l| l.memory_policy().as_ref()) {
        apply_memory_policy(p)?;
    }
    process::apply_limits(process)?;
    let late_seccomp = early_seccomp(process, args.seccomp, chan)?;
    process::apply_user_and_caps(process)?;
    process::apply_misc(process)?;
    let exe = process::resolve_executable(process)?;
    let env = process::environment(process);

    chan.send(&Message::Ready)?;

    // From here the parent is gone: failures go to the container's stderr.
    let r = (|| -> Result<Never, SetupError> {
        // Block until `start` opens the fifo for reading.
        let w = nix::fcntl::openat(
            &host_fds,
            args.fifo_fd.to_string().as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SetupError::path("open", "exec.fifo", e))?;
        drop(host_fds);
        nix::unistd::write(&w, b"0").map_err(|e| SetupError::path("write", "exec.fifo", e))?;
        // `w` stays open (close-on-exec) until execve: `start` reads to EOF,
        // so it returns, and runs poststart, only once the program runs.
        std::mem::forget(w);
        let _ = nix::unistd::close(args.fifo_fd);
        if let Some(h) = spec
            .hooks()
            .as_ref()
            .and_then(|h| h.start_container().as_ref())
        {
            let env: Vec<String> = env
                .iter()
                .map(|e| e.to_string_lossy().into_owned())
                .collect();
            hooks::run_all(
                "startContainer",
                h,
                &state_json.replace("\"created\"", "\"running\""),
                hooks::DefaultEnv::Process(&env),
            )?;
        }
        finish_exec(late_seccomp, args.preserve_fds, &exe, process, &env)
    })();
    match r {
        Ok(never) => match never {},
        Err(e) => eprintln!("isola-runtime: container init: {}", crate::error::chain(&e)),
    }
    sys::exit_now(127)
}

/// linux.memoryPolicy, checked at create; kept across execve.
pub fn apply_memory_policy(p: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<(), SetupError> {
    let policy = crate::mempolicy::parse(p)?;
    crate::mempolicy::apply(&policy).map_err(|e| {
        SetupError::sys(
            format!("set_mempolicy({}) for linux.memoryPolicy", p.mode()),
            e,
        )
    })
}

/// Without noNewPrivileges the kernel takes a filter only from a process
/// holding CAP_SYS_ADMIN, so it goes in now, before capabilities are dropped
/// (as runc does); with it, it waits until just before execve so it does not
/// filter the runtime's own setup. Returns the program still to install.
///
/// A program with SCMP_ACT_NOTIFY rules goes in now either way, as runc
/// does: its listener fd must reach the parent (which passes it to
/// linux.seccomp.listenerPath) while the parent still listens.
pub fn early_seccomp<'a>(
    process: &oci_spec::runtime::Process,
    program: Option<&'a seccomp::Program>,
    chan: &Channel,
) -> Result<Option<&'a seccomp::Program>, SetupError> {
    let notifies = program.is_some_and(seccomp::Program::has_listener);
    if process.no_new_privileges().unwrap_or(false) && !notifies {
        return Ok(program);
    }
    if let Some(p) = program {
        if let Some(fd) = seccomp::install(p).map_err(SetupError::Seccomp)? {
            chan.send_with_fds(&Message::SeccompFd, &[fd.as_raw_fd()])?;
            drop(fd);
            wait_continue(chan)?;
        }
    }
    Ok(None)
}

/// The last steps before execve, shared with exec: seccomp, fd hygiene.
pub fn finish_exec(
    program: Option<&seccomp::Program>,
    preserve_fds: u32,
    exe: &Path,
    process: &oci_spec::runtime::Process,
    env: &[std::ffi::CString],
) -> Result<Never, SetupError> {
    sys::cloexec_from(3 + preserve_fds as RawFd)
        .map_err(|e| SetupError::sys("mark fds close-on-exec", e))?;
    if let Some(p) = program {
        seccomp::install(p).map_err(SetupError::Seccomp)?;
    }
    Err(process::exec(exe, process, env))
}
