//! `isola login`/`logout` and authenticated pulls against a real Debian
//! docker-registry with htpasswd (bcrypt) basic auth.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use support::*;

#[test]
fn login_then_pull_from_basic_auth_registry() {
    let reg = Registry::start_with_htpasswd();
    let (layout, _) = busybox_layout();
    reg.push(
        layout.path(),
        "latest",
        "private/busybox:latest",
        Some((USER, PASSWORD)),
    );
    let root = engine_root();
    let name = format!("{}/private/busybox:latest", reg.host());

    let err = fails(isola(root.path(), &["pull", &name], &[], None));
    assert!(err.contains("denied by registry"), "{err}");
    assert!(
        err.contains(&format!("isola login {}", reg.host())),
        "{err}"
    );

    let err = fails(isola(
        root.path(),
        &["login", "-u", USER, "--password-stdin", &reg.host()],
        &[],
        Some("wrong-password\n"),
    ));
    assert!(
        err.contains(&format!("login to {} failed", reg.host())),
        "{err}"
    );
    assert!(!root.path().join("auth.json").exists());

    let out = ok(isola(
        root.path(),
        &["login", "-u", USER, "--password-stdin", &reg.host()],
        &[],
        Some(&format!("{PASSWORD}\n")),
    ));
    assert_eq!(out, "Login Succeeded\n");
    let auth = root.path().join("auth.json");
    let mode = fs::metadata(&auth).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "auth.json must be readable by its owner only");
    let text = fs::read_to_string(&auth).unwrap();
    assert!(!text.contains(PASSWORD), "password stored in clear: {text}");

    let out = ok(isola(root.path(), &["pull", &name], &[], None));
    assert!(out.ends_with(&format!("{name}\n")), "{out}");

    let out = ok(isola(root.path(), &["logout", &reg.host()], &[], None));
    assert!(out.contains("Removing login credentials"), "{out}");
    let err = fails(isola(root.path(), &["pull", &name], &[], None));
    assert!(err.contains("denied by registry"), "{err}");
}

#[test]
fn docker_config_credentials_are_used() {
    let reg = Registry::start_with_htpasswd();
    let (layout, _) = busybox_layout();
    reg.push(
        layout.path(),
        "latest",
        "busybox:latest",
        Some((USER, PASSWORD)),
    );
    let root = engine_root();
    let docker = root.path().join("docker-config");
    fs::create_dir(&docker).unwrap();
    let encoded = STANDARD.encode(format!("{USER}:{PASSWORD}"));
    fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"http://{}":{{"auth":"{encoded}"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let name = format!("{}/busybox:latest", reg.host());
    let docker_dir = docker.to_str().unwrap();
    ok(isola(
        root.path(),
        &["pull", &name],
        &[("DOCKER_CONFIG", docker_dir)],
        None,
    ));
}
