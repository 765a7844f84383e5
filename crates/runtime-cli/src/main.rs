//! isola-runtime: an OCI runtime with runc's command line, so containerd's
//! runc shim (`io.containerd.runc.v2` with a BinaryName) can drive it. A thin
//! layer over the `runtime` library: it parses arguments, prints results and
//! reports errors as one line (and, with --log, as runc's log lines).

mod commands;
mod log;
mod templates;
mod terminal;
mod vmmode;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::log::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "isola-runtime",
    version,
    about = "OCI container runtime (runc-compatible CLI)"
)]
pub struct Cli {
    /// Directory for container state.
    #[arg(long, global = true, default_value = "/run/isola-runtime")]
    pub root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log debug messages.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for runc compatibility; cgroups are always managed through cgroupfs.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Isolation for new containers: process, or vm (each in its own utility
    /// VM). Default: vm when run as isola-runtime-vm, else process; a
    /// bundle's io.isola.isolation annotation may ask for vm.
    #[arg(long, global = true, value_enum)]
    pub isolation: Option<vmmode::Isolation>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    pub id: String,
    /// Bundle directory (holds config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (runc protocol).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Pass fds 3..3+N to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Use MS_MOVE and chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for runc compatibility and ignored.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container; its process waits until `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container, wait for it (unless -d) and delete it.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach: return after start.
        #[arg(short, long)]
        detach: bool,
        /// Accepted for runc compatibility.
        #[arg(long)]
        keep: bool,
    },
    /// Print the container's OCI state as JSON.
    State { id: String },
    /// Send a signal (name like KILL/SIGKILL or number; default TERM).
    Kill {
        id: String,
        signal: Option<String>,
        /// Signal every process in the container.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container (stopped, or created; --force kills a running one).
    Delete {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show the container's processes.
    Ps {
        id: String,
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Arguments for ps(1) in table format.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run a process in a running container.
    Exec(Box<commands::ExecArgs>),
    /// Freeze all processes of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change a running container's cgroup limits.
    Update {
        id: String,
        /// LinuxResources JSON file, or - for stdin (as containerd passes it).
        #[arg(short, long)]
        resources: Option<PathBuf>,
        /// Memory limit in bytes.
        #[arg(long)]
        memory: Option<i64>,
        /// Maximum number of processes.
        #[arg(long = "pids-limit")]
        pids_limit: Option<i64>,
    },
    /// Print the runtime's features as JSON.
    Features,
    /// The owner of one utility VM (started by create in VM mode).
    #[command(name = "vm-keeper", hide = true)]
    VmKeeper { dir: PathBuf },
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for a rootless container (user namespace).
        #[arg(long)]
        rootless: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let log = log::init(cli.log.as_deref(), cli.log_format, cli.debug);
    if cli.systemd_cgroup {
        tracing::debug!("--systemd-cgroup given: ignored, cgroups are managed through cgroupfs");
    }
    match commands::run(&cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = one_line(&e);
            if cli.log.is_some() {
                log.write_line("error", &msg);
            }
            // "error" as runc's level=error says it: callers look for the word.
            eprintln!("isola-runtime: error: {msg}");
            std::process::exit(1);
        }
    }
}

/// An error and its causes on one line, each cause once.
pub fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .fold(String::new(), |mut acc, m| {
            if !acc.is_empty() && !acc.ends_with(&m) {
                acc.push_str(": ");
            }
            if !acc.ends_with(&m) {
                acc.push_str(&m);
            }
            acc
        })
}
