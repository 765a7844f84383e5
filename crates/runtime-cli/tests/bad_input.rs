//! End-to-end: bad bundles and bad requests. Each must fail with one line
//! on stderr that names the field or path, a non-zero exit, and leave no
//! state directory, cgroup, mount or process behind. Needs root.

mod common;

use common::{assert_nothing_left, Runtime};
use serde_json::json;
use testkit::{runtime_config, unique_name, Bundle};

/// Creates `id` from `bundle`, expects failure, returns the error line.
fn create_fails(rt: &Runtime, bundle: &Bundle, id: &str) -> String {
    let c = rt.create(bundle, id, &[]);
    assert!(!c.success, "create of a bad bundle succeeded");
    let err = c.stderr();
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("isola-runtime: error: "), "{err}");
    assert_nothing_left(rt, id, bundle);
    err
}

#[test]
fn malformed_json_names_the_file() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["true"]));
    std::fs::write(
        bundle.path().join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": {",
    )
    .unwrap();
    let id = unique_name("badjson");
    let err = create_fails(&rt, &bundle, &id);
    assert!(err.contains("config.json"), "{err}");
    assert!(err.contains("EOF"), "{err}");
}

#[test]
fn a_field_of_the_wrong_type_is_named() {
    let rt = Runtime::new();
    let mut config = runtime_config(&["true"]);
    config["process"]["user"]["uid"] = json!("root");
    let bundle = Bundle::new(&config);
    let err = create_fails(&rt, &bundle, &unique_name("badtype"));
    assert!(err.contains("process.user.uid"), "{err}");
}

#[test]
fn a_mount_without_destination_is_named() {
    let rt = Runtime::new();
    let mut config = runtime_config(&["true"]);
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "tmpfs", "source": "tmpfs"}));
    let bundle = Bundle::new(&config);
    let err = create_fails(&rt, &bundle, &unique_name("nodest"));
    assert!(err.contains("mounts[7]"), "{err}");
    assert!(err.contains("destination"), "{err}");

    let mut config = runtime_config(&["true"]);
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "relative/dir", "type": "tmpfs"}));
    let bundle = Bundle::new(&config);
    let err = create_fails(&rt, &bundle, &unique_name("reldest"));
    assert!(err.contains("mounts[7].destination"), "{err}");
}

#[test]
fn empty_process_args_are_named() {
    let rt = Runtime::new();
    let config = runtime_config(&[]);
    let bundle = Bundle::new(&config);
    let err = create_fails(&rt, &bundle, &unique_name("noargs"));
    assert!(err.contains("process.args"), "{err}");
}

#[test]
fn a_missing_rootfs_is_named() {
    let rt = Runtime::new();
    let mut config = runtime_config(&["true"]);
    config["root"]["path"] = json!("no-such-rootfs");
    let bundle = Bundle::new(&config);
    let err = create_fails(&rt, &bundle, &unique_name("norootfs"));
    assert!(err.contains("no-such-rootfs"), "{err}");
    assert!(err.contains("root.path"), "{err}");
}

#[test]
fn an_unknown_namespace_type_is_named() {
    let rt = Runtime::new();
    let mut config = runtime_config(&["true"]);
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "bogus"}));
    let bundle = Bundle::new(&config);
    let err = create_fails(&rt, &bundle, &unique_name("badns"));
    assert!(err.contains("linux.namespaces[5].type"), "{err}");
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn a_missing_executable_fails_create_and_leaves_nothing() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["/bin/no-such-program"]));
    let err = create_fails(&rt, &bundle, &unique_name("noexe"));
    assert!(err.contains("/bin/no-such-program"), "{err}");
}

#[test]
fn a_failing_mount_inside_the_init_leaves_nothing() {
    // The error happens in the forked init, after cgroup and mounts were made.
    let rt = Runtime::new();
    let mut config = runtime_config(&["true"]);
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/data", "type": "bind", "source": "/no/such/source", "options": ["rbind"]}));
    let bundle = Bundle::new(&config);
    let err = create_fails(&rt, &bundle, &unique_name("badmount"));
    assert!(err.contains("/no/such/source"), "{err}");
}

#[test]
fn a_duplicate_id_is_refused_and_the_first_container_survives() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["sleep", "300"]));
    let id = unique_name("dup");
    rt.create(&bundle, &id, &[]).assert_ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap();

    let other = Bundle::new(&runtime_config(&["true"]));
    let c = rt.create(&other, &id, &[]);
    assert!(!c.success);
    let err = c.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&id) && err.contains("already exists"), "{err}");
    assert_eq!(rt.state(&id)["pid"].as_i64(), Some(pid));
    assert_eq!(rt.status(&id), "created");
    assert!(common::mounts_under(&other.path()).is_empty());
}

#[test]
fn an_invalid_id_is_refused() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["true"]));
    let c = rt.create(&bundle, "../escape", &[]);
    assert!(!c.success);
    assert!(
        c.stderr().contains("invalid container id"),
        "{}",
        c.stderr()
    );
    assert!(!rt.root.path().parent().unwrap().join("escape").exists());
}

#[test]
fn commands_on_a_missing_container_say_it_does_not_exist() {
    let rt = Runtime::new();
    for args in [
        vec!["state", "nope"],
        vec!["start", "nope"],
        vec!["kill", "nope"],
        vec!["delete", "nope"],
        vec!["exec", "nope", "true"],
    ] {
        let out = rt.cmd(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim(),
            "isola-runtime: error: container \"nope\" does not exist",
            "{args:?}"
        );
    }
    // runc: delete --force of a missing container succeeds.
    rt.ok(&["delete", "--force", "nope"]);
}

#[test]
fn errors_are_also_logged_as_runc_json_lines() {
    let rt = Runtime::new();
    let log = rt.root.path().join("log.json");
    let out = rt
        .cmd(&[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert_eq!(last["msg"], "container \"nope\" does not exist");
    assert!(last["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn an_rlimit_above_the_hard_limit_is_reported_with_its_name() {
    // Root here lacks CAP_SYS_RESOURCE: raising RLIMIT_NOFILE past the
    // current hard limit fails, and the error says which limit.
    let rt = Runtime::new();
    let hard = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_string))
        .unwrap();
    let Ok(hard) = hard.parse::<u64>() else {
        println!("SKIP: RLIMIT_NOFILE hard limit is {hard}");
        return;
    };
    let has_sys_resource = {
        let caps = std::fs::read_to_string("/proc/self/status").unwrap();
        let eff = u64::from_str_radix(common::status_field(&caps, "CapEff"), 16).unwrap();
        eff & (1 << 24) != 0
    };
    if has_sys_resource {
        println!("SKIP: this root has CAP_SYS_RESOURCE and may raise any limit");
        return;
    }
    let mut config = runtime_config(&["true"]);
    config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]);
    let bundle = Bundle::new(&config);
    let err = create_fails(&rt, &bundle, &unique_name("rlimit"));
    assert!(err.contains("RLIMIT_NOFILE"), "{err}");
}

#[test]
fn exec_with_a_non_numeric_user_says_what_it_expects() {
    let rt = Runtime::new();
    let bundle = Bundle::new(&runtime_config(&["sleep", "300"]));
    let id = unique_name("baduser");
    rt.create(&bundle, &id, &[]).assert_ok();
    // Both halves are checked: a bad uid and a bad gid name the flag alike.
    for user in ["nobody", "0:staff"] {
        let out = rt
            .cmd(&["exec", "--user", user, &id, "true"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{user}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("--user {user:?}: expected uid[:gid]")),
            "{err}"
        );
    }
}

#[test]
fn an_unknown_root_propagation_is_named() {
    let rt = Runtime::new();
    let mut config = runtime_config(&["true"]);
    config["linux"]["rootfsPropagation"] = json!("sideways");
    let bundle = Bundle::new(&config);
    let err = create_fails(&rt, &bundle, &unique_name("badprop"));
    assert!(
        err.contains("linux.rootfsPropagation") && err.contains("\"sideways\""),
        "{err}"
    );
}

#[test]
fn a_bind_mount_without_a_source_is_named() {
    let rt = Runtime::new();
    let mut config = runtime_config(&["true"]);
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/data", "type": "bind", "options": ["rbind"]}));
    let bundle = Bundle::new(&config);
    let err = create_fails(&rt, &bundle, &unique_name("nosource"));
    assert!(
        err.contains("mounts[7].source") && err.contains("/data"),
        "{err}"
    );
}

/// A sysctl outside the container's namespaces would change the host: it
/// is refused at create, naming the key. The value is the host's own, so
/// that even a runtime without the check changes nothing here.
#[test]
fn a_host_sysctl_is_refused_at_create() {
    let rt = Runtime::new();
    let host = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let mut config = runtime_config(&["true"]);
    config["linux"]["sysctl"] = json!({"kernel.core_pattern": host.trim_end()});
    let err = create_fails(&rt, &Bundle::new(&config), &unique_name("sysctl-host"));
    assert!(
        err.contains("linux.sysctl[\"kernel.core_pattern\"]"),
        "{err}"
    );
    assert!(err.contains("would change the host"), "{err}");

    // net.* needs the container's own network namespace.
    let mut config = runtime_config(&["true"]);
    config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|n| n["type"] != "network");
    let err = create_fails(&rt, &Bundle::new(&config), &unique_name("sysctl-net"));
    assert!(err.contains("needs a network namespace"), "{err}");
}

#[test]
fn an_oci_version_that_is_no_semantic_version_is_refused() {
    let rt = Runtime::new();
    for bad in ["bogus", "1.0", ""] {
        let mut config = runtime_config(&["true"]);
        config["ociVersion"] = json!(bad);
        let bundle = Bundle::new(&config);
        let err = create_fails(&rt, &bundle, &unique_name("badver"));
        assert!(err.contains("ociVersion"), "{err}");
    }
    // A pre-release is a semantic version (runc's own spec says "1.0.2-dev").
    let mut config = runtime_config(&["true"]);
    config["ociVersion"] = json!("1.0.2-dev");
    rt.run_ok(&Bundle::new(&config), &unique_name("devver"));
}

/// seccomp's SCMP_ACT_NOTIFY needs a listener for the notify fd: a
/// profile with such a rule and no listenerPath is refused at create,
/// naming the field, before anything is made.
#[test]
fn a_seccomp_notify_rule_without_a_listener_is_refused() {
    let rt = Runtime::new();
    let mut config = runtime_config(&["true"]);
    config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let bundle = Bundle::new(&config);
    let err = create_fails(&rt, &bundle, &unique_name("notify"));
    assert!(err.contains("linux.seccomp.listenerPath"), "{err}");
}
