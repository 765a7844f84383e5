//! The registry commands: `pull`, `login`, `logout`. Parses their flags and
//! prints results; `pull` goes through the engine, the rest is still
//! `image::registry`'s.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context};
use engine::images::{Platform, ProgressMode, ProgressStream, PullRequest};
use image::registry::{self, AuthStore, Credentials, Transport};

#[derive(Debug, clap::Subcommand)]
pub enum RegistryCommand {
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Log in to a registry (credentials are checked, then kept in <root>/auth.json).
    Login(LoginArgs),
    /// Log out from a registry (forget its stored credentials).
    Logout {
        /// Registry, e.g. 127.0.0.1:5000.
        server: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Print only the image reference.
    #[arg(short, long)]
    quiet: bool,
    /// Platform to choose from a multi-platform image, os/arch[/variant]
    /// (default: the host's).
    #[arg(long)]
    platform: Option<String>,
    /// Allow plain HTTP to this registry (host:port); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// NAME[:TAG|@DIGEST], e.g. 127.0.0.1:5000/busybox:latest.
    name: String,
}

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[arg(short, long)]
    username: Option<String>,
    /// Password (visible to other users of this machine: prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Allow plain HTTP to this registry (host:port); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// Registry, e.g. 127.0.0.1:5000.
    server: String,
}

impl RegistryCommand {
    /// Runs the command; returns the process exit code.
    pub fn run(self, root: &Path) -> anyhow::Result<u8> {
        match self {
            RegistryCommand::Pull(args) => pull(root, args),
            RegistryCommand::Login(args) => login(root, args),
            RegistryCommand::Logout { server } => {
                let server = registry::normalize_server(&server);
                if registry::logout(&AuthStore::new(root), &server)? {
                    println!("Removing login credentials for {server}");
                } else {
                    println!("Not logged in to {server}");
                }
                Ok(0)
            }
        }
    }
}

fn pull(root: &Path, args: PullArgs) -> anyhow::Result<u8> {
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let engine = engine::Engine::open(root)?;
    let pulled = engine.pull(&PullRequest {
        reference: args.name,
        platform,
        insecure_registries: args.insecure_registries,
        progress: Some(ProgressMode::detect(args.quiet)),
        progress_stream: ProgressStream::Stdout,
    })?;
    println!("{}", pulled.reference);
    Ok(0)
}

fn login(root: &Path, args: LoginArgs) -> anyhow::Result<u8> {
    let username = match args.username {
        Some(u) => u,
        None if std::io::stdin().is_terminal() && !args.password_stdin => prompt("Username: ")?,
        None => bail!("login to {}: a username is required (-u)", args.server),
    };
    let password = if let Some(p) = args.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        bail!(
            "login to {}: give the password with --password-stdin (or -p)",
            args.server
        );
    };
    if password.is_empty() {
        bail!("login to {}: the password is empty", args.server);
    }
    let creds = Credentials { username, password };
    let auth = AuthStore::new(root);
    let transport = Transport::from_host(&args.insecure_registries)?;
    registry::login(&auth, &transport, &args.server, &creds)?;
    println!("Login Succeeded");
    Ok(0)
}

fn prompt(label: &str) -> anyhow::Result<String> {
    eprint!("{label}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}
