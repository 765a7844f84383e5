//! console: the container's terminal. A pty is opened inside the container
//! (its devpts), the slave becomes stdio and the controlling terminal, and
//! the master goes out: over the `--console-socket` (runc's protocol: one
//! message, the name as payload, the fd as SCM_RIGHTS) or back to the caller.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::stat::Mode;
use oci_spec::runtime::Process;

use crate::init::SetupError;
use crate::sync::{Channel, Message};
use crate::sys;

/// Where the pty master goes.
enum MasterSink<'a> {
    Socket(RawFd),
    Parent(&'a Channel),
}

/// The terminal `process` asks for, if any, as the init and exec both set
/// it up: the master goes over `socket`, or back over `chan` when
/// `to_parent`; `socket` is closed afterwards either way.
pub fn setup_for(
    process: &Process,
    socket: Option<RawFd>,
    to_parent: bool,
    chan: &Channel,
    bind_console: bool,
) -> Result<(), SetupError> {
    if process.terminal().unwrap_or(false) {
        let sink = match socket {
            Some(fd) => MasterSink::Socket(fd),
            None if to_parent => MasterSink::Parent(chan),
            None => return Err(SetupError::NoConsoleSocket),
        };
        let size = process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        setup(sink, process.user().uid(), size, bind_console)?;
    }
    if let Some(fd) = socket {
        let _ = nix::unistd::close(fd);
    }
    Ok(())
}

/// Opens a pty, hands out the master, and makes the slave this process's
/// stdio and controlling terminal. `bind_console`: also bind it over /dev/console.
fn setup(
    sink: MasterSink<'_>,
    uid: u32,
    size: Option<(u16, u16)>,
    bind_console: bool,
) -> Result<(), SetupError> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| SetupError::path("open", "/dev/ptmx", e))?;
    grantpt(&master).map_err(|e| SetupError::sys("grantpt", e))?;
    unlockpt(&master).map_err(|e| SetupError::sys("unlockpt", e))?;
    let name = ptsname_r(&master).map_err(|e| SetupError::sys("ptsname", e))?;
    let slave: OwnedFd = nix::fcntl::open(
        Path::new(&name),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SetupError::path("open", &name, e))?;
    nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(uid)), None)
        .map_err(|e| SetupError::path("chown", &name, e))?;
    if let Some((rows, cols)) = size {
        if rows > 0 && cols > 0 {
            sys::set_winsize(slave.as_raw_fd(), rows, cols)
                .map_err(|e| SetupError::path("set window size of", &name, e))?;
        }
    }
    if bind_console {
        let console = Path::new("/dev/console");
        if !console.exists() {
            std::fs::File::create(console).map_err(|e| SetupError::Io {
                op: "create",
                path: console.into(),
                source: e,
            })?;
        }
        mount(
            Some(Path::new(&name)),
            console,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| SetupError::mount("bind the pty over", console, e))?;
    }
    let master_fd = master.as_raw_fd();
    match sink {
        MasterSink::Socket(sock) => {
            // SAFETY: `sock` is the console socket fd the parent passed in;
            // it stays open for the duration of this call.
            let sock = unsafe { BorrowedFd::borrow_raw(sock) };
            sys::send_with_fds(sock, b"/dev/ptmx", &[master_fd])
                .map_err(|e| SetupError::sys("send the pty master over the console socket", e))?;
        }
        MasterSink::Parent(chan) => chan.send_with_fds(&Message::ConsoleMaster, &[master_fd])?,
    }
    drop(master);
    for n in 0..3 {
        sys::dup2(slave.as_raw_fd(), n)
            .map_err(|e| SetupError::sys(format!("dup2 pty onto fd {n}"), e))?;
    }
    sys::set_controlling_terminal(0)
        .map_err(|e| SetupError::sys("make the pty the controlling terminal", e))?;
    Ok(())
}
