//! guest: prepares the utility VM as PID 1 must — the kernel filesystems,
//! cgroups, loopback — and finds the virtio-serial port the host listens on;
//! on the host's Init it makes the VM its own (entropy, clock) and mounts the
//! container rootfs: shared from the host over virtio-9p, or the image and
//! writable-layer disks overlaid here.
//! It must not serve the protocol or start containers.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};

use crate::sys;

/// The 9p mount tag the host gives the rootfs share.
pub const ROOTFS_TAG: &str = "rootfs";
/// Name of the virtio-serial port (QEMU `virtserialport,name=`).
pub const PORT_NAME: &str = "isola.agent";

/// Mounts what the guest and the in-guest runtime need.
pub fn setup() -> Result<()> {
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", "/proc", "proc", nodev, None)?;
    mount_fs("sysfs", "/sys", "sysfs", nodev, None)?;
    // devtmpfs may be mounted by the kernel already (CONFIG_DEVTMPFS_MOUNT
    // does not apply to an initramfs root, but be tolerant).
    if !Path::new("/dev/null").exists() {
        mount_fs(
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            Some("mode=0755"),
        )?;
    }
    mount_fs(
        "devpts",
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    if !Path::new("/dev/ptmx").exists() {
        std::os::unix::fs::symlink("pts/ptmx", "/dev/ptmx").context("link /dev/ptmx")?;
    }
    mount_fs("shm", "/dev/shm", "tmpfs", nodev, Some("mode=1777"))?;
    mount_fs(
        "tmpfs",
        "/tmp",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    mount_fs(
        "tmpfs",
        "/run",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )?;
    // cgroup v2: one tree, every controller the guest kernel has; the runtime
    // enables them down to each container's group.
    mount_fs("cgroup2", "/sys/fs/cgroup", "cgroup2", nodev, None)?;
    // The VM's memory is the container's: let its writes stay in the page
    // cache (the writable disk's writeback under TCG costs more than the
    // copy), flushed in the background past half of memory, at the
    // latest after the kernel's 30 s expiry, and at power-off.
    for (knob, value) in [
        ("/proc/sys/vm/dirty_background_ratio", "50"),
        ("/proc/sys/vm/dirty_ratio", "80"),
    ] {
        if let Err(e) = fs::write(knob, value) {
            eprintln!("isola-agent: cannot set {knob}: {e}");
        }
    }
    if let Err(e) = sys::interface_up("lo") {
        eprintln!("isola-agent: cannot bring up lo: {e}");
    }
    Ok(())
}

/// The host's Init: what makes this VM its own, whether it booted or was
/// restored from a template (a copy of another VM's memory) — fresh entropy
/// mixed into the random pool and a reseed, the host's clock — and the
/// container rootfs, mounted only now so that a template never has it.
pub fn init(entropy: &[u8], unix_time_ns: u64, rootfs: proto::RootfsSource) -> Result<()> {
    sys::reseed_random(entropy).context("reseed the guest's random number generator")?;
    let now = nix::sys::time::TimeSpec::new(
        (unix_time_ns / 1_000_000_000) as i64,
        (unix_time_ns % 1_000_000_000) as i64,
    );
    nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, now)
        .context("set the guest's clock")?;
    if !is_mounted(proto::GUEST_ROOTFS) {
        match rootfs {
            proto::RootfsSource::Share => mount_9p(ROOTFS_TAG, proto::GUEST_ROOTFS, false)?,
            proto::RootfsSource::Disks => mount_disks()?,
        }
    }
    Ok(())
}

/// Where the image disk and the writable-layer disk are mounted.
const IMAGE_MOUNT: &str = "/run/isola/image";
const WRITABLE_MOUNT: &str = "/run/isola/writable";

/// Mounts the image disk (EROFS, read-only) and the writable-layer disk
/// (ext4) and overlays them at [`proto::GUEST_ROOTFS`]: the image's files
/// come from the guest's page cache once read, and writes stay in the guest
/// until the disk is flushed, where 9p crosses to QEMU for each operation.
fn mount_disks() -> Result<()> {
    let image = disk_with_serial(proto::IMAGE_DISK_SERIAL)?;
    let writable = disk_with_serial(proto::WRITABLE_DISK_SERIAL)?;
    for dir in [IMAGE_MOUNT, WRITABLE_MOUNT, proto::GUEST_ROOTFS] {
        fs::create_dir_all(dir).with_context(|| format!("create {dir}"))?;
    }
    mount_fs(&image, IMAGE_MOUNT, "erofs", MsFlags::MS_RDONLY, None)?;
    // The disk's inode tables are sparse zeros on the host already: no
    // background thread zeroing them again (a TCG guest's CPU). Only
    // metadata is journaled (the disk is the container's alone: a block a
    // crash leaves unwritten holds its own old data or zeros), and times
    // are kept in memory between writes of their inode (lazytime).
    mount_fs(
        &writable,
        WRITABLE_MOUNT,
        "ext4",
        MsFlags::MS_LAZYTIME,
        Some("noinit_itable,data=writeback"),
    )?;
    if let (Some(name), Ok(free)) = (Path::new(&writable).file_name(), free_bytes(WRITABLE_MOUNT)) {
        let _ = WRITABLE_AT_MOUNT.set((name.to_string_lossy().into_owned(), free));
    }
    let upper = format!("{WRITABLE_MOUNT}/upper");
    let work = format!("{WRITABLE_MOUNT}/work");
    for dir in [&upper, &work] {
        if !Path::new(dir).is_dir() {
            fs::DirBuilder::new()
                .mode(0o755)
                .create(dir)
                .with_context(|| format!("create {dir}"))?;
        }
    }
    let opts = format!("lowerdir={IMAGE_MOUNT},upperdir={upper},workdir={work}");
    mount_fs(
        "overlay",
        proto::GUEST_ROOTFS,
        "overlay",
        MsFlags::empty(),
        Some(&opts),
    )
}

/// The /dev node of the virtio-blk disk whose serial is `serial`.
fn disk_with_serial(serial: &str) -> Result<String> {
    let entries = fs::read_dir("/sys/block").context("list /sys/block")?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let found = fs::read_to_string(entry.path().join("serial"))
            .is_ok_and(|s| s.trim_end_matches(['\n', '\0']) == serial);
        if found {
            return Ok(format!("/dev/{name}"));
        }
    }
    bail!("no disk with serial {serial}")
}

/// The writable disk's device name and free bytes when it was mounted.
static WRITABLE_AT_MOUNT: OnceLock<(String, u64)> = OnceLock::new();

/// How much more than its growth a session may have written before its
/// end trims the writable disk.
const TRIM_AFTER_BYTES: u64 = 16 << 20;

/// The free bytes of the filesystem mounted at `dir`.
fn free_bytes(dir: &str) -> Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).with_context(|| format!("statvfs {dir}"))?;
    Ok(st.blocks_free() as u64 * st.fragment_size() as u64)
}

/// Gives the blocks that the container freed on its writable disk back to
/// the host (the drive has discard=unmap) when it freed any to speak of:
/// the bytes this session wrote plus what is free now, beyond what was free
/// at mount, is what was deleted or rewritten. A trim walks every block
/// group of the 64 GiB disk (about 0.3 s under TCG), which online discard
/// would instead pay at each delete; a session that only added files skips it.
fn trim_writable_if_freed() {
    // Set once the disk is mounted (nothing else unmounts it).
    let Some((dev, free_at_mount)) = WRITABLE_AT_MOUNT.get() else {
        return;
    };
    if sys::sync_fs(WRITABLE_MOUNT).is_err() {
        return;
    }
    let written = fs::read_to_string(format!("/sys/fs/ext4/{dev}/session_write_kbytes"))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let (Some(written), Ok(free)) = (written, free_bytes(WRITABLE_MOUNT)) else {
        return;
    };
    if (written * 1024 + free).saturating_sub(*free_at_mount) > TRIM_AFTER_BYTES {
        let _ = sys::trim(WRITABLE_MOUNT);
    }
}

/// Unmounts the container rootfs and the disks under it, so the writable
/// layer's disk is clean when the VM powers off (and trimmed, when the
/// container freed space on it); best effort.
pub fn unmount_rootfs() {
    trim_writable_if_freed();
    for dir in [proto::GUEST_ROOTFS, WRITABLE_MOUNT, IMAGE_MOUNT] {
        if is_mounted(dir) {
            let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Whether something is mounted on `path` (a second Init must not stack a mount).
fn is_mounted(path: &str) -> bool {
    fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(path))
}

/// Mounts the host's 9p share `tag` on `target`.
pub fn mount_9p(tag: &str, target: &str, read_only: bool) -> Result<()> {
    let flags = if read_only {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    mount_fs(tag, target, "9p", flags, Some(NINEP_OPTIONS))
}

/// Where binfmt_misc is mounted in the guest.
const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// Registers `line` (`:name:M::magic:mask:interpreter:flags`) with the
/// guest's binfmt_misc, mounting it first; an entry of that name already
/// there is kept (a second container of the VM's architecture).
pub fn register_binfmt(line: &str) -> Result<()> {
    let name = line.split(':').nth(1).unwrap_or_default();
    if name.is_empty() || name.contains('/') {
        anyhow::bail!("invalid binfmt_misc line {line:?}");
    }
    if !Path::new(BINFMT_MISC).join("register").exists() {
        mount_fs(
            "binfmt_misc",
            BINFMT_MISC,
            "binfmt_misc",
            MsFlags::empty(),
            None,
        )?;
    }
    if Path::new(BINFMT_MISC).join(name).exists() {
        return Ok(());
    }
    fs::write(Path::new(BINFMT_MISC).join("register"), line)
        .with_context(|| format!("register {name} with binfmt_misc"))
}

/// 9p over virtio, Linux dialect; `cache=mmap` so programs can mmap files
/// (the loader does) while the host's view stays authoritative.
const NINEP_OPTIONS: &str = "trans=virtio,version=9p2000.L,cache=mmap,msize=524288";

fn mount_fs(
    src: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    fs::create_dir_all(target).with_context(|| format!("create {target}"))?;
    mount(Some(src), target, Some(fstype), flags, data)
        .with_context(|| format!("mount {fstype} on {target}"))
}

/// The /dev node of the virtio-serial port named [`PORT_NAME`], found through
/// /sys/class/virtio-ports/*/name (there is no udev to make the by-name link).
/// Waits up to `timeout` for the device to probe.
pub fn find_port(timeout: Duration) -> Result<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(entries) = fs::read_dir("/sys/class/virtio-ports") {
            for entry in entries.flatten() {
                let name = fs::read_to_string(entry.path().join("name")).unwrap_or_default();
                if name.trim() == PORT_NAME {
                    let dev = Path::new("/dev").join(entry.file_name());
                    if dev.exists() {
                        return Ok(dev);
                    }
                }
            }
        }
        if Instant::now() > deadline {
            bail!("no virtio-serial port named {PORT_NAME} appeared within {timeout:?} (is QEMU started with -device virtserialport,name={PORT_NAME}?)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The guest kernel's release (uname -r), for the Hello answer.
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Milliseconds since the guest booted, as /proc/uptime says (0 if unreadable).
pub fn uptime_ms() -> u64 {
    fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |secs| (secs * 1000.0) as u64)
}

/// The host's Network call: the guest's NIC gets the MAC, address, prefix
/// and MTU of the container's veth on the host, and the default route via
/// the network's gateway. A VM restored from a template has the template's
/// NIC, with the template's MAC: the NIC is then the one interface backed
/// by a device, and takes the veth's MAC here (virtio-net tells QEMU, whose
/// receive filter then passes frames for it).
pub fn configure_network(
    mac: &str,
    address: std::net::Ipv4Addr,
    prefix_len: u8,
    gateway: Option<std::net::Ipv4Addr>,
    mtu: u32,
) -> Result<()> {
    let wanted = parse_mac(mac).with_context(|| format!("invalid MAC address {mac:?}"))?;
    let mut by_mac = None;
    let mut devices = Vec::new();
    for entry in fs::read_dir("/sys/class/net").context("list /sys/class/net")? {
        let entry = entry.context("list /sys/class/net")?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let found = fs::read_to_string(entry.path().join("address")).unwrap_or_default();
        if parse_mac(found.trim()) == Some(wanted) {
            by_mac = Some(name.clone());
        }
        // lo, sit0 and the like are virtual: no device under them.
        if entry.path().join("device").exists() {
            devices.push(name);
        }
    }
    let name = match (by_mac, devices.as_slice()) {
        (Some(name), _) => name,
        (None, [only]) => {
            sys::set_hardware_address(only, wanted)
                .with_context(|| format!("set the MAC address of {only} to {mac}"))?;
            only.clone()
        }
        (None, _) => bail!(
            "no network interface with MAC {mac} in the guest, and not one other NIC but {devices:?}"
        ),
    };
    sys::configure_interface(&name, address, prefix_len, mtu)
        .with_context(|| format!("configure {name} with {address}/{prefix_len}"))?;
    if let Some(gw) = gateway {
        sys::add_default_route(gw).with_context(|| format!("add the default route via {gw}"))?;
    }
    Ok(())
}

/// `aa:bb:cc:dd:ee:ff` (either case) as bytes.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod network_tests {
    use super::parse_mac;

    #[test]
    fn macs_parse_in_either_case_and_nothing_else_does() {
        let mac = [0x02, 0x42, 0xac, 0x11, 0x00, 0x0a];
        assert_eq!(parse_mac("02:42:ac:11:00:0a"), Some(mac));
        assert_eq!(parse_mac("02:42:AC:11:00:0A"), Some(mac));
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:0a:01",
            "2:42:ac:11:00:0a",
            "zz:42:ac:11:00:0a",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }
}
