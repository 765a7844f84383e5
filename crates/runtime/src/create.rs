//! create: the parent's side of `create`: check the bundle, claim the state
//! directory, set up the cgroup, fork the children and answer them (id maps,
//! hooks), then record the `created` state. Any failure undoes everything:
//! process, cgroup, state directory.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{ContainerState as OciStatus, LinuxIdMapping, Spec};

use crate::cgroups::Cgroup;
use crate::init::{self, InitArgs};
use crate::state::{self, ContainerState, EXEC_FIFO, SPEC_FILE};
use crate::sync::{Channel, Message};
use crate::{hooks, seccomp, spec, sys, Console, Container, CreateOptions, Created, Error, Stdio3};

/// Rejects ids that could escape the state root or confuse tools.
pub fn validate_id(id: &str) -> Result<(), Error> {
    let bad = |reason| Error::InvalidId {
        id: id.to_string(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("it is empty"));
    }
    if id.len() > 1024 {
        return Err(bad("it is longer than 1024 bytes"));
    }
    if id == "." || id == ".." {
        return Err(bad("it is a path component"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
    {
        return Err(bad(
            "only letters, digits, '_', '+', '-' and '.' are allowed",
        ));
    }
    Ok(())
}

/// Undoes a half-made container when dropped, unless disarmed.
struct Undo {
    dir: PathBuf,
    /// The rootfs, when the container has no mount namespace of its own:
    /// its mounts are in ours and must go.
    callers_mounts: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    cgroup_parents: Vec<PathBuf>,
    pids: Vec<i32>,
    armed: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for pid in &self.pids {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(*pid), None);
        }
        if let Some(rootfs) = &self.callers_mounts {
            if let Err(e) = crate::rootfs::unmount_in_callers_namespace(rootfs) {
                tracing::warn!("cleanup: unmount {}: {e}", rootfs.display());
            }
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                tracing::warn!("cleanup: {}", crate::error::chain(&e));
            }
            crate::cgroups::remove_parents(&self.cgroup_parents);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The cgroups path for a container: the spec's, or empty (the cgroups
/// module then names it after the id, as runc does).
///
/// A systemd-style "slice:prefix:name" (what containerd and kubelet pass with
/// the systemd cgroup driver) becomes the cgroupfs path systemd would use,
/// "/<slice hierarchy>/<prefix>-<name>.scope": isola manages cgroups through
/// cgroupfs only.
pub fn cgroups_path(spec: &Spec) -> String {
    let path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    systemd_to_cgroupfs(&path).unwrap_or(path)
}

fn systemd_to_cgroupfs(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts = path.split(':');
    let (slice, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || name.is_empty() {
        return None;
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let stem = slice.strip_suffix(".slice")?;
    // "a-b-c.slice" lives in "a.slice/a-b.slice/a-b-c.slice".
    let mut dirs = Vec::new();
    if stem != "-" {
        let mut acc = String::new();
        for part in stem.split('-') {
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(part);
            dirs.push(format!("{acc}.slice"));
        }
    }
    let unit = if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Some(format!("/{}/{unit}", dirs.join("/")).replace("//", "/"))
}

/// The runtime-spec state of the container `st` records, in `status`.
pub fn oci_state(st: &ContainerState, status: OciStatus) -> oci_spec::runtime::State {
    let mut s = oci_spec::runtime::State::default();
    s.set_version(oci_spec::runtime::VERSION.to_string());
    s.set_id(st.id.clone());
    s.set_status(status);
    s.set_pid(st.pid);
    s.set_bundle(st.bundle.clone());
    s.set_annotations((!st.annotations.is_empty()).then(|| st.annotations.clone()));
    s
}

/// [`oci_state`] as the JSON that hooks read on stdin.
pub fn oci_state_json(st: &ContainerState, status: OciStatus) -> String {
    serde_json::to_string(&oci_state(st, status)).unwrap_or_default()
}

/// linux.resources plus an allow rule for each of linux.devices, as runc
/// does: a configured device must be usable whatever the device rules say.
pub(crate) fn resources_with_devices(spec: &Spec) -> Option<oci_spec::runtime::LinuxResources> {
    let linux = spec.linux().as_ref()?;
    let mut r = linux.resources().clone()?;
    let extra: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        linux.devices().iter().flatten().map(Into::into).collect();
    if !extra.is_empty() {
        let mut rules = r.devices().clone().unwrap_or_default();
        rules.extend(extra);
        r.set_devices(Some(rules));
    }
    Some(r)
}

fn write_id_map(pid: i32, file: &str, maps: Option<&Vec<LinuxIdMapping>>) -> Result<(), Error> {
    let text: String = maps
        .into_iter()
        .flatten()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    fs::write(&path, text).map_err(Error::io("write", path))
}

pub fn create(opts: CreateOptions, no_pivot: bool) -> Result<Created, Error> {
    validate_id(&opts.id)?;
    let bundle = fs::canonicalize(&opts.bundle).map_err(Error::io("open bundle", &opts.bundle))?;
    let spec_err = |source| Error::Spec {
        bundle: bundle.clone(),
        source,
    };
    tracing::debug!(id = %opts.id, bundle = %bundle.display(), "create");
    let spec = match opts.spec {
        Some(spec) => *spec,
        None => spec::load(&bundle).map_err(spec_err)?,
    };
    spec::validate(&spec).map_err(spec_err)?;
    let rootfs = spec::rootfs(&spec, &bundle).map_err(spec_err)?;
    for field in spec::ignored_fields(&spec) {
        tracing::warn!("{field} is not supported by isola-runtime and is ignored");
    }
    let program = match opts.seccomp {
        Some(p) => Some(Arc::new(p)),
        None => seccomp_program(&spec, &opts.root)?.map(Arc::new),
    };
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let console_socket = connect_console(&opts.console, terminal, &bundle)?;

    crate::state::private_dir(&opts.root).map_err(Error::io("create state root", &opts.root))?;
    let dir = opts.root.join(&opts.id);
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::AlreadyExists {
                id: opts.id.clone(),
            })
        }
        Err(e) => return Err(Error::io("create", &dir)(e)),
    }
    let mut undo = Undo {
        dir: dir.clone(),
        callers_mounts: (!crate::rootfs::own_mount_namespace(&spec)).then(|| rootfs.clone()),
        cgroup: None,
        cgroup_parents: Vec::new(),
        pids: Vec::new(),
        armed: true,
    };
    let _lock = state::lock(&dir)?;
    let spec_json = serde_json::to_vec(&spec).map_err(|source| Error::StateFile {
        path: dir.join(SPEC_FILE),
        source,
    })?;
    // Not fsynced: it is read only while the container lives (exec, hooks)
    // and a crash ends the container anyway; delete works without it.
    state::write_atomic(&dir.join(SPEC_FILE), &spec_json, false)?;
    let mut st = ContainerState {
        id: opts.id.clone(),
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        pid: None,
        pid_start_time: None,
        created_ns: state::now_ns(),
        cgroups_path: cgroups_path(&spec),
        cgroup_dirs: Default::default(),
        cgroup_parents: Vec::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        paused: false,
        created: false,
    };
    state::write_state(&dir, &st, false)?;

    let (cgroup, parents) = Cgroup::create_noting_parents(&st.cgroups_path, &opts.id)
        .map_err(Error::cgroup(&opts.id))?;
    st.cgroup_dirs = cgroup.dirs();
    st.cgroup_parents = parents.clone();
    undo.cgroup = Some(cgroup);
    undo.cgroup_parents = parents;
    let cgroup = undo.cgroup.as_ref().expect("just set");
    if let Some(r) = resources_with_devices(&spec) {
        cgroup.apply(&r).map_err(Error::cgroup(&opts.id))?;
    }
    let join = cgroup.join_targets(&[]).map_err(Error::cgroup(&opts.id))?;

    let fifo_path = dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o622))
        .map_err(Error::sys(format!("mkfifo {}", fifo_path.display())))?;
    // mkfifo applies the umask; the init may run as any uid and must open it for writing.
    std::fs::set_permissions(
        &fifo_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o622),
    )
    .map_err(Error::io("chmod", &fifo_path))?;
    let fifo = nix::fcntl::open(&fifo_path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(Error::sys(format!("open {}", fifo_path.display())))?;

    let (parent_chan, child_chan) = Channel::pair()?;
    let args = InitArgs {
        spec: &spec,
        rootfs: &rootfs,
        bundle: &bundle,
        fifo_fd: fifo.as_raw_fd(),
        console_socket: console_socket.as_ref().map(|s| s.as_raw_fd()),
        console_to_parent: matches!(opts.console, Console::Return),
        preserve_fds: opts.preserve_fds,
        seccomp: program.as_deref(),
        no_pivot,
        id: &opts.id,
        cgroup: &join,
    };
    let stdio = opts.stdio.as_ref().map(Stdio3::raw_fds);
    let child = match sys::fork().map_err(Error::sys("fork"))? {
        sys::Forked::Child => {
            drop(parent_chan);
            if let Some(fds) = stdio {
                if let Err(e) = init::install_stdio(fds) {
                    init::fail(&child_chan, &e);
                }
            }
            init::intermediate(&args, &child_chan)
        }
        sys::Forked::Parent(pid) => pid,
    };
    drop(child_chan);
    drop(opts.stdio);
    undo.pids.push(child);

    let r = drive_children(&parent_chan, child, &spec, &mut st, &mut undo.pids);
    let console_master = r?;
    drop(fifo);

    if let Some(p) = &opts.pid_file {
        let pid = st.pid.unwrap_or(0);
        write_pid_file(p, pid)?;
    }
    st.created = true;
    state::write(&dir, &st)?;
    tracing::debug!(id = %st.id, pid = st.pid.unwrap_or(0), "created");
    undo.armed = false;
    let cgroup = undo.cgroup.take();
    drop(cgroup);
    Ok(Created {
        container: Container::just_created(dir, st, Arc::new(spec), program),
        console_master,
    })
}

pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), Error> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(Error::io("current dir for", path))?
            .join(path)
    };
    // Atomic (a reader never sees half a number) but not fsynced: the pid
    // file is for whoever started us, now.
    state::write_atomic(&abs, pid.to_string().as_bytes(), false)
}

/// Hands a seccomp notify fd to linux.seccomp.listenerPath as runc does:
/// one message holding the runtime-spec ContainerProcessState as JSON, with
/// the fd (named "seccompFd" in its `fds`) attached by SCM_RIGHTS.
pub(crate) fn send_to_listener(
    spec: &Spec,
    pid: i32,
    state: oci_spec::runtime::State,
    fd: &OwnedFd,
) -> Result<(), Error> {
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let path = seccomp
        .and_then(|s| s.listener_path().clone())
        .unwrap_or_default();
    let io = |source| Error::SeccompListener {
        path: path.clone(),
        source,
    };
    let mut msg = oci_spec::runtime::ContainerProcessState::default();
    msg.set_version(oci_spec::runtime::VERSION.to_string());
    msg.set_fds(vec![oci_spec::runtime::SECCOMP_FD_NAME.to_string()]);
    msg.set_pid(pid);
    msg.set_metadata(seccomp.and_then(|s| s.listener_metadata().clone()));
    msg.set_state(state);
    let data = serde_json::to_vec(&msg).map_err(|e| io(std::io::Error::other(e)))?;
    let sock = UnixStream::connect(&path).map_err(io)?;
    sys::send_with_fds(std::os::fd::AsFd::as_fd(&sock), &data, &[fd.as_raw_fd()])
        .map_err(|e| io(e.into()))
}

/// The compiled linux.seccomp profile, if the spec has one, from the
/// state root's cache of compiled programs (`<root>/.seccomp`).
pub(crate) fn seccomp_program(spec: &Spec, root: &Path) -> Result<Option<seccomp::Program>, Error> {
    let cache = root.join(SECCOMP_CACHE);
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|p| seccomp::compile_cached(p, &cache))
        .transpose()
        .map_err(Error::Seccomp)
}

/// The state root's directory of compiled seccomp programs (a dot name:
/// never a container id).
pub(crate) const SECCOMP_CACHE: &str = ".seccomp";

/// The console socket of a process whose `terminal` is set, connected
/// before anything is forked so that a bad path fails first. A terminal
/// with nowhere to send its master is an error in `bundle`'s config.
pub(crate) fn connect_console(
    console: &Console,
    terminal: bool,
    bundle: &Path,
) -> Result<Option<UnixStream>, Error> {
    match (console, terminal) {
        (Console::None, true) => Err(Error::Spec {
            bundle: bundle.to_path_buf(),
            source: spec::invalid(
                "process.terminal",
                "is true but no console socket was given (use --console-socket)",
            ),
        }),
        (Console::Socket(p), true) => {
            UnixStream::connect(p)
                .map(Some)
                .map_err(|source| Error::ConsoleSocket {
                    path: p.clone(),
                    source,
                })
        }
        _ => Ok(None),
    }
}

/// The next message from a child during setup. A child that reports
/// `Failed`, or exits without a word (`who` names it), ends the setup.
pub(crate) fn recv_setup(chan: &Channel, who: &str) -> Result<(Message, Vec<OwnedFd>), Error> {
    match chan.recv() {
        Ok((Message::Failed(message), _)) => Err(Error::Setup { message }),
        Ok(m) => Ok(m),
        Err(crate::sync::Error::Closed) => Err(Error::Setup {
            message: format!("{who} exited during setup"),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Answers the children until the init reports Ready (or fails).
fn drive_children(
    chan: &Channel,
    intermediate: i32,
    spec: &Spec,
    st: &mut ContainerState,
    pids: &mut Vec<i32>,
) -> Result<Option<OwnedFd>, Error> {
    const WHO: &str = "the container's init";
    let linux = spec.linux().as_ref();
    let mut master = None;
    loop {
        let (msg, mut fds) = recv_setup(chan, WHO)?;
        match msg {
            Message::WriteIdMaps => {
                write_id_map(
                    intermediate,
                    "uid_map",
                    linux.and_then(|l| l.uid_mappings().as_ref()),
                )?;
                write_id_map(
                    intermediate,
                    "gid_map",
                    linux.and_then(|l| l.gid_mappings().as_ref()),
                )?;
                chan.send(&Message::Continue)?;
            }
            Message::InitPid(pid) => {
                pids.push(pid);
                let _ = waitpid(Pid::from_raw(intermediate), None);
                pids.retain(|p| *p != intermediate);
                st.pid = Some(pid);
                st.pid_start_time = state::proc_stat(pid).map(|s| s.start_time);
                chan.send(&Message::Continue)?;
            }
            Message::RunCreateRuntimeHooks => {
                // "created", as crun says: the container is set up by now.
                let json = oci_state_json(st, OciStatus::Created);
                if let Some(h) = spec.hooks().as_ref() {
                    let inherit = hooks::DefaultEnv::Inherit;
                    let prestart = h.prestart().as_deref().unwrap_or(&[]);
                    hooks::run_all("prestart", prestart, &json, inherit)?;
                    let create_runtime = h.create_runtime().as_deref().unwrap_or(&[]);
                    hooks::run_all("createRuntime", create_runtime, &json, inherit)?;
                }
                chan.send(&Message::HookState(oci_state_json(st, OciStatus::Created)))?;
            }
            Message::ConsoleMaster => master = fds.pop(),
            Message::SeccompFd => {
                let fd = fds.pop().ok_or(Error::UnexpectedMessage {
                    who: WHO,
                    got: "a seccomp-fd message without its fd".into(),
                })?;
                let pid = st.pid.unwrap_or(0);
                send_to_listener(spec, pid, oci_state(st, OciStatus::Creating), &fd)?;
                chan.send(&Message::Continue)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_paths_become_cgroupfs_paths() {
        assert_eq!(
            systemd_to_cgroupfs("system.slice:cri-containerd:abc").as_deref(),
            Some("/system.slice/cri-containerd-abc.scope")
        );
        assert_eq!(
            systemd_to_cgroupfs("kubepods-burstable-pod1.slice:cri-containerd:x").as_deref(),
            Some("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-x.scope")
        );
        assert_eq!(systemd_to_cgroupfs("/default/abc"), None);
        assert_eq!(systemd_to_cgroupfs("isola/abc"), None);
    }

    #[test]
    fn ids_that_could_escape_are_refused() {
        for id in ["", ".", "..", "a/b", "a b"] {
            assert!(validate_id(id).is_err(), "{id:?}");
        }
        assert!(validate_id("abc-1.2_3+4").is_ok());
    }
}
