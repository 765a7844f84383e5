//! socket: the engine's unix-socket servers (the monitor's, the VM control
//! socket) are private: the socket file is 0600 whatever the umask, its
//! directory 0700, and a connection whose peer is neither root nor the
//! server's own uid is closed unanswered (SO_PEERCRED). It knows nothing
//! of what is spoken over them.

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

/// Binds `name` in the directory `dir` (made 0700 if looser), replacing a
/// stale socket, and makes the socket 0600. The path is formed through
/// /proc/self/fd, so that a long `dir` still fits sun_path.
pub fn bind_private(dir: &Path, name: &str) -> std::io::Result<UnixListener> {
    runtime::private_dir(dir)?;
    let d = std::fs::File::open(dir)?;
    let path = format!("/proc/self/fd/{}/{name}", d.as_raw_fd());
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    // bind(2) applies the umask; the directory keeps others out meanwhile.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Whether the peer of `conn` may talk to this server: root, or the uid
/// this process runs as.
pub fn peer_allowed(conn: &UnixStream) -> bool {
    match getsockopt(conn, PeerCredentials) {
        Ok(cred) => {
            let me = nix::unistd::geteuid().as_raw();
            let allowed = cred.uid() == 0 || cred.uid() == me;
            if !allowed {
                tracing::warn!(
                    uid = cred.uid(),
                    pid = cred.pid(),
                    "refused a connection from another user"
                );
            }
            allowed
        }
        Err(_) => false,
    }
}

/// The connections of `listener` whose peers [`peer_allowed`] admits.
pub fn allowed_incoming(listener: &UnixListener) -> impl Iterator<Item = UnixStream> + '_ {
    listener.incoming().flatten().filter(peer_allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_is_0600_in_a_0700_dir_and_admits_its_own_uid() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("c");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let listener = bind_private(&dir, "s.sock").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("s.sock")), 0o600);
        let _client = UnixStream::connect(dir.join("s.sock")).unwrap();
        let (conn, _) = listener.accept().unwrap();
        assert!(peer_allowed(&conn));
    }
}
