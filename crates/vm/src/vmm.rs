//! vmm: one utility VM's lifetime — writes its initramfs, starts QEMU in its
//! own host cgroup (booting, or restoring a template: template.rs), connects
//! to the agent (bounded by a boot timeout), has it Init the guest, and
//! stops, kills and cleans up after it. Faults (QEMU dying, a guest panic) come
//! back as [`Error::VmExited`] naming the console log. It must not know about
//! containers beyond their name and id: the engine drives the agent through
//! [`Vm::client`].

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::accel::{self, Accel, AccelChoice};
use crate::client::AgentClient;
use crate::cmdline::{self, QemuArgs, Share};
use crate::host_cgroup::HostCgroup;
use crate::jail::{Jail, JailParts, JailUser};
use crate::kernel::{AgentBinary, GuestKernel};
use crate::{console, initramfs, sys, template, Error};

/// How one VM is made. [`VmConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// The container's name (QEMU `-name guest=`).
    pub name: String,
    /// The container's id (the QEMU process is `isola-vm-<first 6>`; the host cgroup
    /// is `/isola-vm/<id>`).
    pub id: String,
    pub kernel: GuestKernel,
    pub agent: AgentBinary,
    /// The container's root filesystem (at /run/isola/rootfs in the guest).
    pub rootfs: Rootfs,
    /// Per-VM directory: console.log and agent.sock go here (keep it short:
    /// a unix socket path must fit in 107 bytes).
    pub run_dir: PathBuf,
    /// Where the initramfs is cached between VMs.
    pub cache_dir: PathBuf,
    pub memory_mib: u64,
    pub cpus: u32,
    pub accel: AccelChoice,
    pub tb_size_mib: u32,
    /// QEMU binary name or path.
    pub qemu: String,
    /// From start to the agent's first answer.
    pub boot_timeout: Duration,
    /// Put QEMU in a host cgroup with a memory limit.
    pub host_cgroup: bool,
    /// Extra host directories (volumes) shared with 9p.
    pub shares: Vec<Share>,
    /// Where the guest console goes (default: `console.log` in `run_dir`); the
    /// engine keeps it with the container's records so it outlives the VM.
    pub console_log: Option<PathBuf>,
    /// Where VM templates are kept ([`crate::template`]); None boots every VM.
    pub template_dir: Option<PathBuf>,
    /// A network interface (virtio-net) backed by a tap the caller opened.
    pub nic: Option<Nic>,
    /// Whom QEMU runs as in its jail (None: [`JailUser::ensure`]).
    pub jail_user: Option<JailUser>,
    /// Move the calling process (the engine's monitor) into the VM's host
    /// cgroup too, under the same limits, while the VM runs.
    pub cgroup_holds_caller: bool,
}

/// Where a VM's container root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rootfs {
    /// A host directory, shared with 9p (tag `rootfs`): what the host
    /// changes there the guest sees at once, and the other way round.
    Share(PathBuf),
    /// Two raw disk images on virtio-blk, overlaid by the guest: the
    /// image's files (EROFS, read-only) and the container's writable layer
    /// (ext4). Faster than 9p by far (the guest's own page cache), but the
    /// host must not touch the writable disk while the VM runs.
    Disks { image: PathBuf, writable: PathBuf },
}

impl Rootfs {
    /// How the guest's agent mounts it.
    pub fn source(&self) -> proto::RootfsSource {
        match self {
            Rootfs::Share(_) => proto::RootfsSource::Share,
            Rootfs::Disks { .. } => proto::RootfsSource::Disks,
        }
    }
}

/// The guest's network interface: QEMU's virtio-net device on a tap
/// descriptor that QEMU inherits (the caller keeps it open until QEMU has
/// started), with the MAC address of the endpoint it stands for.
#[derive(Debug, Clone)]
pub struct Nic {
    pub tap_fd: std::os::fd::RawFd,
    pub mac: String,
}

impl VmConfig {
    pub fn new(
        name: &str,
        id: &str,
        kernel: GuestKernel,
        agent: AgentBinary,
        rootfs: &Path,
        run_dir: &Path,
    ) -> VmConfig {
        VmConfig {
            name: name.to_string(),
            id: id.to_string(),
            kernel,
            agent,
            rootfs: Rootfs::Share(rootfs.to_path_buf()),
            run_dir: run_dir.to_path_buf(),
            cache_dir: PathBuf::from(crate::kernel::DEFAULT_CACHE).join("initramfs"),
            memory_mib: cmdline::DEFAULT_GUEST_MEMORY_MIB,
            cpus: 1,
            accel: AccelChoice::Auto,
            tb_size_mib: accel::DEFAULT_TB_SIZE_MIB,
            qemu: "qemu-system-x86_64".to_string(),
            boot_timeout: Duration::from_secs(60),
            host_cgroup: true,
            shares: Vec::new(),
            console_log: None,
            template_dir: Some(PathBuf::from(crate::kernel::DEFAULT_CACHE).join("templates")),
            nic: None,
            jail_user: None,
            cgroup_holds_caller: false,
        }
    }
}

/// A running utility VM. Dropping it kills QEMU and removes what it left.
pub struct Vm {
    child: Child,
    /// Keeps the thread QEMU was forked from parked (see `spawn_jailed`).
    _lifeline: std::sync::mpsc::Sender<()>,
    /// Set once the agent socket is connected (always, after `boot` returns).
    client: Option<AgentClient>,
    console: PathBuf,
    socket: PathBuf,
    jail_dir: PathBuf,
    cgroup: Option<HostCgroup>,
    process_name: String,
    kernel_release: String,
    agent_serving_at: Duration,
    accel: Accel,
    status: Option<ExitStatus>,
}

/// `binary` as a path, looked up in PATH if it has no slash.
fn find_binary(binary: &str) -> Option<PathBuf> {
    if binary.contains('/') {
        return Path::new(binary).is_file().then(|| PathBuf::from(binary));
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
}

/// What every start of one VM's QEMU shares: its config and what [`Vm::boot`]
/// resolved (the QEMU binary, the accelerator, the initramfs).
pub(crate) struct Launch<'a> {
    pub cfg: &'a VmConfig,
    pub qemu: &'a Path,
    pub accel: Accel,
    pub initrd: &'a Path,
    pub user: JailUser,
}

impl Launch<'_> {
    /// Starts QEMU from the machine saved in `saved`, which QEMU inherits.
    fn restore(&self, saved: &Path) -> Result<Vm, Error> {
        let file = fs::File::open(saved).map_err(Error::io("open", saved))?;
        let fd = file.as_raw_fd();
        self.spawn(cmdline::StartMode::Restore { fd }, Some(&file))
    }

    /// Starts QEMU for `cfg` and waits until the agent answers Hello.
    pub fn start(&self, start: cmdline::StartMode<'_>) -> Result<Vm, Error> {
        self.spawn(start, None)
    }

    fn spawn(&self, start: cmdline::StartMode<'_>, saved: Option<&fs::File>) -> Result<Vm, Error> {
        let cfg = self.cfg;
        // 0700: the agent socket in it is the guest's control channel.
        std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
            .create(&cfg.run_dir)
            .map_err(Error::io("create", &cfg.run_dir))?;
        let console = cfg
            .console_log
            .clone()
            .unwrap_or_else(|| cfg.run_dir.join("console.log"));
        // QEMU writes no file of its own: its sockets are bound here, its
        // console is a pipe, and it inherits them all.
        let socket = cfg.run_dir.join("agent.sock");
        let agent = listen(&socket)?;
        let qmp = match start {
            cmdline::StartMode::Template { qmp } => Some(listen(qmp)?),
            _ => None,
        };
        let (console_r, console_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("make a pipe for", &console)(e.into()))?;
        let mut cgroup = match cfg.host_cgroup {
            true => Some(HostCgroup::create(
                &cfg.id,
                cmdline::host_memory_limit_bytes(cfg.memory_mib, self.accel),
                cfg.cgroup_holds_caller,
            )?),
            false => None,
        };
        let jail_dir = cfg.run_dir.join("jail");
        let spawned = self.spawn_jailed(
            start,
            saved,
            &jail_dir,
            [console_w.as_raw_fd(), agent.as_raw_fd()],
            qmp.as_ref().map(|q| q.as_raw_fd()),
            cgroup.as_ref(),
        );
        drop(console_w);
        let (child, stderr_log, lifeline) = match spawned {
            Ok(c) => c,
            Err(e) => {
                if let Some(cg) = cgroup.as_mut() {
                    cg.remove();
                }
                let _ = fs::remove_dir_all(&jail_dir);
                let _ = fs::remove_file(&socket);
                return Err(e);
            }
        };
        let started = Instant::now();
        let drained = console::drain(console_r, console.clone());
        let mut vm = Vm {
            child,
            _lifeline: lifeline,
            client: None,
            console: console.clone(),
            socket: socket.clone(),
            jail_dir,
            cgroup,
            process_name: cmdline::process_name(&cfg.id),
            kernel_release: String::new(),
            agent_serving_at: Duration::ZERO,
            accel: self.accel,
            status: None,
        };
        if let Err(e) = drained {
            vm.kill();
            return Err(Error::io("write", console)(e));
        }
        // The socket listens already: this connects at once, and QEMU
        // accepts when it is ready. Without the host's copies of the
        // listening sockets, QEMU dying resets the connection.
        let stream = UnixStream::connect(&socket);
        drop(agent);
        drop(qmp);
        let stream = match stream {
            Ok(s) => s,
            Err(_) => return Err(vm.exited(&stderr_log)),
        };
        let client = AgentClient::new(stream, console.clone())?;
        let left = (started + cfg.boot_timeout).saturating_duration_since(Instant::now());
        let hello = client.hello(left);
        vm.client = Some(client);
        match hello {
            Ok((release, serving_at)) => {
                vm.kernel_release = release;
                vm.agent_serving_at = serving_at;
            }
            Err(Error::BootTimeout { .. }) => {
                vm.kill();
                return Err(Error::BootTimeout {
                    waited: cfg.boot_timeout,
                    console,
                });
            }
            Err(e) => return Err(vm.explain(e, &stderr_log)),
        }
        tracing::debug!(pid = vm.pid(), elapsed = ?started.elapsed(), "the VM's agent answered");
        Ok(vm)
    }

    /// Starts QEMU in its jail ([`crate::jail`]), in a PID namespace of its
    /// own, inheriting `fds` (console, agent socket) and `qmp`. Returns the
    /// child and the file its stderr goes to.
    fn spawn_jailed(
        &self,
        start: cmdline::StartMode<'_>,
        saved: Option<&fs::File>,
        jail_dir: &Path,
        [console_fd, agent_fd]: [i32; 2],
        qmp_fd: Option<i32>,
        cgroup: Option<&HostCgroup>,
    ) -> Result<(Child, PathBuf, std::sync::mpsc::Sender<()>), Error> {
        let cfg = self.cfg;
        let shares = cfg
            .shares
            .iter()
            .map(|s| {
                (
                    s.host_path.as_path(),
                    s.read_only,
                    s.files.as_deref(),
                    s.live,
                )
            })
            .collect();
        let jail = Jail::prepare(
            jail_dir,
            &JailParts {
                kernel: cfg.kernel.path(),
                initrd: self.initrd,
                rootfs: &cfg.rootfs,
                shares,
                kvm: matches!(self.accel, Accel::Kvm),
                user: self.user,
                cgroup_dirs: cgroup.map(HostCgroup::vmm_dirs).unwrap_or_default(),
            },
        )?;
        let process_name = cmdline::process_name(&cfg.id);
        let args = QemuArgs {
            name: &cfg.name,
            process_name: &process_name,
            accel: self.accel,
            memory_mib: cfg.memory_mib,
            cpus: cfg.cpus,
            console_fd,
            agent_fd,
            qmp_fd,
            shares: &cfg.shares,
            disks: matches!(cfg.rootfs, Rootfs::Disks { .. }),
            nic: cfg.nic.as_ref().map(|n| (n.tap_fd, n.mac.as_str())),
            start,
        }
        .to_args();
        tracing::debug!(qemu = %self.qemu.display(), ?args, "starting the VM");
        let stderr_log = cfg.run_dir.join("qemu.log");
        let stderr = fs::File::create(&stderr_log).map_err(Error::io("create", &stderr_log))?;
        let mut command = Command::new(self.qemu);
        command
            .args(&args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // Under TCG, no transparent huge pages for QEMU (its guest RAM above
        // all): the host then backs only the 4 KiB pages the guest touches
        // (with THP one touched byte costs 2 MiB), and reading an untouched
        // page maps the zero page, which keeps a VM restored from a template
        // (QEMU checks every page it restores for zeros) as small as a booted
        // one. TCG's soft TLB maps 4 KiB pages anyway; KVM keeps huge pages.
        let inherit: Vec<i32> = saved
            .map(|f| f.as_raw_fd())
            .into_iter()
            .chain(cfg.nic.as_ref().map(|n| n.tap_fd))
            .chain([console_fd, agent_fd])
            .chain(qmp_fd)
            .collect();
        sys::in_child_before_exec(
            &mut command,
            matches!(self.accel, Accel::Tcg { .. }),
            &inherit,
            Some(jail),
        );
        // A thread of its own forks QEMU into a new PID namespace (the
        // namespace applies to that thread's children) and stays, parked,
        // as long as the Vm: QEMU's parent-death signal (SIGKILL) follows
        // that thread, so a monitor that dies takes its QEMU along.
        let (spawned_tx, spawned_rx) = std::sync::mpsc::channel();
        let (lifeline, held) = std::sync::mpsc::channel::<()>();
        let parent = std::thread::Builder::new()
            .name("vm-parent".into())
            .spawn(move || {
                let r = sys::children_in_new_pid_namespace().and_then(|()| command.spawn());
                let ok = r.is_ok();
                let _ = spawned_tx.send(r);
                if ok {
                    // Until the Vm drops its end.
                    let _ = held.recv();
                }
            })
            .map_err(|source| Error::Spawn {
                binary: self.qemu.display().to_string(),
                source,
            })?;
        let spawned = spawned_rx
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the spawning thread panicked")));
        if spawned.is_err() {
            let _ = parent.join();
        }
        match spawned {
            Ok(child) => Ok((child, stderr_log, lifeline)),
            Err(source) => {
                let said = fs::read_to_string(&stderr_log).unwrap_or_default();
                match said.lines().find_map(|l| l.strip_prefix("isola jail: ")) {
                    Some(step) => Err(Error::Jail {
                        step: step.to_string(),
                        source,
                    }),
                    None => Err(Error::Spawn {
                        binary: self.qemu.display().to_string(),
                        source,
                    }),
                }
            }
        }
    }
}

/// A listening unix socket at `path` (replacing one left there), 0600.
fn listen(path: &Path) -> Result<std::os::unix::net::UnixListener, Error> {
    let _ = fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path).map_err(Error::io("listen on", path))?;
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(Error::io("restrict", path))?;
    Ok(l)
}

impl Vm {
    /// Starts QEMU and waits until the agent answers (at most `boot_timeout`;
    /// a guest that never answers is killed), then makes the guest ready for
    /// containers (the agent's Init: entropy, clock, the rootfs share).
    ///
    /// With `template_dir` set, the VM starts from a saved machine of its
    /// shape ([`crate::template`]) rather than booting the kernel; the first
    /// VM of a shape makes that template. A template that cannot be made or
    /// restored is reported in the log and the VM boots instead.
    pub fn boot(cfg: &VmConfig) -> Result<Vm, Error> {
        let qemu = find_binary(&cfg.qemu).ok_or_else(|| Error::QemuMissing {
            binary: cfg.qemu.clone(),
        })?;
        for share in &cfg.shares {
            share.validate()?;
        }
        let accel = accel::resolve(cfg.accel, cfg.tb_size_mib)?;
        let initrd = initramfs::cached(&cfg.agent, &cfg.cache_dir)?;
        let user = match cfg.jail_user {
            Some(u) => u,
            None => JailUser::ensure()?,
        };
        let launch = Launch {
            cfg,
            qemu: &qemu,
            accel,
            initrd: &initrd,
            user,
        };
        let mut vm = None;
        if let Some(dir) = &cfg.template_dir {
            match template::ensure(&launch, dir) {
                Ok(saved) => match launch.restore(&saved) {
                    Ok(restored) => vm = Some(restored),
                    Err(e @ Error::BootTimeout { .. }) => return Err(e),
                    Err(e) => {
                        tracing::warn!(
                            "restoring the VM template {} failed, booting instead: {e}",
                            saved.display()
                        );
                        let _ = fs::remove_file(&saved);
                    }
                },
                Err(e @ Error::BootTimeout { .. }) => return Err(e),
                Err(e) => tracing::warn!("cannot make a VM template, booting instead: {e}"),
            }
        }
        let vm = match vm {
            Some(vm) => vm,
            None => launch.start(cmdline::StartMode::Boot)?,
        };
        vm.client().init(cfg.rootfs.source())?;
        Ok(vm)
    }
    /// QEMU's exit (it refused the agent's connection) as an error naming
    /// what QEMU said.
    fn exited(&mut self, stderr_log: &Path) -> Error {
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            if let Some(s) = self.try_wait() {
                break Some(s);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let status = match status {
            Some(s) => {
                let said = fs::read_to_string(stderr_log).unwrap_or_default();
                match said.trim() {
                    "" => format!("QEMU {s}"),
                    said => format!("QEMU {s}: {said}"),
                }
            }
            None => {
                self.kill();
                "the agent channel broke; QEMU was killed".into()
            }
        };
        self.cleanup();
        Error::VmExited {
            status,
            console: self.console.clone(),
        }
    }

    /// Adds QEMU's exit status (and what it said) to a channel error once
    /// QEMU has gone.
    fn explain(&mut self, e: Error, stderr_log: &Path) -> Error {
        if let Error::VmExited { .. } = &e {
            return self.exited(stderr_log);
        }
        e
    }

    /// The host side of the agent protocol.
    pub fn client(&self) -> &AgentClient {
        self.client.as_ref().expect("boot returns a connected VM")
    }

    /// QEMU's host pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The QEMU process's name on the host (`ps -o comm`).
    pub fn process_name(&self) -> &str {
        &self.process_name
    }

    /// The guest console (kernel messages, agent errors): for `isola inspect`.
    pub fn console_log(&self) -> &Path {
        &self.console
    }

    /// Guest uptime when the agent began serving (the guest's boot time).
    pub fn agent_serving_at(&self) -> Duration {
        self.agent_serving_at
    }

    pub fn guest_kernel_release(&self) -> &str {
        &self.kernel_release
    }

    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The host cgroup directories QEMU runs in.
    pub fn host_cgroup_paths(&self) -> Vec<PathBuf> {
        self.cgroup
            .as_ref()
            .map(|c| c.vmm().paths())
            .unwrap_or_default()
    }

    /// QEMU's exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for QEMU to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait() {
                self.cleanup();
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            // Short: a `run --rm` waits on this for the VM to be gone.
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Freezes the whole VM (host cgroup freezer, else SIGSTOP).
    pub fn pause(&self) -> Result<(), Error> {
        self.signal_or_freeze(true)
    }

    pub fn resume(&self) -> Result<(), Error> {
        self.signal_or_freeze(false)
    }

    fn signal_or_freeze(&self, pause: bool) -> Result<(), Error> {
        if let Some(cg) = self.cgroup.as_ref().map(HostCgroup::vmm) {
            let r = if pause { cg.freeze() } else { cg.thaw() };
            if r.is_ok() {
                return Ok(());
            }
        }
        let sig = if pause { libc::SIGSTOP } else { libc::SIGCONT };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::try_from(sig).expect("SIGSTOP and SIGCONT are signals"),
        )
        .map_err(|e| Error::io("signal", format!("QEMU pid {}", self.child.id()))(e.into()))
    }

    /// Asks the guest to power off and waits up to `timeout`; kills QEMU if it
    /// is still there after that. Returns QEMU's exit status.
    pub fn shutdown(&mut self, timeout: Duration) -> ExitStatus {
        if self.try_wait().is_none() {
            if let Some(Err(e)) = self.client.as_ref().map(AgentClient::shutdown) {
                tracing::debug!(error = %e, "asking the agent to power off");
            }
        }
        match self.wait_timeout(timeout) {
            Some(s) => s,
            None => {
                tracing::warn!(
                    pid = self.pid(),
                    "the VM did not power off within {timeout:?}; killing it"
                );
                self.kill()
            }
        }
    }

    /// Kills QEMU at once and cleans up.
    pub fn kill(&mut self) -> ExitStatus {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
        }
        let status = match self.status {
            Some(s) => s,
            None => {
                let s = self.child.wait().expect("waiting for our own QEMU child");
                self.status = Some(s);
                s
            }
        };
        self.cleanup();
        status
    }

    /// Removes the socket, the jail directory and the host cgroup (QEMU
    /// must be gone).
    fn cleanup(&mut self) {
        let _ = fs::remove_file(&self.socket);
        // Only mount points are left in it (the mounts were QEMU's own).
        let _ = fs::remove_dir_all(&self.jail_dir);
        if let Some(mut cg) = self.cgroup.take() {
            cg.remove();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}
