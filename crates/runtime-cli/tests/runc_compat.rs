//! End-to-end: behaviours where isola-runtime must do what runc does. Each
//! test runs the same bundle against isola-runtime and against runc (found
//! on PATH; with CI set a missing runc fails the test), so what it expects
//! is runc's behaviour, not only ours. Needs root.

mod common;

use std::os::unix::fs::symlink;

use common::{mounts_under, runtimes};
use serde_json::json;
use testkit::{runtime_config, unique_name, Bundle};

/// A `proc` or `sysfs` mount whose destination in the rootfs is a symlink
/// is refused, as runc refuses it: following the link would mount procfs
/// (or sysfs) wherever the image points it, e.g. over a directory that a
/// later bind mount exposes, or one the runtime trusts.
#[test]
fn proc_or_sys_on_a_symlink_is_refused() {
    for dir in ["proc", "sys"] {
        for rt in runtimes(&["runc"]) {
            let bundle = Bundle::new(&runtime_config(&["true"]));
            let rootfs = bundle.rootfs();
            std::fs::remove_dir(rootfs.join(dir)).unwrap();
            std::fs::create_dir(rootfs.join("elsewhere")).unwrap();
            symlink("elsewhere", rootfs.join(dir)).unwrap();
            let id = unique_name("symproc");
            let c = rt.create(&bundle, &id, &[]);
            let err = c.stderr();
            assert!(
                !c.success,
                "{}: create with /{dir} a symlink succeeded",
                rt.name()
            );
            assert!(
                err.contains("must be mounted on ordinary directory"),
                "{}: {err}",
                rt.name()
            );
            assert!(err.contains(&format!("/{dir}")), "{}: {err}", rt.name());
            assert_eq!(
                mounts_under(&bundle.path()),
                Vec::<String>::new(),
                "{}: mounts left",
                rt.name()
            );
            assert_eq!(
                std::fs::read_dir(rootfs.join("elsewhere")).unwrap().count(),
                0,
                "{}: something was mounted at the link's target",
                rt.name()
            );
        }
    }
}

/// Runs a command that must fail; returns its stderr.
fn fails(rt: &common::Runtime, args: &[&str]) -> String {
    let out = rt.cmd(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{}: {args:?} succeeded: {err}",
        rt.name()
    );
    err
}

/// Asserts `err` (the stderr of a failed command) says "error" and each of
/// `words`: what containerd's shim, go-runc and podman look for in a
/// runtime's output to tell a missing container from a running one.
fn says(rt: &common::Runtime, args: &[&str], err: &str, words: &[&str]) {
    assert!(
        err.contains("error"),
        "{}: {args:?}: no \"error\" in {err:?}",
        rt.name()
    );
    for w in words {
        assert!(
            err.contains(w),
            "{}: {args:?}: no {w:?} in {err:?}",
            rt.name()
        );
    }
}

/// The errors callers tell apart by their words, worded as runc words them.
#[test]
fn errors_say_what_runc_says() {
    for rt in runtimes(&["runc"]) {
        let nosuch = unique_name("nosuch");
        for cmd in ["delete", "state", "kill", "start", "pause", "resume"] {
            let args = [cmd, nosuch.as_str()];
            let err = fails(&rt, &args);
            says(&rt, &args, &err, &["does not exist"]);
        }
        let args = ["exec", nosuch.as_str(), "true"];
        let err = fails(&rt, &args);
        says(&rt, &args, &err, &["does not exist"]);

        let bundle = Bundle::new(&runtime_config(&["sleep", "100"]));
        let id = unique_name("errs");
        rt.create(&bundle, &id, &[]).assert_ok();
        let c = rt.create(&bundle, &id, &[]);
        assert!(!c.success, "{}: second create of {id} succeeded", rt.name());
        says(&rt, &["create", &id], &c.stderr(), &["already exists"]);

        rt.ok(&["start", &id]);
        for (args, words) in [
            (vec!["delete", &id], &["not stopped", "running"][..]),
            (vec!["start", &id], &["already running"][..]),
            (vec!["resume", &id], &["not paused"][..]),
        ] {
            let err = fails(&rt, &args);
            says(&rt, &args, &err, words);
        }
        rt.ok(&["pause", &id]);
        let args = ["delete", id.as_str()];
        let err = fails(&rt, &args);
        says(&rt, &args, &err, &["not stopped", "paused"]);
        rt.ok(&["resume", &id]);

        rt.ok(&["kill", &id, "KILL"]);
        rt.wait_status(&id, "stopped");
        for (args, words) in [
            (vec!["kill", &id, "KILL"], &["not running"][..]),
            (vec!["pause", &id], &["not running"][..]),
            (vec!["start", &id], &["stopped"][..]),
            (vec!["exec", &id, "true"], &["stopped"][..]),
        ] {
            let err = fails(&rt, &args);
            says(&rt, &args, &err, words);
        }
        rt.ok(&["delete", &id]);
    }
}

/// A hook that writes its environment, then its stdin, to `out`.
fn env_hook(out: &str) -> serde_json::Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("(env; echo; cat) > {out}")]})
}

/// A hook without `env` of its own gets the environment runc gives it: the
/// runtime's (its caller's) for the hooks that run in the runtime's
/// namespaces, the container process's for createContainer and
/// startContainer, which run in the container.
#[test]
fn a_hook_without_env_gets_the_environment_runc_gives_it() {
    for rt in runtimes(&["runc"]) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let mut config = runtime_config(&["true"]);
        config["process"]["env"] = json!(["PATH=/bin", "FROM_PROCESS=1"]);
        config["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/hooks", "type": "bind", "source": d, "options": ["rbind"]}),
        );
        config["hooks"] = json!({
            "prestart": [env_hook(&format!("{d}/prestart"))],
            "createRuntime": [env_hook(&format!("{d}/createRuntime"))],
            "createContainer": [env_hook(&format!("{d}/createContainer"))],
            "startContainer": [env_hook("/hooks/startContainer")],
            "poststart": [env_hook(&format!("{d}/poststart"))],
            // A hook's own env replaces the environment.
            "poststop": [
                env_hook(&format!("{d}/poststop")),
                {"path": "/bin/sh", "args": ["sh", "-c", format!("env > {d}/own")],
                 "env": ["OWN=1"]}
            ]
        });
        let bundle = Bundle::new(&config);
        let id = unique_name("hookenv");
        rt.track(&id);
        let out = rt
            .cmd(&["run", "--bundle", bundle.path().to_str().unwrap(), &id])
            .env("FROM_CALLER", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            rt.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        let env_of = |hook: &str| {
            let text = std::fs::read_to_string(dir.path().join(hook))
                .unwrap_or_else(|e| panic!("{}: {hook} did not run: {e}", rt.name()));
            text.split("\n\n").next().unwrap().to_string()
        };
        for hook in ["prestart", "createRuntime", "poststart", "poststop"] {
            let env = env_of(hook);
            assert!(
                env.contains("FROM_CALLER=1"),
                "{}: {hook}: {env}",
                rt.name()
            );
            assert!(
                !env.contains("FROM_PROCESS"),
                "{}: {hook}: {env}",
                rt.name()
            );
        }
        for hook in ["createContainer", "startContainer"] {
            let env = env_of(hook);
            assert!(
                env.contains("FROM_PROCESS=1"),
                "{}: {hook}: {env}",
                rt.name()
            );
            assert!(!env.contains("FROM_CALLER"), "{}: {hook}: {env}", rt.name());
        }
        let own = std::fs::read_to_string(dir.path().join("own")).unwrap();
        assert!(own.contains("OWN=1"), "{}: {own}", rt.name());
        assert!(!own.contains("FROM_"), "{}: {own}", rt.name());
    }
}

/// The state a prestart or createRuntime hook reads on stdin says
/// `created`, as crun sends it (runc says `creating`; isola follows crun,
/// as the issue asks: the container is set up by then). Only isola-runtime:
/// crun cannot run on this host's cgroup layout without changing it.
#[test]
fn prestart_and_create_runtime_hooks_read_created() {
    let rt = common::Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let mut config = runtime_config(&["true"]);
    config["hooks"] = json!({
        "prestart": [env_hook(&format!("{d}/prestart"))],
        "createRuntime": [env_hook(&format!("{d}/createRuntime"))],
    });
    let bundle = Bundle::new(&config);
    rt.run_ok(&bundle, &unique_name("hookstate"));
    for hook in ["prestart", "createRuntime"] {
        let text = std::fs::read_to_string(dir.path().join(hook)).unwrap();
        let state: serde_json::Value =
            serde_json::from_str(text.split("\n\n").nth(1).unwrap()).unwrap();
        assert_eq!(state["status"], "created", "{hook}: {state}");
    }
}

/// When a poststart or poststop hook fails, the ones after it still run
/// and the operation succeeds: the runtime spec says to log a warning and
/// continue. Only isola-runtime: runc 1.1 fails `create` outright for a
/// failing poststart hook, against the spec.
#[test]
fn a_failing_poststart_or_poststop_hook_does_not_stop_the_others() {
    let rt = common::Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let fail = json!({"path": "/bin/false", "args": ["false"]});
    let touch =
        |name: &str| json!({"path": "/bin/touch", "args": ["touch", format!("{d}/{name}")]});
    let mut config = runtime_config(&["sleep", "100"]);
    config["hooks"] = json!({
        "poststart": [fail, touch("poststart-after")],
        "poststop": [fail, touch("poststop-after")],
    });
    let bundle = Bundle::new(&config);
    let id = unique_name("hookfail");
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["start", &id]);
    assert!(
        dir.path().join("poststart-after").exists(),
        "the poststart hook after the failed one did not run"
    );
    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    assert!(
        dir.path().join("poststop-after").exists(),
        "the poststop hook after the failed one did not run"
    );
}

/// A capability set from a /proc/<pid>/status line, e.g. CapInh.
fn cap_set(status: &str, name: &str) -> u64 {
    u64::from_str_radix(common::status_field(status, name), 16).unwrap()
}

const CAP_SYS_ADMIN_BIT: u64 = 1 << 21;

/// `exec --cap` adds to the bounding, effective and permitted sets only,
/// never to the inheritable or ambient ones (runc since CVE-2022-29162:
/// an inheritable capability survives into programs the process runs).
#[test]
fn exec_cap_does_not_add_inheritable_or_ambient() {
    for rt in runtimes(&["runc"]) {
        let bundle = Bundle::new(&runtime_config(&["sleep", "100"]));
        let id = unique_name("execcap");
        rt.create(&bundle, &id, &[]).assert_ok();
        rt.ok(&["start", &id]);
        let status = rt.ok(&[
            "exec",
            "--cap",
            "CAP_SYS_ADMIN",
            &id,
            "cat",
            "/proc/self/status",
        ]);
        for set in ["CapBnd", "CapEff", "CapPrm"] {
            assert_ne!(
                cap_set(&status, set) & CAP_SYS_ADMIN_BIT,
                0,
                "{}: {set} lacks CAP_SYS_ADMIN: {status}",
                rt.name()
            );
        }
        for set in ["CapInh", "CapAmb"] {
            assert_eq!(
                cap_set(&status, set) & CAP_SYS_ADMIN_BIT,
                0,
                "{}: {set} has CAP_SYS_ADMIN: {status}",
                rt.name()
            );
        }
    }
}

/// `exec` into a paused container is refused unless --ignore-paused is
/// given; with it, the process starts and runs once the container resumes.
#[test]
fn exec_ignore_paused() {
    for rt in runtimes(&["runc"]) {
        let bundle = Bundle::new(&runtime_config(&["sleep", "100"]));
        let id = unique_name("execpaused");
        rt.create(&bundle, &id, &[]).assert_ok();
        rt.ok(&["start", &id]);
        rt.ok(&["pause", &id]);
        let err = fails(&rt, &["exec", "-d", &id, "sleep", "200"]);
        assert!(err.contains("paused"), "{}: {err}", rt.name());
        let mut exec = rt
            .cmd(&["exec", "-d", "--ignore-paused", &id, "sleep", "200"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // It may finish while paused or once resumed; it must not fail.
        std::thread::sleep(std::time::Duration::from_millis(300));
        rt.ok(&["resume", &id]);
        let st = exec.wait().unwrap();
        assert!(st.success(), "{}: exec --ignore-paused: {st}", rt.name());
        let pids: Vec<i32> =
            serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
        assert_eq!(pids.len(), 2, "{}: {pids:?}", rt.name());
    }
}

/// The container's cgroup in the pids hierarchy, from its init's
/// /proc/<pid>/cgroup (the runtimes name it differently).
fn pids_cgroup(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
            (ctl == "pids" || ctl.is_empty()).then(|| path.to_string())
        })
        .unwrap()
}

/// `exec --cgroup pids:sub` puts the process in the existing sub-cgroup
/// `sub` of the container's cgroup in that hierarchy.
#[test]
fn exec_into_a_sub_cgroup() {
    if !std::path::Path::new("/sys/fs/cgroup/pids").is_dir() {
        // cgroup v2 host: one tree; the v1 hierarchy is what this checks here.
        assert!(
            std::env::var_os("CI").is_none(),
            "no cgroup v1 pids hierarchy"
        );
        return;
    }
    for rt in runtimes(&["runc"]) {
        let bundle = Bundle::new(&runtime_config(&["sleep", "100"]));
        let id = unique_name("execcg");
        rt.create(&bundle, &id, &[]).assert_ok();
        rt.ok(&["start", &id]);
        let init = rt.state(&id)["pid"].as_i64().unwrap();
        let cg = pids_cgroup(init);
        let sub = std::path::Path::new("/sys/fs/cgroup/pids")
            .join(cg.trim_start_matches('/'))
            .join("sub");
        std::fs::create_dir(&sub).unwrap();
        let out = rt.ok(&[
            "exec",
            "--cgroup",
            "pids:sub",
            &id,
            "cat",
            "/proc/self/cgroup",
        ]);
        let line = out.lines().find(|l| l.contains(":pids:")).unwrap_or("");
        assert!(line.ends_with(&format!("{cg}/sub")), "{}: {out}", rt.name());
        // The other hierarchies stay at the container's cgroup.
        let line = out.lines().find(|l| l.contains(":freezer:")).unwrap_or("");
        assert!(!line.ends_with("/sub"), "{}: {out}", rt.name());
        rt.ok(&["kill", &id, "KILL"]);
        rt.wait_status(&id, "stopped");
        rt.ok(&["delete", &id]);
    }
}

/// linux.timeOffsets take effect with a user namespace whose root is not
/// the host's: once the setup process has changed to that uid the kernel
/// hands its /proc/self to the host's root, and timens_offsets could not be
/// written. /proc/uptime counts CLOCK_BOOTTIME, so an offset of a day shows
/// as a day more than the host's uptime.
#[test]
fn time_offsets_apply_in_a_user_namespace() {
    let rt = common::Runtime::new();
    let mut config = runtime_config(&["cat", "/proc/uptime"]);
    let ns = config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "user"}));
    ns.push(json!({"type": "time"}));
    config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 86400, "nanosecs": 0},
        "boottime": {"secs": 86400, "nanosecs": 0}
    });
    let bundle = Bundle::new(&config);
    let uptime = |text: &str| -> f64 { text.split_whitespace().next().unwrap().parse().unwrap() };
    let host = uptime(&std::fs::read_to_string("/proc/uptime").unwrap());
    let out = rt.run_ok(&bundle, &unique_name("timens"));
    assert!(
        uptime(&out) >= host + 86400.0,
        "uptime inside {out:?}, on the host {host}"
    );
}

/// A process's cgroups as (hierarchy, path) pairs, with `id` written ID.
fn cgroups_of(pid: i64, id: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
            Some((ctl.to_string(), path.replace(id, "ID")))
        })
        .collect();
    v.sort();
    v
}

/// Without linux.cgroupsPath the container's cgroup is named as runc
/// names it (the id, below the caller's own cgroup in each hierarchy), so
/// that tools looking for it there find it.
#[test]
fn without_cgroups_path_the_cgroup_is_named_as_runc_names_it() {
    let mut seen = Vec::new();
    for rt in runtimes(&["runc"]) {
        let bundle = Bundle::new(&runtime_config(&["sleep", "100"]));
        let id = unique_name("cgname");
        rt.create(&bundle, &id, &[]).assert_ok();
        let pid = rt.state(&id)["pid"].as_i64().unwrap();
        seen.push((rt.name(), cgroups_of(pid, &id)));
        rt.ok(&["delete", "--force", &id]);
    }
    // On a hybrid host (v1 controllers and an empty cgroup2 tree) runc
    // also joins the empty v2 tree; isola-runtime uses the v1 controllers
    // only there. Compared: every hierarchy with controllers.
    let hybrid = seen[0].1.len() > 1;
    for (_, cgroups) in &mut seen {
        cgroups.retain(|(ctl, _)| !(hybrid && ctl.is_empty()));
    }
    let (_, isola) = &seen[0];
    assert!(isola.iter().any(|(_, p)| p.ends_with("/ID")), "{isola:?}");
    for (name, theirs) in &seen[1..] {
        assert_eq!(isola, theirs, "isola-runtime's cgroups, then {name}'s");
    }
}

/// A relative cgroupsPath whose parents did not exist: delete removes the
/// parents create made, and leaves one that was there before.
#[test]
fn delete_removes_the_cgroup_parents_create_made() {
    let rt = common::Runtime::new();
    let top = unique_name("cgparent");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let pids_own = own
        .lines()
        .find_map(|l| l.split_once(":pids:").map(|(_, p)| p.to_string()))
        .unwrap_or_default();
    let mut config = runtime_config(&["true"]);
    config["linux"]["cgroupsPath"] = json!(format!("{top}/mid/leaf"));
    let bundle = Bundle::new(&config);
    let id = unique_name("cgrel");
    rt.create(&bundle, &id, &[]).assert_ok();
    let dirs = common::cgroup_dirs_named("leaf");
    assert!(
        dirs.iter().any(|d| d.to_string_lossy().contains(&top)),
        "no cgroup {top}/mid/leaf: {dirs:?}"
    );
    rt.ok(&["delete", "--force", &id]);
    assert_eq!(
        common::cgroup_dirs_named(&top),
        Vec::<std::path::PathBuf>::new(),
        "the parents create made are left"
    );

    // A parent that was there before stays.
    let pre = std::path::Path::new("/sys/fs/cgroup/pids")
        .join(pids_own.trim_start_matches('/'))
        .join(&top);
    let v1 = std::path::Path::new("/sys/fs/cgroup/pids").is_dir();
    let pre = if v1 {
        pre
    } else {
        std::path::Path::new("/sys/fs/cgroup").join(&top)
    };
    std::fs::create_dir(&pre).unwrap();
    let id = unique_name("cgrel");
    rt.create(&bundle, &id, &[]).assert_ok();
    rt.ok(&["delete", "--force", &id]);
    assert!(
        pre.is_dir(),
        "{} was there before and is gone",
        pre.display()
    );
    assert!(!pre.join("mid").exists(), "{}/mid is left", pre.display());
    std::fs::remove_dir(&pre).unwrap();
}

/// Detaches whatever a runtime left mounted under a rootfs (runc leaves a
/// mount-namespace-less container's mounts), so the bundle can go.
struct LeftMounts(std::path::PathBuf);

impl Drop for LeftMounts {
    fn drop(&mut self) {
        if !mounts_under(&self.0).is_empty() {
            let _ = std::process::Command::new("umount")
                .args(["-R", "-l"])
                .arg(&self.0)
                .status();
        }
    }
}

/// The optional fields (propagation) of the host's "/" mount.
fn root_propagation() -> String {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let end = f.iter().position(|x| *x == "-").unwrap();
            f[6..end].join(" ")
        })
        .unwrap()
}

/// A config without a mount namespace runs as runc runs it: in the
/// caller's mount namespace, chrooted into the rootfs, its mounts made
/// there (without touching the host's "/"). isola-runtime also removes
/// those mounts at delete (runc leaves them); masked and read-only paths,
/// which need a private mount namespace, are refused as runc refuses them.
#[test]
fn a_config_without_a_mount_namespace_runs_in_the_callers() {
    for rt in runtimes(&["runc"]) {
        let mut config = runtime_config(&["sh", "-c", "cat /marker; exec sleep 100"]);
        let ns = config["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "mount");
        let bundle = Bundle::new(&config);
        let id = unique_name("nomntns");
        let c = rt.create(&bundle, &id, &[]);
        assert!(
            !c.success,
            "{}: maskedPaths without a mount namespace",
            rt.name()
        );
        assert!(
            c.stderr().contains("mount namespace") || c.stderr().contains("MNT namespace"),
            "{}: {}",
            rt.name(),
            c.stderr()
        );
        assert_eq!(
            mounts_under(&bundle.path()),
            Vec::<String>::new(),
            "{}",
            rt.name()
        );

        let linux = config["linux"].as_object_mut().unwrap();
        linux.remove("maskedPaths");
        linux.remove("readonlyPaths");
        bundle.write_config(&config);
        std::fs::write(bundle.rootfs().join("marker"), "in the rootfs\n").unwrap();
        let before = root_propagation();
        let id = unique_name("nomntns");
        let _tidy = LeftMounts(bundle.rootfs());
        let c = rt.create(&bundle, &id, &[]);
        c.assert_ok();
        rt.ok(&["start", &id]);
        common::wait_until("the container's output", || c.stdout().contains("rootfs"));
        assert_eq!(c.stdout(), "in the rootfs\n", "{}", rt.name());
        let mounts = mounts_under(&bundle.rootfs());
        assert!(
            mounts.iter().any(|m| m.ends_with("/rootfs/proc")),
            "{}: the container's mounts are not in the caller's namespace: {mounts:?}",
            rt.name()
        );
        assert_eq!(
            root_propagation(),
            before,
            "{}: the host's / changed",
            rt.name()
        );
        if rt.name() != "runc" {
            // exec'd processes see the container's root too (runc 1.1's
            // run in the host's root instead).
            let out = rt.ok(&["exec", &id, "cat", "/marker"]);
            assert_eq!(out, "in the rootfs\n", "{}: exec", rt.name());
        }
        rt.ok(&["delete", "--force", &id]);
        if rt.name() != "runc" {
            assert_eq!(
                mounts_under(&bundle.path()),
                Vec::<String>::new(),
                "mounts left in the caller's namespace after delete"
            );
        }
    }
}

/// Accepts one connection on `listener` (waiting at most 20 s) and returns
/// the message and the fds that came with it.
fn receive_with_fds(
    listener: std::os::unix::net::UnixListener,
) -> Option<(Vec<u8>, Vec<std::os::fd::OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd};
    listener.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut fds = Vec::new();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just gave us these fds; nothing else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|f| unsafe { std::os::fd::OwnedFd::from_raw_fd(f) }),
            );
        }
    }
    let n = msg.bytes;
    Some((buf[..n].to_vec(), fds))
}

/// SCMP_ACT_NOTIFY with a listenerPath: the notify fd goes to the listener
/// over the unix socket with the container process state (runtime spec
/// "ContainerProcessState", as runc sends it); once the listener closes it,
/// the notified syscall fails with ENOSYS.
#[test]
fn seccomp_notify_fd_goes_to_the_listener() {
    for rt in runtimes(&["runc"]) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("listener.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let receiver = std::thread::spawn(move || receive_with_fds(listener));
        let mut config = runtime_config(&["sh", "-c", "mkdir /tmp/notified; echo done"]);
        config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "from-the-test",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
        let bundle = Bundle::new(&config);
        let id = unique_name("notify");
        let c = rt.create(&bundle, &id, &[]);
        let got = receiver.join().unwrap();
        c.assert_ok();
        let (data, fds) =
            got.unwrap_or_else(|| panic!("{}: nothing reached the listener", rt.name()));
        let state: serde_json::Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(state["fds"], json!(["seccompFd"]), "{}: {state}", rt.name());
        assert_eq!(state["metadata"], "from-the-test", "{}: {state}", rt.name());
        assert_eq!(state["state"]["id"], id.as_str(), "{}: {state}", rt.name());
        assert_eq!(state["pid"], rt.state(&id)["pid"], "{}: {state}", rt.name());
        assert_eq!(fds.len(), 1, "{}", rt.name());
        let what = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fds[0])
        ))
        .unwrap();
        assert_eq!(
            what.to_string_lossy(),
            "anon_inode:seccomp notify",
            "{}",
            rt.name()
        );
        drop(fds);
        rt.ok(&["start", &id]);
        common::wait_until("the container's echo", || c.stdout().contains("done"));
        assert!(
            c.stdout().contains("implemented") || c.stderr().contains("implemented"),
            "{}: mkdir did not fail with ENOSYS: {} {}",
            rt.name(),
            c.stdout(),
            c.stderr()
        );
        assert!(
            !bundle.rootfs().join("tmp/notified").exists(),
            "{}",
            rt.name()
        );
    }
}
