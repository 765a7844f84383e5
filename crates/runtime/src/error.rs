//! error: the error the runtime's public API returns. Each variant says what
//! failed and on what (id, path, field), and keeps the cause as `source`.

use std::path::PathBuf;

use crate::spec::SpecError;
use crate::{cgroups, hooks, seccomp, sync, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {id:?} does not exist")]
    NotFound { id: String },
    #[error("container {id:?} already exists")]
    AlreadyExists { id: String },
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("bundle {bundle}")]
    Spec {
        bundle: PathBuf,
        #[source]
        source: SpecError,
    },
    /// Worded as runc words it, because callers tell these apart by their
    /// words ("not stopped", "already running", "not paused").
    #[error("{}", wrong_status(.id, *.status, *.action))]
    WrongStatus {
        id: String,
        status: Status,
        action: Action,
    },
    /// Worded so containerd's shim recognises it ("container not running").
    #[error("container not running: {id:?} has stopped")]
    NotRunning { id: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}")]
    Sys {
        op: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("state file {path}")]
    StateFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cgroup of container {id:?}")]
    Cgroup {
        id: String,
        #[source]
        source: cgroups::Error,
    },
    #[error("seccomp profile")]
    Seccomp(#[source] seccomp::Error),
    #[error("talking to the container's setup process")]
    Sync(#[from] sync::Error),
    /// The container process reported a failure; it cannot send a typed error
    /// across the fork, so the chain comes as one line.
    #[error("container setup: {message}")]
    Setup { message: String },
    /// A child sent a message that has no place at this step of the setup.
    #[error("container setup: unexpected message from {who}: {got}")]
    UnexpectedMessage { who: &'static str, got: String },
    #[error(transparent)]
    Hook(#[from] hooks::Error),
    #[error("console socket {path}")]
    ConsoleSocket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The seccomp notify fd could not be handed to linux.seccomp.listenerPath.
    #[error("seccomp listener {path} (linux.seccomp.listenerPath)")]
    SeccompListener {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {seconds}s waiting for container {id:?} to {what}")]
    Timeout {
        id: String,
        what: &'static str,
        seconds: u64,
    },
}

/// What was asked of a container that is in the wrong status for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Pause,
    Resume,
    /// Delete without force.
    Delete,
    Exec,
}

fn wrong_status(id: &str, status: Status, action: Action) -> String {
    match (action, status) {
        (Action::Start, Status::Running | Status::Paused) => {
            format!("cannot start an already running container {id:?}")
        }
        (Action::Start, Status::Stopped) => {
            format!("cannot start a container that has stopped: {id:?}")
        }
        (Action::Pause, _) => format!("container not running: {id:?} is {status}"),
        (Action::Resume, _) => format!("container not paused: {id:?} is {status}"),
        (Action::Delete, _) => format!(
            "cannot delete container {id:?} that is not stopped: {status} (stop it, or use --force)"
        ),
        (Action::Exec, Status::Paused) => {
            format!("cannot exec in a paused container {id:?} (resume it, or use --ignore-paused)")
        }
        (Action::Exec, _) => format!("cannot exec in a {status} container {id:?}"),
        (Action::Start, _) => format!("cannot start container {id:?}: it is {status}"),
    }
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn cgroup(id: &str) -> impl FnOnce(cgroups::Error) -> Error {
        let id = id.to_string();
        move |source| Error::Cgroup { id, source }
    }

    pub(crate) fn sys(op: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> Error {
        let op = op.into();
        move |source| Error::Sys { op, source }
    }
}

/// Formats an error and its sources as one line, joined with ": ".
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let m = e.to_string();
        if !m.is_empty() && !s.ends_with(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = e.source();
    }
    s
}
