//! The CLI's reports end quietly when their reader goes away (`isola ps | head`),
//! as other Unix tools do, instead of panicking on EPIPE.

use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn a_report_whose_reader_went_away_ends_without_a_panic() {
    let root = tempfile::tempdir().unwrap();
    for args in [&["info"][..], &["ps", "-a"], &["images"], &["version"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_isola"))
            .arg("--root")
            .arg(root.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before isola writes (it is still starting up).
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(status.code(), Some(101), "{args:?} panicked: {stderr}");
    }
}
