//! sync: the message channel between the runtime (parent) and the processes
//! it forks while creating a container or an exec. One SOCK_SEQPACKET pair,
//! one JSON message per packet, file descriptors passed alongside. It carries
//! no policy: create.rs and exec.rs decide the order of messages.

use std::os::fd::{AsFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::sys;

/// What the parent and its children tell each other.
#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// Go on with the next step.
    Continue,
    /// Child → parent: I unshared a user namespace; write my uid/gid maps.
    WriteIdMaps,
    /// Intermediate child → parent: the container process has this host pid.
    InitPid(i32),
    /// Init → parent: run the prestart and createRuntime hooks now.
    RunCreateRuntimeHooks,
    /// Parent → init: the OCI state to hand to hooks run inside the container.
    HookState(String),
    /// Init → parent: the pty master (passed as an fd with this message).
    ConsoleMaster,
    /// Init or exec'd process → parent: the seccomp notify listener fd
    /// (passed with this message), for linux.seccomp.listenerPath; the
    /// parent answers Continue once it has passed it on.
    SeccompFd,
    /// Init → parent: set up and blocked until start (or, for exec, about to execve).
    Ready,
    /// Child → parent: setup failed; the error chain, already joined.
    Failed(String),
}

/// One end of the channel.
pub struct Channel {
    fd: OwnedFd,
}

/// Why a message could not be passed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("create the sync socket pair")]
    Socketpair(#[source] Errno),
    #[error("send {what} to the other side")]
    Send {
        what: &'static str,
        #[source]
        source: Errno,
    },
    #[error("receive a message")]
    Recv(#[source] Errno),
    #[error("the other side exited without a word")]
    Closed,
    #[error("malformed message")]
    Decode(#[source] serde_json::Error),
}

const MAX_MESSAGE: usize = 1 << 16;

impl Channel {
    /// A connected pair: (parent's end, child's end). Both are close-on-exec.
    pub fn pair() -> Result<(Channel, Channel), Error> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(Error::Socketpair)?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn send(&self, msg: &Message) -> Result<(), Error> {
        self.send_with_fds(msg, &[])
    }

    pub fn send_with_fds(&self, msg: &Message, fds: &[RawFd]) -> Result<(), Error> {
        let data = serde_json::to_vec(msg).map_err(Error::Decode)?;
        sys::send_with_fds(self.fd.as_fd(), &data, fds).map_err(|source| Error::Send {
            what: message_name(msg),
            source,
        })
    }

    /// Receives the next message and any fds sent with it.
    pub fn recv(&self) -> Result<(Message, Vec<OwnedFd>), Error> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (n, fds) = loop {
            match sys::recv_with_fds(self.fd.as_fd(), &mut buf) {
                Err(Errno::EINTR) => continue,
                r => break r.map_err(Error::Recv)?,
            }
        };
        if n == 0 {
            return Err(Error::Closed);
        }
        let msg = serde_json::from_slice(&buf[..n]).map_err(Error::Decode)?;
        Ok((msg, fds))
    }
}

fn message_name(msg: &Message) -> &'static str {
    match msg {
        Message::Continue => "continue",
        Message::WriteIdMaps => "write-id-maps",
        Message::InitPid(_) => "init-pid",
        Message::RunCreateRuntimeHooks => "run-hooks",
        Message::HookState(_) => "hook-state",
        Message::ConsoleMaster => "console-master",
        Message::SeccompFd => "seccomp-fd",
        Message::Ready => "ready",
        Message::Failed(_) => "failure",
    }
}
