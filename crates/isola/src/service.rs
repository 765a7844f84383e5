//! `isola system service`: serves the Docker Engine API (the `api` crate)
//! on a unix socket, so that the docker CLI, compose and SDKs drive isola.
//! This module owns the socket: where it is, its owner and mode (root and
//! group `isola`, 0660: whoever may use it may run containers, which is as
//! good as root), refusing TCP but on loopback, and removing the socket at
//! exit; or, under systemd's socket activation (`--listen fd://`, as
//! dockerd's `-H fd://` with docker.socket), the socket systemd made and
//! owns. Containers do not depend on the service: their monitors own them.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

/// The group whose members may use the socket.
const GROUP: &str = "isola";

#[derive(Debug, clap::Args)]
pub struct ServiceArgs {
    /// Where to listen: unix:///path, fd:// (the socket systemd passes, see
    /// contrib/systemd/isola.socket), or tcp://127.0.0.1:PORT (dangerous:
    /// anyone on this host who can reach the port is root).
    #[arg(long, default_value = "unix:///run/isola/docker.sock")]
    pub listen: String,
    /// Exit after this many seconds without a request or an open stream (0: never).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
}

#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// Serve the Docker Engine API (docker, compose and SDKs drive isola through it).
    Service(ServiceArgs),
    /// Show what images, containers and volumes take on disk.
    Df(crate::system::DfArgs),
    /// Remove stopped containers, unused networks, dangling (or with -a
    /// unused) images, and with --volumes unused anonymous volumes.
    Prune(crate::system::PruneArgs),
}

enum Listen {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
    /// The listening socket systemd passed (LISTEN_FDS/LISTEN_PID).
    Systemd,
}

fn parse_listen(value: &str) -> anyhow::Result<Listen> {
    if value == "fd://" {
        return Ok(Listen::Systemd);
    }
    if let Some(path) = value.strip_prefix("unix://") {
        if !path.starts_with('/') {
            bail!("invalid --listen {value:?}: a unix socket needs an absolute path (unix:///run/isola/docker.sock)");
        }
        return Ok(Listen::Unix(path.into()));
    }
    if let Some(addr) = value.strip_prefix("tcp://") {
        let addr: std::net::SocketAddr = addr.parse().with_context(|| {
            format!("invalid --listen {value:?}: expected tcp://127.0.0.1:PORT")
        })?;
        if addr.ip() != std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST) {
            bail!("refusing --listen {value:?}: the Docker API has no authentication, and whoever reaches it is root on this host; isola listens on TCP only at 127.0.0.1 (use a unix socket, or an SSH tunnel to one)");
        }
        return Ok(Listen::Tcp(addr));
    }
    bail!("invalid --listen {value:?}: expected unix:///path, fd:// or tcp://127.0.0.1:PORT")
}

/// The gid of group `isola`, made (as a system group) if missing.
fn socket_group() -> anyhow::Result<nix::unistd::Gid> {
    if let Some(g) = nix::unistd::Group::from_name(GROUP)? {
        return Ok(g.gid);
    }
    let status = std::process::Command::new("groupadd")
        .args(["--system", GROUP])
        .status()
        .context("running groupadd --system isola")?;
    if !status.success() {
        // Another service may have made it meanwhile.
        if nix::unistd::Group::from_name(GROUP)?.is_none() {
            bail!("groupadd --system {GROUP} failed ({status})");
        }
    }
    nix::unistd::Group::from_name(GROUP)?
        .map(|g| g.gid)
        .with_context(|| format!("group {GROUP} is missing after groupadd"))
}

/// Binds the unix socket: a stale socket of an earlier service is
/// replaced, a live one (or anything else at the path) is refused.
fn bind_unix(path: &Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!("{} is in use by another service", path.display());
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale socket {}", path.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket: refusing to replace it",
            path.display()
        ),
        Err(_) => {}
    }
    let gid = socket_group()?;
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), Some(gid))
        .with_context(|| format!("giving {} to group {GROUP}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The listening unix socket systemd passed, by sd_listen_fds(3)'s rules:
/// fds from 3 on, counted by LISTEN_FDS, meant for us only if LISTEN_PID is
/// our pid. listenfd reads them (and marks the fd close-on-exec, so the
/// containers' monitors do not hold the API's socket open), but it also
/// takes a missing LISTEN_PID as "ours" (for proxies such as systemfd);
/// systemd's rule is stricter and we keep it, so that a stray LISTEN_FDS
/// inherited from some parent never makes us adopt an unrelated fd 3. Call
/// it before any thread starts: listenfd unsets the variables, as
/// sd_listen_fds(unset_environment=1) does.
fn inherited_unix() -> anyhow::Result<std::os::unix::net::UnixListener> {
    let not_passed = "--listen fd:// needs the socket systemd passes (LISTEN_FDS and LISTEN_PID for this process): start the service through isola.socket, or listen with --listen unix:///path";
    if std::env::var_os("LISTEN_PID").is_none_or(|p| p.is_empty()) {
        bail!("{not_passed}");
    }
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        bail!("{not_passed}");
    }
    if fds.len() > 1 {
        // isola.socket has one ListenStream; more are a unit edited by hand.
        tracing::warn!(
            "systemd passed {} sockets; serving the first only",
            fds.len()
        );
    }
    let listener = fds
        .take_unix_listener(0)
        .context("the socket systemd passed as fd 3 is not a listening unix stream socket (check ListenStream= in isola.socket)")?
        .with_context(|| not_passed.to_string())?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Removes the socket when the service ends, however it ends.
struct SocketFile(Option<PathBuf>);

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

pub fn run(root: &Path, cmd: SystemCommand) -> anyhow::Result<u8> {
    let args = match cmd {
        SystemCommand::Service(args) => args,
        SystemCommand::Df(a) => return crate::system::df(&engine::Engine::open(root)?, a),
        SystemCommand::Prune(a) => return crate::system::prune(&engine::Engine::open(root)?, a),
    };
    let listen = parse_listen(&args.listen)?;
    // Before the runtime's threads start (inherited_unix edits the environment).
    let inherited = match listen {
        Listen::Systemd => Some(inherited_unix()?),
        _ => None,
    };
    let engine = engine::Engine::open(root)?;
    let opts = api::Options {
        idle_timeout: (args.timeout > 0).then(|| Duration::from_secs(args.timeout)),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the service's runtime")?;
    let mut socket = SocketFile(None);
    let served = match listen {
        Listen::Unix(path) => {
            let std_listener = bind_unix(&path)?;
            socket.0 = Some(path.clone());
            tracing::info!("serving the Docker API on unix://{}", path.display());
            rt.block_on(async {
                let listener = tokio::net::UnixListener::from_std(std_listener)?;
                until_signal(api::serve(listener, engine, opts)).await
            })
        }
        Listen::Systemd => {
            // systemd made the socket and removes it: no SocketFile here.
            let std_listener = inherited.context("the socket systemd passed")?;
            tracing::info!("serving the Docker API on the socket systemd passed");
            rt.block_on(async {
                let listener = tokio::net::UnixListener::from_std(std_listener)?;
                until_signal(api::serve(listener, engine, opts)).await
            })
        }
        Listen::Tcp(addr) => {
            eprintln!("isola: warning: serving the Docker API on tcp://{addr} without authentication: every local user who can connect to it is root on this host");
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                until_signal(api::serve(listener, engine, opts)).await
            })
        }
    };
    drop(socket);
    served?;
    Ok(0)
}

/// Runs the service until it ends or SIGINT/SIGTERM arrives.
async fn until_signal(
    serve: impl std::future::Future<Output = Result<(), api::ServeError>>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        r = serve => Ok(r?),
        _ = term.recv() => Ok(()),
        _ = int.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_is_refused_but_on_loopback() {
        assert!(matches!(
            parse_listen("tcp://127.0.0.1:2375"),
            Ok(Listen::Tcp(_))
        ));
        let e = parse_listen("tcp://0.0.0.0:2375")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("root on this host"), "{e}");
        assert!(parse_listen("unix://relative.sock").is_err());
        assert!(matches!(
            parse_listen("unix:///run/x.sock"),
            Ok(Listen::Unix(_))
        ));
        assert!(matches!(parse_listen("fd://"), Ok(Listen::Systemd)));
    }
}
