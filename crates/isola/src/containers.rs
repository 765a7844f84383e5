//! The container commands: run, create, start, ps, inspect, logs, top, exec,
//! attach, wait, stop, kill, restart, pause, unpause, rm, container prune,
//! rename, stats, plus info and version. Parses flags and prints; the work is
//! the `engine`'s. Submodules group commands by concern.

mod attach;
mod exec;
mod flags;
pub mod list;
mod manage;
mod observe;
mod run;
mod system;

use std::path::Path;

use clap::Subcommand;

pub use flags::CreateFlags;

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create and start a container from an image (attached unless -d).
    Run(Box<run::RunArgs>),
    /// Create a container without starting it; prints its id.
    Create(Box<CreateFlags>),
    /// Start one or more created or stopped containers.
    Start(run::StartArgs),
    /// List containers (running ones unless -a).
    Ps(list::PsArgs),
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
    /// Remove containers (stopped ones unless -f).
    Rm(manage::RmArgs),
    /// Rename a container.
    Rename { container: String, new_name: String },
    /// Manage containers (prune).
    #[command(subcommand)]
    Container(ContainerGroup),
    /// Show host facts: kernel, cgroups, isolation modes, storage root.
    Info(system::InfoArgs),
    /// Show isola's version.
    Version,
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
    /// Remove all stopped containers.
    Prune {
        /// Do not ask for confirmation (kept for docker compatibility; isola never asks).
        #[arg(short, long)]
        force: bool,
    },
    /// List containers (same as ps).
    #[command(alias = "list")]
    Ls(list::PsArgs),
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
            ContainerCommand::Version => system::version(),
            other => other.run_with(&open_engine()?),
        }
    }

    fn run_with(self, engine: &engine::Engine) -> anyhow::Result<u8> {
        match self {
            ContainerCommand::Run(a) => run::run(engine, *a),
            ContainerCommand::Create(f) => run::create(engine, *f),
            ContainerCommand::Start(a) => run::start(engine, a),
            ContainerCommand::Ps(a) => list::ps(engine, a),
            ContainerCommand::Inspect(a) => list::inspect(engine, a),
            ContainerCommand::Logs(a) => observe::logs(engine, a),
            ContainerCommand::Top(a) => observe::top(engine, a),
            ContainerCommand::Stats(a) => observe::stats(engine, a),
            ContainerCommand::Exec(a) => exec::exec(engine, a),
            ContainerCommand::Attach(a) => attach::attach(engine, a),
            ContainerCommand::Wait(a) => manage::wait(engine, a),
            ContainerCommand::Stop(a) => manage::stop(engine, a),
            ContainerCommand::Kill(a) => manage::kill(engine, a),
            ContainerCommand::Restart(a) => manage::restart(engine, a),
            ContainerCommand::Pause(a) => manage::pause(engine, a, true),
            ContainerCommand::Unpause(a) => manage::pause(engine, a, false),
            ContainerCommand::Rm(a) => manage::rm(engine, a),
            ContainerCommand::Rename {
                container,
                new_name,
            } => manage::rename(engine, &container, &new_name),
            ContainerCommand::Container(ContainerGroup::Prune { .. }) => manage::prune(engine),
            ContainerCommand::Container(ContainerGroup::Ls(a)) => list::ps(engine, a),
            ContainerCommand::Info(a) => system::info(engine, a),
            ContainerCommand::Version | ContainerCommand::Monitor { .. } => system::version(),
        }
    }
}
