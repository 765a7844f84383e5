//! End-to-end tests of the image commands: the real `isola` binary on a
//! temp engine root, with archives written by skopeo (an independent
//! implementation) from a busybox image built by testkit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    root: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            root: tempfile::Builder::new()
                .prefix("isola-images-root-")
                .tempdir()
                .unwrap(),
            work: tempfile::Builder::new()
                .prefix("isola-images-work-")
                .tempdir()
                .unwrap(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_isola"));
        c.arg("--root").arg(self.root.path()).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "isola {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "isola {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// A busybox OCI layout, and skopeo's copy of it in `transport`
    /// (`docker-archive` or `oci-archive`) named `name`.
    fn skopeo_archive(&self, transport: &str, name: &str) -> PathBuf {
        let layout = self.path("layout");
        if !layout.exists() {
            testkit::oci_layout(&layout, "busybox", "latest");
        }
        let out = self.path(&format!(
            "{transport}-{}.tar",
            name.replace([':', '/'], "_")
        ));
        skopeo(&[
            "copy",
            &format!("oci:{}:latest", layout.display()),
            &format!("{transport}:{}:{name}", out.display()),
        ]);
        out
    }

    fn store_dirs(&self, sub: &str) -> usize {
        std::fs::read_dir(self.root.path().join("image").join(sub))
            .unwrap()
            .count()
    }
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn load_a_docker_archive_then_list_inspect_tag_and_remove() {
    let env = Env::new();
    let tar = env.skopeo_archive("docker-archive", "busybox:latest");
    let out = env.ok(&["load", "-i", s(&tar)]);
    assert!(
        out.lines().any(|l| l == "Loaded image: busybox:latest"),
        "{out}"
    );

    let list = env.ok(&["images"]);
    let lines: Vec<&str> = list.lines().collect();
    let header: Vec<&str> = lines[0]
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    assert_eq!(lines.len(), 2, "{list}");
    let row: Vec<&str> = lines[1]
        .split("   ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(row[0], "busybox");
    assert_eq!(row[1], "latest");
    assert_eq!(row[2].len(), 12);
    assert!(row[2].bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(row[3].ends_with(" ago"), "{}", row[3]);
    assert!(row[4].ends_with("MB"), "busybox is a few MB: {}", row[4]);

    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "busybox"])).unwrap();
    let img = &inspect[0];
    let id = img["Id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sha256:") && id[7..].starts_with(row[2]));
    assert_eq!(img["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(img["Size"].as_u64().unwrap() > 1_000_000);
    assert_eq!(img["Created"], "2024-01-01T00:00:00Z");
    // GraphDriver names the unpacked layer, which holds the image's files.
    // (docker's form: a string, as overlayfs's lowerdir, for its clients.)
    let lowers: Vec<&str> = img["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .split(':')
        .collect();
    assert_eq!(lowers.len(), 1, "{lowers:?}");
    let lower = Path::new(lowers[0]);
    assert!(lower.starts_with(env.root.path()), "{lower:?}");
    assert!(lower.join("bin/busybox").is_file(), "{lower:?}");

    env.ok(&["tag", "busybox", "127.0.0.1:5000/mybox:v1"]);
    let json_rows: Vec<serde_json::Value> = env
        .ok(&["images", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let repos: Vec<&str> = json_rows
        .iter()
        .map(|r| r["Repository"].as_str().unwrap())
        .collect();
    assert!(
        repos.contains(&"127.0.0.1:5000/mybox") && repos.contains(&"busybox"),
        "{repos:?}"
    );
    assert_eq!(env.ok(&["images", "-q"]).lines().count(), 2);
    assert_eq!(env.ok(&["images", "busybox"]).lines().count(), 2);

    // An id names two tags: refused without -f.
    let err = env.fails(&["rmi", &id[7..19]]);
    assert!(err.contains("several names"), "{err}");
    assert_eq!(
        env.ok(&["rmi", "127.0.0.1:5000/mybox:v1"]),
        "Untagged: 127.0.0.1:5000/mybox:v1\n"
    );
    let out = env.ok(&["image", "rm", "busybox"]);
    assert!(out.starts_with("Untagged: busybox:latest\n"), "{out}");
    assert!(out.contains(&format!("Deleted: {id}\n")), "{out}");
    assert_eq!(env.ok(&["images", "-q"]), "");
    assert_eq!(env.store_dirs("layers"), 0);
    assert_eq!(env.store_dirs("blobs/sha256"), 0);

    let err = env.fails(&["image", "inspect", "busybox"]);
    assert!(
        err.contains("image \"busybox\" not found (pull it first, or check the tag)"),
        "{err}"
    );
}

#[test]
fn load_an_oci_archive_from_stdin() {
    let env = Env::new();
    let tar = env.skopeo_archive("oci-archive", "busybox:1.36");
    let out = env
        .cmd(&["load", "-q"])
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: busybox:1.36\n"
    );
}

#[test]
fn save_is_accepted_by_skopeo_and_round_trips() {
    let env = Env::new();
    let tar = env.skopeo_archive("docker-archive", "busybox:latest");
    env.ok(&["load", "-q", "-i", s(&tar)]);
    let saved = env.path("saved.tar");
    env.ok(&["save", "-o", s(&saved), "busybox"]);
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}", saved.display()),
    ]))
    .unwrap();
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
    let mut archive = tar::Archive::new(std::fs::File::open(&saved).unwrap());
    let manifest: serde_json::Value = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
        .map(|e| serde_json::from_reader(e).unwrap())
        .unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["busybox:latest"])
    );

    // To stdout when it is not a terminal; loads back into another root.
    let piped = env.cmd(&["save", "busybox:latest"]).output().unwrap();
    assert!(piped.status.success());
    let other = Env::new();
    let out = other
        .cmd(&["load", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&piped.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: busybox:latest\n"
    );
    let id = |e: &Env| e.ok(&["images", "-q", "--no-trunc"]);
    assert_eq!(id(&env), id(&other));

    // A missing image fails before writing anything.
    let err = env.fails(&["save", "-o", s(&env.path("none.tar")), "nope"]);
    assert!(err.contains("not found"), "{err}");
    assert!(!env.path("none.tar").exists());
}

#[test]
fn import_a_rootfs_tarball_from_a_file_and_stdin() {
    let env = Env::new();
    let rootfs = env.path("rootfs.tar");
    std::fs::write(&rootfs, testkit::busybox_layer_tar()).unwrap();
    let id = env.ok(&["import", s(&rootfs), "mybase:1.0"]);
    assert!(
        id.trim().starts_with("sha256:") && id.trim().len() == 71,
        "{id}"
    );
    let list = env.ok(&["images", "mybase"]);
    assert!(
        list.lines().nth(1).unwrap().starts_with("mybase "),
        "{list}"
    );
    let out = env
        .cmd(&["import", "-"])
        .stdin(std::fs::File::open(&rootfs).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Same layer content: stored and unpacked once.
    assert_eq!(env.store_dirs("layers"), 1);
}

#[test]
fn prune_removes_dangling_images() {
    let env = Env::new();
    let a = env.path("a.tar");
    let b = env.path("b.tar");
    let mut one = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    one.append_data(&mut h.clone(), "v1", &b"1"[..]).unwrap();
    std::fs::write(&a, one.into_inner().unwrap()).unwrap();
    let mut two = tar::Builder::new(Vec::new());
    two.append_data(&mut h, "v2", &b"2"[..]).unwrap();
    std::fs::write(&b, two.into_inner().unwrap()).unwrap();
    let old = env.ok(&["import", s(&a), "app:latest"]);
    env.ok(&["import", s(&b), "app:latest"]);
    let list = env.ok(&["images"]);
    assert!(list.contains("<none>"), "the old image is dangling: {list}");
    let out = env.ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {}", old.trim())), "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert_eq!(env.ok(&["images", "-q"]).lines().count(), 1);
    let out = env.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: app:latest"), "{out}");
    assert_eq!(env.ok(&["images", "-q"]), "");
}

#[test]
fn rmi_refuses_an_image_a_snapshot_uses_unless_forced() {
    let env = Env::new();
    let tar = env.skopeo_archive("docker-archive", "busybox:latest");
    env.ok(&["load", "-q", "-i", s(&tar)]);
    let store = image::Store::open(env.root.path()).unwrap();
    let img = store.resolve("busybox").unwrap();
    let snap = store.create_snapshot(&img, "ctr1").unwrap();
    struct Cleanup<'a>(&'a image::Store);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = self.0.remove_snapshot("ctr1");
        }
    }
    let _cleanup = Cleanup(&store);
    let err = env.fails(&["rmi", "busybox"]);
    assert!(err.contains("in use") && err.contains("ctr1"), "{err}");
    assert_eq!(env.ok(&["images", "-q"]).lines().count(), 1);
    let out = env.ok(&["rmi", "-f", "busybox"]);
    assert!(out.contains("Untagged: busybox:latest"), "{out}");
    assert!(
        snap.rootfs.join("bin/busybox").exists(),
        "the snapshot keeps working"
    );
}

#[test]
fn concurrent_loads_of_one_archive_neither_corrupt_nor_duplicate() {
    let env = Env::new();
    let tar = env.skopeo_archive("docker-archive", "busybox:latest");
    let children: Vec<_> = (0..4)
        .map(|_| {
            env.cmd(&["load", "-q", "-i", s(&tar)])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(env.store_dirs("images"), 1);
    assert_eq!(env.store_dirs("layers"), 1);
    assert_eq!(env.store_dirs("tmp"), 0);
    assert_eq!(env.ok(&["images", "-q"]).lines().count(), 1);
}

#[test]
fn loading_a_malicious_archive_fails_and_leaves_nothing() {
    let env = Env::new();
    // A docker-archive whose only layer writes through a symlink.
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    layer.append_link(&mut h, "etc", "/etc").unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(1);
    h.set_mode(0o644);
    layer
        .append_data(&mut h, "etc/isola-evil", &b"x"[..])
        .unwrap();
    let layer = layer.into_inner().unwrap();
    let diff_id = testkit::sha256_digest(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": testkit::host_arch(), "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": "config.json", "RepoTags": ["evil:latest"], "Layers": ["layer.tar"]}
    ]))
    .unwrap();
    let mut ar = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("config.json", &config),
        ("layer.tar", &layer),
        ("manifest.json", &manifest),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        ar.append_data(&mut h, name, &data[..]).unwrap();
    }
    let path = env.path("evil.tar");
    std::fs::write(&path, ar.into_inner().unwrap()).unwrap();
    let err = env.fails(&["load", "-i", s(&path)]);
    assert!(
        err.contains("\"etc/isola-evil\"") && err.contains("symlink"),
        "{err}"
    );
    assert!(!Path::new("/etc/isola-evil").exists());
    for d in ["images", "layers", "tmp", "blobs/sha256"] {
        assert_eq!(env.store_dirs(d), 0, "{d} is empty after a failed load");
    }
}

#[test]
fn load_reports_only_the_names_the_archive_gives() {
    let env = Env::new();
    let tar = env.skopeo_archive("docker-archive", "busybox:latest");
    env.ok(&["load", "-q", "-i", s(&tar)]);
    // The image gets more names here; loading the archive again says only its own.
    env.ok(&["tag", "busybox:latest", "mine/other:1"]);
    env.ok(&["tag", "busybox:latest", "busybox:extra"]);
    assert_eq!(
        env.ok(&["load", "-q", "-i", s(&tar)]),
        "Loaded image: busybox:latest\n"
    );
    let oci = env.skopeo_archive("oci-archive", "busybox:1.36");
    assert_eq!(
        env.ok(&["load", "-q", "-i", s(&oci)]),
        "Loaded image: busybox:1.36\n"
    );
}

#[test]
fn a_file_that_is_not_a_tar_is_named_in_one_line_never_quoted() {
    let env = Env::new();
    let secret = env.path("passwd-like");
    std::fs::write(
        &secret,
        "root:x:0:0:root:/root:/bin/bash\n".repeat(30) + "TOPSECRET-LINE\n",
    )
    .unwrap();
    let garbage = env.path("garbage.bin");
    std::fs::write(
        &garbage,
        (0..4096u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    for file in [&secret, &garbage] {
        for (args, expected) in [
            (
                vec!["load", "-i", s(file)],
                "expected a docker-archive or OCI image layout tar",
            ),
            (
                vec!["import", s(file), "x:1"],
                "expected a root filesystem tarball",
            ),
        ] {
            let out = env.run(&args);
            assert_eq!(out.status.code(), Some(125), "isola {args:?}");
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(err.lines().count(), 1, "isola {args:?}: {err}");
            assert!(err.contains(s(file)), "names the file: {err}");
            assert!(err.contains("not a tar archive"), "{err}");
            assert!(err.contains(expected), "{err}");
            assert!(
                !err.contains("root:x") && !err.contains("TOPSECRET"),
                "quotes the file: {err}"
            );
        }
    }
    // Nothing of them is kept.
    assert_eq!(env.store_dirs("images"), 0);
    assert_eq!(env.store_dirs("blobs/sha256"), 0);
}
