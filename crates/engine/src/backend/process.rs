//! backend::process: process isolation over the `runtime` library: namespaces,
//! cgroups and capabilities on the host kernel. Runtime state lives under
//! `<root>/runtime`. `top` runs the host's `ps` on the container's host pids,
//! as docker does. Nothing here knows about images or the engine's records.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use runtime::{Console, Container, CreateOptions, ExecOptions, Stdio3};

use super::{
    wait_child, Backend, BackendError, BackendPaths, ContainerIo, CreatedContainer,
    ExecutedProcess, Top, Usage,
};
use crate::isolation::Isolation;
use crate::spec::cgroups_path;
use crate::state::{ContainerConfig, NetworkMode};

/// Process isolation on this host.
#[derive(Debug, Clone)]
pub struct ProcessBackend {
    state_root: PathBuf,
}

fn runtime_err<'a>(
    op: &'static str,
    id: &'a str,
) -> impl FnOnce(runtime::Error) -> BackendError + 'a {
    move |e| BackendError::Runtime {
        op,
        id: id.into(),
        source: Box::new(e),
    }
}

fn split_io(io: Option<ContainerIo>) -> (Console, Option<Stdio3>) {
    match io {
        None => (Console::None, None),
        Some(ContainerIo::Terminal) => (Console::Return, None),
        Some(ContainerIo::Pipes {
            stdin,
            stdout,
            stderr,
        }) => (
            Console::None,
            Some(Stdio3 {
                stdin,
                stdout,
                stderr,
            }),
        ),
    }
}

impl ProcessBackend {
    pub fn new(paths: &BackendPaths) -> ProcessBackend {
        ProcessBackend {
            state_root: paths.root.join("runtime"),
        }
    }

    fn load(&self, id: &str) -> Result<Container, BackendError> {
        Container::load(&self.state_root, id).map_err(runtime_err("loading", id))
    }

    /// Host pids of the container's processes.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>, BackendError> {
        self.load(id)?
            .processes()
            .map_err(runtime_err("listing processes of", id))
    }
}

/// Runs `ps` like docker's `top`: with no options `-o pid,user,time,cmd -p
/// <pids>`; with options, `ps <options>` filtered to rows whose PID column is
/// one of `pids`.
pub fn ps_table(pids: &[i32], ps_args: &[String]) -> Result<Top, BackendError> {
    let pid_list = pids
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new("ps");
    if ps_args.is_empty() {
        cmd.args(["-o", "pid,user,time,cmd", "-p", &pid_list]);
    } else {
        cmd.args(ps_args);
    }
    let command = format!("ps {}", ps_args.join(" "));
    let out = cmd.output().map_err(|source| BackendError::Command {
        command: command.clone(),
        source,
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    if header.is_empty() && !out.status.success() {
        return Err(BackendError::CommandFailed {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let titles: Vec<String> = header.split_whitespace().map(str::to_string).collect();
    let pid_col =
        titles
            .iter()
            .position(|t| t == "PID")
            .ok_or_else(|| BackendError::CommandFailed {
                command: command.clone(),
                stderr: "ps output has no PID column (add pid to -o)".into(),
            })?;
    let wanted: HashSet<i32> = pids.iter().copied().collect();
    let ncols = titles.len();
    let mut processes = Vec::new();
    for line in lines {
        // The last column (the command) may hold spaces: split into ncols fields.
        let mut fields: Vec<String> = Vec::with_capacity(ncols);
        let mut rest = line.trim_start();
        while fields.len() + 1 < ncols {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
        fields.push(rest.to_string());
        if fields
            .get(pid_col)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| wanted.contains(&p))
        {
            processes.push(fields);
        }
    }
    Ok(Top { titles, processes })
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

impl Backend for ProcessBackend {
    fn isolation(&self) -> Isolation {
        Isolation::Process
    }

    fn create(
        &self,
        config: &ContainerConfig,
        bundle: &Path,
        io: ContainerIo,
    ) -> Result<CreatedContainer, BackendError> {
        let (console, stdio) = split_io(Some(io));
        let created = Container::create(CreateOptions {
            id: config.id.clone(),
            bundle: bundle.to_path_buf(),
            root: self.state_root.clone(),
            console,
            pid_file: None,
            preserve_fds: 0,
            stdio,
            spec: None,
            seccomp: None,
        })
        .map_err(runtime_err("creating", &config.id))?;
        let pid = created
            .container
            .pid()
            .ok_or_else(|| BackendError::NotRunning {
                id: config.id.clone(),
            })?;
        // docker brings up lo in a container without networking; the runtime
        // only makes the namespace (a persistent one, `config.netns`, comes
        // with lo up).
        if config.network == NetworkMode::None && config.netns.is_none() {
            let ns = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
            if let Err(source) = network::netns::loopback_up(&ns) {
                let _ = created.container.delete(true);
                return Err(BackendError::Loopback {
                    id: config.id.clone(),
                    source,
                });
            }
        }
        Ok(CreatedContainer {
            pid,
            console: created.console_master,
            wait: Box::new(move || wait_child(pid)),
        })
    }

    fn start(&self, id: &str) -> Result<(), BackendError> {
        self.load(id)?.start().map_err(runtime_err("starting", id))
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), BackendError> {
        self.load(id)?
            .kill(signal, all)
            .map_err(runtime_err("signalling", id))
    }

    fn pause(&self, id: &str) -> Result<(), BackendError> {
        self.load(id)?.pause().map_err(runtime_err("pausing", id))
    }

    fn resume(&self, id: &str) -> Result<(), BackendError> {
        self.load(id)?.resume().map_err(runtime_err("resuming", id))
    }

    fn update(
        &self,
        config: &ContainerConfig,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), BackendError> {
        let id = config.id.as_str();
        self.load(id)?
            .update(resources)
            .map_err(runtime_err("updating", id))
    }

    fn exec(
        &self,
        id: &str,
        process: &oci_spec::runtime::Process,
        io: Option<ContainerIo>,
        _tty: bool,
    ) -> Result<ExecutedProcess, BackendError> {
        let (console, stdio) = split_io(io);
        let executed = self
            .load(id)?
            .exec(
                process,
                ExecOptions {
                    console,
                    pid_file: None,
                    stdio,
                    preserve_fds: 0,
                    ignore_paused: false,
                    sub_cgroups: Vec::new(),
                },
            )
            .map_err(runtime_err("executing in", id))?;
        let pid = executed.pid;
        Ok(ExecutedProcess {
            pid: Some(pid),
            console: executed.console_master,
            wait: Box::new(move || wait_child(pid)),
        })
    }

    fn top(&self, id: &str, ps_args: &[String]) -> Result<Top, BackendError> {
        let pids = self.pids(id)?;
        if pids.is_empty() {
            return Err(BackendError::NotRunning { id: id.into() });
        }
        ps_table(&pids, ps_args)
    }

    fn usage(&self, id: &str) -> Result<Usage, BackendError> {
        let stats = runtime::cgroups::Cgroup::open(&cgroups_path(id), id)
            .and_then(|cg| cg.stats())
            .map_err(|e| BackendError::Stats {
                id: id.into(),
                source: Box::new(e),
            })?;
        Ok(Usage {
            cpu_ns: stats.cpu_usage_ns,
            memory_bytes: stats.memory_usage_bytes,
            memory_limit: stats.memory_limit_bytes.unwrap_or_else(host_memory),
            pids: stats.pids_current,
            ..Usage::default()
        })
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), BackendError> {
        match Container::load(&self.state_root, id) {
            Ok(c) => match c.delete(force) {
                Ok(()) => Ok(()),
                // Deleted meanwhile by another caller (the monitor, or a second rm).
                Err(_) if !self.state_root.join(id).exists() => Ok(()),
                Err(e) => Err(runtime_err("deleting", id)(e)),
            },
            // Never created, or deleted already.
            Err(_) if !self.state_root.join(id).exists() => Ok(()),
            Err(e) => Err(runtime_err("loading", id)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_table_filters_by_pid() {
        let me = std::process::id() as i32;
        let t = ps_table(&[me], &[]).unwrap();
        assert_eq!(t.titles, ["PID", "USER", "TIME", "CMD"]);
        assert_eq!(t.processes.len(), 1);
        assert_eq!(t.processes[0][0], me.to_string());
        let t = ps_table(&[me], &["-eo".into(), "pid,comm".into()]).unwrap();
        assert_eq!(t.processes.len(), 1);
        assert!(ps_table(&[me], &["-eo".into(), "comm".into()]).is_err());
    }
}
