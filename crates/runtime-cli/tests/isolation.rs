//! End-to-end: what a process inside an isola-runtime container sees,
//! checked from inside with busybox: pid namespace, hostname, the host's
//! processes and files out of reach, capabilities, masked and read-only
//! paths, rlimits, user and groups, sysctl, user namespaces. Needs root.

mod common;

use common::{status_field, Runtime};
use serde_json::json;
use testkit::{runtime_config, unique_name, Bundle};

fn run_script(config: serde_json::Value) -> String {
    let rt = Runtime::new();
    let bundle = Bundle::new(&config);
    rt.run_ok(&bundle, &unique_name("iso"))
}

fn sh(script: &str) -> serde_json::Value {
    runtime_config(&["sh", "-c", script])
}

#[test]
fn the_process_is_pid_1_with_the_configured_hostname() {
    let mut config = sh("echo $$; hostname; cat /proc/sys/kernel/domainname");
    config["hostname"] = json!("box-under-test");
    config["domainname"] = json!("example.test");
    let out = run_script(config);
    assert_eq!(out, "1\nbox-under-test\nexample.test\n");
}

#[test]
fn host_processes_are_invisible() {
    // Only the container's own processes are in its /proc.
    let out = run_script(sh(
        "ls /proc | grep -c '^[0-9][0-9]*$'; ls /proc | grep -x 1",
    ));
    let lines: Vec<&str> = out.lines().collect();
    // sh, ls, grep (and maybe the second pipeline's members): never the host's hundreds.
    let n: usize = lines[0].parse().unwrap();
    assert!(n <= 4, "container sees {n} processes");
    assert_eq!(lines[1], "1");
    let me = std::process::id();
    let out = run_script(sh(&format!(
        "test -e /proc/{me} && echo visible || echo hidden"
    )));
    assert_eq!(out, "hidden\n");
}

#[test]
fn host_paths_outside_the_rootfs_are_unreachable() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&sh(
        "cat /../../secret 2>/dev/null || echo no-dotdot; cat /escape/secret 2>/dev/null || echo no-symlink; ls /",
    ));
    // A secret next to the rootfs, and a symlink in the rootfs aimed at it.
    std::fs::write(bundle.path().join("secret"), "host-secret").unwrap();
    std::os::unix::fs::symlink(bundle.path(), bundle.rootfs().join("escape")).unwrap();
    let out = rt.run_ok(&bundle, &unique_name("escape"));
    assert!(out.starts_with("no-dotdot\nno-symlink\n"), "{out}");
    assert!(!out.contains("host-secret"));
    assert!(out.contains("busybox") || out.contains("bin"), "{out}");
}

#[test]
fn a_mount_destination_symlink_cannot_escape_the_rootfs() {
    let rt = Runtime::new();
    let host_dir = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload"), "from-bind").unwrap();
    let mut config = sh("cat /evil/payload");
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/evil", "type": "bind", "source": src.path(), "options": ["rbind", "ro"]}));
    let bundle = Bundle::new(&config);
    // /evil in the rootfs is a symlink to an absolute host path.
    std::os::unix::fs::symlink(host_dir.path(), bundle.rootfs().join("evil")).unwrap();
    let out = rt.run_ok(&bundle, &unique_name("symlink-mount"));
    assert_eq!(out, "from-bind");
    // The mount landed inside the rootfs (at rootfs/<host_dir>), never on the host dir.
    assert!(std::fs::read_dir(host_dir.path()).unwrap().next().is_none());
    assert!(common::mounts_under(host_dir.path()).is_empty());
}

#[test]
fn bind_mounts_honour_ro() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), "data").unwrap();
    let mut config = sh("cat /data/f; echo; touch /data/new 2>/dev/null && echo writable || echo read-only; touch /rw/new && echo rw-ok");
    let rw = tempfile::tempdir().unwrap();
    let mounts = config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": src.path(), "options": ["bind", "ro", "nosuid", "nodev"]}));
    mounts.push(json!({"destination": "/rw", "type": "bind", "source": rw.path(), "options": ["rbind", "rw"]}));
    let out = run_script(config);
    assert_eq!(out, "data\nread-only\nrw-ok\n");
    assert!(rw.path().join("new").exists());
    assert!(!src.path().join("new").exists());
}

#[test]
fn capabilities_equal_the_configured_sets() {
    // As uid 1000 the kernel keeps exactly what the runtime set: inheritable
    // and ambient as given, permitted/effective from ambient after execve.
    let mut config = sh("grep ^Cap /proc/self/status");
    config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    config["process"]["noNewPrivileges"] = json!(false);
    config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    });
    let out = run_script(config);
    // CHOWN=0, DAC_OVERRIDE=1, KILL=5, NET_BIND_SERVICE=10
    assert_eq!(status_field(&out, "CapBnd"), "0000000000000423");
    assert_eq!(status_field(&out, "CapInh"), "0000000000000420");
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000420");
    assert_eq!(status_field(&out, "CapPrm"), "0000000000000420");
    assert_eq!(status_field(&out, "CapEff"), "0000000000000420");

    // As root, with all five sets equal, each reads back as that set.
    let mut config = sh("grep ^Cap /proc/self/status");
    let set = json!(["CAP_CHOWN", "CAP_KILL", "CAP_SYS_CHROOT"]);
    config["process"]["capabilities"] = json!({
        "bounding": set, "effective": set, "permitted": set, "inheritable": set, "ambient": set
    });
    let out = run_script(config);
    // CHOWN=0, KILL=5, SYS_CHROOT=18
    for f in ["CapBnd", "CapInh", "CapAmb", "CapPrm", "CapEff"] {
        assert_eq!(status_field(&out, f), "0000000000040021", "{f}");
    }
}

#[test]
fn masked_paths_are_unreadable_and_readonly_paths_unwritable() {
    let mut config = sh(
        "wc -c < /proc/timer_list; cat /etc/secret; echo; ls /sys/firmware | wc -l; \
         echo x > /etc/ro/file 2>/dev/null && echo ro-writable || echo ro-denied; \
         echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo sys-writable || echo sys-denied; \
         cat /etc/ro/file",
    );
    config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/etc/secret"));
    config["linux"]["readonlyPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/etc/ro"));
    let bundle = Bundle::new(&config);
    std::fs::write(bundle.rootfs().join("etc/secret"), "TOPSECRET").unwrap();
    std::fs::create_dir(bundle.rootfs().join("etc/ro")).unwrap();
    std::fs::write(bundle.rootfs().join("etc/ro/file"), "original\n").unwrap();
    let rt = Runtime::new();
    let out = rt.run_ok(&bundle, &unique_name("mask"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "/proc/timer_list is masked");
    assert_eq!(lines[1], "", "masked file reads empty");
    assert_eq!(lines[2].trim(), "0", "masked directory is empty");
    assert_eq!(lines[3], "ro-denied");
    assert_eq!(lines[4], "sys-denied");
    assert_eq!(lines[5], "original");
    assert!(!out.contains("TOPSECRET"));
}

#[test]
fn root_readonly_makes_the_rootfs_read_only() {
    let mut config = sh("touch /x 2>/dev/null && echo writable || echo read-only; touch /tmp/x 2>/dev/null; echo done");
    config["root"]["readonly"] = json!(true);
    assert!(run_script(config).starts_with("read-only\n"));
}

#[test]
fn rlimits_umask_oom_score_and_user_are_applied() {
    let mut config = sh(
        "grep 'Max open files' /proc/self/limits; umask; cat /proc/self/oom_score_adj; \
         grep -E '^(Uid|Gid|Groups):' /proc/self/status; echo $HOME; pwd",
    );
    // Lower than the host's hard limit (root here lacks CAP_SYS_RESOURCE).
    config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]);
    config["process"]["user"] =
        json!({"uid": 1000, "gid": 1001, "additionalGids": [2000, 3000], "umask": 23});
    config["process"]["oomScoreAdj"] = json!(321);
    config["process"]["cwd"] = json!("/home/work");
    let out = run_script(config);
    let lines: Vec<&str> = out.lines().collect();
    let limits: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(&limits[3..5], &["123", "456"], "{}", lines[0]);
    assert_eq!(lines[1], "0027");
    assert_eq!(lines[2], "321");
    assert_eq!(
        status_field(&out, "Uid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec!["1000"; 4]
    );
    assert_eq!(
        status_field(&out, "Gid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec!["1001"; 4]
    );
    assert_eq!(status_field(&out, "Groups"), "2000 3000");
    assert_eq!(lines[lines.len() - 1], "/home/work");
}

#[test]
fn sysctl_and_devices_are_set_up() {
    let mut config = sh(
        "cat /proc/sys/net/ipv4/ip_forward; ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty | cut -c1-10; \
         readlink /dev/ptmx; readlink /dev/fd; readlink /dev/stdin; ls -l /dev/mydev | cut -c1; echo x > /dev/null && echo null-ok",
    );
    config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    config["linux"]["devices"] =
        json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 438}]);
    let out = run_script(config);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1");
    for l in &lines[1..7] {
        assert_eq!(*l, "crw-rw-rw-", "{out}");
    }
    assert_eq!(
        &lines[7..10],
        &["pts/ptmx", "/proc/self/fd", "/proc/self/fd/0"]
    );
    assert_eq!(lines[10], "c");
    assert_eq!(lines[11], "null-ok");
}

#[test]
fn a_user_namespace_maps_root_to_an_unprivileged_host_uid() {
    let mut config =
        sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; echo x > /dev/null && echo dev-ok");
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // In a user namespace the cgroup hierarchy is bind mounted read-only as usual.
    let out = run_script(config);
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines[0], "0 100000 65536");
    assert_eq!(lines[1], "0 100000 65536");
    assert_eq!(lines[2], "0");
    assert_eq!(lines[3], "dev-ok");
}

#[test]
fn joining_a_namespace_by_path_shares_it() {
    // Container B joins container A's UTS namespace by path: it sees A's hostname.
    let rt = Runtime::new();
    let mut a_cfg = runtime_config(&["sleep", "300"]);
    a_cfg["hostname"] = json!("shared-uts");
    let a = Bundle::new(&a_cfg);
    let a_id = unique_name("ns-a");
    rt.create(&a, &a_id, &[]).assert_ok();
    rt.ok(&["start", &a_id]);
    let pid = rt.state(&a_id)["pid"].as_i64().unwrap();
    let mut b_cfg = sh("hostname");
    b_cfg.as_object_mut().unwrap().remove("hostname");
    for ns in b_cfg["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "uts" {
            ns["path"] = json!(format!("/proc/{pid}/ns/uts"));
        }
    }
    let b = Bundle::new(&b_cfg);
    assert_eq!(rt.run_ok(&b, &unique_name("ns-b")), "shared-uts\n");
}

#[test]
fn a_cgroup_namespace_shows_the_container_cgroup_as_root() {
    let mut config = sh("cat /proc/self/cgroup | grep -c -v ':/$'; test -e /sys/fs/cgroup/pids/pids.max && echo pids-visible");
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    config["linux"]["resources"]["pids"] = json!({"limit": 100});
    let out = run_script(config);
    // Every hierarchy line ends in "/": the container's cgroup is its root.
    assert_eq!(out, "0\npids-visible\n");
}

#[test]
fn without_a_cgroup_namespace_the_container_sees_its_own_cgroup() {
    let mut config = sh("cat /sys/fs/cgroup/pids/pids.max");
    config["linux"]["resources"]["pids"] = json!({"limit": 77});
    assert_eq!(run_script(config), "77\n");
}

#[test]
fn the_process_starts_with_default_signal_dispositions() {
    // The runtime is a Rust program and ignores SIGPIPE; the container must not inherit that.
    let out = run_script(runtime_config(&[
        "grep",
        "-E",
        "^Sig(Ign|Blk)",
        "/proc/self/status",
    ]));
    assert_eq!(status_field(&out, "SigIgn"), "0000000000000000");
    assert_eq!(status_field(&out, "SigBlk"), "0000000000000000");
}

#[test]
fn personality_io_priority_scheduler_and_time_namespace_are_applied() {
    let mut config = sh(
        "uname -m; ionice -p $$ 2>/dev/null || echo no-ionice; cut -d' ' -f1 /proc/uptime; \
                         cut -d' ' -f19,41 /proc/self/stat",
    );
    config["linux"]["personality"] = json!({"domain": "LINUX32"});
    config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    // Boot time moved ten days forward inside the container.
    config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000, "nanosecs": 0}});
    let out = run_script(config);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "i686", "{out}");
    if lines[1] != "no-ionice" {
        assert!(lines[1].starts_with("idle"), "{out}");
    }
    let host_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let uptime: f64 = lines[2].parse().unwrap();
    assert!(
        uptime >= host_uptime + 864000.0 - 60.0,
        "container uptime {uptime}, host {host_uptime}"
    );
}

#[test]
fn rro_makes_a_bind_mount_read_only_all_the_way_down() {
    // A host dir with a tmpfs mounted below it, bound into the container
    // with "rbind": plain "ro" leaves the submount writable, "rro" does not.
    let src = tempfile::tempdir().unwrap();
    let sub = src.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _unmount = Unmount(sub.clone());
    let mut config = sh(
        "touch /ro/sub/x 2>/dev/null && echo ro-sub-writable || echo ro-sub-read-only; \
         touch /rro/sub/y 2>/dev/null && echo rro-sub-writable || echo rro-sub-read-only",
    );
    let mounts = config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/ro", "type": "bind", "source": src.path(), "options": ["rbind", "ro"]}));
    mounts.push(json!({"destination": "/rro", "type": "bind", "source": src.path(), "options": ["rbind", "rro"]}));
    let out = run_script(config);
    assert_eq!(out, "ro-sub-writable\nrro-sub-read-only\n");
}

#[test]
fn exec_joins_a_user_namespace_container() {
    let rt = Runtime::new();
    let mut config = runtime_config(&["sleep", "300"]);
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let bundle = Bundle::new(&config);
    let id = unique_name("userns-exec");
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["start", &id]);
    let text = rt.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /proc/self/uid_map; id -u; hostname",
    ]);
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines, vec!["0 200000 65536", "0", "isola-test"]);
    // On the host, the container's init runs as the mapped uid.
    let pid: i32 = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status_field(&status, "Uid").starts_with("200000"),
        "{status}"
    );
}
