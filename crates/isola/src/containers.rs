//! The container commands: run, create, start, ps, inspect, logs, top, exec,
//! attach, wait, stop, kill, restart, pause, unpause, rm, container prune,
//! rename, stats, diff, export (each also as `container <verb>`), plus info and version. Parses flags and prints; the work is
//! the `engine`'s. Submodules group commands by concern.

mod attach;
mod exec;
mod files;
mod flags;
pub mod list;
mod manage;
mod observe;
mod run;
mod system;

use std::path::Path;

use clap::Subcommand;

pub use flags::CreateFlags;

/// The container commands, at the top level (`isola rm`) and under
/// `isola container` (`isola container rm`), as docker has them both ways.
#[derive(Debug, Subcommand)]
pub enum ContainerVerb {
    /// Create and start a container from an image (attached unless -d).
    Run(Box<run::RunArgs>),
    /// Create a container without starting it; prints its id.
    Create(Box<CreateFlags>),
    /// Start one or more created or stopped containers.
    Start(run::StartArgs),
    /// Show containers' full configuration and state as JSON.
    Inspect(list::InspectArgs),
    /// Show a container's output (stdout and stderr, as logged).
    Logs(observe::LogsArgs),
    /// Show a container's processes (host pids under process isolation).
    Top(observe::TopArgs),
    /// Show containers' CPU, memory and pids usage from their cgroups.
    Stats(observe::StatsArgs),
    /// Run a command in a running container.
    Exec(exec::ExecArgs),
    /// Attach to a running container's stdio.
    Attach(attach::AttachArgs),
    /// Wait until containers stop; print their exit codes.
    Wait(manage::RefsArgs),
    /// Stop containers: SIGTERM, then SIGKILL after the timeout.
    Stop(manage::StopArgs),
    /// Send a signal to containers (SIGKILL unless -s).
    Kill(manage::KillArgs),
    /// Stop and start containers again.
    Restart(manage::StopArgs),
    /// Freeze all processes of containers.
    Pause(manage::RefsArgs),
    /// Thaw paused containers.
    Unpause(manage::RefsArgs),
    /// Change containers' resource limits (at once if they run, and for their next start).
    Update(manage::UpdateArgs),
    /// Remove containers (stopped ones unless -f).
    Rm(manage::RmArgs),
    /// Rename a container.
    Rename { container: String, new_name: String },
    /// List what a container changed in its filesystem (A added, C changed, D deleted).
    Diff(files::DiffArgs),
    /// Write a container's filesystem as a tar archive.
    Export(files::ExportArgs),
    /// Copy files between a container and the host.
    Cp(files::CpArgs),
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    #[command(flatten)]
    Verb(ContainerVerb),
    /// List containers (running ones unless -a).
    Ps(list::PsArgs),
    /// Manage containers: every container command, plus ls, port and prune.
    #[command(subcommand)]
    Container(ContainerGroup),
    /// Show host facts: kernel, cgroups, isolation modes, storage root.
    Info(system::InfoArgs),
    /// Show isola's version.
    Version(system::VersionArgs),
    /// Runs one health check of a container (started by its monitor).
    #[command(name = engine::health::PROBE_COMMAND, hide = true)]
    HealthProbe { id: String },
    /// Runs a container's monitor (started by isola itself).
    #[command(name = engine::monitor::COMMAND, hide = true)]
    Monitor {
        id: String,
        #[arg(long)]
        ready_fd: Option<i32>,
        #[arg(long)]
        attach_fd: Option<i32>,
        #[arg(long)]
        restarted: bool,
        #[arg(long, value_parser = parse_console_size)]
        console_size: Option<(u16, u16)>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContainerGroup {
    #[command(flatten)]
    Verb(ContainerVerb),
    /// Remove all stopped containers.
    Prune {
        /// Do not ask for confirmation (kept for docker compatibility; isola never asks).
        #[arg(short, long)]
        force: bool,
    },
    /// List containers (same as ps).
    #[command(visible_aliases = ["list", "ps"])]
    Ls(list::PsArgs),
    /// List a container's published ports (same as port).
    Port(crate::networks::PortArgs),
}

impl ContainerCommand {
    /// Whether the command's only output is a report on stdout.
    pub fn prints_a_report(&self) -> bool {
        match self {
            ContainerCommand::Verb(v) | ContainerCommand::Container(ContainerGroup::Verb(v)) => {
                matches!(
                    v,
                    ContainerVerb::Inspect(_)
                        | ContainerVerb::Diff(_)
                        | ContainerVerb::Logs(_)
                        | ContainerVerb::Top(_)
                        | ContainerVerb::Stats(_)
                )
            }
            ContainerCommand::Ps(_)
            | ContainerCommand::Container(ContainerGroup::Ls(_))
            | ContainerCommand::Info(_)
            | ContainerCommand::Version(_) => true,
            _ => false,
        }
    }
}

fn parse_console_size(s: &str) -> Result<(u16, u16), String> {
    let (r, c) = s.split_once('x').ok_or("expected ROWSxCOLS")?;
    Ok((
        r.parse().map_err(|_| "bad rows")?,
        c.parse().map_err(|_| "bad columns")?,
    ))
}

impl ContainerCommand {
    /// Runs the command; returns the process exit code.
    pub fn run(self, root: &Path) -> anyhow::Result<u8> {
        // The engine opens lazily: neither the monitor (which opens it
        // itself) nor `version` needs it.
        let open_engine = || engine::Engine::open(root);
        match self {
            ContainerCommand::Monitor {
                id,
                ready_fd,
                attach_fd,
                restarted,
                console_size,
            } => {
                let code = engine::monitor::run(engine::monitor::MonitorArgs {
                    root: root.to_path_buf(),
                    id,
                    ready_fd,
                    attach_fd,
                    restarted,
                    console_size,
                });
                std::process::exit(code);
            }
            ContainerCommand::HealthProbe { id } => {
                open_engine()?.health_probe(&id)?;
                Ok(0)
            }
            ContainerCommand::Version(a) => system::version(a),
            other => other.run_with(&open_engine()?),
        }
    }

    fn run_with(self, engine: &engine::Engine) -> anyhow::Result<u8> {
        match self {
            ContainerCommand::Verb(v) => v.run(engine),
            ContainerCommand::Container(ContainerGroup::Verb(ContainerVerb::Inspect(mut a))) => {
                // docker container inspect: containers only, no image fallback.
                a.kind = Some(list::ObjectKind::Container);
                list::inspect(engine, a)
            }
            ContainerCommand::Container(ContainerGroup::Verb(v)) => v.run(engine),
            ContainerCommand::Ps(a) | ContainerCommand::Container(ContainerGroup::Ls(a)) => {
                list::ps(engine, a)
            }
            ContainerCommand::Container(ContainerGroup::Prune { .. }) => manage::prune(engine),
            ContainerCommand::Container(ContainerGroup::Port(a)) => {
                crate::networks::port_command(engine, &a.container, a.port)
            }
            ContainerCommand::Info(a) => system::info(engine, a),
            ContainerCommand::Version(a) => system::version(a),
            ContainerCommand::Monitor { .. } | ContainerCommand::HealthProbe { .. } => {
                unreachable!("the monitor and its probes run before the engine opens")
            }
        }
    }
}

impl ContainerVerb {
    fn run(self, engine: &engine::Engine) -> anyhow::Result<u8> {
        match self {
            ContainerVerb::Run(a) => run::run(engine, *a),
            ContainerVerb::Create(f) => run::create(engine, *f),
            ContainerVerb::Start(a) => run::start(engine, a),
            ContainerVerb::Inspect(a) => list::inspect(engine, a),
            ContainerVerb::Logs(a) => observe::logs(engine, a),
            ContainerVerb::Top(a) => observe::top(engine, a),
            ContainerVerb::Stats(a) => observe::stats(engine, a),
            ContainerVerb::Exec(a) => exec::exec(engine, a),
            ContainerVerb::Attach(a) => attach::attach(engine, a),
            ContainerVerb::Wait(a) => manage::wait(engine, a),
            ContainerVerb::Stop(a) => manage::stop(engine, a),
            ContainerVerb::Kill(a) => manage::kill(engine, a),
            ContainerVerb::Restart(a) => manage::restart(engine, a),
            ContainerVerb::Pause(a) => manage::pause(engine, a, true),
            ContainerVerb::Unpause(a) => manage::pause(engine, a, false),
            ContainerVerb::Update(a) => manage::update(engine, a),
            ContainerVerb::Rm(a) => manage::rm(engine, a),
            ContainerVerb::Rename {
                container,
                new_name,
            } => manage::rename(engine, &container, &new_name),
            ContainerVerb::Diff(a) => files::diff(engine, a),
            ContainerVerb::Export(a) => files::export(engine, a),
            ContainerVerb::Cp(a) => files::cp(engine, a),
        }
    }
}
