//! End-to-end: the VM worker's jail and a compromised guest's reach. A VM
//! container's QEMU, and a template VM's, must run as the unprivileged
//! `isola-vm` user with only the 9p server's capabilities, no_new_privs and
//! a seccomp filter, in namespaces of its own, rooted in a jail that holds
//! only what it needs, in a cgroup with limits. And a guest that does what
//! a compromised one would (setuid files, device nodes, remounting a
//! read-only volume, symlinks to host paths) reaches nothing on the host.
//! One VM container checks most of it: each VM costs seconds under TCG.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use common::Root;

/// CapEff/CapBnd of the kept set: CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH,
/// FOWNER, FSETID (bits 0-4) and MKNOD (27).
const KEPT_CAPS: &str = "000000000800001f";

fn status_field(pid: i32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// isola-vm's uid and gid from /etc/passwd.
fn jail_user() -> (String, String) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("isola-vm:"))
        .expect("the isola-vm user was made for QEMU");
    let f: Vec<&str> = line.split(':').collect();
    (f[2].to_string(), f[3].to_string())
}

/// The jail as a VM worker's /proc shows it: user, capabilities, seccomp,
/// no_new_privs and namespaces of its own.
fn assert_jailed(pid: i32) {
    let (uid, gid) = jail_user();
    let ids = |v: String| v.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        ids(status_field(pid, "Uid")),
        vec![uid.clone(); 4],
        "QEMU's uids"
    );
    assert_eq!(
        ids(status_field(pid, "Gid")),
        vec![gid.clone(); 4],
        "QEMU's gids"
    );
    assert_eq!(
        status_field(pid, "Groups"),
        "",
        "QEMU keeps supplementary groups"
    );
    assert_eq!(status_field(pid, "CapEff"), KEPT_CAPS);
    assert_eq!(status_field(pid, "CapBnd"), KEPT_CAPS);
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(
        status_field(pid, "Seccomp"),
        "2",
        "QEMU runs without -sandbox"
    );
    for ns in ["pid", "mnt", "ipc", "uts", "net", "cgroup"] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(theirs, ours, "QEMU shares the host's {ns} namespace");
    }
    // The jail, not the host's /: the guest's kernel is there, the host's
    // configuration, homes and state are not; its proc shows itself alone.
    let root = format!("/proc/{pid}/root");
    // (An engine container's rootfs is its two disks.)
    for there in [
        "kernel",
        "initrd",
        "image.disk",
        "writable.disk",
        "usr/bin",
        "dev/null",
    ] {
        assert!(
            Path::new(&root).join(there).exists(),
            "{there} missing from the jail"
        );
    }
    for absent in [
        "etc/passwd",
        "etc/shadow",
        "root",
        "home",
        "var",
        "tmp",
        "sys/kernel",
        "dev/sda",
        "dev/mem",
    ] {
        assert!(
            !Path::new(&root).join(absent).exists(),
            "{absent} is in QEMU's jail"
        );
    }
    let pids: Vec<String> = std::fs::read_dir(Path::new(&root).join("proc"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<u32>().is_ok())
        .collect();
    assert_eq!(pids, ["1"], "QEMU is its PID namespace's only process");
    assert!(
        !Path::new(&root).join("proc/sys").exists(),
        "the jail's proc has /proc/sys"
    );
}

/// QEMU's descriptors: none of the monitor's or the caller's (ptys, log
/// files, the records), only its stderr log, devices, its console pipe,
/// sockets, anonymous inodes and files inside its jail.
fn assert_only_its_own_fds(pid: i32) -> Vec<String> {
    let mut links = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        let link = link.display().to_string();
        // Its stderr (and QEMU's dup of it), opened by the host.
        if !link.ends_with("/qemu.log") {
            links.push(link);
        }
    }
    let allowed = |l: &str| {
        ["/dev/null", "/dev/urandom", "/dev/kvm", "/dev/net/tun"].contains(&l)
            || [
                "pipe:",
                "socket:",
                "anon_inode:",
                "/image.disk",
                "/writable.disk",
                "/share",
                "/kernel",
                "/initrd",
                "/proc/",
            ]
            .iter()
            .any(|p| l.starts_with(p))
    };
    let bad: Vec<&String> = links.iter().filter(|l| !allowed(l)).collect();
    assert!(bad.is_empty(), "QEMU holds {bad:?} (all: {links:?})");
    let mut pipes: Vec<&String> = links.iter().filter(|l| l.starts_with("pipe:")).collect();
    pipes.sort();
    pipes.dedup();
    assert_eq!(
        pipes.len(),
        1,
        "QEMU holds a pipe besides its console: {links:?}"
    );
    links
}

fn cgroup_file(controller: &str, id: &str, file: &str) -> Option<String> {
    let v1 = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join("isola-vm")
        .join(id)
        .join(file);
    let v2 = Path::new("/sys/fs/cgroup/isola-vm").join(id).join(file);
    std::fs::read_to_string(&v1)
        .or_else(|_| std::fs::read_to_string(&v2))
        .ok()
        .map(|s| s.trim().to_string())
}

#[test]
fn a_vm_workers_jail_holds_only_what_it_needs_and_a_compromised_guest_reaches_nothing() {
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    if !root.vm_kernel_or_skip("VM jail") {
        return;
    }
    // Host side: a volume, a read-only volume, a symlink in the volume to a
    // host file outside it, and a host file the guest must never read.
    let host = tempfile::tempdir_in(root.path()).unwrap();
    let vol = host.path().join("vol");
    let ro = host.path().join("ro");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("kept"), "read-only\n").unwrap();
    let secret = host.path().join("secret");
    std::fs::write(&secret, "host-secret\n").unwrap();
    std::os::unix::fs::symlink(&secret, vol.join("hostlink")).unwrap();
    let (v, r) = (
        format!("{}:/data", vol.display()),
        format!("{}:/ro:ro", ro.display()),
    );
    let id = root.run_detached(&[
        "--isolation=vm",
        "--cap-add",
        "SYS_ADMIN",
        "-v",
        &v,
        "-v",
        &r,
        "busybox",
        "sleep",
        "1000",
    ]);
    let pid: i32 = root.inspect(&id, ".State.Pid").parse().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(
        comm.trim(),
        format!("isola-vm-{}", &id[..6]),
        "the VM worker is named for the container"
    );
    assert_jailed(pid);
    assert_only_its_own_fds(pid);

    // The cgroup: QEMU in vmm, the monitor beside it, limits on both.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains(&format!("/isola-vm/{id}/vmm")), "{cgroup}");
    let monitor = root.inspect(&id, ".State.MonitorPid");
    let mon_cgroup = std::fs::read_to_string(format!("/proc/{monitor}/cgroup")).unwrap();
    assert!(
        mon_cgroup.contains(&format!("/isola-vm/{id}/monitor")),
        "{mon_cgroup}"
    );
    assert_eq!(cgroup_file("pids", &id, "pids.max").as_deref(), Some("512"));
    let memory = cgroup_file("memory", &id, "memory.limit_in_bytes")
        .or_else(|| cgroup_file("memory", &id, "memory.max"))
        .unwrap();
    let bytes: u64 = memory.parse().expect("a memory limit, not max");
    assert!(bytes < 2 << 30, "memory limit {bytes}");

    // inspect and info say so.
    assert_eq!(root.inspect(&id, ".VmWorker.Seccomp"), "2");
    assert_eq!(root.inspect(&id, ".VmWorker.NoNewPrivs"), "true");
    assert_eq!(root.inspect(&id, ".VmWorker.CapEff"), KEPT_CAPS);
    let info = root.ok(&["info"]);
    assert!(info.contains("VM Worker Jail: user isola-vm"), "{info}");

    // A compromised guest, as root with CAP_SYS_ADMIN inside it.
    let probe = root.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cp /bin/busybox /data/suid && chmod 4755 /data/suid && ls -l /data/suid; \
         mknod /data/blk b 8 0 && ls -l /data/blk; \
         ln -s /etc/shadow /data/lnk; \
         echo via-link: $(cat /data/hostlink 2>&1); \
         mount -o remount,rw /ro; echo remounted: $?; \
         echo x > /ro/written; echo wrote: $?; \
         echo y > /ro/kept; echo overwrote: $?",
    ]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&probe.stdout),
        String::from_utf8_lossy(&probe.stderr)
    );
    // Inside, the guest sees what it made (its own view of its files)...
    assert!(
        said.contains("-rwsr-xr-x"),
        "the guest's setuid bit: {said}"
    );
    assert!(said.contains("brw"), "the guest's device node: {said}");
    // ...the host's file behind a symlink stays out of reach...
    assert!(
        !said.contains("host-secret"),
        "the guest read a host file through a symlink: {said}"
    );
    // ...and the read-only volume refuses every write, remounted or not.
    assert!(!said.contains("wrote: 0"), "{said}");
    assert!(!said.contains("overwrote: 0"), "{said}");
    assert!(
        !ro.join("written").exists(),
        "a write reached a read-only volume"
    );
    assert_eq!(
        std::fs::read_to_string(ro.join("kept")).unwrap(),
        "read-only\n"
    );
    // On the host, nothing the guest made is setuid, a device or a symlink.
    let suid = std::fs::metadata(vol.join("suid")).unwrap();
    assert_eq!(
        suid.permissions().mode() & 0o7000,
        0,
        "setuid on the host: {:o}",
        suid.permissions().mode()
    );
    let blk = std::fs::symlink_metadata(vol.join("blk")).unwrap();
    assert!(
        !blk.file_type().is_block_device() && blk.is_file(),
        "a device node on the host"
    );
    let lnk = std::fs::symlink_metadata(vol.join("lnk")).unwrap();
    assert!(
        !lnk.file_type().is_symlink(),
        "the guest's symlink is a host symlink"
    );

    // A monitor killed outright takes its QEMU along (parent-death signal).
    let monitor: i32 = monitor.parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    common::eventually("QEMU gone with its monitor", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    root.ok(&["rm", "-f", &id]);
    assert!(
        cgroup_file("pids", &id, "pids.max").is_none(),
        "the VM's cgroup is left"
    );
    root.assert_clean();
}

#[test]
fn a_template_vm_is_jailed_too() {
    // A template directory of its own: the first VM makes a template VM.
    let templates = tempfile::tempdir().unwrap();
    let root = Root::new()
        .with_env("ISOLA_AGENT", testkit::static_agent())
        .with_env("ISOLA_VM_TEMPLATE_DIR", templates.path())
        .with_env("ISOLA_VM_TEMPLATE", "1");
    if !root.vm_kernel_or_skip("template VM jail") {
        return;
    }
    let mut run = root.cmd(&["run", "--rm", "--isolation=vm", "busybox", "true"]);
    let mut child = run.spawn().unwrap();
    // The template VM lives for its boot and save: catch it meanwhile.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = None;
    while seen.is_none() && Instant::now() < deadline {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            // This test's template (its QEMU's status readable: it runs).
            if comm.trim() == "isola-vm-templa"
                && cgroup.contains("/isola-vm/template-")
                && std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .is_ok_and(|s| s.contains("Seccomp:\t2"))
            {
                seen = Some(pid);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = seen.expect("no template VM was seen");
    assert_jailed(pid);
    let status = child.wait().unwrap();
    assert!(status.success(), "the run from the new template failed");
    let made: Vec<_> = std::fs::read_dir(templates.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "vmstate"))
        .collect();
    assert_eq!(made.len(), 1, "the template was not saved");
    root.assert_clean();
}
