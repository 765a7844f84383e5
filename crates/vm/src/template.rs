//! template: VM templating, as Kata Containers' VM factory does it. The first
//! VM of a given shape (QEMU, kernel, agent, memory, vCPUs, accelerator, the
//! 9p shares' tags, whether it has a NIC) boots a *template* VM: its agent
//! comes up and answers, and QEMU saves the whole machine to a file (a
//! migration) before any container data is shared in. Every later VM of that
//! shape starts from the file instead of booting the kernel, which under TCG
//! is most of a cold start.
//!
//! A restored VM begins as an exact copy of the template: same random pool,
//! same clock, same kernel address layout. The agent's Init call (which
//! [`crate::Vm::boot`] makes for every VM) mixes host entropy into the pool and
//! reseeds it and sets the clock; the shared address layout stays, as with
//! Kata's templates. `vm.template = false` boots every VM from scratch.
//!
//! A VM with a NIC has templates of its own, whose machine has the same
//! virtio-net device on a tap that leads nowhere ([`network::tap::isolated`])
//! and the MAC [`TEMPLATE_MAC`]; a restored VM's QEMU backs the device with
//! its own tap, and the agent's Network call gives the guest's interface
//! the container's MAC (the device's address is part of the saved state).
//!
//! Templates live in one directory, named by the hash of their shape, written
//! aside and renamed (under a lock, so concurrent first starts make one);
//! templates unused for a day are removed when a new one is made.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use sha2::{Digest, Sha256};

use crate::cmdline::{self, Share, StartMode};
use crate::vmm::Launch;
use crate::Error;

/// Bumped when what a template holds changes in a way its key cannot see.
const FORMAT: &str = "isola-vm-template-2";
/// The MAC address of a template VM's NIC (locally administered): what a
/// restored VM's guest interface has until the agent's Network call sets
/// the container's.
pub const TEMPLATE_MAC: &str = "02:00:00:00:00:01";
/// Templates not used for this long are removed when a new one is made.
const UNUSED_FOR: Duration = Duration::from_secs(24 * 3600);

/// The template file for `launch`'s shape in `dir`, made first if missing.
pub(crate) fn ensure(launch: &Launch<'_>, dir: &Path) -> Result<PathBuf, Error> {
    let key = key(launch)?;
    let path = dir.join(format!("{key}.vmstate"));
    if path.is_file() {
        // The modification time says when it was last used (see prune).
        let _ = fs::File::open(&path).and_then(|f| f.set_modified(SystemTime::now()));
        return Ok(path);
    }
    fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let lock_path = dir.join(format!("{key}.lock"));
    let lock = fs::File::create(&lock_path).map_err(Error::io("create", &lock_path))?;
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io("lock", &lock_path)(e.into()))
        .and_then(|_locked| {
            // Someone else may have made it while we waited for the lock.
            if !path.is_file() {
                make(launch, dir, &key, &path)?;
                prune(dir, &path);
            }
            Ok(path)
        })
}

/// What makes two VMs interchangeable: a change to any of these makes a new
/// template. QEMU and the kernel are named by path, size and modification
/// time; the agent by the initramfs's name, which hashes those of the agent
/// (the initramfs's own time says when it was last used).
fn key(launch: &Launch<'_>) -> Result<String, Error> {
    let cfg = launch.cfg;
    let mut h = Sha256::new();
    h.update(FORMAT);
    h.update(launch.initrd.as_os_str().as_encoded_bytes());
    for file in [launch.qemu, cfg.kernel.path()] {
        let m = fs::metadata(file).map_err(Error::io("stat", file))?;
        h.update(format!(
            "\0{}\0{}\0{}.{}",
            file.display(),
            m.len(),
            m.mtime(),
            m.mtime_nsec()
        ));
    }
    h.update(format!(
        "\0{}\0{}\0{:?}\0{}",
        cfg.memory_mib,
        cfg.cpus,
        launch.accel,
        cmdline::KERNEL_CMDLINE
    ));
    // Disks instead of the rootfs share: the guest probes them at boot and
    // keeps their sizes (a restored VM's disks must have the same).
    if let crate::Rootfs::Disks { image, writable } = &cfg.rootfs {
        for disk in [image, writable] {
            let len = fs::metadata(disk).map_err(Error::io("stat", disk))?.len();
            h.update(format!("\0disk\0{len}"));
        }
    }
    // The guest learns each 9p device's tag when it probes it, at boot.
    for s in &cfg.shares {
        h.update(format!("\0{}\0{}", s.tag, s.read_only));
        // Only when set, so that the keys of VMs without one stay as they were.
        if s.live {
            h.update("\0live");
        }
    }
    // The NIC is a device the guest probes at boot (its MAC is not part of
    // the shape: each VM sets its own). Last and only when there is one, so
    // no-NIC keys stay those of before (a share's part ends in a bool).
    if cfg.nic.is_some() {
        h.update("\0virtio-net");
    }
    Ok(h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Boots a template VM for `launch`'s shape and saves it to `path`.
fn make(launch: &Launch<'_>, dir: &Path, key: &str, path: &Path) -> Result<(), Error> {
    let started = Instant::now();
    let work = dir.join(format!("{key}.{}", std::process::id()));
    let saving = dir.join(format!(".{key}.vmstate.{}", std::process::id()));
    let made = (|| {
        let _ = fs::remove_dir_all(&work);
        // Same devices as the VMs it stands for, over empty directories and
        // sparse files of the same sizes: the template never mounts them
        // (the agent mounts the rootfs in Init).
        let rootfs = match &launch.cfg.rootfs {
            crate::Rootfs::Share(_) => {
                let dir = work.join("rootfs");
                fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
                crate::Rootfs::Share(dir)
            }
            crate::Rootfs::Disks { image, writable } => {
                fs::create_dir_all(&work).map_err(Error::io("create", &work))?;
                let blank = |real: &Path, name: &str| -> Result<PathBuf, Error> {
                    let len = fs::metadata(real).map_err(Error::io("stat", real))?.len();
                    let path = work.join(name);
                    let f = fs::File::create(&path).map_err(Error::io("create", &path))?;
                    f.set_len(len).map_err(Error::io("size", &path))?;
                    Ok(path)
                };
                crate::Rootfs::Disks {
                    image: blank(image, "image.disk")?,
                    writable: blank(writable, "writable.disk")?,
                }
            }
        };
        let mut shares = Vec::new();
        for (i, s) in launch.cfg.shares.iter().enumerate() {
            let host_path = work.join(format!("share{i}"));
            fs::create_dir_all(&host_path).map_err(Error::io("create", &host_path))?;
            shares.push(Share {
                host_path,
                files: None,
                ..s.clone()
            });
        }
        let mut cfg = launch.cfg.clone();
        cfg.name = "template".into();
        // Its own host cgroup, jailed like any other VM.
        cfg.id = format!("template-{key}");
        cfg.cgroup_holds_caller = false;
        cfg.rootfs = rootfs;
        cfg.run_dir = work.clone();
        // Kept (overwritten by the next attempt): an error names it.
        cfg.console_log = Some(dir.join(format!("{key}.console.log")));
        cfg.shares = shares;
        cfg.template_dir = None;
        // Held until the machine is saved and its QEMU gone.
        let tap = match cfg.nic {
            Some(_) => Some(network::tap::isolated().map_err(|e| {
                let cause = std::error::Error::source(&e).map(|c| format!(": {c}"));
                Error::Template {
                    step: "open a tap for the template VM".into(),
                    message: format!("{e}{}", cause.unwrap_or_default()),
                }
            })?),
            None => None,
        };
        cfg.nic = tap.as_ref().map(|fd| crate::Nic {
            tap_fd: fd.as_raw_fd(),
            mac: TEMPLATE_MAC.into(),
        });
        let qmp_path = work.join("qmp.sock");
        let template = Launch {
            cfg: &cfg,
            ..*launch
        };
        let mut vm = template.start(StartMode::Template { qmp: &qmp_path })?;
        let saved = save(&qmp_path, &saving, cfg.boot_timeout);
        // The source QEMU stops once the machine is saved; it has no more use.
        vm.kill();
        saved
    })();
    let _ = fs::remove_dir_all(&work);
    // A guest's memory is nobody else's business: root only.
    let private = |()| {
        fs::set_permissions(&saving, fs::Permissions::from_mode(0o600))
            .map_err(Error::io("restrict", &saving))
    };
    let renamed = |()| fs::rename(&saving, path).map_err(Error::io("rename", &saving));
    match made.and_then(private).and_then(renamed) {
        Ok(()) => {
            tracing::info!(
                template = %path.display(),
                took = ?started.elapsed(),
                "made a VM template"
            );
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&saving);
            Err(e)
        }
    }
}

/// Has the QEMU whose QMP socket is `qmp` save its machine to `to`: the
/// file is opened here and handed to QEMU over QMP (`getfd`), as its jail
/// holds no file it could write and its seccomp filter forbids `exec:`.
fn save(qmp: &Path, to: &Path, timeout: Duration) -> Result<(), Error> {
    let broke = |e: std::io::Error| Error::Template {
        step: "talk to QEMU's QMP socket".into(),
        message: e.to_string(),
    };
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(Error::io("create", to))?;
    let stream = UnixStream::connect(qmp).map_err(Error::io("connect to", qmp))?;
    stream.set_read_timeout(Some(timeout)).map_err(broke)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(broke)?);
    let writer = stream;
    let mut greeting = String::new();
    reader.read_line(&mut greeting).map_err(broke)?;
    let mut call =
        |command: serde_json::Value, fd: Option<i32>| -> Result<serde_json::Value, Error> {
            let line = format!("{command}\n");
            let fds: Vec<i32> = fd.into_iter().collect();
            let cmsg: Vec<ControlMessage<'_>> = match fds.is_empty() {
                true => Vec::new(),
                false => vec![ControlMessage::ScmRights(&fds)],
            };
            sendmsg::<()>(
                writer.as_raw_fd(),
                &[std::io::IoSlice::new(line.as_bytes())],
                &cmsg,
                MsgFlags::empty(),
                None,
            )
            .map_err(|e| broke(e.into()))?;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).map_err(broke)? == 0 {
                    return Err(broke(std::io::ErrorKind::UnexpectedEof.into()));
                }
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if let Some(r) = v.get("return") {
                    return Ok(r.clone());
                }
                if let Some(e) = v.get("error") {
                    return Err(Error::Template {
                        step: format!("QMP {}", command["execute"]),
                        message: e["desc"].as_str().unwrap_or("failed").to_string(),
                    });
                }
                // Anything else is an event: read on.
            }
        };
    call(serde_json::json!({"execute": "qmp_capabilities"}), None)?;
    call(
        serde_json::json!({"execute": "getfd", "arguments": {"fdname": "template"}}),
        Some(file.as_raw_fd()),
    )?;
    call(
        serde_json::json!({"execute": "migrate", "arguments": {"uri": "fd:template"}}),
        None,
    )?;
    let deadline = Instant::now() + timeout;
    loop {
        let r = call(serde_json::json!({"execute": "query-migrate"}), None)?;
        match r["status"].as_str() {
            Some("completed") => return file.sync_all().map_err(Error::io("write", to)),
            Some("failed") | Some("cancelled") => {
                return Err(Error::Template {
                    step: "save the machine".into(),
                    message: r["error-desc"].as_str().unwrap_or("failed").to_string(),
                })
            }
            _ if Instant::now() > deadline => {
                return Err(Error::Template {
                    step: "save the machine".into(),
                    message: format!("not done within {timeout:?}"),
                })
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Removes templates (and their lock and console files) unused for
/// [`UNUSED_FOR`], and what a template VM killed half-way left (its work
/// directory, its half-saved file).
fn prune(dir: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > UNUSED_FOR);
        let name = e.file_name().to_string_lossy().into_owned();
        let work_dir = e.file_type().is_ok_and(|t| t.is_dir())
            && name
                .split_once('.')
                .is_some_and(|(_, pid)| pid.parse::<u32>().is_ok());
        if work_dir && stale {
            let _ = fs::remove_dir_all(&p);
            continue;
        }
        let ours = p
            .extension()
            .is_some_and(|x| x == "vmstate" || x == "lock" || x == "log")
            || name.starts_with('.') && name.contains(".vmstate.");
        if p != keep && ours && stale {
            let _ = fs::remove_file(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vm_with_a_nic_has_a_template_of_its_own_whatever_its_mac() {
        // Stand-ins: key() only names and stats these files.
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("bzImage");
        fs::write(&kernel, b"kernel").unwrap();
        let mut cfg = crate::VmConfig::new(
            "c",
            "id",
            crate::GuestKernel::at(&kernel).unwrap(),
            crate::AgentBinary::locate(Some(Path::new("/bin/busybox"))).unwrap(),
            dir.path(),
            dir.path(),
        );
        let key_of = |cfg: &crate::VmConfig| {
            key(&Launch {
                cfg,
                qemu: &kernel,
                accel: crate::Accel::Tcg { tb_size_mib: 32 },
                initrd: &kernel,
                user: crate::JailUser { uid: 1, gid: 1 },
            })
            .unwrap()
        };
        let plain = key_of(&cfg);
        let nic = |mac: &str| crate::Nic {
            tap_fd: 99,
            mac: mac.into(),
        };
        cfg.nic = Some(nic("02:42:ac:11:00:02"));
        let with_nic = key_of(&cfg);
        cfg.nic = Some(nic("02:42:ac:11:00:03"));
        assert_ne!(plain, with_nic);
        assert_eq!(with_nic, key_of(&cfg), "the MAC changed the template");
    }

    #[test]
    fn prune_removes_what_went_unused_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let old = SystemTime::now() - UNUSED_FOR - Duration::from_secs(60);
        let make = |name: &str, is_dir: bool, when: SystemTime| {
            let p = d.join(name);
            if is_dir {
                fs::create_dir(&p).unwrap();
            } else {
                fs::write(&p, b"x").unwrap();
            }
            fs::File::open(&p).unwrap().set_modified(when).unwrap();
            p
        };
        let gone = [
            make("aaaa.vmstate", false, old),
            make("aaaa.lock", false, old),
            make("aaaa.console.log", false, old),
            make("bbbb.4242", true, old),
            make(".bbbb.vmstate.4242", false, old),
        ];
        let kept = [
            make("cccc.vmstate", false, SystemTime::now()),
            make("dddd.vmstate", false, old), // the one in use
            make("unrelated.txt", false, old),
        ];
        prune(d, &kept[1]);
        for p in &gone {
            assert!(!p.exists(), "{} was kept", p.display());
        }
        for p in &kept {
            assert!(p.exists(), "{} was removed", p.display());
        }
    }
}
