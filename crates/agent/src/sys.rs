//! sys: the agent's few raw syscalls that nix does not wrap with the features
//! the workspace enables (reboot, interface flags and addresses, poll over
//! raw fds, the SIGCHLD self-pipe, terminal size, FITRIM). Every unsafe block of the
//! agent is here.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// Mixes `entropy` into the kernel's input pool (a write to /dev/urandom) and
/// has the CRNG reseed from it at once (RNDRESEEDCRNG), so that what the
/// guest generates from now on differs from any other copy of this memory.
pub fn reseed_random(entropy: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut urandom = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/urandom")?;
    urandom.write_all(entropy)?;
    /// `_IO('R', 0x07)` from <linux/random.h>.
    const RNDRESEEDCRNG: libc::c_ulong = 0x5207;
    // SAFETY: RNDRESEEDCRNG takes no argument; the fd is open for the call.
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&urandom), RNDRESEEDCRNG) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Powers the VM off (QEMU exits: the kernel has `reboot=t`, QEMU `-no-reboot`).
pub fn power_off() -> io::Error {
    // SAFETY: sync and reboot take no pointers; reboot only returns on failure.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    io::Error::last_os_error()
}

/// Flushes the filesystem mounted at `dir` to its disk (syncfs).
pub fn sync_fs(dir: &str) -> io::Result<()> {
    let f = std::fs::File::open(dir)?;
    nix::unistd::syncfs(&f)?;
    Ok(())
}

/// Has the filesystem mounted at `dir` discard every free block (FITRIM,
/// what fstrim(8) does): the disk under it drops them.
pub fn trim(dir: &str) -> io::Result<()> {
    /// linux/fs.h `struct fstrim_range`.
    #[repr(C)]
    struct FstrimRange {
        start: u64,
        len: u64,
        minlen: u64,
    }
    /// `_IOWR('X', 121, struct fstrim_range)` from <linux/fs.h>.
    const FITRIM: libc::c_ulong = 0xC018_5879;
    let f = std::fs::File::open(dir)?;
    let mut range = FstrimRange {
        start: 0,
        len: u64::MAX,
        minlen: 0,
    };
    // SAFETY: the fd is open for the call and `range` outlives it.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), FITRIM, &mut range as *mut FstrimRange) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets IFF_UP on the interface `name` (loopback here; there is no `ip` in the guest).
pub fn interface_up(name: &str) -> io::Result<()> {
    // SAFETY: socket() takes no pointers; the fd is owned right after.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    // SAFETY: req is a valid ifreq that outlives the call; SIOCGIFFLAGS fills ifru_flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS just wrote the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS reads the flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// poll(2) over raw descriptors; EINTR counts as "nothing ready".
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `fds`, which outlives the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(err);
    }
    Ok(n as usize)
}

static SIGCHLD_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigchld(_: libc::c_int) {
    let fd = SIGCHLD_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the byte is a static. A full
        // pipe (EAGAIN) is fine: the loop is woken already.
        unsafe { libc::write(fd, b"c".as_ptr().cast(), 1) };
    }
}

/// Makes SIGCHLD write a byte to a non-blocking pipe and returns its read end,
/// so the poll loop wakes when a child exits (no signal mask games that the
/// container processes would inherit).
pub fn sigchld_pipe() -> io::Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
        .map_err(io::Error::from)?;
    SIGCHLD_PIPE.store(w.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(w); // lives as long as the agent
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_sigchld),
        nix::sys::signal::SaFlags::SA_RESTART | nix::sys::signal::SaFlags::SA_NOCLDSTOP,
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only calls write(2), which is async-signal-safe.
    unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGCHLD, &action) }
        .map_err(io::Error::from)?;
    Ok(r)
}

/// Sets a terminal's size (the pty master of a `terminal: true` process).
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ws is a valid winsize that outlives the call.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An AF_INET datagram socket for interface and route ioctls.
fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers; the fd is owned right after.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

fn sockaddr_in(addr: std::net::Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the kernel reads
    // the family to know which one it is.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Gives the interface `name` its address, netmask and MTU, and brings it
/// up. With ioctls rather than netlink: the agent is a static PID 1 whose
/// whole network work is these four calls and a route, and the classic
/// ioctls need no netlink library inside the guest.
pub fn configure_interface(
    name: &str,
    addr: std::net::Ipv4Addr,
    prefix_len: u8,
    mtu: u32,
) -> io::Result<()> {
    let sock = inet_socket()?;
    let request = || {
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req
            .ifr_name
            .iter_mut()
            .zip(name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *dst = src as libc::c_char;
        }
        req
    };
    let ioctl = |op: libc::c_ulong, req: &mut libc::ifreq| -> io::Result<()> {
        // SAFETY: req is a valid ifreq for `op` that outlives the call.
        if unsafe { libc::ioctl(sock.as_raw_fd(), op, req as *mut libc::ifreq) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    let mut req = request();
    req.ifr_ifru.ifru_mtu = mtu as libc::c_int;
    ioctl(libc::SIOCSIFMTU, &mut req)?;
    let mut req = request();
    req.ifr_ifru.ifru_addr = sockaddr_in(addr);
    ioctl(libc::SIOCSIFADDR, &mut req)?;
    let mask = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len))
    };
    let mut req = request();
    req.ifr_ifru.ifru_netmask = sockaddr_in(std::net::Ipv4Addr::from(mask));
    ioctl(libc::SIOCSIFNETMASK, &mut req)?;
    interface_up(name)
}

/// Sets the Ethernet address of the interface `name` (SIOCSIFHWADDR).
pub fn set_hardware_address(name: &str, mac: [u8; 6]) -> io::Result<()> {
    let sock = inet_socket()?;
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    let mut addr = libc::sockaddr {
        sa_family: libc::ARPHRD_ETHER,
        sa_data: [0; 14],
    };
    for (dst, src) in addr.sa_data.iter_mut().zip(mac) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_hwaddr = addr;
    // SAFETY: SIOCSIFHWADDR reads the ifreq we own, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFHWADDR, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Adds the default route via `gateway`.
pub fn add_default_route(gateway: std::net::Ipv4Addr) -> io::Result<()> {
    let sock = inet_socket()?;
    // SAFETY: rtentry is plain data; all-zero is a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_in(std::net::Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr_in(std::net::Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr_in(gateway);
    rt.rt_flags = (libc::RTF_UP | libc::RTF_GATEWAY) as libc::c_ushort;
    // SAFETY: SIOCADDRT reads the rtentry we own, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT, &mut rt) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
