//! vmmode::keeper: the process that owns one utility VM for isola-runtime.
//! runc's commands are short-lived, but a VM needs an owner for as long as
//! it runs: the keeper boots it, holds the only connection to its agent,
//! relays the guest processes' stdio to the descriptors the shim gave, and
//! serves the other commands on its socket ([`super::wire`]). One VM holds
//! one container, or a whole pod (the sandbox's and its containers). It
//! keeps no records on disk beyond its socket; the commands do.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use vm::guest_spec::GuestSpec;

use super::wire::{self, Request, Response};

/// From QEMU's start to the agent's first answer (TCG on a loaded host
/// boots in seconds; this bounds one that never answers).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a powered-off request may take before QEMU is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
pub const SOCKET: &str = "keeper.sock";
pub const CONFIG: &str = "keeper.json";
pub const LOG: &str = "keeper.log";
pub const CONSOLE: &str = "console.log";

/// What the keeper is started with (written by `create` to [`CONFIG`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeeperConfig {
    /// The VM's id: its host cgroup and QEMU's name derive from it.
    pub vm_id: String,
    /// The container the VM was made for (a pod's sandbox); deleting it
    /// takes the VM down.
    pub owner: String,
    /// The owner's rootfs (shared as the guest's `rootfs`) and spec, whose
    /// binds become the VM's shares.
    pub rootfs: PathBuf,
    pub spec: serde_json::Value,
    pub memory_mib: u64,
    pub cpus: u32,
    /// The network namespace the VM stands in (a pod's, made by CNI): its
    /// interface becomes the guest's NIC.
    pub netns: Option<PathBuf>,
    /// A pod's VM: its containers' root filesystems and binds arrive
    /// through the live share [`POD_SHARE`] after boot.
    pub pod: bool,
}

/// The live share of a pod's VM ([`vm::Share::live`]), at `<dir>/pod`.
pub const POD_SHARE: &str = "pod";

type Key = (String, Option<u32>);

/// A guest process the keeper relays: its exit, and with a terminal the
/// host master (kept to read the size `start` gives the guest).
struct Process {
    exit: Arc<vm::ExitWatch>,
    terminal: Option<(OwnedFd, vm::ProcessInput)>,
}

struct Keeper {
    owner: String,
    /// The guest pid of the owner's init: a pod's containers join its
    /// IPC and UTS namespaces (and PID, when the pod shares it).
    owner_guest_pid: Mutex<Option<i32>>,
    pod: bool,
    /// The guest's memory.
    memory_mib: u64,
    client: vm::AgentClient,
    vm: Mutex<Option<vm::Vm>>,
    processes: Mutex<HashMap<Key, Process>>,
    paused: AtomicBool,
    dir: PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the keeper for the VM in `dir`: boots it, says so on `ready`
/// ("ok", or the error), then serves until the VM is gone.
pub fn run(dir: &Path, ready: File) -> Result<()> {
    let mut ready = Some(ready);
    let booted = boot(dir);
    let keeper = match booted {
        Ok(k) => Arc::new(k),
        Err(e) => {
            if let Some(mut r) = ready.take() {
                let _ = writeln!(r, "{}", crate::one_line(&e));
            }
            return Err(e);
        }
    };
    let listener = UnixListener::bind(dir.join(SOCKET))
        .with_context(|| format!("listen on {}", dir.join(SOCKET).display()))?;
    if let Some(mut r) = ready.take() {
        let _ = writeln!(r, "ok");
    }
    watch_qemu(keeper.clone());
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let keeper = keeper.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve(&keeper, conn) {
                tracing::debug!("keeper connection: {e:#}");
            }
        });
    }
    Ok(())
}

fn boot(dir: &Path) -> Result<Keeper> {
    let path = dir.join(CONFIG);
    let cfg: KeeperConfig = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("read {}", path.display()))?,
    )
    .with_context(|| format!("parse {}", path.display()))?;
    let kernel = vm::GuestKernel::locate(None)?;
    let agent = vm::AgentBinary::locate(None)?;
    let guest = GuestSpec::new(cfg.spec.clone(), None, SHARE_PREFIX);
    let mut v = vm::VmConfig::new(&cfg.owner, &cfg.vm_id, kernel, agent, &cfg.rootfs, dir);
    v.shares = guest.shares.clone();
    if cfg.pod {
        v.shares.push(pod_share(dir)?);
    }
    v.memory_mib = cfg.memory_mib;
    v.cpus = cfg.cpus;
    v.boot_timeout = BOOT_TIMEOUT;
    v.console_log = Some(dir.join(CONSOLE));
    // What the guest makes the keeper buffer counts against the VM's limit.
    v.cgroup_holds_caller = true;
    if let Ok(accel) = std::env::var("ISOLA_VM_ACCEL") {
        v.accel = accel.parse()?;
    }
    if std::env::var_os("ISOLA_VM_TEMPLATE").is_some_and(|t| t == "0") {
        v.template_dir = None;
    }
    // In a pod's namespace: a tap beside its interface, redirected both
    // ways, becomes the guest's NIC, with the interface's MAC.
    let endpoint = match &cfg.netns {
        Some(ns) => network::tap::endpoint(ns)
            .with_context(|| format!("read the network namespace {}", ns.display()))?,
        None => None,
    };
    let tap = match (&cfg.netns, &endpoint) {
        (Some(ns), Some(e)) => Some(network::tap::connect(ns, &e.ifname)?),
        _ => None,
    };
    if let (Some((fd, _)), Some(e)) = (&tap, &endpoint) {
        v.nic = Some(vm::Nic {
            tap_fd: fd.as_raw_fd(),
            mac: e.mac.clone(),
        });
    }
    let vm = vm::Vm::boot(&v)?;
    if let (Some((_, mtu)), Some(e)) = (&tap, &endpoint) {
        vm.client()
            .configure_network(&e.mac, e.address, e.prefix_len, e.gateway, *mtu)
            .context("configure the guest's network")?;
    }
    Ok(Keeper {
        owner: cfg.owner,
        owner_guest_pid: Mutex::new(None),
        pod: cfg.pod,
        memory_mib: cfg.memory_mib,
        client: vm.client().clone(),
        vm: Mutex::new(Some(vm)),
        processes: Mutex::new(HashMap::new()),
        paused: AtomicBool::new(false),
        dir: dir.to_path_buf(),
    })
}

/// The owner's binds are the VM's shares, tagged `isola<n>`.
const SHARE_PREFIX: &str = "isola";

/// Ends the keeper when QEMU is gone (the guest powered off or crashed):
/// every waiting stand-in has had its answer by then.
fn watch_qemu(keeper: Arc<Keeper>) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(200));
        let gone = match lock(&keeper.vm).as_mut() {
            Some(vm) => vm.try_wait().is_some(),
            None => true,
        };
        if gone {
            tracing::info!("the VM has stopped: the keeper exits");
            // Let the stand-ins' answers go out before the process ends.
            std::thread::sleep(Duration::from_millis(200));
            keeper.finish();
        }
    });
}

impl Keeper {
    /// Stops the VM (if it still runs) and ends the keeper.
    fn finish(&self) -> ! {
        if let Some(mut vm) = lock(&self.vm).take() {
            let _ = self.client.shutdown();
            vm.shutdown(SHUTDOWN_TIMEOUT);
        }
        if self.pod {
            unmount_pod(&self.dir);
        }
        let _ = std::fs::remove_file(self.dir.join(SOCKET));
        std::process::exit(0)
    }

    fn process_exit(&self, key: &Key) -> Result<Arc<vm::ExitWatch>> {
        lock(&self.processes)
            .get(key)
            .map(|p| p.exit.clone())
            .ok_or_else(|| anyhow!("no such process in the VM: {key:?}"))
    }

    /// Relays `io` to the descriptors the caller handed over, or through a
    /// new host pty whose master is returned.
    fn attach(
        &self,
        key: Key,
        io: vm::ProcessIo,
        terminal: bool,
        fds: Vec<OwnedFd>,
    ) -> Result<Option<OwnedFd>> {
        let exit = Arc::new(io.exit_watch());
        let (master, kept) = if terminal {
            let input = io.input();
            let master = vm::stdio::terminal(io).context("a pty for the container's terminal")?;
            let dup = master.try_clone()?;
            (Some(master), Some((dup, input)))
        } else {
            let mut fds = fds.into_iter();
            let (Some(stdin), Some(stdout), Some(stderr)) = (fds.next(), fds.next(), fds.next())
            else {
                bail!("the request carries no stdio descriptors");
            };
            vm::stdio::feed_stdin(File::from(stdin), io.input());
            vm::stdio::drain_output(io, Some(stdout.into()), Some(stderr.into()));
            (None, None)
        };
        lock(&self.processes).insert(
            key,
            Process {
                exit,
                terminal: kept,
            },
        );
        Ok(master)
    }

    /// Runs `f` with the VM thawed: a frozen guest cannot answer. After
    /// SIGKILL it stays thawed, so that the container can die.
    fn thawed<T>(&self, keep_thawed: bool, f: impl FnOnce() -> T) -> T {
        let frozen = self.paused.load(Ordering::SeqCst);
        let vm = lock(&self.vm);
        if frozen {
            if let Some(v) = vm.as_ref() {
                let _ = v.resume();
            }
        }
        let r = f();
        if frozen && !keep_thawed {
            if let Some(v) = vm.as_ref() {
                let _ = v.pause();
            }
        } else if frozen {
            self.paused.store(false, Ordering::SeqCst);
        }
        r
    }
}

fn serve(keeper: &Keeper, conn: UnixStream) -> Result<()> {
    let Some((req, fds)) = wire::recv::<Request>(&conn)? else {
        return Ok(());
    };
    let answer = |resp: &Response, fds: &[std::os::fd::RawFd]| wire::send(&conn, resp, fds);
    let result = handle(keeper, req, fds, &conn);
    match result {
        Ok(Handled::Answer(resp, fd)) => {
            let raw: Vec<_> = fd.iter().map(|f| f.as_raw_fd()).collect();
            answer(&resp, &raw)?;
        }
        Ok(Handled::Finish) => {
            answer(&Response::Done, &[])?;
            keeper.finish();
        }
        Err(e) => answer(
            &Response::Error {
                message: crate::one_line(&e),
            },
            &[],
        )?,
    }
    Ok(())
}

enum Handled {
    Answer(Response, Option<OwnedFd>),
    /// Answer Done, then stop the VM and end the keeper.
    Finish,
}

fn handle(keeper: &Keeper, req: Request, fds: Vec<OwnedFd>, conn: &UnixStream) -> Result<Handled> {
    let client = &keeper.client;
    let done = Ok(Handled::Answer(Response::Done, None));
    match req {
        Request::Create {
            id,
            bundle,
            spec,
            terminal,
        } => {
            if id != keeper.owner {
                let pid = *lock(&keeper.owner_guest_pid);
                let Some(sandbox_pid) = pid.filter(|_| keeper.pod) else {
                    bail!(
                        "container {id}: this VM holds only its own container ({})",
                        keeper.owner
                    );
                };
                let (spec, rootfs) = pod_container(&keeper.dir, &id, &bundle, *spec, sandbox_pid)?;
                let (_pid, io) = client
                    .mount_shares_and_create(&[(POD_SHARE, false)], &id, &spec, &rootfs, terminal)
                    .context("create the container in the pod's VM")?;
                let master = keeper.attach((id, None), io, terminal, fds)?;
                return Ok(Handled::Answer(Response::Done, master));
            }
            let guest = GuestSpec::new(*spec, None, SHARE_PREFIX);
            let mounts = guest.share_mounts();
            let spec = guest
                .clone()
                .into_spec()
                .context("the spec as the guest sees it")?;
            let (pid, io) = client
                .mount_shares_and_create(&mounts, &id, &spec, vm::GUEST_ROOTFS, terminal)
                .context("create the container in the VM")?;
            *lock(&keeper.owner_guest_pid) = Some(pid);
            let master = keeper.attach((id, None), io, terminal, fds)?;
            Ok(Handled::Answer(Response::Done, master))
        }
        Request::Start { id } => {
            // The size the caller gave the terminal, before the process runs.
            if let Some(p) = lock(&keeper.processes).get(&(id.clone(), None)) {
                if let Some((master, input)) = &p.terminal {
                    if let Some((rows, cols)) = vm::stdio::window_size(master.as_fd()) {
                        let _ = input.resize(rows, cols);
                    }
                }
            }
            client.start(&id).context("start the container in the VM")?;
            done
        }
        Request::Wait { id, exec } => {
            let exit = keeper.process_exit(&(id.clone(), exec))?;
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(exit.wait());
            });
            loop {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(code)) => return Ok(Handled::Answer(Response::Exited { code }, None)),
                    Ok(Err(e)) => return Err(anyhow!(e).context("the VM went away")),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if peer_closed(conn) {
                            // The stand-in died (SIGKILL cannot be caught
                            // and forwarded): its process dies with it.
                            let r = keeper.thawed(true, || match exec {
                                Some(stream) => client.signal_stream(&id, stream, libc::SIGKILL),
                                None => client.signal(&id, libc::SIGKILL, true),
                            });
                            tracing::info!("stand-in of {id} {exec:?} is gone: killed ({r:?})");
                            return Ok(Handled::Answer(Response::Done, None));
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the exit watcher stopped"),
                }
            }
        }
        Request::Signal {
            id,
            exec,
            signal,
            all,
        } => {
            keeper
                .thawed(signal == libc::SIGKILL, || match exec {
                    Some(stream) => client.signal_stream(&id, stream, signal),
                    None => client.signal(&id, signal, all),
                })
                .context("signal the container in the VM")?;
            done
        }
        Request::Exec {
            id,
            process,
            terminal,
        } => {
            let (_pid, io) = client
                .exec(&id, &process, terminal)
                .context("exec in the container in the VM")?;
            let stream = io.stream();
            let master = keeper.attach((id, Some(stream)), io, terminal, fds)?;
            Ok(Handled::Answer(Response::Executed { exec: stream }, master))
        }
        Request::Pause | Request::Resume => {
            let pause = matches!(req, Request::Pause);
            let vm = lock(&keeper.vm);
            let vm = vm.as_ref().ok_or_else(|| anyhow!("the VM has stopped"))?;
            if pause {
                vm.pause()?;
            } else {
                vm.resume()?;
            }
            keeper.paused.store(pause, Ordering::SeqCst);
            done
        }
        Request::Update { id, resources } => {
            // The guest's memory is what the VM was booted with: a limit
            // above it would promise what the VM does not have.
            let limit = resources
                .memory()
                .as_ref()
                .and_then(|m| m.limit())
                .filter(|l| *l > 0);
            if let Some(limit) = limit {
                let guest = keeper.memory_mib << 20;
                if limit as u64 > guest {
                    bail!(
                        "container {id}: a memory limit of {} MiB is above the VM's {} MiB (the VM is sized at create from linux.resources.memory.limit)",
                        (limit as u64) >> 20,
                        keeper.memory_mib
                    );
                }
            }
            keeper
                .thawed(false, || client.update(&id, &resources))
                .context("update the container's resources in the VM")?;
            done
        }
        Request::Delete { id } => {
            lock(&keeper.processes).retain(|(c, _), _| *c != id);
            if id == keeper.owner {
                return Ok(Handled::Finish);
            }
            if keeper.pod {
                unmount_container(&keeper.dir, &id);
            }
            done
        }
    }
}

/// Whether the other end of `conn` has closed (or sent something, which a
/// waiting stand-in never does).
fn peer_closed(conn: &UnixStream) -> bool {
    use nix::poll::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(conn.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, 0u16), Ok(n) if n > 0)
}

/// The pod share's directory: a mount point of its own with shared
/// propagation, so that the binds made under it later reach QEMU's jail
/// (whose copy is a slave of it).
fn pod_share(dir: &Path) -> Result<vm::Share> {
    use nix::mount::{mount, MsFlags};
    let pod = dir.join(POD_SHARE);
    std::fs::create_dir_all(&pod).with_context(|| format!("create {}", pod.display()))?;
    mount(
        Some(&pod),
        &pod,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("bind {} onto itself", pod.display()))?;
    mount(
        None::<&str>,
        &pod,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .with_context(|| format!("make {} a shared mount", pod.display()))?;
    Ok(vm::Share {
        tag: POD_SHARE.into(),
        host_path: pod,
        read_only: false,
        files: None,
        live: true,
    })
}

/// Unmounts the pod share and everything bound under it.
pub fn unmount_pod(dir: &Path) {
    let _ = nix::mount::umount2(&dir.join(POD_SHARE), nix::mount::MntFlags::MNT_DETACH);
}

/// Where a pod container's files are on the host: `<dir>/pod/<id>`.
fn container_dir(dir: &Path, id: &str) -> PathBuf {
    dir.join(POD_SHARE).join(id)
}

/// Unmounts what a pod container's create bound into the pod share.
fn unmount_container(dir: &Path, id: &str) {
    let cdir = container_dir(dir, id);
    if let Ok(entries) = std::fs::read_dir(&cdir) {
        for e in entries.flatten() {
            let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _ = std::fs::remove_dir_all(&cdir);
}

/// A pod container's spec as the guest sees it, and its rootfs there. Its
/// root filesystem and each host path it binds are bound under the pod
/// share (reaching the running VM through it); the namespaces it joins by
/// path (the sandbox's, as the host knows them) become the sandbox init's
/// in the guest; the network namespace is the VM's own.
fn pod_container(
    dir: &Path,
    id: &str,
    bundle: &Path,
    mut spec: serde_json::Value,
    sandbox_pid: i32,
) -> Result<(oci_spec::runtime::Spec, String)> {
    use nix::mount::{mount, MsFlags};
    let cdir = container_dir(dir, id);
    let guest_dir = format!("{}/{id}", vm::share_path(POD_SHARE));
    let made = (|| -> Result<String> {
        std::fs::create_dir_all(&cdir).with_context(|| format!("create {}", cdir.display()))?;
        let bind = |source: &Path, name: &str| -> Result<()> {
            let target = cdir.join(name);
            if source.is_dir() {
                std::fs::create_dir(&target)
            } else {
                std::fs::File::create(&target).map(drop)
            }
            .with_context(|| format!("create {}", target.display()))?;
            mount(
                Some(source),
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .with_context(|| format!("bind {} to {}", source.display(), target.display()))
        };
        let root = PathBuf::from(spec["root"]["path"].as_str().unwrap_or("rootfs"));
        let root = if root.is_absolute() {
            root
        } else {
            bundle.join(root)
        };
        bind(&root, "rootfs")?;
        for (i, m) in spec["mounts"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(source) = vm::guest_spec::bind_source(m).map(PathBuf::from) else {
                continue;
            };
            let name = format!("m{i}");
            bind(&source, &name)?;
            m["source"] = serde_json::Value::String(format!("{guest_dir}/{name}"));
        }
        for ns in spec["linux"]["namespaces"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            let kind = ns["type"].as_str().unwrap_or("").to_string();
            if ns.get("path").is_some() && kind != "network" {
                let file = match kind.as_str() {
                    "mount" => "mnt",
                    other => other,
                };
                ns["path"] = serde_json::Value::String(format!("/proc/{sandbox_pid}/ns/{file}"));
            }
        }
        Ok(format!("{guest_dir}/rootfs"))
    })();
    match made {
        Ok(rootfs) => {
            let spec = serde_json::from_value(spec).context("the pod container's spec")?;
            Ok((spec, rootfs))
        }
        Err(e) => {
            unmount_container(dir, id);
            Err(e)
        }
    }
}
