//! End-to-end: volumes through the real `isola` binary: `volume create|ls|
//! inspect|rm|prune`, named volumes made on first use by `-v name:/path`
//! and shared by containers, the image's content copied into a new volume
//! (owners, modes, symlinks, xattrs), anonymous volumes (`-v /path`, the
//! image's VOLUMEs) removed by `rm -v` and `run --rm`, refusals, labels on
//! containers, and a volume in a VM guest. Needs root.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::Root;

fn volumes_dir(root: &Root) -> PathBuf {
    root.path().join("volumes")
}

/// Names of the volumes on disk (what `volume ls` should agree with).
fn volume_dirs(root: &Root) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(volumes_dir(root))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn data(root: &Root, volume: &str) -> PathBuf {
    volumes_dir(root).join(volume).join("_data")
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

/// An image on busybox whose own layer holds `/data` (owned 1000:1000,
/// 0750: a file 0640 owned 1000:1001 with a user xattr, a symlink, a
/// subdirectory), `/cache` (an image VOLUME, with a file) and `/escape`, a
/// symlink to `host_dir` (a host path: copy-up must resolve it inside the
/// image, where nothing is).
fn content_image(root: &Root, host_dir: &Path) {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, owner: (u64, u64)| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    dir(&mut b, "data/", 0o750, (1000, 1000));
    b.append_pax_extensions([("SCHILY.xattr.user.origin", b"image".as_slice())])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o640);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_size(15);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "data/seed", &b"from the image\n"[..])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_mtime(1_700_000_000);
    b.append_link(&mut h, "data/link", "seed").unwrap();
    dir(&mut b, "data/sub/", 0o755, (0, 0));
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(5);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "data/sub/deep", &b"deep\n"[..])
        .unwrap();
    dir(&mut b, "cache/", 0o755, (0, 0));
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(7);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "cache/c", &b"cached\n"[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_mtime(1_700_000_000);
    b.append_link(&mut h, "escape", host_dir).unwrap();
    let layer = b.into_inner().unwrap();
    let img = testkit::LayoutImage::new(
        "content",
        "latest",
        vec![testkit::busybox_layer_tar(), layer],
        serde_json::json!({
            "Cmd": ["sh"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Volumes": {"/cache": {}},
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("content.tar");
    common::layout_tar(&img, &tar);
    root.load(&tar);
}

#[test]
fn volume_commands_create_list_inspect_remove_and_prune() {
    let root = Root::new();
    assert_eq!(
        root.ok(&["volume", "create", "--label", "app=web", "--label", "tier", "web"])
            .trim(),
        "web"
    );
    // The same request again is the same volume; other labels are refused.
    assert_eq!(
        root.ok(&["volume", "create", "--label", "app=web", "--label", "tier", "web"])
            .trim(),
        "web"
    );
    let (code, err) = root.fails(&["volume", "create", "--label", "app=db", "web"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("web") && err.contains("different labels"),
        "{err}"
    );
    // Not hex: a name filter matches substrings, and an anonymous volume's
    // name is 64 hex digits.
    root.ok(&["volume", "create", "pg"]);
    let anon = root.ok(&["volume", "create"]).trim().to_string();
    assert!(
        anon.len() == 64 && anon.bytes().all(|b| b.is_ascii_hexdigit()),
        "{anon}"
    );

    let mut all = vec![anon.clone(), "pg".to_string(), "web".to_string()];
    all.sort();
    assert_eq!(lines(&root.ok(&["volume", "ls", "-q"])), all);
    assert_eq!(volume_dirs(&root), all);
    let table = root.ok(&["volume", "ls"]);
    let mut rows = table.lines();
    assert!(rows.next().unwrap().starts_with("DRIVER"), "{table}");
    assert!(
        rows.any(|r| r.split_whitespace().collect::<Vec<_>>() == ["local", "web"]),
        "{table}"
    );
    let q = |filter: &str| lines(&root.ok(&["volume", "ls", "-q", "--filter", filter]));
    assert_eq!(q("label=app=web"), ["web"]);
    assert_eq!(q("label=tier"), ["web"]);
    assert_eq!(q("label=app=db"), Vec::<String>::new());
    assert_eq!(q("name=pg"), ["pg"]);
    assert_eq!(q("name=we"), ["web"]);
    assert_eq!(q("dangling=true"), all);
    let json: serde_json::Value = serde_json::from_str(
        &root.ok(&["volume", "ls", "--format", "json", "--filter", "name=web"]),
    )
    .unwrap();
    assert_eq!(json["Name"], "web");
    assert_eq!(json["Labels"], "app=web,tier=");
    let (code, err) = root.fails(&["volume", "ls", "--filter", "colour=red"]);
    assert_eq!(code, 125);
    assert!(err.contains("colour"), "{err}");

    let out: serde_json::Value =
        serde_json::from_str(&root.ok(&["volume", "inspect", "web", "pg"])).unwrap();
    let web = &out[0];
    assert_eq!(web["Name"], "web");
    assert_eq!(web["Driver"], "local");
    assert_eq!(web["Scope"], "local");
    assert_eq!(web["Labels"], serde_json::json!({"app": "web", "tier": ""}));
    assert_eq!(
        Path::new(web["Mountpoint"].as_str().unwrap()),
        std::fs::canonicalize(root.path())
            .unwrap()
            .join("volumes/web/_data")
    );
    assert!(data(&root, "web").is_dir());
    chrono_like(web["CreatedAt"].as_str().unwrap());
    assert_eq!(out[1]["Labels"], serde_json::Value::Null);
    let (code, err) = root.fails(&["volume", "inspect", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such volume: nope"), "{err}");

    // rm: each named volume, a missing one an error unless -f.
    std::fs::write(data(&root, "pg").join("f"), "12345").unwrap();
    assert_eq!(root.ok(&["volume", "rm", "pg"]).trim(), "pg");
    let out = root.run(&["volume", "rm", "nope", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such volume: nope"));
    assert_eq!(root.ok(&["volume", "rm", "-f", "nope"]).trim(), "nope");

    // prune: anonymous ones only, then with -a named ones too; bytes told.
    root.ok(&["volume", "create", "keep"]);
    std::fs::write(data(&root, "keep").join("f"), "x".repeat(2000)).unwrap();
    let out = root.ok(&["volume", "prune", "-f"]);
    assert!(
        out.contains("Deleted Volumes:") && out.contains(&anon),
        "{out}"
    );
    assert!(!out.contains("keep"), "{out}");
    assert_eq!(volume_dirs(&root), ["keep"]);
    let out = root.ok(&["volume", "prune", "-f", "-a"]);
    assert!(out.contains("keep"), "{out}");
    assert!(out.contains("Total reclaimed space: 2kB"), "{out}");
    assert_eq!(volume_dirs(&root), Vec::<String>::new());
    assert_eq!(root.ok(&["volume", "ls", "-q"]), "");
}

/// An RFC 3339 time in seconds, UTC: `2024-01-01T00:00:00Z`.
fn chrono_like(t: &str) {
    assert!(
        t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
        "{t}"
    );
}

#[test]
fn a_named_volume_is_made_on_first_use_shared_and_kept_while_used() {
    let root = Root::new();
    root.ok(&[
        "run",
        "--rm",
        "-v",
        "shared:/x",
        "busybox",
        "sh",
        "-c",
        "echo kept > /x/f",
    ]);
    assert_eq!(lines(&root.ok(&["volume", "ls", "-q"])), ["shared"]);
    assert_eq!(
        std::fs::read_to_string(data(&root, "shared").join("f")).unwrap(),
        "kept\n"
    );
    // `--rm` keeps a named volume; the next container sees what the first wrote.
    let out = root.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=shared,target=/y,readonly",
        "busybox",
        "sh",
        "-c",
        "cat /y/f; echo x > /y/g || echo refused",
    ]);
    assert_eq!(out, "kept\nrefused\n");

    // In use by a container (not running): refused, -f or not, naming it.
    root.ok(&[
        "create",
        "--name",
        "user1",
        "-v",
        "shared:/x",
        "busybox",
        "true",
    ]);
    for args in [
        &["volume", "rm", "shared"][..],
        &["volume", "rm", "-f", "shared"][..],
    ] {
        let (code, err) = root.fails(args);
        assert_eq!(code, 1);
        assert!(
            err.contains("shared") && err.contains("in use") && err.contains("user1"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let out = root.ok(&["volume", "prune", "-f", "-a"]);
    assert!(!out.contains("shared"), "{out}");
    assert_eq!(
        root.ok(&["volume", "ls", "-q", "--filter", "dangling=false"])
            .trim(),
        "shared"
    );
    let mounts: serde_json::Value =
        serde_json::from_str(&root.inspect("user1", "json .Mounts")).unwrap();
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Name"], "shared");
    assert_eq!(mounts[0]["Destination"], "/x");
    assert_eq!(mounts[0]["Driver"], "local");
    assert_eq!(mounts[0]["RW"], true);
    assert_eq!(
        Path::new(mounts[0]["Source"].as_str().unwrap()),
        std::fs::canonicalize(root.path())
            .unwrap()
            .join("volumes/shared/_data")
    );

    let ps = |f: &str| root.ok(&["ps", "-a", "-q", "--filter", f]);
    assert!(!ps("volume=shared").trim().is_empty());
    assert_eq!(ps("volume=other"), "");

    root.ok(&["rm", "-v", "user1"]);
    assert_eq!(
        lines(&root.ok(&["volume", "ls", "-q"])),
        ["shared"],
        "rm -v removes anonymous volumes only"
    );
    root.ok(&["volume", "rm", "shared"]);
    assert_eq!(volume_dirs(&root), Vec::<String>::new());
    root.assert_clean();
}

#[test]
fn a_new_volume_gets_the_image_content_at_its_path() {
    let root = Root::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("host-secret"), "secret").unwrap();
    content_image(&root, host.path());

    let out = root.ok(&[
        "run",
        "--rm",
        "-v",
        "fresh:/data",
        "-v",
        "esc:/escape",
        "content",
        "sh",
        "-c",
        "cat /data/seed /data/link /data/sub/deep",
    ]);
    assert_eq!(out, "from the image\nfrom the image\ndeep\n");
    let d = data(&root, "fresh");
    let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
    let top = meta(&d);
    assert_eq!(
        (top.uid(), top.gid(), top.mode() & 0o7777),
        (1000, 1000, 0o750)
    );
    let seed = meta(&d.join("seed"));
    assert_eq!(
        (seed.uid(), seed.gid(), seed.mode() & 0o7777),
        (1000, 1001, 0o640)
    );
    assert_eq!(
        xattr::get(d.join("seed"), "user.origin")
            .unwrap()
            .as_deref(),
        Some(&b"image"[..])
    );
    assert_eq!(
        std::fs::read_link(d.join("link")).unwrap(),
        Path::new("seed")
    );
    assert_eq!(
        std::fs::read_to_string(d.join("sub/deep")).unwrap(),
        "deep\n"
    );
    // The image's symlink to a host path resolved inside the image: nothing.
    assert_eq!(std::fs::read_dir(data(&root, "esc")).unwrap().count(), 0);

    // A volume with content keeps it; nocopy leaves a new one empty.
    std::fs::write(d.join("seed"), "changed\n").unwrap();
    let out = root.ok(&[
        "run",
        "--rm",
        "-v",
        "fresh:/data",
        "-v",
        "bare:/data2:nocopy",
        "content",
        "sh",
        "-c",
        "cat /data/seed; ls -A /data2 | wc -l",
    ]);
    assert_eq!(out, "changed\n0\n");

    // The image's VOLUME /cache: an anonymous volume with the image's file,
    // kept by a plain rm, removed by rm -v.
    let id = root.ok(&["create", "content", "cat", "/cache/c"]);
    let id = id.trim();
    let mounts: serde_json::Value =
        serde_json::from_str(&root.inspect(id, "json .Mounts")).unwrap();
    let cache = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/cache")
        .expect("the image's VOLUME is mounted")
        .clone();
    assert_eq!(cache["Type"], "volume");
    let anon = cache["Name"].as_str().unwrap().to_string();
    assert_eq!(anon.len(), 64, "{anon}");
    assert_eq!(
        std::fs::read_to_string(data(&root, &anon).join("c")).unwrap(),
        "cached\n"
    );
    root.ok(&["rm", id]);
    assert!(volume_dirs(&root).contains(&anon), "plain rm keeps it");
    let id = root.ok(&["create", "content", "true"]);
    let anon2 = root
        .ok(&["volume", "ls", "-q"])
        .lines()
        .find(|n| n.len() == 64 && *n != anon)
        .unwrap()
        .to_string();
    root.ok(&["rm", "-v", id.trim()]);
    assert!(!volume_dirs(&root).contains(&anon2), "rm -v removes it");
    assert!(volume_dirs(&root).contains(&anon));

    root.ok(&["volume", "prune", "-f", "-a"]);
    assert_eq!(volume_dirs(&root), Vec::<String>::new());
    root.assert_clean();
}

#[test]
fn anonymous_volumes_go_with_run_rm_and_rm_v_and_stay_with_plain_rm() {
    let root = Root::new();
    root.ok(&[
        "run",
        "--rm",
        "-v",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        "echo x > /scratch/f",
    ]);
    assert_eq!(volume_dirs(&root), Vec::<String>::new(), "run --rm left it");

    let id = root.ok(&["create", "-v", "/scratch", "busybox", "true"]);
    let kept = volume_dirs(&root);
    assert_eq!(kept.len(), 1);
    let mounts: serde_json::Value =
        serde_json::from_str(&root.inspect(id.trim(), "json .Mounts")).unwrap();
    assert_eq!(mounts[0]["Name"], kept[0].as_str());
    root.ok(&["rm", id.trim()]);
    assert_eq!(volume_dirs(&root), kept, "plain rm keeps it");

    let id = root.ok(&["create", "-v", "/scratch", "busybox", "true"]);
    assert_eq!(volume_dirs(&root).len(), 2);
    root.ok(&["rm", "-v", id.trim()]);
    assert_eq!(volume_dirs(&root), kept, "rm -v removes it");

    // prune (no -a) takes the anonymous one left.
    let out = root.ok(&["volume", "prune", "-f"]);
    assert!(out.contains(&kept[0]), "{out}");
    assert_eq!(volume_dirs(&root), Vec::<String>::new());
    root.assert_clean();
}

#[test]
fn bad_volume_names_are_refused_in_one_line_leaving_nothing() {
    let root = Root::new();
    for args in [
        vec!["volume", "create", "a"],
        vec!["volume", "create", "x/y"],
        vec!["volume", "create", ".hidden"],
        vec!["run", "--rm", "-v", "../up:/x", "busybox", "true"],
        vec!["create", "-v", "a b:/x", "busybox", "true"],
        vec![
            "create",
            "--mount",
            "type=volume,src=-x,target=/x",
            "busybox",
            "true",
        ],
        vec!["volume", "create", "--driver", "nfs", "vol"],
        vec!["volume", "create", "--opt", "type=tmpfs", "vol"],
    ] {
        let (code, err) = root.fails(&args);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("invalid volume name") || err.contains("not supported"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(volume_dirs(&root), Vec::<String>::new());
    let hidden: Vec<_> = std::fs::read_dir(volumes_dir(&root))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".lock")
                .collect()
        })
        .unwrap_or_default();
    assert!(hidden.is_empty(), "{hidden:?}");
    root.assert_clean();
}

#[test]
fn a_failed_create_removes_the_volumes_it_made() {
    let root = Root::new();
    root.ok(&["volume", "create", "old"]);
    // The command does not exist: the create succeeds, the start fails and
    // `run` removes the container, and with it the anonymous volume.
    let out = root.run(&[
        "run",
        "-v",
        "old:/o",
        "-v",
        "new1:/n",
        "-v",
        "/anon",
        "busybox",
        "/nonexistent",
    ]);
    assert_eq!(out.status.code(), Some(127));
    let mut left = volume_dirs(&root);
    left.sort();
    assert_eq!(left, ["new1", "old"]);
    // An image that does not exist makes no volume at all; a create that
    // fails after making them (an unknown user) removes them again.
    let (code, _) = root.fails(&["create", "-v", "new2:/n", "-v", "/anon", "nosuchimage"]);
    assert_eq!(code, 125);
    assert_eq!(volume_dirs(&root), ["new1", "old"]);
    let (code, err) = root.fails(&[
        "create",
        "-u",
        "nosuchuser",
        "-v",
        "new2:/n",
        "-v",
        "/anon",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("nosuchuser"), "{err}");
    assert_eq!(volume_dirs(&root), ["new1", "old"]);
    root.assert_clean();
}

#[test]
fn a_volume_reaches_a_vm_guest() {
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    if !root.vm_kernel_or_skip("a volume in a VM") {
        return;
    }
    let host = tempfile::tempdir().unwrap();
    content_image(&root, host.path());
    // The guest reads what copy-up put in the volume and writes beside it.
    let out = root.ok(&[
        "run",
        "--rm",
        "--isolation=vm",
        "-v",
        "vmdata:/data",
        "content",
        "sh",
        "-c",
        "cat /data/seed; echo from the guest > /data/out; uname -r",
    ]);
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_ne!(out.lines().nth(1), Some(host_kernel.trim()), "not in a VM");
    assert_eq!(out.lines().next(), Some("from the image"));
    assert_eq!(
        std::fs::read_to_string(data(&root, "vmdata").join("out")).unwrap(),
        "from the guest\n"
    );
    // The image's VOLUME was anonymous: gone with --rm.
    assert_eq!(volume_dirs(&root), ["vmdata"]);
    root.ok(&["volume", "rm", "vmdata"]);
    root.assert_clean();
}
