//! backend::vm: VM isolation. Each container runs in its own utility VM
//! (QEMU microvm, its own guest kernel) whose agent runs the container with
//! the `runtime` library inside the guest. The monitor process creates the
//! container, so the monitor owns QEMU and the one connection to its agent;
//! it serves a control socket ([`control`]) through which every other isola
//! process signals, lists, measures, pauses and execs. The container's
//! snapshot directory is shared into the guest with 9p, as are the host files
//! and volumes its spec binds. Per-VM sockets live in a short run directory
//! ([`run_dir`]); the guest console log lives with the container's records.
//! Nothing here reads or writes the engine's records.
//!
//! The guest is not trusted with the monitor's memory: what its agent sends
//! is bounded in [`vm::client`] (1 MiB of output queued per guest process,
//! the container's init and each exec, plus one frame of at most 4 MiB
//! being read); past the queue, the monitor's own copies hold a pipe's
//! 64 KiB per output. An agent that breaks the protocol ends the channel,
//! and the container's record names what it sent (`explain_fault`).

mod control;
pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::{
    Backend, BackendError, BackendPaths, ContainerIo, CreatedContainer, ExecutedProcess, Top, Usage,
};
use crate::isolation::Isolation;
use crate::state::{ContainerConfig, Limits};
use vm::stdio;

pub use control::HostProcess;
pub use vm::jail::{JailObserved, JailPolicy};

/// The jail of a running VM container's worker (QEMU, pid `pid`), as /proc
/// shows it; None once it is gone.
pub fn worker_jail(pid: u32) -> Option<JailObserved> {
    vm::jail::observe(pid)
}

/// The guest console log, in the container's directory (`inspect` names it).
pub const CONSOLE_LOG: &str = "console.log";
const CONTROL_SOCKET: &str = "control.sock";
const QEMU_PID: &str = "qemu.pid";
/// The QEMU binary isola runs.
pub const QEMU: &str = "qemu-system-x86_64";
/// From QEMU's start to the agent's first answer; bounds a guest that never
/// answers (TCG on a loaded 2-core host boots in seconds, not minutes).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a powered-off request may take before QEMU is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The per-VM directory for the agent and control sockets: under the root
/// when the socket paths fit in `sun_path`, else under /run/isola/vm.
pub fn run_dir(root: &Path, id: &str) -> PathBuf {
    let short = &id[..id.len().min(12)];
    let local = root.join("vm").join(short);
    if local.join("agent.sock").as_os_str().len() <= 100 {
        local
    } else {
        PathBuf::from("/run/isola/vm").join(id)
    }
}

/// What the monitor's threads share about the running VM.
pub(crate) struct Shared {
    id: String,
    client: vm::AgentClient,
    qemu_pid: u32,
    /// The guest's memory, fixed at boot: no container limit goes above it.
    guest_memory_mib: u64,
    vm: Mutex<Option<vm::Vm>>,
    /// With a terminal: a dup of the host pty master and the init's input,
    /// so that `start` gives the guest terminal the size the monitor set.
    terminal: Mutex<Option<(std::os::fd::OwnedFd, vm::ProcessInput)>>,
    /// The VM is frozen by `pause`.
    paused: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn is_paused(&self) -> bool {
        self.paused.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn set_paused(&self, paused: bool) {
        self.paused
            .store(paused, std::sync::atomic::Ordering::SeqCst);
    }
}

/// VM isolation.
pub struct VmBackend {
    root: PathBuf,
    /// Set in the monitor process, which owns the VM.
    running: Mutex<Option<Arc<Shared>>>,
}

/// VM defaults and facts for `isola info`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VmDefaults {
    /// The guest kernel, or why none is usable.
    pub kernel: String,
    pub qemu: String,
    pub agent: String,
    pub default_memory_mib: u64,
    pub memory_overhead_mib: u64,
    pub minimum_memory_mib: u64,
    pub default_cpus: u32,
    pub qemu_host_overhead_mib: u64,
    /// Whether VMs start from a saved template VM, and why.
    pub template: String,
    /// How new VM containers' files reach their guests, and why.
    pub rootfs: String,
    /// What every VM's QEMU runs under.
    pub jail: JailPolicy,
    /// The image architectures VM mode runs here: the host's, and those
    /// with a user-mode emulator ([`vm::emulator`]).
    pub architectures: Vec<String>,
}

fn find_in_path(binary: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
}

/// The VM defaults on this host.
pub fn defaults() -> VmDefaults {
    let show = |r: Result<PathBuf, vm::Error>| match r {
        Ok(p) => p.display().to_string(),
        Err(e) => format!("missing: {e}"),
    };
    let settings = load_settings().unwrap_or_default();
    let configured = settings.kernel.clone();
    VmDefaults {
        kernel: show(
            vm::GuestKernel::locate(configured.as_deref()).map(|k| k.path().to_path_buf()),
        ),
        qemu: show(qemu()),
        agent: show(vm::AgentBinary::locate(None).map(|a| a.path().to_path_buf())),
        default_memory_mib: vm::cmdline::DEFAULT_GUEST_MEMORY_MIB,
        memory_overhead_mib: vm::cmdline::GUEST_OVERHEAD_MIB,
        minimum_memory_mib: vm::cmdline::MIN_CONTAINER_MEMORY_MIB,
        default_cpus: vm::cmdline::guest_cpus(None),
        qemu_host_overhead_mib: vm::cmdline::QEMU_HOST_OVERHEAD_MIB,
        template: if settings.template() {
            format!(
                "on: VMs start from a saved template VM of their shape, kept in {} (vm.template = false or ISOLA_VM_TEMPLATE=0 boots each one)",
                settings.template_dir().display()
            )
        } else {
            "off: every VM boots its kernel (vm.template = false or ISOLA_VM_TEMPLATE=0)".into()
        },
        rootfs: match settings.rootfs() {
            settings::VmRootfs::Disks => "disks: the image read-only (EROFS) and a writable ext4 disk per container, overlaid in the guest (vm.rootfs = \"share\" or ISOLA_VM_ROOTFS=share shares the directory over 9p)".into(),
            settings::VmRootfs::Share => "share: the container's directory over 9p, live on the host (vm.rootfs = \"share\" or ISOLA_VM_ROOTFS=share)".into(),
        },
        jail: vm::jail::policy(vm::jail::USER),
        architectures: vm::emulator::runnable(&crate::isolation::host_platform().1),
    }
}

/// Whether new VM containers get disk snapshots (`[vm] rootfs`).
pub(crate) fn rootfs_on_disks() -> Result<bool, BackendError> {
    Ok(load_settings()?.rootfs() == settings::VmRootfs::Disks)
}

fn load_settings() -> Result<settings::VmSettings, BackendError> {
    settings::load(Path::new(crate::isolation::CONFIG_FILE)).map_err(|source| {
        BackendError::VmSettings {
            source: Box::new(source),
        }
    })
}

fn accel_choice(s: &settings::VmSettings) -> Result<vm::AccelChoice, vm::Error> {
    s.accel.as_deref().unwrap_or("auto").parse()
}

fn qemu() -> Result<PathBuf, vm::Error> {
    find_in_path(QEMU).ok_or_else(|| vm::Error::QemuMissing {
        binary: QEMU.to_string(),
    })
}

fn agent_err<'a>(op: &'static str, id: &'a str) -> impl FnOnce(vm::Error) -> BackendError + 'a {
    move |source| BackendError::Agent {
        op,
        id: id.into(),
        source: Box::new(source),
    }
}

/// How much of the end of the guest console log is searched for a panic:
/// the guest writes that file, as much as it likes.
const CONSOLE_TAIL: u64 = 256 * 1024;

/// The last [`CONSOLE_TAIL`] bytes of the console log (empty if unreadable).
fn console_tail(console: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(console) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(CONSOLE_TAIL)));
    let mut buf = Vec::new();
    let _ = f.take(CONSOLE_TAIL).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Why the VM went away, for the container's record: a malformed frame from
/// the agent (the VM is then stopped here: a guest that breaks the protocol
/// is not trusted to power off), or QEMU's status and what the console says
/// of a guest panic.
fn explain_fault(vm: &mut Option<vm::Vm>, client: &vm::AgentClient, console: &Path) -> String {
    if let Some(what) = client.malformed() {
        if let Some(v) = vm.as_mut() {
            v.kill();
        }
        return format!(
            "the guest agent sent a malformed frame ({what}), so the utility VM was stopped; guest console: {}",
            console.display()
        );
    }
    let status = vm
        .as_mut()
        .and_then(|v| v.wait_timeout(Duration::from_secs(2)))
        .map(
            |s| match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                (_, Some(sig)) => format!("QEMU was killed by signal {sig}"),
                (Some(c), _) => format!("QEMU exited with status {c}"),
                _ => format!("QEMU {s}"),
            },
        )
        .unwrap_or_else(|| "the agent channel broke".into());
    let text = console_tail(console);
    let panic = text
        .lines()
        .find(|l| l.contains("Kernel panic"))
        .map(|l| format!("; the guest kernel panicked: {}", l.trim()))
        .unwrap_or_default();
    format!(
        "the utility VM stopped before the container's process exited ({status}{panic}); guest console: {}",
        console.display()
    )
}

/// The architecture of `platform` (`linux/arm64`) when it is not the host's.
fn foreign_arch(platform: &str) -> Option<&str> {
    let arch = platform.split('/').nth(1).filter(|a| !a.is_empty())?;
    let (_, host, _) = crate::isolation::host_platform();
    (arch != host).then_some(arch)
}

/// The spec the agent gets ([`vm::guest_spec`]): the container directory
/// holds the engine's records, so the guest gets it read-only (its
/// /etc/hosts and friends are read-only in exchange).
fn guest_spec(bundle: &Path) -> Result<vm::guest_spec::GuestSpec, BackendError> {
    let path = bundle.join("config.json");
    let bad = |source| BackendError::VmControl {
        id: String::new(),
        path: path.clone(),
        source,
    };
    let text = std::fs::read(&path).map_err(bad)?;
    let spec: Value = serde_json::from_slice(&text).map_err(|e| bad(std::io::Error::other(e)))?;
    let container_dir = bundle.parent().unwrap_or(bundle);
    Ok(vm::guest_spec::GuestSpec::new(
        spec,
        Some(container_dir),
        "isola",
    ))
}

impl VmBackend {
    pub fn new(paths: &BackendPaths) -> VmBackend {
        VmBackend {
            root: paths.root.clone(),
            running: Mutex::new(None),
        }
    }

    fn shared(&self) -> Option<Arc<Shared>> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One request to the monitor that owns the VM.
    fn ask(
        &self,
        id: &str,
        req: &control::Request,
    ) -> Result<(control::Response, std::os::unix::net::UnixStream), BackendError> {
        let socket = run_dir(&self.root, id).join(CONTROL_SOCKET);
        if !socket.exists() {
            return Err(BackendError::NotRunning { id: id.into() });
        }
        match control::call(&socket, req) {
            Ok((control::Response::Error(message), _)) => Err(BackendError::VmRefused {
                id: id.into(),
                message,
            }),
            Ok(r) => Ok(r),
            Err(source) => Err(BackendError::VmControl {
                id: id.into(),
                path: socket,
                source,
            }),
        }
    }

    /// Kills a QEMU left behind by a monitor that died, and removes the host
    /// cgroup and run directory.
    fn clean_orphan(&self, id: &str) {
        let dir = run_dir(&self.root, id);
        if let Some(pid) = std::fs::read_to_string(dir.join(QEMU_PID))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == vm::cmdline::process_name(id) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while Path::new(&format!("/proc/{pid}")).exists()
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        vm::host_cgroup::remove_orphan(id);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A snapshot error of container `id` as a backend error.
fn snapshot_err(id: &str) -> impl Fn(image::store::Error) -> BackendError + '_ {
    move |source| BackendError::VmRootfs {
        id: id.into(),
        source: Box::new(source),
    }
}

/// The memory limit `resources` set, in bytes.
fn memory_limit(resources: &oci_spec::runtime::LinuxResources) -> Option<u64> {
    resources
        .memory()
        .as_ref()
        .and_then(|m| m.limit())
        .and_then(|l| u64::try_from(l).ok())
}

impl Backend for VmBackend {
    fn isolation(&self) -> Isolation {
        Isolation::Vm
    }

    fn preflight(&self, limits: &Limits) -> Result<(), BackendError> {
        vm::cmdline::guest_memory_mib(limits.memory).map_err(|source| BackendError::VmMemory {
            source: Box::new(source),
        })?;
        let unavailable = |source| BackendError::VmUnavailable {
            source: Box::new(source),
        };
        let settings = load_settings()?;
        qemu().map_err(unavailable)?;
        vm::GuestKernel::locate(settings.kernel.as_deref()).map_err(unavailable)?;
        // Auto without usable KVM warns here, in the CLI, where a user sees it.
        let choice = accel_choice(&settings).map_err(unavailable)?;
        vm::accel::resolve(choice, vm::accel::DEFAULT_TB_SIZE_MIB).map_err(unavailable)?;
        vm::AgentBinary::locate(None).map_err(unavailable)?;
        Ok(())
    }

    fn create(
        &self,
        config: &ContainerConfig,
        bundle: &Path,
        io: ContainerIo,
    ) -> Result<CreatedContainer, BackendError> {
        let id = config.id.as_str();
        let boot = |source| BackendError::VmBoot {
            id: id.into(),
            source: Box::new(source),
        };
        let container_dir = bundle.parent().unwrap_or(bundle);
        let settings = load_settings()?;
        let kernel = vm::GuestKernel::locate(settings.kernel.as_deref()).map_err(boot)?;
        let agent = vm::AgentBinary::locate(None).map_err(boot)?;
        let guest = guest_spec(bundle)?;
        let dir = run_dir(&self.root, id);
        let mut cfg = vm::VmConfig::new(&config.name, id, kernel, agent, &config.rootfs, &dir);
        cfg.memory_mib = vm::cmdline::guest_memory_mib(config.limits.memory).map_err(boot)?;
        cfg.cpus = vm::cmdline::guest_cpus(config.limits.cpus());
        cfg.qemu = QEMU.into();
        cfg.accel = accel_choice(&settings).map_err(boot)?;
        cfg.boot_timeout = BOOT_TIMEOUT;
        // A foreign image runs under its emulator, shared alone and
        // read-only (its tag gives these VMs templates of their own).
        let emulator = foreign_arch(&config.platform)
            .map(|arch| vm::emulator::Emulator::find(arch).map_err(boot))
            .transpose()?;
        cfg.shares = guest.shares.clone();
        cfg.shares
            .extend(emulator.as_ref().map(vm::emulator::Emulator::share));
        // What the guest makes the monitor buffer counts against the VM's limit.
        cfg.cgroup_holds_caller = true;
        cfg.template_dir = settings.template().then(|| settings.template_dir());
        let console = container_dir.join(CONSOLE_LOG);
        cfg.console_log = Some(console.clone());
        // On a network: the namespace its monitor attached holds the veth;
        // a tap beside it, redirected both ways, becomes the guest's NIC.
        let attached = match (&config.netns, config.network.network()) {
            (Some(ns), Some(_)) => crate::store::ContainerStore::open(&self.root)
                .ok()
                .and_then(|s| s.read(id).ok().flatten())
                .and_then(|r| r.state.network)
                .map(|n| (ns.clone(), n)),
            _ => None,
        };
        let tap = match &attached {
            Some((ns, n)) => Some(network::tap::connect(ns, &n.attachment.ifname).map_err(
                |source| BackendError::VmNetwork {
                    id: id.into(),
                    source: Box::new(source),
                },
            )?),
            None => None,
        };
        if let (Some((fd, _)), Some((_, n))) = (&tap, &attached) {
            cfg.nic = Some(vm::Nic {
                tap_fd: std::os::fd::AsRawFd::as_raw_fd(fd),
                mac: n.attachment.mac.clone(),
            });
        }
        // A disk snapshot's disks go to the VM, off the host's mounts.
        let store = image::store::Store::open(&self.root).map_err(snapshot_err(id))?;
        match store.release_snapshot(&config.snapshot_key) {
            Ok(disks) => {
                cfg.rootfs = vm::Rootfs::Disks {
                    image: disks.image,
                    writable: disks.writable,
                }
            }
            Err(image::store::Error::NotADiskSnapshot(_)) => {}
            Err(e) => return Err(snapshot_err(id)(e)),
        }
        let vm = vm::Vm::boot(&cfg).map_err(boot)?;
        // QEMU holds its own copy of the tap now.
        let mtu = tap.map(|(_, mtu)| mtu);
        if let (Some((_, n)), Some(mtu)) = (&attached, mtu) {
            let a = &n.attachment;
            vm.client()
                .configure_network(&a.mac, a.ip, a.prefix_len, a.gateway, mtu)
                .map_err(agent_err("configure the guest's network", id))?;
        }
        if let Some(emulator) = &emulator {
            vm.client()
                .register_emulator(emulator)
                .map_err(agent_err("register the image's emulator", id))?;
        }
        let qemu_pid = vm.pid();
        let _ = std::fs::write(dir.join(QEMU_PID), qemu_pid.to_string());
        let client = vm.client().clone();

        // From here a failure must not leave QEMU behind: `vm` kills it on drop.
        let tty = matches!(io, ContainerIo::Terminal);
        let shares = guest.share_mounts();
        let spec = guest
            .clone()
            .into_spec()
            .map_err(|e| BackendError::VmControl {
                id: id.into(),
                path: bundle.join("config.json"),
                source: std::io::Error::other(e),
            })?;
        let (_guest_pid, pio) = client
            .mount_shares_and_create(&shares, id, &spec, vm::GUEST_ROOTFS, tty)
            .map_err(agent_err("create the container", id))?;

        let shared = Arc::new(Shared {
            id: id.into(),
            client,
            qemu_pid,
            guest_memory_mib: cfg.memory_mib,
            vm: Mutex::new(Some(vm)),
            terminal: Mutex::new(None),
            paused: Default::default(),
        });
        let exit = pio.exit_watch();
        let gone = {
            let shared = shared.clone();
            let console = console.clone();
            move || {
                explain_fault(
                    &mut shared.vm.lock().unwrap_or_else(|e| e.into_inner()),
                    &shared.client,
                    &console,
                )
            }
        };
        let console_fd = match io {
            ContainerIo::Terminal => {
                let input = pio.input();
                let pty = |source| BackendError::Command {
                    command: "a pty for the container's terminal".into(),
                    source,
                };
                let master = stdio::terminal(pio).map_err(pty)?;
                *shared.terminal.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((master.try_clone().map_err(pty)?, input));
                Some(master)
            }
            ContainerIo::Pipes {
                stdin,
                stdout,
                stderr,
            } => {
                stdio::feed_stdin(std::fs::File::from(stdin), pio.input());
                stdio::drain_output(pio, Some(stdout.into()), Some(stderr.into()));
                None
            }
        };
        let socket = dir.join(CONTROL_SOCKET);
        let listener = crate::socket::bind_private(&dir, CONTROL_SOCKET).map_err(|source| {
            BackendError::VmControl {
                id: id.into(),
                path: socket.clone(),
                source,
            }
        })?;
        control::serve(listener, shared.clone());
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(shared);
        let id_owned = id.to_string();
        Ok(CreatedContainer {
            pid: qemu_pid as i32,
            console: console_fd,
            // The exit apart from the output: an output reader that stalled
            // (an attached client that stopped reading) does not hide it.
            // The monitor then waits (bounded) for the output to end.
            wait: Box::new(move || {
                exit.wait().map_err(|_| BackendError::VmFault {
                    id: id_owned,
                    message: gone(),
                })
            }),
        })
    }

    fn start(&self, id: &str) -> Result<(), BackendError> {
        let shared = self
            .shared()
            .ok_or_else(|| BackendError::NotRunning { id: id.into() })?;
        // The size the monitor gave the terminal, before the process runs.
        let terminal = shared
            .terminal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((master, input)) = terminal {
            if let Some((rows, cols)) = crate::sys::window_size(std::os::fd::AsFd::as_fd(&master)) {
                let _ = input.resize(rows, cols);
            }
        }
        shared
            .client
            .start(id)
            .map_err(agent_err("start the container", id))
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), BackendError> {
        if let Some(shared) = self.shared() {
            return shared
                .client
                .signal(id, signal, all)
                .map_err(agent_err("signal the container", id));
        }
        self.ask(id, &control::Request::Kill { signal, all })
            .map(drop)
    }

    fn pause(&self, id: &str) -> Result<(), BackendError> {
        self.ask(id, &control::Request::Pause).map(drop)
    }

    fn resume(&self, id: &str) -> Result<(), BackendError> {
        self.ask(id, &control::Request::Resume).map(drop)
    }

    fn update(
        &self,
        config: &ContainerConfig,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), BackendError> {
        let id = config.id.as_str();
        let req = control::Request::Update {
            resources: Box::new(resources.clone()),
        };
        match self.ask(id, &req)? {
            // The monitor knows what the VM was booted with; the record
            // does not (an earlier update changed its limit).
            (control::Response::MemoryAbove { guest_mib }, _) => Err(BackendError::VmMemoryAbove {
                id: id.into(),
                requested_mib: memory_limit(resources).unwrap_or(0) >> 20,
                guest_mib,
            }),
            _ => Ok(()),
        }
    }

    fn exec(
        &self,
        id: &str,
        process: &oci_spec::runtime::Process,
        io: Option<ContainerIo>,
        tty: bool,
    ) -> Result<ExecutedProcess, BackendError> {
        let (_, conn) = self.ask(
            id,
            &control::Request::Exec {
                process: Box::new(process.clone()),
                tty,
            },
        )?;
        let relay = |source| BackendError::Command {
            command: format!("relaying the stdio of an exec in container {id}"),
            source,
        };
        let (tx, rx) = mpsc::channel();
        let console = match io {
            Some(ContainerIo::Terminal) => Some(control::exec_terminal(conn, tx).map_err(relay)?),
            Some(ContainerIo::Pipes {
                stdin,
                stdout,
                stderr,
            }) => {
                control::exec_pipes(conn, stdin, stdout, stderr, tx).map_err(relay)?;
                None
            }
            None => {
                use std::os::fd::AsFd;
                let stdin = std::io::stdin().as_fd().try_clone_to_owned();
                let stdout = std::io::stdout().as_fd().try_clone_to_owned();
                let stderr = std::io::stderr().as_fd().try_clone_to_owned();
                control::exec_pipes(
                    conn,
                    stdin.map_err(relay)?,
                    stdout.map_err(relay)?,
                    stderr.map_err(relay)?,
                    tx,
                )
                .map_err(relay)?;
                None
            }
        };
        let id = id.to_string();
        Ok(ExecutedProcess {
            pid: None,
            console,
            wait: Box::new(move || match rx.recv() {
                Ok(Ok(code)) => Ok(code),
                Ok(Err(message)) => Err(BackendError::VmFault { id, message }),
                Err(_) => Err(BackendError::VmFault {
                    id,
                    message: "the exec relay stopped".into(),
                }),
            }),
        })
    }

    fn top(&self, id: &str, ps_args: &[String]) -> Result<Top, BackendError> {
        if !ps_args.is_empty() {
            return Err(BackendError::TopOptions {
                short: crate::ids::short(id).into(),
                options: ps_args.join(" "),
            });
        }
        let processes = match self.ask(id, &control::Request::Top)? {
            (control::Response::Processes(p), _) => p,
            _ => return Err(BackendError::NotRunning { id: id.into() }),
        };
        Ok(Top {
            titles: ["PID", "PPID", "UID", "CMD"].map(String::from).to_vec(),
            processes: processes
                .into_iter()
                .map(|p| {
                    vec![
                        p.pid.to_string(),
                        p.ppid.to_string(),
                        p.uid.to_string(),
                        p.command,
                    ]
                })
                .collect(),
        })
    }

    fn usage(&self, id: &str) -> Result<Usage, BackendError> {
        match self.ask(id, &control::Request::Stats)? {
            (control::Response::Stats { guest, qemu }, _) => Ok(Usage {
                cpu_ns: guest.cpu_usage_ns,
                memory_bytes: guest.memory_usage_bytes,
                memory_limit: guest
                    .memory_limit_bytes
                    .unwrap_or(guest.guest_memory_total_bytes),
                pids: guest.pids_current,
                host_cpu_ns: Some(qemu.cpu_ns),
                host_memory_bytes: Some(qemu.rss_bytes),
            }),
            _ => Err(BackendError::NotRunning { id: id.into() }),
        }
    }

    fn delete(&self, id: &str, _force: bool) -> Result<(), BackendError> {
        let owned = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(shared) = owned {
            let vm = shared.vm.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(mut vm) = vm {
                // The container's process has exited (or is being removed):
                // the VM powers off; one that does not is killed.
                vm.shutdown(SHUTDOWN_TIMEOUT);
            }
        }
        self.clean_orphan(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_console_logs_tail_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let mut text = "x".repeat(CONSOLE_TAIL as usize * 2);
        text.push_str("\nKernel panic - not syncing: test\n");
        std::fs::write(&log, &text).unwrap();
        let tail = console_tail(&log);
        assert_eq!(tail.len() as u64, CONSOLE_TAIL);
        assert!(tail.contains("Kernel panic"));
        assert_eq!(console_tail(&dir.path().join("missing")), "");
    }

    #[test]
    fn a_malformed_frame_from_the_agent_is_named_once_in_the_fault() {
        use std::io::Write;
        let (ours, mut agent) = std::os::unix::net::UnixStream::pair().unwrap();
        let console = Path::new("/c/console.log");
        let client = vm::AgentClient::new(ours, console.into()).unwrap();
        // An Exit frame header claiming 1 MiB: refused on the header.
        agent.write_all(&[8, 0, 0, 0, 1, 0, 0x10, 0, 0]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while client.is_connected() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let fault = explain_fault(&mut None, &client, console);
        assert_eq!(
            fault,
            "the guest agent sent a malformed frame (Exit frame of 1048576 bytes, \
             over the limit of 4 for that kind), so the utility VM was stopped; \
             guest console: /c/console.log"
        );
    }

    #[test]
    fn sockets_go_under_the_root_unless_the_path_would_not_fit() {
        let id = "a".repeat(64);
        let short = run_dir(Path::new("/var/lib/isola"), &id);
        assert_eq!(short, Path::new("/var/lib/isola/vm/aaaaaaaaaaaa"));
        let long_root = PathBuf::from("/").join("r".repeat(90));
        let long = run_dir(&long_root, &id);
        assert_eq!(long, Path::new("/run/isola/vm").join(&id));
        assert!(long.join("control.sock").as_os_str().len() < 108);
    }
}
