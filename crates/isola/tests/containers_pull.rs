//! End-to-end: `run` of an image the store lacks pulls it first when the
//! reference names its registry (a real Debian docker-registry on 127.0.0.1).

mod support;

use support::*;

#[test]
fn run_pulls_a_missing_image_from_its_registry() {
    let reg = Registry::start();
    let (layout, _) = busybox_layout();
    reg.push(layout.path(), "latest", "busybox:latest", None);
    let root = engine_root();
    let name = format!("{}/busybox:latest", reg.host());
    let out = isola(
        root.path(),
        &["run", "--rm", &name, "echo", "pulled-and-ran"],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "pulled-and-ran\n");
    assert!(
        stderr(&out).contains(&format!("Unable to find image '{name}' locally")),
        "{}",
        stderr(&out)
    );
    // Now it is local: no second pull.
    let out = isola(root.path(), &["run", "--rm", &name, "true"], &[], None);
    assert!(out.status.success());
    assert!(!stderr(&out).contains("Unable to find image"));
    // A bare name is never pulled on demand: a clear error, at once.
    let out = isola(root.path(), &["run", "--rm", "not-here", "true"], &[], None);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("not found locally"),
        "{}",
        stderr(&out)
    );
}
