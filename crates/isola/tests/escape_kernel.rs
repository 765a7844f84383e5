//! Escape probes against the kernel's interfaces, run as root inside a
//! default container in both isolation modes: device nodes made with
//! mknod (a default container has CAP_MKNOD, as in docker, and relies on
//! the device rules), /proc and /sys writes, mount and user namespaces.
//! Each probe must be refused. The VM half runs on the guest's cgroup v2
//! only kernel, so it checks the v2 device program for real (this host's
//! v1 controller covers the process half), and the default seccomp profile
//! (compiled on the host) inside the guest; one VM runs every probe.

mod common;

use std::collections::BTreeMap;

use common::Root;

/// One shell function per probe, each printing `<name>: allowed` or
/// `<name>: refused: <the error>`. Nodes are made in the container's /dev
/// (a tmpfs in both modes; a VM container's rootfs is a 9p share, where
/// mknod of a device fails before any rule is asked). Writes put back the
/// value read, so that even an unconfined run would change nothing.
const PROBES: &str = r#"
probe() { name=$1; shift; if out=$(sh -c "$*" 2>&1); then echo "$name: allowed"; else echo "$name: refused: $out" | head -n 1; fi; }
probe disk-sda 'mknod /dev/p-sda b 8 0 && head -c 1 /dev/p-sda >/dev/null'
probe disk-vda 'mknod /dev/p-vda b 254 0 && head -c 1 /dev/p-vda >/dev/null'
probe kmsg 'mknod /dev/p-kmsg c 1 11 && head -c 1 /dev/p-kmsg >/dev/null'
probe mem 'mknod /dev/p-mem c 1 1 && head -c 1 /dev/p-mem >/dev/null'
probe tty0 'mknod /dev/p-tty0 c 4 0 && head -c 0 /dev/p-tty0 >/dev/null'
probe sysrq 'echo h > /proc/sysrq-trigger'
probe proc-sys-kernel 'v=$(cat /proc/sys/kernel/printk) && echo "$v" > /proc/sys/kernel/printk'
probe sys 'echo 1500 > /sys/class/net/lo/mtu'
probe mount 'mkdir -p /tmp/m && mount -t tmpfs none /tmp/m'
probe unshare-user 'unshare -U true'
probe null-works 'echo x > /dev/null && head -c 1 /dev/zero >/dev/null'
for p in process_vm_readv kcmp pidfd_getfd unknown-syscall keyctl io_uring_setup clone3; do
  echo "syscall-$p: $(/probe/escape-probe $p)"
done
"#;

/// The seccomp probes of [`PROBES`] (testkit's static escape probe) and
/// what the default profile must answer.
const SYSCALLS: &[(&str, &str)] = &[
    ("syscall-process_vm_readv", "errno=EPERM"),
    ("syscall-kcmp", "errno=EPERM"),
    ("syscall-pidfd_getfd", "errno=EPERM"),
    ("syscall-unknown-syscall", "errno=EPERM"),
    ("syscall-keyctl", "errno=EPERM"),
    ("syscall-io_uring_setup", "errno=EPERM"),
    ("syscall-clone3", "errno=ENOSYS"),
];

/// Runs [`PROBES`] in a container with `args` before the image; the
/// results by probe name.
fn probe(root: &Root, args: &[&str]) -> BTreeMap<String, String> {
    let volume = format!(
        "{}:/probe:ro",
        testkit::escape_probe().parent().unwrap().display()
    );
    let mut full = vec!["run", "--rm", "-v", &volume];
    full.extend_from_slice(args);
    full.extend_from_slice(&["busybox", "sh", "-c", PROBES]);
    root.ok(&full)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(name, result)| (name.to_string(), result.to_string()))
        .collect()
}

/// Every probe refused, each for the reason that should refuse it.
fn assert_refused(results: &BTreeMap<String, String>, mode: &str) {
    let expect = [
        ("disk-sda", "Operation not permitted"),
        ("disk-vda", "Operation not permitted"),
        ("kmsg", "Operation not permitted"),
        ("mem", "Operation not permitted"),
        ("tty0", "Operation not permitted"),
        // Read-only where the kernel has magic SysRq; this host's kernel and
        // the guest's have none, so there the file is absent.
        ("sysrq", "Read-only file system|nonexistent directory"),
        ("proc-sys-kernel", "Read-only file system"),
        ("sys", "Read-only file system"),
        ("mount", "permission denied"),
        ("unshare-user", "Operation not permitted"),
    ];
    for (name, why) in expect {
        let result = results
            .get(name)
            .unwrap_or_else(|| panic!("{mode}: probe {name} printed nothing: {results:?}"));
        assert!(
            result.starts_with("refused") && why.split('|').any(|w| result.contains(w)),
            "{mode}: probe {name}: {result} (expected refused: {why})"
        );
    }
    assert_eq!(
        results.get("null-works").map(String::as_str),
        Some("allowed"),
        "{mode}: /dev/null and /dev/zero must work"
    );
    for (name, want) in SYSCALLS {
        assert_eq!(
            results.get(*name).map(String::as_str),
            Some(*want),
            "{mode}: {name}: {results:?}"
        );
    }
}

#[test]
fn a_default_process_container_reaches_no_device_or_kernel_setting() {
    let root = Root::new();
    assert_refused(&probe(&root, &[]), "process");

    // The opt-in gives back what it names, and only that.
    let admin = probe(&root, &["--cap-add", "SYS_ADMIN"]);
    assert_eq!(admin["mount"], "allowed", "{admin:?}");
    assert_eq!(admin["unshare-user"], "allowed", "{admin:?}");
    assert!(admin["kmsg"].starts_with("refused"), "{admin:?}");
    root.assert_clean();
}

#[test]
fn a_default_vm_container_reaches_no_device_or_kernel_setting_in_its_guest() {
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    if !root.vm_kernel_or_skip("VM escape probes") {
        return;
    }
    assert_refused(&probe(&root, &["--isolation=vm"]), "vm");
    root.assert_clean();
}
