//! commands: one function per runc command, mapping flags onto the
//! `runtime` library and printing results (only results go to stdout).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Process;
use runtime::{Console, Container, CreateOptions, ExecOptions, Status};
use serde_json::json;

use crate::{vmmode, Cli, Command, CreateArgs};

#[derive(Args, Debug)]
pub struct ExecArgs {
    pub id: String,
    /// Command and arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A process.json (OCI Process) to run.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Do not wait for the process.
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Extra environment variables KEY=VALUE.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// uid[:gid]
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional gids.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the bounding, effective and permitted sets (as
    /// runc since CVE-2022-29162: not the inheritable nor the ambient set).
    #[arg(short, long)]
    pub cap: Vec<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Allow exec in a paused container (the process is frozen with it).
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Run the process in an existing sub-cgroup of the container's:
    /// [<controller>:]<path>, repeatable.
    #[arg(long = "cgroup", value_parser = parse_sub_cgroup)]
    pub cgroup: Vec<runtime::cgroups::SubCgroup>,
    /// Accepted for runc compatibility and ignored.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Accepted for runc compatibility and ignored.
    #[arg(long)]
    pub apparmor: Option<String>,
}

pub fn run(cli: &Cli) -> Result<i32> {
    let root = &cli.root;
    let is_vm = |id: &str| vmmode::is_vm_container(root, id);
    match &cli.command {
        Command::Create(a) => {
            match vm_spec(cli, a)? {
                Some(spec) => vmmode::create(root, a, spec)?,
                None => drop(create(root, a, false)?),
            }
            Ok(0)
        }
        Command::Start { id } if is_vm(id) => vmmode::start(root, id).map(|_| 0),
        Command::Start { id } => {
            let mut c = Container::load(root, id)?;
            c.start()?;
            Ok(0)
        }
        Command::Run {
            create: a, detach, ..
        } => match vm_spec(cli, a)? {
            Some(spec) => vmmode::run(root, a, spec, *detach),
            None => run_container(root, a, *detach),
        },
        Command::State { id } => {
            let state = if is_vm(id) {
                vmmode::state(root, id)?
            } else {
                state_json(&Container::load(root, id)?)
            };
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(0)
        }
        Command::Kill { id, signal, all } => {
            let sig = parse_signal(signal.as_deref().unwrap_or("TERM"))?;
            if is_vm(id) {
                vmmode::kill(root, id, sig as i32, *all)?;
            } else {
                Container::load(root, id)?.kill(sig as i32, *all)?;
            }
            Ok(0)
        }
        Command::Delete { id, force } if is_vm(id) => vmmode::delete(root, id, *force).map(|_| 0),
        Command::Delete { id, force } => {
            match Container::load(root, id) {
                Ok(c) => c.delete(*force)?,
                // runc: deleting a missing container with --force succeeds.
                Err(runtime::Error::NotFound { .. }) if *force => {}
                Err(e) => return Err(e.into()),
            }
            Ok(0)
        }
        Command::List { format, quiet } => list(root, format, *quiet),
        Command::Ps {
            id,
            format,
            ps_args,
        } => ps(root, id, format, ps_args),
        Command::Exec(a) => exec(root, a),
        Command::Pause { id } if is_vm(id) => vmmode::pause(root, id, true).map(|_| 0),
        Command::Resume { id } if is_vm(id) => vmmode::pause(root, id, false).map(|_| 0),
        Command::Pause { id } => {
            Container::load(root, id)?.pause()?;
            Ok(0)
        }
        Command::Resume { id } => {
            Container::load(root, id)?.resume()?;
            Ok(0)
        }
        Command::Update {
            id,
            resources,
            memory,
            pids_limit,
        } => {
            let r = update_resources(resources.as_deref(), *memory, *pids_limit)?;
            if is_vm(id) {
                vmmode::update(root, id, r)?;
            } else {
                Container::load(root, id)?.update(&r)?;
            }
            Ok(0)
        }
        Command::VmKeeper { dir } => {
            use std::os::fd::FromRawFd;
            // SAFETY: create hands the keeper its readiness pipe as fd 3,
            // which nothing else in this process owns.
            let ready = unsafe { std::fs::File::from_raw_fd(3) };
            vmmode::keeper::run(dir, ready)?;
            Ok(0)
        }
        Command::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::templates::features(vmmode::invoked_mode(
                    cli.isolation
                )))?
            );
            Ok(0)
        }
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} exists: remove it first", path.display());
            }
            let text = serde_json::to_string_pretty(&crate::templates::default_spec(*rootless))?;
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
            Ok(0)
        }
    }
}

/// The bundle's spec when the container is to run in a VM (the mode of
/// this invocation, or the bundle's annotation), else None.
fn vm_spec(cli: &Cli, a: &CreateArgs) -> Result<Option<serde_json::Value>> {
    let default = vmmode::invoked_mode(cli.isolation);
    let path = a.bundle.join("config.json");
    let spec: serde_json::Value = match std::fs::read(&path) {
        Ok(data) => {
            serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))?
        }
        // The process runtime names a missing or unreadable bundle.
        Err(_) if default == vmmode::Isolation::Process => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    // A pod's container runs where its sandbox does.
    if let Some(sandbox) = vmmode::sandbox_of(&spec) {
        if vmmode::is_vm_container(&cli.root, sandbox) {
            return Ok(Some(spec));
        }
    }
    match vmmode::bundle_mode(default, &spec["annotations"])? {
        vmmode::Isolation::Vm => Ok(Some(spec)),
        vmmode::Isolation::Process => Ok(None),
    }
}

fn update_resources(
    file: Option<&Path>,
    memory: Option<i64>,
    pids_limit: Option<i64>,
) -> Result<oci_spec::runtime::LinuxResources> {
    let mut r: oci_spec::runtime::LinuxResources = match file {
        Some(p) => {
            let data = if p == Path::new("-") {
                let mut v = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut v)
                    .context("read resources from stdin")?;
                v
            } else {
                std::fs::read(p).with_context(|| format!("read {}", p.display()))?
            };
            serde_json::from_slice(&data).context("parse the resources JSON")?
        }
        None => Default::default(),
    };
    if let Some(m) = memory {
        let mut mem = (*r.memory()).unwrap_or_default();
        mem.set_limit(Some(m));
        r.set_memory(Some(mem));
    }
    if let Some(p) = pids_limit {
        let mut pids = (*r.pids()).unwrap_or_default();
        pids.set_limit(p);
        r.set_pids(Some(pids));
    }
    Ok(r)
}

fn create(root: &Path, a: &CreateArgs, console_return: bool) -> Result<runtime::Created> {
    let console = match (&a.console_socket, console_return) {
        (Some(p), _) => Console::Socket(p.clone()),
        (None, true) => Console::Return,
        (None, false) => Console::None,
    };
    let opts = CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        root: root.to_path_buf(),
        console,
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        stdio: None,
        spec: None,
        seccomp: None,
    };
    let created = if a.no_pivot {
        Container::create_no_pivot(opts)?
    } else {
        Container::create(opts)?
    };
    Ok(created)
}

/// The pid signals are forwarded to while `run`/`exec` waits.
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and takes plain integers.
        unsafe { libc::kill(pid, sig) };
    }
}

pub fn forward_signals(pid: i32) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    FORWARD_TO.store(pid, Ordering::Relaxed);
    let act = SigAction::new(
        SigHandler::Handler(forward_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        // SAFETY: the handler only calls kill(2), which is async-signal-safe.
        let _ = unsafe { sigaction(s, &act) };
    }
}

/// Waits for a child and turns its end into a shell-style exit code.
pub fn wait_exit_code(pid: i32) -> Result<i32> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(anyhow!("wait for process {pid}: {e}")),
        }
    }
}

fn run_container(root: &Path, a: &CreateArgs, detach: bool) -> Result<i32> {
    let created = create(root, a, !detach)?;
    let mut c = created.container;
    let output = created.console_master.and_then(crate::terminal::proxy);
    let pid = c.pid().unwrap_or(0);
    if let Err(e) = c.start() {
        let _ = Container::load(root, &a.id).map(|c| c.delete(true));
        return Err(e.into());
    }
    if detach {
        return Ok(0);
    }
    forward_signals(pid);
    let code = wait_exit_code(pid)?;
    if let Some(p) = output {
        p.finish();
    }
    Container::load(root, &a.id)?.delete(true)?;
    Ok(code)
}

/// The container's status (read from /proc once) and the pid runc shows
/// with it: 0 once the container has stopped.
fn status_and_pid(c: &Container) -> (Status, i32) {
    let status = c.status();
    let pid = if status == Status::Stopped {
        0
    } else {
        c.pid().unwrap_or(0)
    };
    (status, pid)
}

fn state_json(c: &Container) -> serde_json::Value {
    let (status, pid) = status_and_pid(c);
    json!({
        "ociVersion": oci_spec::runtime::VERSION,
        "id": c.id(),
        "pid": pid,
        "status": status.to_string(),
        "bundle": c.bundle(),
        "rootfs": c.rootfs(),
        "created": humantime::format_rfc3339_nanos(c.created()).to_string(),
        "owner": "",
        "annotations": c.annotations(),
    })
}

fn list(root: &Path, format: &str, quiet: bool) -> Result<i32> {
    let all = Container::list(root)?;
    let vms = vmmode::list(root);
    if quiet {
        for c in &all {
            println!("{}", c.id());
        }
        for v in &vms {
            println!("{}", v["id"].as_str().unwrap_or(""));
        }
        return Ok(0);
    }
    match format {
        "json" => {
            let mut v: Vec<_> = all.iter().map(state_json).collect();
            v.extend(vmmode::list(root));
            println!("{}", serde_json::to_string(&v)?);
        }
        "table" => {
            println!(
                "{:<20} {:<8} {:<10} {:<40} {:<32} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for c in &all {
                let (st, pid) = status_and_pid(c);
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {:<32} root",
                    c.id(),
                    pid,
                    st,
                    c.bundle().display(),
                    humantime::format_rfc3339_seconds(c.created())
                );
            }
            for v in &vms {
                let text = |k: &str| v[k].as_str().unwrap_or("").to_string();
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {:<32} root",
                    text("id"),
                    v["pid"],
                    text("status"),
                    text("bundle"),
                    text("created")
                );
            }
        }
        other => bail!("invalid --format {other:?}: use table or json"),
    }
    Ok(0)
}

fn ps(root: &Path, id: &str, format: &str, ps_args: &[String]) -> Result<i32> {
    let pids = if vmmode::is_vm_container(root, id) {
        vmmode::processes(root, id)?
    } else {
        Container::load(root, id)?.processes()?
    };
    match format {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("run ps")?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| anyhow!("ps output has no PID column"))?;
            println!("{header}");
            for l in lines {
                if let Some(p) = l
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok())
                {
                    if pids.contains(&p) {
                        println!("{l}");
                    }
                }
            }
        }
        other => bail!("invalid --format {other:?}: use table or json"),
    }
    Ok(0)
}

/// runc's `exec --cgroup` value: "[<controller>:]<path>".
fn parse_sub_cgroup(s: &str) -> Result<runtime::cgroups::SubCgroup, String> {
    let (controller, path) = match s.split_once(':') {
        Some((c, p)) if !c.is_empty() => (Some(c.to_string()), p),
        _ => (None, s),
    };
    if path.is_empty() {
        return Err(format!("{s:?}: expected [<controller>:]<cgroup>"));
    }
    Ok(runtime::cgroups::SubCgroup {
        controller,
        path: PathBuf::from(path.trim_start_matches('/')),
    })
}

/// "KILL", "SIGKILL", "kill" or "9".
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| anyhow!("unknown signal {s:?}"));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).map_err(|_| anyhow!("unknown signal {s:?}"))
}

fn exec_process(
    spec: impl FnOnce() -> Result<oci_spec::runtime::Spec>,
    a: &ExecArgs,
) -> Result<Process> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let p: Process = serde_json::from_slice(&data)
            .with_context(|| format!("parse {} as an OCI process", path.display()))?;
        return Ok(p);
    }
    if a.command.is_empty() {
        bail!("exec needs a command (or --process)");
    }
    let spec = spec()?;
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for e in &a.env {
            let key = e.split('=').next().unwrap_or("");
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        p.set_env(Some(env));
    }
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let bad = || format!("--user {u:?}: expected uid[:gid] (numbers)");
        let (uid, gid) = match u.split_once(':') {
            Some((uid, gid)) => (
                uid.parse::<u32>().with_context(bad)?,
                Some(gid.parse::<u32>().with_context(bad)?),
            ),
            None => (u.parse::<u32>().with_context(bad)?, None),
        };
        let user = p.user_mut();
        user.set_uid(uid);
        if let Some(g) = gid {
            user.set_gid(g);
        }
    }
    if !a.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(a.additional_gids.clone()));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let add = |set: Option<&oci_spec::runtime::Capabilities>| -> Result<oci_spec::runtime::Capabilities> {
            let mut s = set.cloned().unwrap_or_default();
            for name in &a.cap {
                let cap: oci_spec::runtime::Capability =
                    serde_json::from_value(json!(name)).with_context(|| format!("--cap {name:?}"))?;
                s.insert(cap);
            }
            Ok(s)
        };
        caps.set_bounding(Some(add(caps.bounding().as_ref())?));
        caps.set_effective(Some(add(caps.effective().as_ref())?));
        caps.set_permitted(Some(add(caps.permitted().as_ref())?));
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

fn exec(root: &Path, a: &ExecArgs) -> Result<i32> {
    if vmmode::is_vm_container(root, &a.id) {
        let process = exec_process(|| vmmode::spec(root, &a.id), a)?;
        return vmmode::exec(root, a, process);
    }
    let c = Container::load(root, &a.id)?;
    let process = exec_process(|| Ok((*c.spec()?).clone()), a)?;
    let tty = process.terminal().unwrap_or(false);
    let console = match (&a.console_socket, tty, a.detach) {
        (Some(p), _, _) => Console::Socket(p.clone()),
        (None, true, false) => Console::Return,
        (None, true, true) => bail!("exec -t -d needs --console-socket"),
        (None, false, _) => Console::None,
    };
    let executed = c.exec(
        &process,
        ExecOptions {
            console,
            pid_file: a.pid_file.clone(),
            stdio: None,
            preserve_fds: a.preserve_fds,
            ignore_paused: a.ignore_paused,
            sub_cgroups: a.cgroup.clone(),
        },
    )?;
    if a.detach {
        return Ok(0);
    }
    let output = executed.console_master.and_then(crate::terminal::proxy);
    forward_signals(executed.pid);
    let code = wait_exit_code(executed.pid)?;
    if let Some(p) = output {
        p.finish();
    }
    Ok(code)
}
