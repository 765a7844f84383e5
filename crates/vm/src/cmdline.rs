//! cmdline: the QEMU command line of a utility VM and the VM's sizing rules
//! (guest memory from the container's limit plus overhead, the host cgroup
//! limit for the QEMU process). Pure functions, unit-tested without QEMU.

use crate::accel::Accel;
use crate::{jail, Error};

/// Guest memory when the container sets no limit (`isola info` shows it).
pub const DEFAULT_GUEST_MEMORY_MIB: u64 = 128;
/// Added to a container's memory limit for the guest kernel, agent and page cache.
pub const GUEST_OVERHEAD_MIB: u64 = 64;
/// The smallest container memory limit a VM container accepts.
pub const MIN_CONTAINER_MEMORY_MIB: u64 = 32;
/// Added to the guest memory for QEMU itself in the host cgroup (device
/// emulation, 9p buffers) on top of the TCG translation cache.
pub const QEMU_HOST_OVERHEAD_MIB: u64 = 192;

/// The kernel command line. `tsc_early_khz` keeps TSC calibration from
/// hanging under TCG; `panic=-1 reboot=t` with QEMU's `-no-reboot` turn a
/// guest panic or power-off into QEMU exiting.
pub const KERNEL_CMDLINE: &str = "console=ttyS0 panic=-1 reboot=t tsc_early_khz=2000000 quiet";

/// Guest memory in MiB for a container memory limit in bytes (None: no limit).
pub fn guest_memory_mib(container_limit_bytes: Option<u64>) -> Result<u64, Error> {
    match container_limit_bytes {
        None => Ok(DEFAULT_GUEST_MEMORY_MIB),
        Some(bytes) => {
            let mib = bytes.div_ceil(1 << 20);
            if mib < MIN_CONTAINER_MEMORY_MIB {
                return Err(Error::MemoryTooSmall {
                    requested_mib: mib,
                    minimum_mib: MIN_CONTAINER_MEMORY_MIB,
                });
            }
            Ok(mib + GUEST_OVERHEAD_MIB)
        }
    }
}

/// vCPUs for a `--cpus` value (fractions round up; at least one).
pub fn guest_cpus(cpus: Option<f64>) -> u32 {
    cpus.map_or(1, |c| (c.ceil() as u32).max(1))
}

/// Memory limit of QEMU's host cgroup, in bytes.
pub fn host_memory_limit_bytes(guest_memory_mib: u64, accel: Accel) -> u64 {
    let tb = match accel {
        Accel::Tcg { tb_size_mib } => u64::from(tb_size_mib),
        Accel::Kvm => 0,
    };
    (guest_memory_mib + tb + QEMU_HOST_OVERHEAD_MIB) << 20
}

/// The QEMU process name for a container id: `isola-vm-` and the first six
/// characters of the id (the kernel keeps 15 bytes of a process name).
pub fn process_name(container_id: &str) -> String {
    let short: String = container_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(6)
        .collect();
    format!("isola-vm-{short}")
}

/// QEMU's own seccomp filter, for every VM (template VMs too): a
/// compromised device model cannot exec, raise privileges, change resource
/// controls or use obsolete syscalls. `elevateprivileges=deny` is safe here
/// because the jail drops privileges before exec (QEMU never `-runas`).
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// What one VM's command line is made from. Paths are those inside the
/// jail ([`crate::jail`]); sockets and the console are inherited fds.
pub struct QemuArgs<'a> {
    pub name: &'a str,
    pub process_name: &'a str,
    pub accel: Accel,
    pub memory_mib: u64,
    pub cpus: u32,
    /// The write end of the console pipe (QEMU's `-add-fd`).
    pub console_fd: i32,
    /// A listening unix socket for the agent's virtio-serial port.
    pub agent_fd: i32,
    /// A listening unix socket for QMP (template VMs only).
    pub qmp_fd: Option<i32>,
    pub shares: &'a [Share],
    /// The rootfs is two disks (image, writable layer) rather than the 9p
    /// share of a directory.
    pub disks: bool,
    /// A virtio-net device on an inherited tap descriptor, and its MAC.
    pub nic: Option<(i32, &'a str)>,
    /// How the machine starts: booted, booted to be saved as a template, or
    /// restored from one.
    pub start: StartMode<'a>,
}

/// How a VM's QEMU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode<'a> {
    /// Boot the kernel (the normal case).
    Boot,
    /// Boot the kernel, with QMP on a listening socket at `qmp` to save the
    /// machine through (`migrate` to a file descriptor QMP is given; a
    /// template VM runs only the agent, never a container).
    Template { qmp: &'a std::path::Path },
    /// Restore the machine saved in the file open on fd `fd` (inherited).
    Restore { fd: i32 },
}

/// A host directory shared into the guest with virtio-9p (a volume); the
/// agent mounts it on request ([`crate::AgentClient::mount_shares_and_create`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// 9p mount tag: 1-31 of `A-Z a-z 0-9 - _`, not `rootfs`.
    pub tag: String,
    pub host_path: std::path::PathBuf,
    pub read_only: bool,
    /// Share only these files of `host_path` (single-file binds): the
    /// guest sees none of their siblings. None: the whole directory.
    pub files: Option<Vec<String>>,
    /// A directory the host mounts into while the VM runs (a pod's
    /// containers' root filesystems, added after the VM booted): mounts
    /// made under it reach QEMU's jail, and the guest sees its files with
    /// their owners and modes, as the rootfs (9p passthrough). It must be
    /// a mount point with shared propagation on the host.
    pub live: bool,
}

impl Share {
    /// Checks the tag, and that a writable share's filesystem can keep the
    /// guest's file metadata in xattrs (mapped-xattr).
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_tag()?;
        if !self.read_only && !self.live {
            let path = std::ffi::CString::new(self.host_path.as_os_str().as_encoded_bytes())
                .unwrap_or_default();
            if !crate::sys::user_xattrs_supported(&path) {
                return Err(Error::ShareWithoutXattrs {
                    path: self.host_path.clone(),
                });
            }
        }
        Ok(())
    }

    fn validate_tag(&self) -> Result<(), Error> {
        let ok = !self.tag.is_empty()
            && self.tag.len() <= 31
            && self.tag != "rootfs"
            && self
                .tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidShareTag {
                tag: self.tag.clone(),
            })
        }
    }
}

/// QEMU option values separate with commas; a literal comma is doubled.
fn opt(v: &str) -> String {
    v.replace(',', ",,")
}

impl QemuArgs<'_> {
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |s: &[&str]| a.extend(s.iter().map(|x| x.to_string()));
        push(&[
            "-name",
            &format!(
                "guest={},process={}",
                opt(self.name),
                opt(self.process_name)
            ),
        ]);
        push(&["-M", "microvm,x-option-roms=off,rtc=on"]);
        match self.accel {
            Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
            Accel::Tcg { tb_size_mib } => push(&["-accel", &format!("tcg,tb-size={tb_size_mib}")]),
        }
        push(&[
            "-m",
            &format!("{}M", self.memory_mib),
            "-smp",
            &self.cpus.to_string(),
        ]);
        push(&[
            "-nodefaults",
            "-no-user-config",
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
        ]);
        push(&["-sandbox", SANDBOX]);
        match self.start {
            StartMode::Boot => {}
            StartMode::Template { .. } => {
                let qmp_fd = self.qmp_fd.unwrap_or(-1);
                push(&[
                    "-chardev",
                    &format!("socket,id=qmp,fd={qmp_fd},server=on,wait=off"),
                    "-mon",
                    "chardev=qmp,mode=control",
                ]);
            }
            StartMode::Restore { fd } => {
                push(&["-incoming", &format!("fd:{fd}")]);
                // No self-announcement once restored: a VM from a template
                // has not moved, nothing on its network has to relearn where
                // it is, and RARPs sent before the agent's Network call would
                // carry the template's MAC (seen: five RARPs, from the
                // container's MAC when they came after that call).
                push(&["-global", "migration.announce-rounds=0"]);
            }
        }
        push(&[
            "-kernel",
            jail::KERNEL,
            "-initrd",
            jail::INITRD,
            "-append",
            KERNEL_CMDLINE,
        ]);
        // The console goes into a pipe the host reads and caps
        // ([`crate::console`]); `append` because QEMU would truncate it.
        push(&[
            "-add-fd",
            &format!("fd={},set=1", self.console_fd),
            "-chardev",
            "file,id=console,path=/dev/fdset/1,append=on",
            "-serial",
            "chardev:console",
        ]);
        if self.disks {
            // Raw images through the host's page cache (shared by every VM
            // of the image); the guest finds each by its serial. What the
            // guest frees on the writable disk, QEMU punches out of the
            // host's file (discard=unmap): deleting files gives the space
            // back, as on the host's own filesystem in process mode.
            for (id, path, serial, opts) in [
                (
                    "image",
                    jail::IMAGE_DISK,
                    proto::IMAGE_DISK_SERIAL,
                    ",readonly=on",
                ),
                (
                    "writable",
                    jail::WRITABLE_DISK,
                    proto::WRITABLE_DISK_SERIAL,
                    ",discard=unmap",
                ),
            ] {
                push(&[
                    "-drive",
                    &format!("file={path},if=none,id={id},format=raw{opts}"),
                    "-device",
                    &format!("virtio-blk-device,drive={id},serial={serial}"),
                ]);
            }
        } else {
            // The rootfs keeps the image's owners and modes (the same
            // snapshot process mode uses); it is isola's own state, which
            // host users cannot reach, and QEMU's bind of it is nosuid,nodev.
            push(&[
                "-fsdev",
                &format!(
                    "local,id=fs0,path={},security_model=passthrough",
                    jail::ROOTFS
                ),
                "-device",
                "virtio-9p-device,fsdev=fs0,mount_tag=rootfs",
            ]);
        }
        push(&[
            "-device",
            "virtio-serial-device",
            "-chardev",
            &format!("socket,id=agent,fd={},server=on,wait=off", self.agent_fd),
            "-device",
            "virtserialport,chardev=agent,name=isola.agent",
        ]);
        for (i, share) in self.shares.iter().enumerate() {
            let ro = if share.read_only { ",readonly=on" } else { "" };
            // A live share holds containers' root filesystems: isola's own
            // state, as the rootfs is, and kept as it.
            let model = if share.live {
                "passthrough"
            } else {
                "mapped-xattr"
            };
            // Volumes and binds are host files that host users see:
            // mapped-xattr keeps the owners, modes, setuid bits, device
            // nodes and symlinks the guest makes in xattrs (QEMU's files
            // are plain ones of its own uid), so nothing the guest writes
            // becomes setuid or a device on the host.
            push(&[
                "-fsdev",
                &format!(
                    "local,id=share{i},path={},security_model={model}{ro}",
                    jail::share_dir(i)
                ),
                "-device",
                &format!("virtio-9p-device,fsdev=share{i},mount_tag={}", share.tag),
            ]);
        }
        if let Some((fd, mac)) = self.nic {
            // Plain virtio-net: vhost-net would take the data path into the
            // host kernel where /dev/vhost-net exists (not on these hosts).
            push(&[
                "-netdev",
                &format!("tap,id=net0,fd={fd}"),
                "-device",
                &format!("virtio-net-device,netdev=net0,mac={}", opt(mac)),
            ]);
        }
        // Entropy, so the guest's getrandom() does not wait at boot.
        push(&["-device", "virtio-rng-device"]);
        // Free page reporting: memory the guest frees goes back to the host.
        push(&["-device", "virtio-balloon-device,free-page-reporting=on"]);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_the_limit_plus_overhead_and_a_minimum_is_enforced() {
        assert_eq!(guest_memory_mib(None).unwrap(), DEFAULT_GUEST_MEMORY_MIB);
        assert_eq!(
            guest_memory_mib(Some(256 << 20)).unwrap(),
            256 + GUEST_OVERHEAD_MIB
        );
        let err = guest_memory_mib(Some(4 << 20)).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("minimum of {MIN_CONTAINER_MEMORY_MIB} MiB")),
            "{err}"
        );
        assert_eq!(guest_cpus(None), 1);
        assert_eq!(guest_cpus(Some(1.5)), 2);
    }

    /// A booting VM's arguments with no disks, NIC or shares.
    fn plain_args() -> QemuArgs<'static> {
        QemuArgs {
            name: "web",
            process_name: "isola-vm-3f9a2c",
            accel: Accel::Tcg { tb_size_mib: 32 },
            memory_mib: 128,
            cpus: 1,
            console_fd: 5,
            agent_fd: 6,
            qmp_fd: None,
            disks: false,
            nic: None,
            shares: &[],
            start: StartMode::Boot,
        }
    }

    #[test]
    fn a_restored_vm_with_a_nic_has_its_tap_and_does_not_announce() {
        let args = QemuArgs {
            nic: Some((9, "02:42:ac:11:00:02")),
            start: StartMode::Restore { fd: 7 },
            ..plain_args()
        }
        .to_args()
        .join(" ");
        for want in [
            "-incoming fd:7",
            // QEMU would otherwise send RARPs after the restore.
            "-global migration.announce-rounds=0",
            "-netdev tap,id=net0,fd=9",
            "virtio-net-device,netdev=net0,mac=02:42:ac:11:00:02",
        ] {
            assert!(args.contains(want), "{want} missing: {args}");
        }
    }

    #[test]
    fn a_disk_rootfs_is_two_drives_the_guest_finds_by_serial() {
        let args = QemuArgs {
            disks: true,
            ..plain_args()
        }
        .to_args()
        .join(" ");
        assert!(!args.contains("mount_tag=rootfs"), "{args}");
        assert!(
            args.contains("file=/image.disk,if=none,id=image,format=raw,readonly=on")
                && args.contains("drive=image,serial=isola-image"),
            "{args}"
        );
        assert!(
            args.contains("file=/writable.disk,if=none,id=writable,format=raw,discard=unmap ")
                && args.contains("drive=writable,serial=isola-writable"),
            "{args}"
        );
    }

    #[test]
    fn the_vm_process_is_named_after_the_container() {
        assert_eq!(process_name("3f9a2c1b7d"), "isola-vm-3f9a2c");
        assert!(process_name("3f9a2c1b7d").len() <= 15);
        let args = QemuArgs {
            name: "web,1",
            shares: &[Share {
                tag: "vol0".into(),
                host_path: "/srv/data".into(),
                read_only: true,
                files: None,
                live: false,
            }],
            ..plain_args()
        }
        .to_args();
        let joined = args.join(" ");
        assert!(
            joined.contains("-name guest=web,,1,process=isola-vm-3f9a2c"),
            "{joined}"
        );
        assert!(joined.contains("-accel tcg,tb-size=32"), "{joined}");
        assert!(joined.contains("-sandbox on,"), "{joined}");
        // Volumes never take the guest's setuid bits or device nodes to the host.
        assert!(
            joined.contains("path=/share0,security_model=mapped-xattr,readonly=on"),
            "{joined}"
        );
        assert!(
            joined.contains("socket,id=agent,fd=6,server=on"),
            "{joined}"
        );
        assert!(joined.contains("-add-fd fd=5,set=1"), "{joined}");
        assert!(
            joined.contains("mount_tag=rootfs") && joined.contains("name=isola.agent"),
            "{joined}"
        );
    }
}
