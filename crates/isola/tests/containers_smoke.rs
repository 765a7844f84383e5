//! Smoke test of the container lifecycle through the real binary.
mod common;

#[test]
fn run_prints_and_exits() {
    let root = common::Root::new();
    let out = root.run(&["run", "--rm", "busybox", "sh", "-c", "echo hello; exit 7"]);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(out.status.code(), Some(7));
    root.assert_clean();
}
