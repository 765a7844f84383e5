//! container: the public handle on one container and its lifecycle after
//! create: load/list from the state root, status from /proc, start (release
//! exec.fifo), kill, pause/resume, processes, delete. The creation itself is
//! in create.rs, exec in exec.rs.

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{ContainerState as OciStatus, Spec};

use crate::cgroups::Cgroup;
use crate::error::Action;
use crate::state::{self, ContainerState, EXEC_FIFO, SPEC_FILE};
use crate::{create, hooks, seccomp, Error};

/// Where a terminal's pty master goes.
#[derive(Debug, Clone)]
pub enum Console {
    /// runc's protocol: connect to this unix socket, send the master with SCM_RIGHTS.
    Socket(PathBuf),
    /// Return the master in [`Created::console_master`] / [`Executed::console_master`].
    Return,
    /// No terminal may be requested.
    None,
}

/// Three fds that become the container's 0, 1, 2.
#[derive(Debug)]
pub struct Stdio3 {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Stdio3 {
    /// The numbers a forked child moves onto 0, 1, 2.
    pub(crate) fn raw_fds(&self) -> [RawFd; 3] {
        [
            self.stdin.as_raw_fd(),
            self.stdout.as_raw_fd(),
            self.stderr.as_raw_fd(),
        ]
    }
}

/// How to create a container.
#[derive(Debug)]
pub struct CreateOptions {
    pub id: String,
    /// Directory with config.json; a relative root.path is relative to it.
    pub bundle: PathBuf,
    /// State root, e.g. /run/isola-runtime.
    pub root: PathBuf,
    pub console: Console,
    pub pid_file: Option<PathBuf>,
    /// fds 3..3+N are passed to the container.
    pub preserve_fds: u32,
    /// None: the caller's 0, 1, 2 are inherited.
    pub stdio: Option<Stdio3>,
    /// The bundle's configuration, already parsed (the guest agent gets it
    /// from the host); None reads `bundle/config.json`.
    pub spec: Option<Box<Spec>>,
    /// Its linux.seccomp, already compiled (a host compiles it for its VM's
    /// guest, where libseccomp runs emulated); None compiles it here.
    pub seccomp: Option<seccomp::Program>,
}

/// What `create` returns.
#[derive(Debug)]
pub struct Created {
    pub container: Container,
    pub console_master: Option<OwnedFd>,
}

/// How to exec a process in a running container.
#[derive(Debug)]
pub struct ExecOptions {
    pub console: Console,
    pub pid_file: Option<PathBuf>,
    pub stdio: Option<Stdio3>,
    pub preserve_fds: u32,
    /// Exec into a paused container too (the process stays frozen with it
    /// until resume), as runc's --ignore-paused.
    pub ignore_paused: bool,
    /// Existing sub-cgroups of the container's to put the process in
    /// (runc's --cgroup); empty: the container's cgroup.
    pub sub_cgroups: Vec<crate::cgroups::SubCgroup>,
}

/// What `exec` returns; the caller is the process's parent and reaps it.
#[derive(Debug)]
pub struct Executed {
    pub pid: i32,
    pub console_master: Option<OwnedFd>,
}

/// A container's status, derived from its state file and /proc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// A container known to the runtime.
#[derive(Debug)]
pub struct Container {
    dir: PathBuf,
    state: ContainerState,
    /// The spec and its compiled seccomp filter, once read: a long-lived
    /// caller (the guest agent) parses and compiles them once, not at every
    /// start and exec.
    spec: OnceLock<Arc<Spec>>,
    seccomp: OnceLock<Option<Arc<seccomp::Program>>>,
}

/// How long `delete --force` waits for killed processes to go.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Container {
    pub(crate) fn from_state(dir: PathBuf, state: ContainerState) -> Container {
        Container {
            dir,
            state,
            spec: OnceLock::new(),
            seccomp: OnceLock::new(),
        }
    }

    /// A container just created in this process, with what create parsed
    /// and compiled.
    pub(crate) fn just_created(
        dir: PathBuf,
        state: ContainerState,
        spec: Arc<Spec>,
        seccomp: Option<Arc<seccomp::Program>>,
    ) -> Container {
        let c = Container::from_state(dir, state);
        let _ = c.spec.set(spec);
        let _ = c.seccomp.set(seccomp);
        c
    }

    /// Creates a container from a bundle: see the crate docs.
    pub fn create(opts: CreateOptions) -> Result<Created, Error> {
        create::create(opts, false)
    }

    /// Like [`Container::create`], with runc's --no-pivot (MS_MOVE + chroot).
    pub fn create_no_pivot(opts: CreateOptions) -> Result<Created, Error> {
        create::create(opts, true)
    }

    /// Loads `<root>/<id>/state.json`.
    pub fn load(root: &Path, id: &str) -> Result<Container, Error> {
        if create::validate_id(id).is_err() {
            return Err(Error::NotFound { id: id.to_string() });
        }
        let dir = root.join(id);
        // One read: a container deleted meanwhile, or a file in the root
        // that is no container directory, is simply not found.
        match state::read(&dir) {
            Ok(state) => Ok(Container::from_state(dir, state)),
            Err(Error::Io { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Err(Error::NotFound { id: id.to_string() })
            }
            Err(e) => Err(e),
        }
    }

    /// All containers under `root`, sorted by creation time.
    pub fn list(root: &Path) -> Result<Vec<Container>, Error> {
        let entries = match fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read", root)(e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().filter(|n| !n.starts_with('.')) else {
                continue;
            };
            match Container::load(root, id) {
                Ok(c) => out.push(c),
                Err(Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!("skipping {id}: {}", crate::error::chain(&e)),
            }
        }
        out.sort_by_key(|c| c.state.created_ns);
        Ok(out)
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The init's pid as seen from the host.
    pub fn pid(&self) -> Option<i32> {
        self.state.pid
    }

    pub fn bundle(&self) -> &Path {
        &self.state.bundle
    }

    pub fn rootfs(&self) -> &Path {
        &self.state.rootfs
    }

    pub fn created(&self) -> SystemTime {
        self.state.created_time()
    }

    pub fn annotations(&self) -> &std::collections::HashMap<String, String> {
        &self.state.annotations
    }

    /// The state directory, `<root>/<id>`.
    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// Refreshed from /proc on each call.
    pub fn status(&self) -> Status {
        let alive = self
            .state
            .pid
            .is_some_and(|p| state::is_alive(p, self.state.pid_start_time));
        if !self.state.created {
            return if self.state.pid.is_some() && !alive {
                Status::Stopped
            } else {
                Status::Creating
            };
        }
        if !alive {
            Status::Stopped
        } else if self.dir.join(EXEC_FIFO).exists() {
            Status::Created
        } else if self.state.paused {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// The runtime-spec state.
    pub fn oci_state(&self) -> oci_spec::runtime::State {
        let status = match self.status() {
            Status::Creating => OciStatus::Creating,
            Status::Created => OciStatus::Created,
            // runtime-spec has no "paused"; runc reports it anyway, but the
            // typed State cannot: paused containers are running processes.
            Status::Running | Status::Paused => OciStatus::Running,
            Status::Stopped => OciStatus::Stopped,
        };
        let mut s = create::oci_state(&self.state, status);
        if status == OciStatus::Stopped {
            s.set_pid(None);
        }
        s
    }

    /// The spec the container was created with (a copy kept in its state dir).
    pub fn spec(&self) -> Result<Arc<Spec>, Error> {
        if let Some(spec) = self.spec.get() {
            return Ok(spec.clone());
        }
        let path = self.dir.join(SPEC_FILE);
        let data = fs::read(&path).map_err(Error::io("read", &path))?;
        let spec: Arc<Spec> = serde_json::from_slice(&data)
            .map(Arc::new)
            .map_err(|source| Error::StateFile { path, source })?;
        Ok(self.spec.get_or_init(|| spec).clone())
    }

    /// The compiled linux.seccomp filter of the spec, if it has one.
    pub(crate) fn seccomp_program(&self) -> Result<Option<Arc<seccomp::Program>>, Error> {
        if let Some(p) = self.seccomp.get() {
            return Ok(p.clone());
        }
        let root = self.dir.parent().unwrap_or(Path::new("/"));
        let program = create::seccomp_program(&*self.spec()?, root)?.map(Arc::new);
        Ok(self.seccomp.get_or_init(|| program).clone())
    }

    pub(crate) fn cgroup(&self) -> Result<Cgroup, Error> {
        if self.state.cgroup_dirs.is_empty() {
            Cgroup::open(&self.state.cgroups_path, &self.state.id)
        } else {
            Cgroup::from_dirs(&self.state.cgroup_dirs)
        }
        .map_err(Error::cgroup(&self.state.id))
    }

    fn wrong_status(&self, action: Action) -> Error {
        Error::WrongStatus {
            id: self.state.id.clone(),
            status: self.status(),
            action,
        }
    }

    /// Releases the init blocked in create; runs poststart hooks after.
    pub fn start(&mut self) -> Result<(), Error> {
        let _lock = state::lock(&self.dir)?;
        if self.status() != Status::Created {
            return Err(self.wrong_status(Action::Start));
        }
        let fifo_path = self.dir.join(EXEC_FIFO);
        // Non-blocking: a blocking open would hang forever if the init died.
        let mut fifo = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo_path)
            .map_err(Error::io("open", &fifo_path))?;
        let pid = self.state.pid.unwrap_or(0);
        // The init writes one byte once it has the fifo open, then keeps it
        // open until execve (close-on-exec): the byte releases it, EOF after
        // the byte says the user's program is running (or the init died).
        let mut buf = [0u8; 1];
        let mut released = false;
        loop {
            match fifo.read(&mut buf) {
                Ok(1) => released = true,
                Ok(_) if released => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Error::io("read", &fifo_path)(e)),
            }
            if !released && !state::is_alive(pid, self.state.pid_start_time) {
                let _ = fs::remove_file(&fifo_path);
                return Err(Error::Setup {
                    message: format!("container init (pid {pid}) exited before start"),
                });
            }
            let mut fds = [nix::poll::PollFd::new(
                fifo.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10u8));
        }
        fs::remove_file(&fifo_path).map_err(Error::io("remove", &fifo_path))?;
        tracing::debug!(id = %self.state.id, pid, "started");
        if let Ok(spec) = self.spec() {
            if let Some(h) = spec.hooks().as_ref().and_then(|h| h.poststart().as_ref()) {
                let json = create::oci_state_json(&self.state, OciStatus::Running);
                for e in hooks::run_each("poststart", h, &json, hooks::DefaultEnv::Inherit) {
                    tracing::warn!("{}", crate::error::chain(&e));
                }
            }
        }
        Ok(())
    }

    /// Sends `signal` to the init, or with `all` to every process in the cgroup.
    pub fn kill(&self, signal: i32, all: bool) -> Result<(), Error> {
        let sig = Signal::try_from(signal).map_err(Error::sys(format!("signal {signal}")))?;
        let status = self.status();
        if status == Status::Stopped && !all {
            return Err(Error::NotRunning {
                id: self.state.id.clone(),
            });
        }
        if all {
            let pids = match self.processes() {
                Ok(p) => p,
                // A stopped container whose cgroup is already gone: nothing to signal.
                Err(_) if status == Status::Stopped => {
                    return Err(Error::NotRunning {
                        id: self.state.id.clone(),
                    })
                }
                Err(e) => return Err(e),
            };
            for p in &pids {
                match kill(Pid::from_raw(*p), sig) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => return Err(Error::sys(format!("kill {p} with {sig}"))(e)),
                }
            }
            if status == Status::Paused && sig == Signal::SIGKILL {
                // Frozen tasks act on SIGKILL only once thawed.
                let _ = self.cgroup()?.thaw();
            }
            return Ok(());
        }
        let pid = self.state.pid.unwrap_or(0);
        kill(Pid::from_raw(pid), sig).map_err(Error::sys(format!("kill {pid} with {sig}")))
    }

    pub fn pause(&mut self) -> Result<(), Error> {
        let _lock = state::lock(&self.dir)?;
        if !matches!(self.status(), Status::Running | Status::Created) {
            return Err(self.wrong_status(Action::Pause));
        }
        self.cgroup()?
            .freeze()
            .map_err(Error::cgroup(&self.state.id))?;
        self.state.paused = true;
        state::write(&self.dir, &self.state)
    }

    pub fn resume(&mut self) -> Result<(), Error> {
        let _lock = state::lock(&self.dir)?;
        if self.status() != Status::Paused {
            return Err(self.wrong_status(Action::Resume));
        }
        self.cgroup()?
            .thaw()
            .map_err(Error::cgroup(&self.state.id))?;
        self.state.paused = false;
        state::write(&self.dir, &self.state)
    }

    /// Changes the container's cgroup limits (runc's `update`).
    pub fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<(), Error> {
        if self.status() == Status::Stopped {
            return Err(Error::NotRunning {
                id: self.state.id.clone(),
            });
        }
        let created_with = crate::create::resources_with_devices(&*self.spec()?)
            .and_then(|r| r.devices().clone())
            .unwrap_or_default();
        self.cgroup()?
            .update(resources, &created_with)
            .map_err(Error::cgroup(&self.state.id))
    }

    /// Host pids of the processes in the container's cgroup.
    pub fn processes(&self) -> Result<Vec<i32>, Error> {
        self.cgroup()?.pids().map_err(Error::cgroup(&self.state.id))
    }

    /// Removes the container. Without `force` a running or paused container
    /// is refused; a created one is killed (as runc does).
    pub fn delete(self, force: bool) -> Result<(), Error> {
        let _lock = state::lock(&self.dir)?;
        let status = self.status();
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(self.wrong_status(Action::Delete));
        }
        let cgroup = self.cgroup().ok();
        if status != Status::Stopped {
            if let Some(pid) = self.state.pid {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if let Some(cg) = &cgroup {
                for p in cg.pids().unwrap_or_default() {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
                if status == Status::Paused {
                    let _ = cg.thaw();
                }
            }
            let deadline = Instant::now() + KILL_WAIT;
            while self.status() != Status::Stopped {
                if Instant::now() > deadline {
                    return Err(Error::Timeout {
                        id: self.state.id.clone(),
                        what: "die after SIGKILL",
                        seconds: KILL_WAIT.as_secs(),
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if let Ok(spec) = self.spec() {
            if !crate::rootfs::own_mount_namespace(&spec) {
                crate::rootfs::unmount_in_callers_namespace(&self.state.rootfs).map_err(
                    Error::sys(format!("unmount {}", self.state.rootfs.display())),
                )?;
            }
            if let Some(h) = spec.hooks().as_ref().and_then(|h| h.poststop().as_ref()) {
                let json = create::oci_state_json(&self.state, OciStatus::Stopped);
                for e in hooks::run_each("poststop", h, &json, hooks::DefaultEnv::Inherit) {
                    tracing::warn!("{}", crate::error::chain(&e));
                }
            }
        }
        if let Some(cg) = cgroup {
            cg.destroy().map_err(Error::cgroup(&self.state.id))?;
        }
        crate::cgroups::remove_parents(&self.state.cgroup_parents);
        fs::remove_dir_all(&self.dir).map_err(Error::io("remove", &self.dir))?;
        tracing::debug!(id = %self.state.id, "deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_says_not_found_for_a_missing_id_and_for_a_stray_file() {
        let root = tempfile::tempdir().unwrap();
        // Callers keep other files in the root (the CLI tests' logs, say).
        fs::write(root.path().join("c1.out"), "").unwrap();
        for id in ["nope", "c1.out"] {
            assert!(
                matches!(
                    Container::load(root.path(), id),
                    Err(Error::NotFound { .. })
                ),
                "{id}"
            );
        }
        assert!(Container::list(root.path()).unwrap().is_empty());
    }
}
