//! exec: runs another process in a running container: joins all of its
//! namespaces and its cgroup, then applies the same process setup as the
//! init (user, capabilities, rlimits, seccomp, terminal). The caller becomes
//! the new process's parent (CLONE_PARENT) and reaps it.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::console;
use crate::init::{self, SetupError};
use crate::sync::{Channel, Message};
use crate::{
    create, process, seccomp, spec, sys, Console, Container, Error, ExecOptions, Executed, Status,
    Stdio3,
};

/// /proc/<pid>/ns names in join order: user first (the others belong to
/// it, and joining it gives the capabilities to join them), mnt last (it
/// changes our root). All are opened before any is joined.
const NAMESPACES: [(LinuxNamespaceType, &str); 8] = [
    (LinuxNamespaceType::User, "user"),
    (LinuxNamespaceType::Ipc, "ipc"),
    (LinuxNamespaceType::Uts, "uts"),
    (LinuxNamespaceType::Network, "net"),
    (LinuxNamespaceType::Pid, "pid"),
    (LinuxNamespaceType::Cgroup, "cgroup"),
    (LinuxNamespaceType::Time, "time"),
    (LinuxNamespaceType::Mount, "mnt"),
];

pub fn exec(c: &Container, process: &Process, opts: ExecOptions) -> Result<Executed, Error> {
    let id = c.id().to_string();
    let status = c.status();
    let paused_ok = status == Status::Paused && opts.ignore_paused;
    if !matches!(status, Status::Running | Status::Created) && !paused_ok {
        return Err(Error::WrongStatus {
            id,
            status,
            action: crate::error::Action::Exec,
        });
    }
    spec::validate_process(process, "process").map_err(|source| Error::Spec {
        bundle: c.bundle().to_path_buf(),
        source,
    })?;
    let cspec = c.spec()?;
    let program = c.seccomp_program()?;
    let terminal = process.terminal().unwrap_or(false);
    let console_socket = create::connect_console(&opts.console, terminal, c.bundle())?;
    let init_pid = c
        .pid()
        .ok_or_else(|| Error::NotRunning { id: id.clone() })?;
    let configured: Vec<LinuxNamespaceType> = cspec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .map(|n| n.typ())
        .collect();
    let mut ns_fds: Vec<(LinuxNamespaceType, String, OwnedFd)> = Vec::new();
    for (t, name) in NAMESPACES {
        if !configured.contains(&t) {
            continue;
        }
        let path = format!("/proc/{init_pid}/ns/{name}");
        let fd = nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(Error::sys(format!("open {path}")))?;
        ns_fds.push((t, path, fd));
    }
    let join = c
        .cgroup()?
        .join_targets(&opts.sub_cgroups)
        .map_err(Error::cgroup(&id))?;
    // A container without a mount namespace lives in ours, chrooted.
    let callers_root =
        (!crate::rootfs::own_mount_namespace(&cspec)).then(|| format!("/proc/{init_pid}/root"));
    // The container's policy holds for every process in it.
    let memory_policy = cspec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref());

    let (parent_chan, child_chan) = Channel::pair()?;
    let stdio = opts.stdio.as_ref().map(Stdio3::raw_fds);
    let sock = console_socket.as_ref().map(|s| s.as_raw_fd());
    let to_parent = matches!(opts.console, Console::Return);
    let child = match sys::fork().map_err(Error::sys("fork"))? {
        sys::Forked::Child => {
            drop(parent_chan);
            let r = (|| -> Result<i32, SetupError> {
                if let Some(fds) = stdio {
                    init::install_stdio(fds)?;
                }
                // Before joining the container's mount namespace: the
                // paths are the host's.
                join.join_self().map_err(SetupError::Cgroup)?;
                for (t, path, fd) in &ns_fds {
                    setns(fd, CloneFlags::from_bits_retain(*t as i32))
                        .map_err(|e| SetupError::path("join namespace", path, e))?;
                }
                if let Some(root) = &callers_root {
                    // No mount namespace to join: take the init's root.
                    nix::unistd::chroot(root.as_str())
                        .map_err(|e| SetupError::path("chroot", root, e))?;
                    nix::unistd::chdir("/").map_err(|e| SetupError::path("chdir", "/", e))?;
                }
                match sys::fork_with_flags(libc::CLONE_PARENT)
                    .map_err(|e| SetupError::sys("clone", e))?
                {
                    sys::Forked::Parent(pid) => Ok(pid),
                    sys::Forked::Child => {
                        let e = exec_child(
                            process,
                            memory_policy,
                            &child_chan,
                            sock,
                            to_parent,
                            program.as_deref(),
                            opts.preserve_fds,
                        );
                        init::fail(&child_chan, &e)
                    }
                }
            })();
            match r {
                Ok(pid) => {
                    let _ = child_chan.send(&Message::InitPid(pid));
                    sys::exit_now(0)
                }
                Err(e) => init::fail(&child_chan, &e),
            }
        }
        sys::Forked::Parent(pid) => pid,
    };
    drop(child_chan);
    drop(opts.stdio);
    drop(console_socket);

    const WHO: &str = "the exec'd process";
    let mut exec_pid = None;
    let r = (|| -> Result<Option<OwnedFd>, Error> {
        let mut master = None;
        loop {
            let (msg, mut fds) = create::recv_setup(&parent_chan, WHO)?;
            match msg {
                Message::InitPid(pid) => {
                    exec_pid = Some(pid);
                    let _ = waitpid(Pid::from_raw(child), None);
                    parent_chan.send(&Message::Continue)?;
                }
                Message::ConsoleMaster => master = fds.pop(),
                Message::SeccompFd => {
                    let fd = fds.pop().ok_or(Error::UnexpectedMessage {
                        who: WHO,
                        got: "a seccomp-fd message without its fd".into(),
                    })?;
                    let pid = exec_pid.unwrap_or(0);
                    create::send_to_listener(&cspec, pid, c.oci_state(), &fd)?;
                    parent_chan.send(&Message::Continue)?;
                }
                Message::Ready => return Ok(master),
                other => {
                    return Err(Error::UnexpectedMessage {
                        who: WHO,
                        got: format!("{other:?}"),
                    })
                }
            }
        }
    })();
    match r {
        Ok(console_master) => {
            let pid = exec_pid.unwrap_or(0);
            if let Some(p) = &opts.pid_file {
                create::write_pid_file(p, pid)?;
            }
            Ok(Executed {
                pid,
                console_master,
            })
        }
        Err(e) => {
            for p in [Some(child), exec_pid].into_iter().flatten() {
                let _ = nix::sys::signal::kill(Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(Pid::from_raw(p), None);
            }
            Err(e)
        }
    }
}

/// The exec'd process after it joined the namespaces; returns only on failure.
fn exec_child(
    process: &Process,
    memory_policy: Option<&oci_spec::runtime::LinuxMemoryPolicy>,
    chan: &Channel,
    console_socket: Option<i32>,
    to_parent: bool,
    program: Option<&seccomp::Program>,
    preserve_fds: u32,
) -> SetupError {
    let r = (|| -> Result<init::Never, SetupError> {
        // Our pid must reach the parent (from the intermediate) before our Ready.
        init::wait_continue(chan)?;
        sys::reset_signals();
        nix::unistd::setsid().map_err(|e| SetupError::sys("setsid", e))?;
        console::setup_for(process, console_socket, to_parent, chan, false)?;
        process::apply_oom_score(process)?;
        if let Some(p) = memory_policy {
            init::apply_memory_policy(p)?;
        }
        process::apply_limits(process)?;
        let late_seccomp = init::early_seccomp(process, program, chan)?;
        process::apply_user_and_caps(process)?;
        process::apply_misc(process)?;
        let exe = process::resolve_executable(process)?;
        let env = process::environment(process);
        chan.send(&Message::Ready)?;
        // The parent has returned: a failure now can only go to our stderr.
        match init::finish_exec(late_seccomp, preserve_fds, &exe, process, &env) {
            Ok(never) => match never {},
            Err(e) => {
                eprintln!("isola-runtime: exec: {}", crate::error::chain(&e));
                sys::exit_now(127)
            }
        }
    })();
    match r {
        Ok(never) => match never {},
        Err(e) => e,
    }
}
