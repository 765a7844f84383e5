//! End-to-end, process mode: the default seccomp profile seen from inside a
//! container. It is an allow list with docker's semantics: calls that reach
//! other processes' memory, the kernel keyring, io_uring, namespaces or a
//! syscall no rule names are refused with EPERM (clone3 with ENOSYS, so the C
//! library falls back to clone), the capability that makes a group legitimate
//! gives it back, and ordinary programs still run. The probe is
//! crates/testkit/probe/escape-probe.c, mounted read-only at /probe.

mod common;

use std::collections::BTreeMap;

use common::Root;

/// Every probe subcommand this file asserts on, run in one container.
const PROBES: &[&str] = &[
    "process_vm_readv",
    "kcmp",
    "pidfd_getfd",
    "ptrace-traceme",
    "unknown-syscall",
    "keyctl",
    "io_uring_setup",
    "personality-bad",
    "clone-newuser",
    "clone3",
    "socket-vsock",
];

/// Runs every probe of [`PROBES`] in one `isola run --rm` container made
/// with `flags`, plus busybox's `unshare -U true`; returns what each printed
/// (`unshare` maps to `ok` or the shell's error line).
fn probe(root: &Root, flags: &[&str]) -> BTreeMap<String, String> {
    let volume = format!(
        "{}:/probe:ro",
        testkit::escape_probe().parent().unwrap().display()
    );
    let script = format!(
        "for p in {}; do echo \"$p $(/probe/escape-probe $p)\"; done; \
         if unshare -U true 2>/tmp/err; then echo 'unshare ok'; else echo \"unshare $(cat /tmp/err)\"; fi",
        PROBES.join(" ")
    );
    let mut args = vec!["run", "--rm", "-v", &volume];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    let out = root.ok(&args);
    let results: BTreeMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(results.len(), PROBES.len() + 1, "{out}");
    results
}

/// Asserts `results[name] == want` for each pair, naming the flags.
fn expect(results: &BTreeMap<String, String>, flags: &[&str], want: &[(&str, &str)]) {
    for (name, value) in want {
        assert_eq!(
            results[*name].as_str(),
            *value,
            "{name} in a container run with {flags:?}: {results:?}"
        );
    }
}

#[test]
fn the_default_profile_refuses_escapes() {
    let root = Root::new();
    let results = probe(&root, &[]);
    for name in PROBES.iter().filter(|p| **p != "clone3") {
        expect(&results, &[], &[(name, "errno=EPERM")]);
    }
    // clone3's flags are out of the filter's sight: ENOSYS, so libc falls back.
    expect(&results, &[], &[("clone3", "errno=ENOSYS")]);
    assert!(
        results["unshare"].contains("Operation not permitted"),
        "{results:?}"
    );
    // The allow list does not depend on capabilities: a syscall no rule
    // names stays refused even with all of them, as do the keyring and
    // io_uring. (All but CAP_SYS_RESOURCE, which root lacks on some hosts,
    // this one included.)
    let all = ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE"];
    let results = probe(&root, &all);
    expect(
        &results,
        &all,
        &[
            ("unknown-syscall", "errno=EPERM"),
            ("keyctl", "errno=EPERM"),
            ("io_uring_setup", "errno=EPERM"),
            ("personality-bad", "errno=EPERM"),
            ("socket-vsock", "errno=EPERM"),
        ],
    );
    root.assert_clean();
}

#[test]
fn capabilities_give_back_their_syscalls() {
    let root = Root::new();
    let ptrace = ["--cap-add", "SYS_PTRACE"];
    let results = probe(&root, &ptrace);
    expect(
        &results,
        &ptrace,
        &[
            ("process_vm_readv", "ok"),
            ("kcmp", "ok"),
            ("pidfd_getfd", "ok"),
            ("ptrace-traceme", "ok"),
            // Only the ptrace group.
            ("clone-newuser", "errno=EPERM"),
            ("unknown-syscall", "errno=EPERM"),
        ],
    );
    let admin = ["--cap-add", "SYS_ADMIN"];
    let results = probe(&root, &admin);
    expect(
        &results,
        &admin,
        &[
            ("unshare", "ok"),
            ("clone-newuser", "ok"),
            ("clone3", "ok"),
            ("process_vm_readv", "errno=EPERM"),
            ("keyctl", "errno=EPERM"),
        ],
    );
    root.assert_clean();
}

#[test]
fn unconfined_has_no_filter() {
    let root = Root::new();
    let flags = ["--security-opt", "seccomp=unconfined"];
    let results = probe(&root, &flags);
    expect(
        &results,
        &flags,
        &[
            // The kernel's own answer to a syscall it does not have.
            ("unknown-syscall", "errno=ENOSYS"),
            ("process_vm_readv", "ok"),
            ("kcmp", "ok"),
            ("clone3", "ok"),
        ],
    );
    root.assert_clean();
}

#[test]
fn ordinary_programs_run_under_the_allow_list() {
    let root = Root::new();
    let out = root.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "set -e; ls / >/dev/null; ps >/dev/null; wget --help 2>/dev/null; sleep 0.1; \
         date >/dev/null; id -u; echo a | grep -q a; (echo sub) | cat; \
         mkdir -p /tmp/d && echo x > /tmp/d/f && cat /tmp/d/f && rm -r /tmp/d; \
         chroot / true; echo done",
    ]);
    assert_eq!(out, "0\nsub\nx\ndone\n");
    // A static glibc program (the probe) starts and writes.
    let volume = format!(
        "{}:/probe:ro",
        testkit::escape_probe().parent().unwrap().display()
    );
    let out = root.ok(&[
        "run",
        "--rm",
        "-v",
        &volume,
        "busybox",
        "/probe/escape-probe",
        "write-file",
        "/dev/null",
        "x",
    ]);
    assert_eq!(out, "ok\n");
    root.assert_clean();
}
