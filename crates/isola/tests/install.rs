//! `make install-files` (what `make install` runs after `make build`):
//! with DESTDIR and PREFIX, the binaries, the static agent beside `isola`
//! (where it looks for it) and the systemd units land where a system-wide
//! install needs them, and the service unit runs the installed binary with
//! the socket systemd passes. Stand-in binaries keep the test from needing
//! a release build.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn make_install_puts_binaries_and_systemd_units_in_place() {
    let missing = which("make").is_none().then(|| "no make".to_string());
    if !testkit::require("make install", missing) {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = tempfile::tempdir().unwrap();
    let rel = tmp.path().join("release");
    std::fs::create_dir(&rel).unwrap();
    for f in ["isola", "isola-runtime", "agent"] {
        std::fs::write(rel.join(f), "#!/bin/sh\n").unwrap();
    }
    let dest = tmp.path().join("dest");
    let out = Command::new("make")
        .current_dir(&repo)
        // Under `make test` the outer make's jobserver and flags are no
        // business of this one.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .arg("--no-print-directory")
        .arg("install-files")
        .arg(format!("DESTDIR={}", dest.display()))
        .arg("PREFIX=/opt/isola")
        .arg(format!("RELEASE_DIR={}", rel.display()))
        .arg(format!("AGENT_BIN={}", rel.join("agent").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = dest.join("opt/isola/bin");
    for b in ["isola", "isola-runtime", "isola-agent"] {
        assert_eq!(mode(&bin.join(b)), 0o755, "{b}");
    }
    // The runtime's VM-isolation name, for a RuntimeClass handler.
    assert_eq!(
        std::fs::read_link(bin.join("isola-runtime-vm")).unwrap(),
        std::path::Path::new("isola-runtime")
    );
    let units = dest.join("lib/systemd/system");
    assert_eq!(mode(&units.join("isola.socket")), 0o644);
    assert_eq!(mode(&units.join("isola.service")), 0o644);
    assert_eq!(mode(&dest.join("usr/lib/sysusers.d/isola.conf")), 0o644);
    let service = std::fs::read_to_string(units.join("isola.service")).unwrap();
    // The installed path, not the staging one.
    assert!(
        service.contains("\nExecStart=/opt/isola/bin/isola system service --listen fd://\n"),
        "{service}"
    );
    let socket = std::fs::read_to_string(units.join("isola.socket")).unwrap();
    for line in [
        "ListenStream=/run/isola/docker.sock",
        "SocketMode=0660",
        "SocketUser=root",
        "SocketGroup=isola",
    ] {
        assert!(socket.lines().any(|l| l == line), "{line}: {socket}");
    }
    let sysusers = std::fs::read_to_string(dest.join("usr/lib/sysusers.d/isola.conf")).unwrap();
    assert!(
        sysusers.lines().any(|l| l.starts_with("g isola ")),
        "{sysusers}"
    );

    // systemd itself parses the units (with ExecStart pointed at the staged
    // binary, which systemd-analyze checks exists).
    let analyze = which("systemd-analyze");
    let missing = analyze.is_none().then(|| "no systemd-analyze".to_string());
    let (true, Some(analyze)) = (testkit::require("systemd-analyze verify", missing), analyze)
    else {
        return;
    };
    let verify = tmp.path().join("verify");
    std::fs::create_dir(&verify).unwrap();
    std::fs::write(
        verify.join("isola.service"),
        service.replace("/opt/isola/bin", &bin.display().to_string()),
    )
    .unwrap();
    std::fs::write(verify.join("isola.socket"), socket).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg("--man=no")
        .arg(verify.join("isola.socket"))
        .arg(verify.join("isola.service"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}
