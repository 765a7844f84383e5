//! vmmode: isola-runtime under VM isolation, with runc's command line kept,
//! so that containerd's runc shim drives it unchanged. The container runs
//! in a utility VM that a [`keeper`] process owns; what runc's contract
//! calls the container's init is a host [`standin`] for the guest's. This
//! module chooses the mode, keeps each VM container's record
//! (`<root>/<id>/vm.json`, beside the process runtime's `state.json`
//! containers) and carries out the commands on VM containers.

pub mod keeper;
pub mod standin;
mod wire;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use wire::{Request, Response};

/// The bundle annotation that asks for an isolation mode.
pub const ANNOTATION: &str = "io.isola.isolation";
/// The name under which the binary runs everything in VMs (a link to it).
pub const VM_BINARY: &str = "isola-runtime-vm";
const RECORD: &str = "vm.json";
/// How long a stopping stand-in or keeper is waited for.
const STOP_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    Process,
    Vm,
}

impl Isolation {
    fn parse(value: &str) -> Option<Isolation> {
        match value.to_ascii_lowercase().as_str() {
            "process" => Some(Isolation::Process),
            "vm" | "hyperv" => Some(Isolation::Vm),
            _ => None,
        }
    }
}

/// The mode this invocation defaults to: VM when run as `isola-runtime-vm`
/// or with `--isolation=vm`.
pub fn invoked_mode(flag: Option<Isolation>) -> Isolation {
    if let Some(f) = flag {
        return f;
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = Path::new(&argv0).file_name().unwrap_or_default();
    if name == VM_BINARY {
        Isolation::Vm
    } else {
        Isolation::Process
    }
}

/// The mode for a bundle: its annotation may ask for a VM; under a VM
/// default it may not ask for less (a pod's annotations are its author's,
/// the handler is the operator's).
pub fn bundle_mode(default: Isolation, annotations: &Value) -> Result<Isolation> {
    let Some(v) = annotations.get(ANNOTATION) else {
        return Ok(default);
    };
    let asked = v
        .as_str()
        .and_then(Isolation::parse)
        .ok_or_else(|| anyhow!("annotation {ANNOTATION}={v}: expected \"process\" or \"vm\""))?;
    if default == Isolation::Vm && asked == Isolation::Process {
        bail!(
            "annotation {ANNOTATION}=process: this runtime ({VM_BINARY} or --isolation=vm) runs every container in a VM"
        );
    }
    Ok(asked)
}

/// A process on the host, told apart from a later one with the same pid.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct HostPid {
    pid: i32,
    start_time: u64,
}

impl HostPid {
    fn of(pid: i32) -> HostPid {
        HostPid {
            pid,
            start_time: runtime::records::proc_stat(pid)
                .map(|s| s.start_time)
                .unwrap_or(0),
        }
    }

    fn alive(&self) -> bool {
        runtime::records::is_alive(self.pid, Some(self.start_time))
    }
}

/// What isola-runtime remembers about a VM container.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    bundle: PathBuf,
    rootfs: PathBuf,
    created_ns: u128,
    annotations: HashMap<String, String>,
    /// The VM's keeper directory.
    vm_dir: PathBuf,
    /// This container's VM is its own: deleting it takes the VM down.
    owner: bool,
    standin: Option<HostPid>,
    started: bool,
    paused: bool,
    /// Stand-ins of execs, for `ps`.
    #[serde(default)]
    execs: Vec<HostPid>,
}

impl Record {
    fn path(root: &Path, id: &str) -> PathBuf {
        root.join(id).join(RECORD)
    }

    fn load(root: &Path, id: &str) -> Result<Option<Record>> {
        if runtime::records::validate_id(id).is_err() {
            return Ok(None);
        }
        let path = Record::path(root, id);
        match std::fs::read(&path) {
            Ok(data) => Ok(Some(
                serde_json::from_slice(&data)
                    .with_context(|| format!("parse {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }

    fn save(&self, root: &Path) -> Result<()> {
        let data = serde_json::to_vec_pretty(self)?;
        runtime::records::write_atomic(&Record::path(root, &self.id), &data, true)?;
        Ok(())
    }

    fn status(&self) -> &'static str {
        match self.standin {
            None => "creating",
            Some(s) if !s.alive() => "stopped",
            Some(_) if self.paused => "paused",
            Some(_) if self.started => "running",
            Some(_) => "created",
        }
    }

    fn socket(&self) -> PathBuf {
        self.vm_dir.join(keeper::SOCKET)
    }

    /// One request to this container's keeper.
    fn ask(&self, req: &Request, fds: &[i32]) -> Result<(Response, Vec<OwnedFd>)> {
        let (resp, fds, _) = wire::call(&self.socket(), req, fds).with_context(|| {
            format!(
                "container {}: its VM keeper ({}) does not answer (the VM has stopped?)",
                self.id,
                self.socket().display()
            )
        })?;
        match resp {
            Response::Error { message } => Err(anyhow!("container {}: {message}", self.id)),
            r => Ok((r, fds)),
        }
    }

    fn state_json(&self) -> Value {
        let status = self.status();
        let pid = match (status, self.standin) {
            ("stopped", _) | (_, None) => 0,
            (_, Some(s)) => s.pid,
        };
        json!({
            "ociVersion": oci_spec::runtime::VERSION,
            "id": self.id,
            "pid": pid,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": humantime::format_rfc3339_nanos(
                std::time::UNIX_EPOCH + Duration::from_nanos(self.created_ns as u64)
            ).to_string(),
            "owner": "",
            "annotations": self.annotations,
        })
    }
}

/// Whether `id` is a VM container under `root`.
pub fn is_vm_container(root: &Path, id: &str) -> bool {
    runtime::records::validate_id(id).is_ok() && Record::path(root, id).is_file()
}

/// The keeper directory of a VM: short enough for the sockets in it.
fn vm_dir(root: &Path, vm_id: &str) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(vm_id.as_bytes());
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let local = root.join(".vm").join(&short);
    if local.join("agent.sock").as_os_str().len() <= 100 {
        local
    } else {
        PathBuf::from("/run/isola-runtime/vm").join(short)
    }
}

fn load(root: &Path, id: &str) -> Result<Record> {
    // The process runtime's errors: containerd's shim matches their words.
    Record::load(root, id)?.ok_or_else(|| runtime::Error::NotFound { id: id.into() }.into())
}

/// containerd's CRI plugin marks a pod's containers with these.
const CRI_TYPE: &str = "io.kubernetes.cri.container-type";
const CRI_SANDBOX: &str = "io.kubernetes.cri.sandbox-id";

/// The sandbox whose pod a CRI container belongs to.
pub fn sandbox_of(spec: &Value) -> Option<&str> {
    let a = &spec["annotations"];
    (a[CRI_TYPE] == "container")
        .then(|| a[CRI_SANDBOX].as_str())
        .flatten()
}

/// The network namespace a spec joins by path (a pod's, made by CNI).
fn netns_path(spec: &Value) -> Option<PathBuf> {
    spec["linux"]["namespaces"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == "network")?["path"]
        .as_str()
        .map(PathBuf::from)
}

/// A bind of the host's /dev/shm-like tmpfs (CRI binds the sandbox's)
/// becomes the guest's own tmpfs: shared memory is memory of the VM.
fn guest_shm(spec: &mut Value) {
    for m in spec["mounts"].as_array_mut().into_iter().flatten() {
        if m["destination"] == "/dev/shm" && m["type"] != "tmpfs" {
            *m = json!({
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            });
        }
    }
}

/// `create` in VM mode.
pub fn create(root: &Path, a: &crate::CreateArgs, mut spec: Value) -> Result<()> {
    let id = &a.id;
    guest_shm(&mut spec);
    runtime::records::validate_id(id)?;
    let dir = root.join(id);
    if dir.exists() {
        return Err(runtime::Error::AlreadyExists { id: id.clone() }.into());
    }
    let bundle = std::fs::canonicalize(&a.bundle)
        .with_context(|| format!("open bundle {}", a.bundle.display()))?;
    let rootfs = {
        let p = PathBuf::from(spec["root"]["path"].as_str().unwrap_or("rootfs"));
        if p.is_absolute() {
            p
        } else {
            bundle.join(p)
        }
    };
    if !rootfs.is_dir() {
        bail!(
            "bundle {}: root.path {} is not a directory",
            bundle.display(),
            rootfs.display()
        );
    }
    let terminal = spec["process"]["terminal"].as_bool().unwrap_or(false);
    if terminal && a.console_socket.is_none() {
        bail!(
            "bundle {}: process.terminal is true but no console socket was given (use --console-socket)",
            bundle.display()
        );
    }
    let limit = spec["linux"]["resources"]["memory"]["limit"]
        .as_i64()
        .filter(|l| *l > 0)
        .map(|l| l as u64);
    let memory_mib = vm::cmdline::guest_memory_mib(limit)
        .with_context(|| format!("bundle {}: linux.resources.memory.limit", bundle.display()))?;
    // A pod's container goes into its sandbox's VM.
    let sandbox = match sandbox_of(&spec) {
        Some(sb) => Some(
            Record::load(root, sb)?
                .filter(|r| r.owner && !matches!(r.status(), "stopped" | "creating"))
                .ok_or_else(|| {
                    anyhow!("container {id}: its pod's sandbox {sb} does not run in a VM here (it does not exist, or its VM has stopped)")
                })?,
        ),
        None => None,
    };
    let cpus = vm::cmdline::guest_cpus(cpu_quota(&spec));
    let annotations: HashMap<String, String> =
        serde_json::from_value(spec["annotations"].clone()).unwrap_or_default();

    runtime::private_dir(root).with_context(|| format!("create {}", root.display()))?;
    std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    let vdir = match &sandbox {
        Some(sb) => sb.vm_dir.clone(),
        None => vm_dir(root, id),
    };
    let mut record = Record {
        id: id.clone(),
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created_ns: runtime::records::now_ns(),
        annotations,
        vm_dir: vdir.clone(),
        owner: sandbox.is_none(),
        standin: None,
        started: false,
        paused: false,
        execs: Vec::new(),
    };
    let made = (|| -> Result<()> {
        record.save(root)?;
        if sandbox.is_none() {
            let cfg = keeper::KeeperConfig {
                vm_id: id.clone(),
                owner: id.clone(),
                rootfs: rootfs.clone(),
                spec: spec.clone(),
                memory_mib,
                cpus,
                netns: netns_path(&spec),
                pod: spec["annotations"][CRI_TYPE] == "sandbox",
            };
            start_keeper(root, &vdir, &cfg)?;
        }
        let stdio = [0, 1, 2];
        let (_, fds) = record.ask(
            &Request::Create {
                id: id.clone(),
                bundle: bundle.clone(),
                spec: Box::new(spec.clone()),
                terminal,
            },
            if terminal { &[] } else { &stdio },
        )?;
        if let (Some(sock), Some(master)) = (&a.console_socket, fds.into_iter().next()) {
            send_console(sock, master)?;
        }
        let pid = fork_standin(&record.socket(), id, None)?;
        record.standin = Some(HostPid::of(pid));
        record.save(root)?;
        if let Some(p) = &a.pid_file {
            runtime::records::write_pid_file(p, pid)?;
        }
        Ok(())
    })();
    if let Err(e) = made {
        let _ = remove(root, &record);
        return Err(e);
    }
    Ok(())
}

/// linux.resources.cpu quota/period as a number of CPUs.
fn cpu_quota(spec: &Value) -> Option<f64> {
    let cpu = &spec["linux"]["resources"]["cpu"];
    let quota = cpu["quota"].as_i64().filter(|q| *q > 0)?;
    let period = cpu["period"].as_u64().filter(|p| *p > 0).unwrap_or(100_000);
    Some(quota as f64 / period as f64)
}

/// Starts the keeper of a new VM and waits until it serves (or says why not).
fn start_keeper(root: &Path, vdir: &Path, cfg: &keeper::KeeperConfig) -> Result<()> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    if vdir.exists() {
        std::fs::remove_dir_all(vdir).with_context(|| format!("remove {}", vdir.display()))?;
    }
    runtime::private_dir(vdir).with_context(|| format!("create {}", vdir.display()))?;
    std::fs::write(vdir.join(keeper::CONFIG), serde_json::to_vec(cfg)?)?;
    let log = std::fs::File::create(vdir.join(keeper::LOG))?;
    let (rd, wr) = nix::unistd::pipe()?;
    let exe = std::env::current_exe().context("find isola-runtime's own binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root")
        .arg(root)
        .arg("vm-keeper")
        .arg(vdir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    let wr_raw = wr.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls: setsid,
    // dup2 and fcntl on plain integers.
    unsafe {
        cmd.pre_exec(move || {
            // Its own session: the shim's terminal signals are not the VM's.
            libc::setsid();
            if libc::dup2(wr_raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let _ = runtime::close_on_exec_from(4);
            Ok(())
        });
    }
    let child = cmd.spawn().context("start the VM keeper")?;
    drop(wr);
    let mut answer = String::new();
    let _ = std::fs::File::from(rd).read_to_string(&mut answer);
    // The keeper lives on after us (the shim, our subreaper, reaps it).
    drop(child);
    match answer.trim() {
        "ok" => Ok(()),
        "" => bail!(
            "the VM keeper exited before the VM started (see {})",
            vdir.join(keeper::LOG).display()
        ),
        why => bail!("{why}"),
    }
}

/// Forks the stand-in for guest process (`id`, `exec`); returns its pid.
fn fork_standin(socket: &Path, id: &str, exec: Option<u32>) -> Result<i32> {
    // SAFETY: isola-runtime is single-threaded here; the child only opens
    // files, waits on a socket and exits.
    match unsafe { nix::unistd::fork() }.context("fork the stand-in")? {
        nix::unistd::ForkResult::Parent { child } => Ok(child.as_raw()),
        nix::unistd::ForkResult::Child => {
            // The stdio belongs to the guest process (the keeper has it):
            // the shim sees its end when the keeper closes it, not ours.
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
                let _ = nix::unistd::dup2_stderr(&null);
            }
            let _ = nix::unistd::setsid();
            let code = standin::wait(socket, id, exec);
            std::process::exit(code)
        }
    }
}

/// Hands a terminal's master to `--console-socket` as runc does (one
/// message, SCM_RIGHTS).
fn send_console(socket: &Path, master: OwnedFd) -> Result<()> {
    let conn = std::os::unix::net::UnixStream::connect(socket)
        .with_context(|| format!("connect to console socket {}", socket.display()))?;
    runtime::records::send_with_fds(
        std::os::fd::AsFd::as_fd(&conn),
        b"/dev/ptmx",
        &[master.as_raw_fd()],
    )
    .with_context(|| format!("send the terminal to {}", socket.display()))?;
    Ok(())
}

/// Removes a VM container's record; the VM's own container takes the VM
/// (and its keeper) with it.
fn remove(root: &Path, r: &Record) -> Result<()> {
    if r.owner {
        let asked = wire::call(&r.socket(), &Request::Delete { id: r.id.clone() }, &[]);
        if asked.is_ok() {
            wait_until(|| !r.socket().exists());
        }
        clean_vm(&r.vm_dir, &r.id);
    } else {
        let _ = r.ask(&Request::Delete { id: r.id.clone() }, &[]);
    }
    let dir = root.join(&r.id);
    std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))
}

/// What a keeper that died leaves: QEMU (found by its process name), the
/// VM's host cgroup, the keeper directory.
fn clean_vm(vdir: &Path, vm_id: &str) {
    let name = vm::cmdline::process_name(vm_id);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            if comm.trim() == name && cgroup.contains(&format!("/isola-vm/{vm_id}/")) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                wait_until(|| !Path::new(&format!("/proc/{pid}")).exists());
            }
        }
    }
    vm::host_cgroup::remove_orphan(vm_id);
    keeper::unmount_pod(vdir);
    let _ = std::fs::remove_dir_all(vdir);
}

fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

pub fn start(root: &Path, id: &str) -> Result<()> {
    let mut r = load(root, id)?;
    match r.status() {
        "created" => {}
        other => bail!("container {id} cannot be started: it is {other}"),
    }
    r.ask(&Request::Start { id: id.into() }, &[])?;
    r.started = true;
    r.save(root)
}

pub fn state(root: &Path, id: &str) -> Result<Value> {
    Ok(load(root, id)?.state_json())
}

/// All VM containers' states, for `list`.
pub fn list(root: &Path) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut all: Vec<Record> = entries
        .flatten()
        .filter_map(|e| Record::load(root, e.file_name().to_str()?).ok().flatten())
        .collect();
    all.sort_by_key(|r| r.created_ns);
    all.iter().map(Record::state_json).collect()
}

pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let r = load(root, id)?;
    if matches!(r.status(), "stopped" | "creating") {
        return Err(runtime::Error::NotRunning { id: id.into() }.into());
    }
    r.ask(
        &Request::Signal {
            id: id.into(),
            exec: None,
            signal,
            all,
        },
        &[],
    )
    .map(drop)
}

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let Some(r) = Record::load(root, id)? else {
        if force {
            return Ok(());
        }
        return Err(runtime::Error::NotFound { id: id.into() }.into());
    };
    match r.status() {
        "running" | "paused" if !force => {
            bail!(
                "cannot delete container {id:?} that is not stopped: {}",
                r.status()
            )
        }
        "stopped" | "creating" => {}
        _ => {
            // Created, or forced: the guest process dies first, so that its
            // stand-in has exited (with the shim's status) before the VM goes.
            let _ = r.ask(
                &Request::Signal {
                    id: id.into(),
                    exec: None,
                    signal: libc::SIGKILL,
                    all: true,
                },
                &[],
            );
            if let Some(s) = r.standin {
                wait_until(|| !s.alive());
            }
        }
    }
    remove(root, &r)
}

pub fn pause(root: &Path, id: &str, pause: bool) -> Result<()> {
    let mut r = load(root, id)?;
    let want = if pause { "running" } else { "paused" };
    if r.status() != want {
        bail!(
            "container {id} cannot be {}: it is {}",
            if pause { "paused" } else { "resumed" },
            r.status()
        );
    }
    r.ask(
        if pause {
            &Request::Pause
        } else {
            &Request::Resume
        },
        &[],
    )?;
    r.paused = pause;
    r.save(root)
}

pub fn update(root: &Path, id: &str, resources: oci_spec::runtime::LinuxResources) -> Result<()> {
    let r = load(root, id)?;
    r.ask(
        &Request::Update {
            id: id.into(),
            resources: Box::new(resources),
        },
        &[],
    )
    .map(drop)
}

/// The host PIDs that stand for the container's processes: its init's
/// stand-in and those of its execs that still run.
pub fn processes(root: &Path, id: &str) -> Result<Vec<i32>> {
    let r = load(root, id)?;
    Ok(r.standin
        .into_iter()
        .chain(r.execs.iter().copied())
        .filter(HostPid::alive)
        .map(|p| p.pid)
        .collect())
}

/// The spec of a VM container's bundle (for `exec` without --process).
pub fn spec(root: &Path, id: &str) -> Result<oci_spec::runtime::Spec> {
    let r = load(root, id)?;
    let path = r.bundle.join("config.json");
    oci_spec::runtime::Spec::load(&path).with_context(|| format!("read {}", path.display()))
}

/// `exec` in VM mode: returns the exit code (0 with --detach).
pub fn exec(
    root: &Path,
    a: &crate::commands::ExecArgs,
    process: oci_spec::runtime::Process,
) -> Result<i32> {
    let mut r = load(root, &a.id)?;
    if r.status() != "running" {
        bail!("cannot exec in container {}: it is {}", a.id, r.status());
    }
    let terminal = process.terminal().unwrap_or(false);
    if terminal && a.console_socket.is_none() && a.detach {
        bail!("exec -t -d needs --console-socket");
    }
    let stdio = [0, 1, 2];
    let (resp, fds) = r.ask(
        &Request::Exec {
            id: a.id.clone(),
            process: Box::new(process),
            terminal,
        },
        if terminal { &[] } else { &stdio },
    )?;
    let Response::Executed { exec } = resp else {
        bail!("container {}: the keeper answered {resp:?} to exec", a.id);
    };
    let master = fds.into_iter().next();
    let mut proxy = None;
    if let Some(m) = master {
        match &a.console_socket {
            Some(sock) => send_console(sock, m)?,
            None => proxy = crate::terminal::proxy(m),
        }
    }
    if !a.detach {
        if let Some(p) = &a.pid_file {
            runtime::records::write_pid_file(p, std::process::id() as i32)?;
        }
        let code = standin::wait(&r.socket(), &a.id, Some(exec));
        if let Some(p) = proxy {
            p.finish();
        }
        return Ok(code);
    }
    let pid = fork_standin(&r.socket(), &a.id, Some(exec))?;
    if let Some(p) = &a.pid_file {
        runtime::records::write_pid_file(p, pid)?;
    }
    let _lock = runtime::records::lock(&root.join(&a.id))?;
    r = load(root, &a.id)?;
    r.execs.retain(HostPid::alive);
    r.execs.push(HostPid::of(pid));
    r.save(root)?;
    Ok(0)
}

/// `run` in VM mode: create, start, wait, delete.
pub fn run(root: &Path, a: &crate::CreateArgs, spec: Value, detach: bool) -> Result<i32> {
    if spec["process"]["terminal"].as_bool().unwrap_or(false) && a.console_socket.is_none() {
        bail!("run with a terminal in VM mode needs --console-socket");
    }
    create(root, a, spec)?;
    if let Err(e) = start(root, &a.id) {
        let _ = delete(root, &a.id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let r = load(root, &a.id)?;
    let pid = r.standin.map(|s| s.pid).unwrap_or(0);
    crate::commands::forward_signals(pid);
    let code = crate::commands::wait_exit_code(pid)?;
    delete(root, &a.id, true)?;
    Ok(code)
}
