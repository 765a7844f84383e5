//! End-to-end: real QEMU (TCG here), the real guest kernel from the cache,
//! the static agent as /init, a busybox rootfs shared over 9p, and containers
//! made by the runtime library inside the guest.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use vm::{Error, Output};

fn host_uname_r() -> String {
    let out = Command::new("uname").arg("-r").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_container_runs_on_the_guest_kernel_and_its_exit_code_comes_back() {
    let Some(kernel) = kernel_or_skip("guest kernel test") else {
        return;
    };
    let rootfs = busybox_rootfs();
    let run = tempfile::tempdir().unwrap();
    let id = testkit::unique_name(ID_PREFIX);
    let mut cfg = config(kernel, rootfs.path(), run.path(), &id);
    // This one boots its kernel (no template); the others start from templates.
    cfg.template_dir = None;
    let mut vm = vm::Vm::boot(&cfg).unwrap();

    let spec = spec(&["sh", "-c", "uname -r; echo to-stderr >&2; exit 7"]);
    let (_pid, io) = vm
        .client()
        .create_container(&id, &spec, vm::GUEST_ROOTFS, false)
        .unwrap();
    vm.client().start(&id).unwrap();
    let out = io.collect().unwrap();

    let guest = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!guest.is_empty());
    assert_ne!(
        guest,
        host_uname_r(),
        "the container must run on the guest kernel"
    );
    assert_eq!(guest, vm.guest_kernel_release());
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "to-stderr\n");
    assert_eq!(out.code, 7, "the container's exit code");

    // The main process has exited: the guest powers off when asked, QEMU exits 0.
    let status = vm.shutdown(Duration::from_secs(60));
    assert!(status.success(), "QEMU exit status {status}");
    assert!(!run.path().join("agent.sock").exists());
}

#[test]
fn vms_started_from_one_template_are_each_their_own() {
    let Some(kernel) = kernel_or_skip("template test") else {
        return;
    };
    let rootfs = busybox_rootfs();
    // A fresh template directory: the first VM makes the template.
    let templates = tempfile::tempdir().unwrap();
    let start = || {
        let run = tempfile::tempdir().unwrap();
        let id = testkit::unique_name(ID_PREFIX);
        let mut cfg = config(kernel.clone(), rootfs.path(), run.path(), &id);
        cfg.template_dir = Some(templates.path().to_path_buf());
        let vm = vm::Vm::boot(&cfg).unwrap();
        let (_, io) = vm
            .client()
            .create_container(
                &id,
                &spec(&["sh", "-c", "cat /proc/sys/kernel/random/uuid; date +%s"]),
                vm::GUEST_ROOTFS,
                false,
            )
            .unwrap();
        vm.client().start(&id).unwrap();
        let out = io.collect().unwrap();
        assert_eq!(out.code, 0, "{}", String::from_utf8_lossy(&out.stderr));
        (vm, String::from_utf8(out.stdout).unwrap(), run)
    };
    let (mut a, out_a, _run_a) = start();
    let saved: Vec<_> = std::fs::read_dir(templates.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "vmstate"))
        .collect();
    assert_eq!(saved.len(), 1, "one template for one shape");
    let mode = std::os::unix::fs::PermissionsExt::mode(&saved[0].metadata().unwrap().permissions());
    assert_eq!(
        mode & 0o077,
        0,
        "a template is readable by others: {mode:o}"
    );
    let (mut b, out_b, _run_b) = start();

    // Both are the same saved machine: the agent's boot time is the template's.
    assert_eq!(a.agent_serving_at(), b.agent_serving_at());
    // Yet each has its own randomness (Init reseeds the copied random pool)
    // and the host's clock (Init sets it; the copy's is the template's).
    let (uuid_a, date_a) = out_a.trim().split_once('\n').unwrap();
    let (uuid_b, date_b) = out_b.trim().split_once('\n').unwrap();
    assert_ne!(
        uuid_a, uuid_b,
        "two VMs from one template drew the same random numbers"
    );
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for d in [date_a, date_b] {
        let guest: i64 = d.trim().parse().unwrap();
        assert!(
            (host - guest).abs() < 120,
            "guest clock {guest}, host {host}"
        );
    }
    a.shutdown(Duration::from_secs(60));
    b.shutdown(Duration::from_secs(60));

    // A template QEMU cannot restore (here: garbage) is dropped and the VM
    // boots instead; the next VM makes a good one again.
    let template = saved[0].path();
    std::fs::write(&template, b"not a saved machine").unwrap();
    let (mut c, out_c, _run_c) = start();
    assert!(out_c.contains('-'), "{out_c}");
    assert!(!template.exists(), "the bad template was left in place");
    c.shutdown(Duration::from_secs(60));
    let (mut d, _, _run_d) = start();
    assert!(template.exists(), "no new template was made");
    d.shutdown(Duration::from_secs(60));
}

#[test]
fn ping_runs_in_the_guest_not_on_the_host_and_top_sees_it() {
    let Some(kernel) = kernel_or_skip("ping test") else {
        return;
    };
    let rootfs = busybox_rootfs();
    let run = tempfile::tempdir().unwrap();
    let id = testkit::unique_name(ID_PREFIX);
    let mut vm = vm::Vm::boot(&config(kernel, rootfs.path(), run.path(), &id)).unwrap();
    let client = vm.client().clone();

    let (pid, io) = client
        .create_container(&id, &spec(&["ping", "localhost"]), vm::GUEST_ROOTFS, false)
        .unwrap();
    client.start(&id).unwrap();
    // Wait for the first reply: the guest ping is running now.
    let mut seen = String::new();
    while !seen.contains("bytes from 127.0.0.1") {
        match io.recv().expect("ping output") {
            Output::Stdout(d) => seen.push_str(&String::from_utf8_lossy(&d)),
            other => panic!("ping ended early: {other:?} after {seen:?}"),
        }
    }

    // On the host: QEMU is there under the container's name, and no ping
    // process exists under this test (the guest's ping is not a host process).
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", vm.pid())).unwrap();
    assert_eq!(comm.trim(), vm.process_name());
    assert!(vm.process_name().starts_with("isola-vm-"));
    let ps = Command::new("ps")
        .args(["-eo", "pid,comm"])
        .output()
        .unwrap();
    let ps = String::from_utf8(ps.stdout).unwrap();
    assert!(
        ps.lines().any(|l| l
            .split_whitespace()
            .eq([vm.pid().to_string().as_str(), vm.process_name()])),
        "ps shows the VM worker: {ps}"
    );
    let ours = host_descendants(std::process::id());
    assert!(
        !ours.iter().any(|(_, c)| c == "ping"),
        "a host ping exists: {ours:?}"
    );
    assert!(ours.iter().any(|(p, _)| *p == vm.pid()));

    // Top lists the guest's pids: the ping is the init we created.
    let top = client.top(&id).unwrap();
    assert!(
        top.iter()
            .any(|p| p.pid == pid && p.command == "ping localhost"),
        "top: {top:?}"
    );
    let stats = client.stats(&id).unwrap();
    assert!(stats.guest_memory_total_bytes > 64 << 20, "{stats:?}");

    // A second process in the same container: ping -c 2 completes.
    let (_, exec) = client
        .exec(&id, &process(&["ping", "-c", "2", "localhost"]), false)
        .unwrap();
    let out = exec.collect().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.code, 0, "{text}");
    assert!(text.contains("2 packets received"), "{text}");

    // Signals are delivered inside the guest: the init dies of SIGKILL.
    client.signal(&id, 9, false).unwrap();
    assert_eq!(io.wait().unwrap(), 128 + 9);
    vm.shutdown(Duration::from_secs(60));
}

#[test]
fn killing_qemu_gives_a_clear_error_and_leaves_nothing_behind() {
    let Some(kernel) = kernel_or_skip("QEMU fault test") else {
        return;
    };
    let rootfs = busybox_rootfs();
    let run = tempfile::tempdir().unwrap();
    let id = testkit::unique_name(ID_PREFIX);
    let mut vm = vm::Vm::boot(&config(kernel, rootfs.path(), run.path(), &id)).unwrap();
    let (_, io) = vm
        .client()
        .create_container(&id, &spec(&["sleep", "1000"]), vm::GUEST_ROOTFS, false)
        .unwrap();
    vm.client().start(&id).unwrap();
    let cgroups = vm.host_cgroup_paths();
    assert!(
        !cgroups.is_empty() && cgroups.iter().all(|p| p.is_dir()),
        "{cgroups:?}"
    );
    let qemu = vm.pid();
    let procs = std::fs::read_to_string(
        cgroups
            .iter()
            .find(|p| p.to_string_lossy().contains("memory"))
            .unwrap()
            .join("cgroup.procs"),
    )
    .unwrap();
    assert!(
        procs.lines().any(|l| l == qemu.to_string()),
        "QEMU is in its host cgroup"
    );

    Command::new("kill")
        .args(["-9", &qemu.to_string()])
        .status()
        .unwrap();

    let err = io.wait().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::VmExited { .. }), "{msg}");
    assert!(msg.contains("the VM exited unexpectedly"), "{msg}");
    assert!(
        msg.contains(&run.path().join("console.log").display().to_string()),
        "{msg}"
    );
    let err = vm.client().top(&id).unwrap_err();
    assert!(
        err.to_string().contains("the VM exited unexpectedly"),
        "{err}"
    );

    let status = vm.kill();
    assert!(!status.success());
    drop(vm);
    assert!(
        !Path::new(&format!("/proc/{qemu}")).exists(),
        "QEMU is gone"
    );
    assert!(
        !run.path().join("agent.sock").exists(),
        "the socket is removed"
    );
    assert!(
        cgroups.iter().all(|p| !p.exists()),
        "the host cgroup is removed: {cgroups:?}"
    );
}

#[test]
fn a_guest_that_never_answers_is_bounded_and_killed() {
    let Some(kernel) = kernel_or_skip("boot timeout test") else {
        return;
    };
    let rootfs = busybox_rootfs();
    let run = tempfile::tempdir().unwrap();
    let id = testkit::unique_name(ID_PREFIX);
    let mut cfg = config(kernel, rootfs.path(), run.path(), &id);
    // busybox (static) as /init boots but never speaks the protocol.
    cfg.agent = vm::AgentBinary::locate(Some(Path::new("/bin/busybox"))).unwrap();
    cfg.boot_timeout = Duration::from_secs(5);
    let err = vm::Vm::boot(&cfg).err().expect("boot must time out");
    assert!(matches!(err, Error::BootTimeout { .. }), "{err}");
    assert!(err.to_string().contains("console.log"), "{err}");
    assert!(!run.path().join("agent.sock").exists());
    let left = host_descendants(std::process::id());
    assert!(
        !left.iter().any(|(_, c)| c.starts_with("isola-vm-")),
        "QEMU left running: {left:?}"
    );
}

#[test]
fn missing_qemu_and_missing_kernel_say_what_to_install() {
    let rootfs = busybox_rootfs();
    let run = tempfile::tempdir().unwrap();
    let kernel_file = run.path().join("bzImage");
    std::fs::write(&kernel_file, b"not booted").unwrap();
    let kernel = vm::GuestKernel::at(&kernel_file).unwrap();
    let mut cfg = vm::VmConfig::new(
        "c",
        "c",
        kernel,
        vm::AgentBinary::locate(Some(Path::new("/bin/busybox"))).unwrap(),
        rootfs.path(),
        run.path(),
    );
    cfg.qemu = "qemu-system-isola-missing".into();
    let err = vm::Vm::boot(&cfg).err().expect("no such QEMU");
    assert!(
        err.to_string().contains("apt-get install qemu-system-x86"),
        "{err}"
    );

    // No configured kernel, an empty cache: the error names the fix.
    let empty = tempfile::tempdir().unwrap();
    std::env::set_var("ISOLA_CACHE", empty.path());
    std::env::remove_var("ISOLA_VM_KERNEL");
    let err = vm::GuestKernel::locate(None).unwrap_err();
    assert!(
        err.to_string().contains("run scripts/guest-kernel.sh")
            || err.to_string().contains("scripts/guest-kernel.sh"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&empty.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn stdin_terminals_volumes_pause_and_guest_cgroups_work() {
    let Some(kernel) = kernel_or_skip("stdio test") else {
        return;
    };
    let rootfs = busybox_rootfs();
    let run = tempfile::tempdir().unwrap();
    let volume = tempfile::tempdir().unwrap();
    std::fs::write(volume.path().join("in.txt"), "from the host\n").unwrap();
    let id = testkit::unique_name(ID_PREFIX);
    let mut cfg = config(kernel, rootfs.path(), run.path(), &id);
    cfg.shares.push(vm::Share {
        tag: "vol0".into(),
        host_path: volume.path().to_path_buf(),
        read_only: false,
        files: None,
        live: false,
    });
    let mut vm = vm::Vm::boot(&cfg).unwrap();
    let client = vm.client().clone();

    // A share QEMU does not have: the pipelined mount + create reports the
    // mount's failure (the create, which binds it, fails after it).
    let mut bad = serde_json::to_value(spec(&["true"])).unwrap();
    bad["mounts"].as_array_mut().unwrap().push(serde_json::json!(
        {"destination": "/data", "type": "bind", "source": vm::share_path("nosuch"), "options": ["rbind"]}
    ));
    let Err(err) = client.mount_shares_and_create(
        &[("nosuch", false)],
        &format!("{id}-bad"),
        &serde_json::from_value(bad).unwrap(),
        vm::GUEST_ROOTFS,
        false,
    ) else {
        panic!("a container was created on a share QEMU does not have");
    };
    let err = err.to_string();
    assert!(
        err.contains("mount a share") && err.contains("nosuch"),
        "{err}"
    );

    // A volume: the host directory, shared over 9p, bind-mounted at /data,
    // mounted and the container created in one exchange (as the engine does).
    let guest_path = vm::share_path("vol0");
    let mut spec = serde_json::to_value(spec(&[
        "sh",
        "-c",
        "cat; cat /data/in.txt; echo from-the-guest > /data/out.txt; cat /proc/self/cgroup",
    ]))
    .unwrap();
    spec["mounts"].as_array_mut().unwrap().push(serde_json::json!(
        {"destination": "/data", "type": "bind", "source": guest_path, "options": ["rbind", "rw"]}
    ));
    let spec = serde_json::from_value(spec).unwrap();

    // The main process reads stdin until the host closes it.
    let (_, main) = client
        .mount_shares_and_create(&[("vol0", false)], &id, &spec, vm::GUEST_ROOTFS, false)
        .unwrap();
    client.start(&id).unwrap();

    // The runtime put the container in a cgroup inside the guest.
    let stats = client.stats(&id).unwrap();
    assert!(stats.pids_current >= 1, "{stats:?}");
    assert!(stats.memory_usage_bytes > 0, "{stats:?}");

    // An exec with a terminal: its stdout is a pty of the guest, sized by the host.
    let (_, tty) = client
        .exec(&id, &process(&["sh", "-c", "read x; tty; stty size"]), true)
        .unwrap();
    tty.resize(33, 101).unwrap();
    tty.write_stdin(b"go\n").unwrap();
    let out = tty.collect().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.code, 0, "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("33 101"), "{text}");

    // Pausing freezes the whole VM (QEMU's host cgroup); resuming thaws it.
    vm.pause().unwrap();
    let freezer = vm
        .host_cgroup_paths()
        .into_iter()
        .find(|p| p.join("freezer.state").exists());
    if let Some(f) = freezer {
        assert_eq!(
            std::fs::read_to_string(f.join("freezer.state"))
                .unwrap()
                .trim(),
            "FROZEN"
        );
    }
    vm.resume().unwrap();

    main.write_stdin(b"through the VM\n").unwrap();
    main.close_stdin().unwrap();
    let out = main.collect().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.code, 0, "{text}");
    assert!(
        text.starts_with("through the VM\nfrom the host\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("/{id}")),
        "the guest cgroup is named after the container: {text}"
    );
    assert_eq!(
        std::fs::read_to_string(volume.path().join("out.txt")).unwrap(),
        "from-the-guest\n"
    );
    vm.shutdown(Duration::from_secs(60));
}

/// A compromised guest (here: the test, speaking for the agent) asks for
/// more than the host shared: a single-file share mounted whole, and a
/// read-only share mounted read-write. QEMU's devices hold the line: the
/// file's siblings are not there, and no write reaches the read-only one.
#[test]
fn a_guest_asking_for_more_than_it_was_shared_gets_nothing_more() {
    let Some(kernel) = kernel_or_skip("share scoping test") else {
        return;
    };
    let rootfs = busybox_rootfs();
    let run = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("app.conf"), "the shared file\n").unwrap();
    std::fs::write(host.path().join("secret"), "a sibling\n").unwrap();
    let ro = tempfile::tempdir().unwrap();
    std::fs::write(ro.path().join("kept"), "read-only\n").unwrap();
    let id = testkit::unique_name(ID_PREFIX);
    let mut cfg = config(kernel, rootfs.path(), run.path(), &id);
    cfg.shares.push(vm::Share {
        tag: "one".into(),
        host_path: host.path().to_path_buf(),
        read_only: false,
        files: Some(vec!["app.conf".into()]),
        live: false,
    });
    cfg.shares.push(vm::Share {
        tag: "ro".into(),
        host_path: ro.path().to_path_buf(),
        read_only: true,
        files: None,
        live: false,
    });
    let vm = vm::Vm::boot(&cfg).unwrap();
    let mut spec = serde_json::to_value(spec(&[
        "sh",
        "-c",
        "ls -a /one; cat /one/secret; echo x > /ro/written; echo y > /ro/kept; \
         rm /ro/kept; echo status $?",
    ]))
    .unwrap();
    for (tag, at) in [("one", "/one"), ("ro", "/ro")] {
        spec["mounts"].as_array_mut().unwrap().push(serde_json::json!(
            {"destination": at, "type": "bind", "source": vm::share_path(tag), "options": ["rbind", "rw"]}
        ));
    }
    // Both mounted read-write in the guest, the whole share each.
    let (_, io) = vm
        .client()
        .mount_shares_and_create(
            &[("one", false), ("ro", false)],
            &id,
            &serde_json::from_value(spec).unwrap(),
            vm::GUEST_ROOTFS,
            false,
        )
        .unwrap();
    vm.client().start(&id).unwrap();
    let out = io.collect().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    let listed: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("status"))
        .collect();
    assert_eq!(
        listed,
        [".", "..", "app.conf"],
        "the share shows more than the file: {text}{errors}"
    );
    assert!(!text.contains("a sibling"), "{text}");
    assert!(errors.contains("Read-only file system"), "{errors}");
    assert!(
        !ro.path().join("written").exists(),
        "a write reached a read-only share"
    );
    assert_eq!(
        std::fs::read_to_string(ro.path().join("kept")).unwrap(),
        "read-only\n"
    );
    drop(vm);
}
