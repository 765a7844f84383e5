//! containers: creates and execs into containers inside the guest with the
//! `runtime` library (the same code process isolation uses on the host, so a
//! VM container gets namespaces and cgroups too). It owns the guest-side
//! bundles under /run/isola/bundles and the runtime state root; it must not
//! touch the channel.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::procs::{self, Proc};

const BUNDLES: &str = "/run/isola/bundles";
const STATE_ROOT: &str = "/run/isola/runtime";

/// A container this agent created, and the stream of its init.
struct Entry {
    container: runtime::Container,
    cgroups_path: String,
}

#[derive(Default)]
pub struct Containers {
    entries: HashMap<String, Entry>,
}

impl Containers {
    /// Creates the container `spec` describes (its bundle directory holds no
    /// config.json: the runtime gets the parsed spec) with its root at `rootfs`
    /// (in the guest); returns its init as a [`Proc`].
    ///
    /// The guest's root is the initramfs, which pivot_root(2) cannot leave, so
    /// the container is made with the runtime's no-pivot mode (MS_MOVE + chroot,
    /// as runc --no-pivot does). The network namespace is dropped: the VM is
    /// the network boundary and containers share its stack (as Kata's do), so
    /// the guest's loopback, brought up by the agent, is the container's.
    pub fn create(
        &mut self,
        id: &str,
        mut spec: Spec,
        rootfs: &str,
        terminal: bool,
        seccomp: Option<proto::CompiledSeccomp>,
    ) -> Result<Proc> {
        let bundle = Path::new(BUNDLES).join(id);
        fs::create_dir_all(&bundle)
            .with_context(|| format!("create bundle {}", bundle.display()))?;
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_path(PathBuf::from(rootfs));
        spec.set_root(Some(root));
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_terminal(Some(terminal));
        spec.set_process(Some(process));
        if let Some(linux) = spec.linux_mut() {
            if let Some(ns) = linux.namespaces().clone() {
                let kept = ns
                    .into_iter()
                    .filter(|n| n.typ() != LinuxNamespaceType::Network)
                    .collect();
                linux.set_namespaces(Some(kept));
            }
        }
        let cgroups_path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let seccomp = seccomp
            .map(|s| runtime::seccomp::Program::from_bytes(&s.filter, s.flags))
            .transpose()
            .context("the host's compiled seccomp program")?;
        let (console, child, ends) = stdio_for(terminal)?;
        let created = runtime::Container::create_no_pivot(runtime::CreateOptions {
            id: id.to_string(),
            bundle,
            root: PathBuf::from(STATE_ROOT),
            console,
            pid_file: None,
            preserve_fds: 0,
            stdio: child,
            // Parsed once, from the host's request: no config.json to write
            // and read back (under TCG each JSON pass costs tens of ms).
            spec: Some(Box::new(spec)),
            seccomp,
        })
        .map_err(|e| anyhow::anyhow!(runtime::error_chain(&e)))?;
        let pid = created
            .container
            .pid()
            .context("the runtime reported no init pid")?;
        let proc = match (ends, created.console_master) {
            (Some((i, o, e)), _) => Proc::with_pipes(pid, i, o, e),
            (None, Some(master)) => Proc::with_pty(pid, master)?,
            (None, None) => {
                anyhow::bail!("the runtime returned no terminal for a terminal container")
            }
        };
        self.entries.insert(
            id.to_string(),
            Entry {
                container: created.container,
                cgroups_path,
            },
        );
        Ok(proc)
    }

    fn get(&self, id: &str) -> Result<&Entry> {
        self.entries
            .get(id)
            .with_context(|| format!("no container {id:?} in this VM"))
    }

    pub fn start(&mut self, id: &str) -> Result<()> {
        let entry = self
            .entries
            .get_mut(id)
            .with_context(|| format!("no container {id:?} in this VM"))?;
        entry
            .container
            .start()
            .map_err(|e| anyhow::anyhow!(runtime::error_chain(&e)))
    }

    pub fn exec(&self, id: &str, mut process: Process, terminal: bool) -> Result<Proc> {
        let entry = self.get(id)?;
        process.set_terminal(Some(terminal));
        let (console, child, ends) = stdio_for(terminal)?;
        let executed = entry
            .container
            .exec(
                &process,
                runtime::ExecOptions {
                    console,
                    pid_file: None,
                    stdio: child,
                    preserve_fds: 0,
                    ignore_paused: false,
                    sub_cgroups: Vec::new(),
                },
            )
            .map_err(|e| anyhow::anyhow!(runtime::error_chain(&e)))?;
        match (ends, executed.console_master) {
            (Some((i, o, e)), _) => Ok(Proc::with_pipes(executed.pid, i, o, e)),
            (None, Some(master)) => Ok(Proc::with_pty(executed.pid, master)?),
            (None, None) => anyhow::bail!("the runtime returned no terminal for a terminal exec"),
        }
    }

    /// Signals the init, or every process of the container with `all`.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        self.get(id)?
            .container
            .kill(signal, all)
            .map_err(|e| anyhow::anyhow!(runtime::error_chain(&e)))
    }

    /// Changes the container's cgroup limits (the runtime's `update`).
    pub fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        self.get(id)?
            .container
            .update(resources)
            .map_err(|e| anyhow::anyhow!(runtime::error_chain(&e)))
    }

    /// Guest pids of the container's processes (its cgroup; every user process
    /// of the guest if that cannot be read).
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let entry = self.get(id)?;
        Ok(entry
            .container
            .processes()
            .unwrap_or_else(|_| crate::top::all_user_pids()))
    }

    pub fn cgroup_stats(&self, id: &str) -> Result<Option<runtime::cgroups::Stats>> {
        let entry = self.get(id)?;
        Ok(runtime::cgroups::Cgroup::open(&entry.cgroups_path, id)
            .and_then(|cg| cg.stats())
            .ok())
    }
}

/// Our ends of a process's stdin, stdout and stderr pipes.
type PipeEnds = (fs::File, fs::File, fs::File);

/// How the runtime gives a process its stdio: with a terminal, a console
/// whose master it returns; without, fresh pipes (the child's ends for the
/// runtime, ours for the caller).
fn stdio_for(
    terminal: bool,
) -> Result<(runtime::Console, Option<runtime::Stdio3>, Option<PipeEnds>)> {
    if terminal {
        return Ok((runtime::Console::Return, None, None));
    }
    let p = procs::stdio_pipes().context("make stdio pipes")?;
    Ok((
        runtime::Console::None,
        Some(p.child),
        Some((p.stdin, p.stdout, p.stderr)),
    ))
}
