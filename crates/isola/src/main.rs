//! isola: the docker-like command line. A thin layer: it parses arguments,
//! calls the `engine` and `image` libraries, and prints results. Each group
//! of commands lives in its own module, flattened into one command list.

mod building;
mod containers;
mod events;
mod format;
mod images;
mod networks;
mod registry;
mod service;
mod system;
mod usage;
mod volumes;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Global options shared by every command.
#[derive(Debug, Parser)]
#[command(
    name = "isola",
    version,
    about = "Run OCI containers under process or VM isolation"
)]
pub struct Cli {
    /// State and storage root.
    #[arg(
        long,
        env = "ISOLA_ROOT",
        default_value = "/var/lib/isola",
        global = true
    )]
    pub root: PathBuf,
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, env = "ISOLA_LOG", default_value = "warn", global = true)]
    pub log_level: String,
    /// Raise the log level to debug (no -v: under run and create, -v is --volume, as in docker).
    #[arg(long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Containers(containers::ContainerCommand),
    #[command(flatten)]
    Images(images::ImageCommand),
    #[command(flatten)]
    Registry(registry::RegistryCommand),
    #[command(flatten)]
    Build(building::BuildCommand),
    #[command(flatten)]
    Networks(networks::NetworkCommand),
    #[command(flatten)]
    Volumes(volumes::VolumeCommand),
    /// Show the engine's events (container, image, network, volume).
    Events(events::EventsArgs),
    /// System-wide commands: the Docker Engine API service.
    #[command(subcommand)]
    System(service::SystemCommand),
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(err) => {
            let mut cmd = Cli::command();
            cmd.build();
            let args: Vec<String> = argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            return usage::report(&cmd, &args, &err);
        }
    };
    init_logging(&cli);
    if prints_a_report(&cli.command) {
        // `isola ps | head`: a reader that goes away ends a report quietly, as
        // with other Unix tools, instead of a panic on EPIPE. Only for these
        // commands: run, exec, attach and the monitor write to sockets whose
        // peer may go, and must see EPIPE as an error, not die of SIGPIPE.
        // SAFETY: nothing else runs yet; this restores the default disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Containers(c) => c.run(&cli.root),
        Command::Images(c) => c.run(&cli.root),
        Command::Registry(c) => c.run(&cli.root),
        Command::Build(c) => c.run(&cli.root),
        Command::Networks(c) => c.run(&cli.root),
        Command::Volumes(c) => c.run(&cli.root),
        Command::System(c) => service::run(&cli.root, c),
        Command::Events(a) => events::run(&cli.root, a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // One line: the whole chain, outermost first.
            eprintln!("isola: {}", runtime::error_chain(err.as_ref()));
            ExitCode::from(usage::EXIT_USAGE)
        }
    }
}

/// Commands whose only output is a report on stdout.
fn prints_a_report(command: &Command) -> bool {
    match command {
        Command::Containers(c) => c.prints_a_report(),
        Command::Images(images::ImageCommand::Images(_)) => true,
        _ => false,
    }
}

fn init_logging(cli: &Cli) {
    let level = if cli.verbose {
        "debug"
    } else {
        cli.log_level.as_str()
    };
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        // Colour only for a person at a terminal: logs and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
