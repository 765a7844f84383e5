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
use crate::kernel::{AgentBinary, GuestKernel};
use crate::{initramfs, sys, template, Error};

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
    /// Host directory shared with the guest (9p tag `rootfs`, at /run/isola/rootfs).
    pub rootfs: PathBuf,
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
            rootfs: rootfs.to_path_buf(),
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
        }
    }
}

/// A running utility VM. Dropping it kills QEMU and removes what it left.
pub struct Vm {
    child: Child,
    /// Set once the agent socket is connected (always, after `boot` returns).
    client: Option<AgentClient>,
    console: PathBuf,
    socket: PathBuf,
    cgroup: Option<runtime::cgroups::Cgroup>,
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
        let socket = cfg.run_dir.join("agent.sock");
        let _ = fs::remove_file(&socket);
        let process_name = cmdline::process_name(&cfg.id);
        let args = QemuArgs {
            name: &cfg.name,
            process_name: &process_name,
            accel: self.accel,
            memory_mib: cfg.memory_mib,
            cpus: cfg.cpus,
            kernel: cfg.kernel.path(),
            initramfs: self.initrd,
            console_log: &console,
            rootfs: &cfg.rootfs,
            agent_socket: &socket,
            shares: &cfg.shares,
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
            .collect();
        sys::in_child_before_exec(
            &mut command,
            matches!(self.accel, Accel::Tcg { .. }),
            &inherit,
        );
        let child = command.spawn().map_err(|source| Error::Spawn {
            binary: self.qemu.display().to_string(),
            source,
        })?;
        let started = Instant::now();
        let mut vm = Vm {
            child,
            client: None,
            console: console.clone(),
            socket: socket.clone(),
            cgroup: None,
            process_name,
            kernel_release: String::new(),
            agent_serving_at: Duration::ZERO,
            accel: self.accel,
            status: None,
        };
        if cfg.host_cgroup {
            vm.enter_cgroup(
                &cfg.id,
                cmdline::host_memory_limit_bytes(cfg.memory_mib, self.accel),
            )?;
        }
        let stream = vm.connect(&socket, started + cfg.boot_timeout, &stderr_log)?;
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
            Err(e) => return Err(vm.explain(e)),
        }
        tracing::debug!(pid = vm.pid(), elapsed = ?started.elapsed(), "the VM's agent answered");
        Ok(vm)
    }
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
        let launch = Launch {
            cfg,
            qemu: &qemu,
            accel,
            initrd: &initrd,
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
        vm.client().init()?;
        Ok(vm)
    }
    fn enter_cgroup(&mut self, id: &str, limit: u64) -> Result<(), Error> {
        let path = format!("/isola-vm/{id}");
        let pid = self.child.id();
        let mut memory = oci_spec::runtime::LinuxMemory::default();
        memory.set_limit(Some(limit as i64));
        let mut resources = oci_spec::runtime::LinuxResources::default();
        resources.set_memory(Some(memory));
        let cg = runtime::cgroups::Cgroup::create_with_resources(&path, id, Some(&resources))
            .map_err(|source| Error::Cgroup {
                pid,
                path: path.clone(),
                source,
            })?;
        let added = cg.add_process(pid as i32);
        self.cgroup = Some(cg);
        added.map_err(|source| Error::Cgroup { pid, path, source })
    }

    /// Connects to QEMU's agent socket once it exists, noticing QEMU dying first.
    fn connect(
        &mut self,
        socket: &Path,
        deadline: Instant,
        stderr_log: &Path,
    ) -> Result<UnixStream, Error> {
        loop {
            if let Some(status) = self.try_wait() {
                let qemu_said = fs::read_to_string(stderr_log).unwrap_or_default();
                let status = match qemu_said.trim() {
                    "" => format!("QEMU {status}"),
                    said => format!("QEMU {status}: {said}"),
                };
                self.cleanup();
                return Err(Error::VmExited {
                    status,
                    console: self.console.clone(),
                });
            }
            if let Ok(s) = UnixStream::connect(socket) {
                return Ok(s);
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(Error::BootTimeout {
                    waited: Duration::ZERO,
                    console: self.console.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Adds QEMU's exit status to a channel error once QEMU has gone.
    fn explain(&mut self, e: Error) -> Error {
        if let Error::VmExited { console, .. } = &e {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Some(status) = self.try_wait() {
                    self.cleanup();
                    return Error::VmExited {
                        status: format!("QEMU {status}"),
                        console: console.clone(),
                    };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
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
        self.cgroup.as_ref().map(|c| c.paths()).unwrap_or_default()
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
        if let Some(cg) = &self.cgroup {
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

    /// Removes the socket and the host cgroup (QEMU must be gone).
    fn cleanup(&mut self) {
        let _ = fs::remove_file(&self.socket);
        if let Some(cg) = self.cgroup.take() {
            // QEMU has been reaped, so the group is normally empty: removing its
            // directories is enough, and much quicker than a full destroy
            // (freeze, kill, thaw, retry), which stays the fallback.
            let empty = cg.pids().is_ok_and(|p| p.is_empty());
            if empty
                && cg
                    .paths()
                    .iter()
                    .all(|p| fs::remove_dir(p).is_ok() || !p.exists())
            {
                return;
            }
            if let Err(e) = cg.destroy() {
                tracing::warn!(error = %e, "removing the VM's host cgroup");
            }
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}
