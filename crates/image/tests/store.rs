//! The store: verified blob writes, commits, names and ids, rmi and prune,
//! snapshots of a real busybox image, and concurrent commits.

mod common;

use std::fs;
use std::process::Command;
use std::sync::Arc;

use common::{chain, commit, Compress, LayerTar, SnapshotGuard, TestStore};
use image::{Error, Reference, Store};

fn busybox(t: &TestStore, name: &str) -> image::Image {
    commit(
        &t.store,
        &[testkit::busybox_layer_tar()],
        Compress::Gzip,
        name,
    )
    .unwrap()
}

#[test]
fn write_blob_rejects_a_wrong_digest_and_keeps_nothing() {
    let t = TestStore::new();
    let claimed = image::digest::sha256(b"what the registry promised");
    let err = t
        .store
        .write_blob(&claimed, None, &mut &b"what it sent"[..])
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::DigestMismatch { .. }));
    assert!(msg.contains(&claimed), "{msg}");
    assert!(
        msg.contains(&image::digest::sha256(b"what it sent")),
        "{msg}"
    );
    assert!(!t.store.has_blob(&claimed));
    assert!(t.entries("blobs/sha256").is_empty());
    t.assert_nothing_partial();
}

#[test]
fn write_blob_rejects_a_wrong_size() {
    let t = TestStore::new();
    let d = image::digest::sha256(b"abc");
    let err = t
        .store
        .write_blob(&d, Some(4), &mut &b"abc"[..])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                expected: 4,
                actual: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(!t.store.has_blob(&d));
    let p = t.store.write_blob(&d, Some(3), &mut &b"abc"[..]).unwrap();
    assert_eq!(fs::read(p).unwrap(), b"abc");
    assert!(t.store.has_blob(&d));
    assert!(t
        .store
        .write_blob("sha256:../../x", None, &mut &b""[..])
        .is_err());
}

#[test]
fn commit_names_a_missing_blob_and_records_nothing() {
    let t = TestStore::new();
    let tar = LayerTar::new().file("f", b"x").finish();
    let m = common::write_image(&t.store, std::slice::from_ref(&tar), Compress::Gzip);
    let layer = image::digest::sha256(&common::compress(&tar, Compress::Gzip));
    fs::remove_file(t.store.blob_path(&layer)).unwrap();
    let err = t
        .store
        .commit_image(&m, Some(&"missing:latest".parse().unwrap()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::MissingBlob { .. }), "{msg}");
    assert!(msg.contains(&layer) && msg.contains("layer 1"), "{msg}");
    t.assert_nothing_partial();
    assert!(t.store.resolve("missing").unwrap_err().is_not_found());
}

#[test]
fn images_resolve_by_name_id_and_prefix_and_list_their_fields() {
    let t = TestStore::new();
    let img = busybox(&t, "busybox:1.36");
    assert_eq!(img.names, vec![Reference::parse("busybox:1.36").unwrap()]);
    assert_eq!(img.layers.len(), 1);
    assert!(
        img.size > 1_000_000,
        "busybox is over 1 MB unpacked: {}",
        img.size
    );
    assert_eq!(img.created.as_deref(), Some("2024-05-01T10:00:00Z"));
    assert_eq!(img.platform().0, "linux");
    let upper = img.id[7..].to_ascii_uppercase();
    for name in [
        "busybox:1.36",
        "docker.io/library/busybox:1.36",
        img.id.as_str(),
        &img.id[7..],
        &upper,
        &img.id[..7 + 12],
        &img.id[7..11],
    ] {
        assert_eq!(t.store.resolve(name).unwrap().id, img.id, "{name}");
    }
    // A whole id that is no image is not found either.
    let other = format!("sha256:{}", "0".repeat(64));
    assert!(matches!(t.store.resolve(&other), Err(Error::NotFound(_))));
    let err = t.store.resolve("busybox").unwrap_err();
    assert_eq!(
        err.to_string(),
        "image \"busybox\" not found (pull it first, or check the tag)"
    );
    let listed = t.store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, img.id);
}

#[test]
fn tags_move_between_images() {
    let t = TestStore::new();
    let a = commit(
        &t.store,
        &[LayerTar::new().file("a", b"a").finish()],
        Compress::Gzip,
        "app:v1",
    )
    .unwrap();
    let b = commit(
        &t.store,
        &[LayerTar::new().file("b", b"b").finish()],
        Compress::Gzip,
        "app:v2",
    )
    .unwrap();
    t.store
        .tag("app:v2", &"app:latest".parse().unwrap())
        .unwrap();
    assert_eq!(t.store.resolve("app").unwrap().id, b.id);
    t.store.tag(&a.id, &"app:latest".parse().unwrap()).unwrap();
    assert_eq!(t.store.resolve("app:latest").unwrap().id, a.id);
    assert_eq!(t.store.resolve("app:v2").unwrap().names.len(), 1);
    // Committing another image under a used tag moves the tag too.
    let c = commit(
        &t.store,
        &[LayerTar::new().file("c", b"c").finish()],
        Compress::Gzip,
        "app:v1",
    )
    .unwrap();
    assert_eq!(t.store.resolve("app:v1").unwrap().id, c.id);
    assert!(t
        .store
        .resolve(&a.id)
        .unwrap()
        .names
        .iter()
        .all(|n| n.tag.as_deref() != Some("v1")));
}

#[test]
fn rmi_refuses_an_image_in_use_by_a_snapshot_unless_forced() {
    let t = TestStore::new();
    let img = busybox(&t, "busybox:latest");
    let snap = t.store.create_snapshot(&img, "c1").unwrap();
    let _guard = SnapshotGuard {
        store: &t.store,
        key: "c1".into(),
    };
    assert!(snap.rootfs.join("bin/busybox").is_file());
    let err = t.store.remove("busybox", false).unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    assert!(err.to_string().contains("c1"), "{err}");
    assert!(
        t.store.resolve("busybox").is_ok(),
        "refused rmi must keep the image"
    );
    let lines = t.store.remove("busybox", true).unwrap();
    assert_eq!(lines[0], "Untagged: busybox:latest");
    assert!(lines.contains(&format!("Deleted: {}", img.id)));
    // The snapshot's layers survive a forced rmi.
    assert!(snap.rootfs.join("bin/busybox").is_file());
    assert_eq!(t.entries("layers").len(), 1);
    t.store.remove_snapshot("c1").unwrap();
    assert!(t.entries("snapshots").is_empty());
    t.store.prune(false).unwrap();
    assert!(t.entries("layers").is_empty());
    assert!(t.entries("blobs/sha256").is_empty());
}

#[test]
fn rmi_untags_first_then_deletes_image_blobs_and_layers() {
    let t = TestStore::new();
    let img = busybox(&t, "busybox:latest");
    t.store.tag("busybox", &"mybox:1".parse().unwrap()).unwrap();
    let err = t.store.remove(&img.id, false).unwrap_err();
    assert!(matches!(err, Error::MultipleNames { .. }), "{err}");
    assert_eq!(
        t.store.remove("mybox:1", false).unwrap(),
        vec!["Untagged: mybox:1"]
    );
    let lines = t.store.remove("busybox", false).unwrap();
    assert_eq!(lines[0], "Untagged: busybox:latest");
    // Like docker after a pull: the repo digest is untagged too.
    assert_eq!(
        lines[1],
        format!("Untagged: busybox@{}", img.manifest_digest)
    );
    assert_eq!(lines[2], format!("Deleted: {}", img.id));
    assert!(
        t.entries("blobs/sha256").is_empty(),
        "blobs of the image are deleted"
    );
    assert!(t.entries("layers").is_empty());
    assert!(t.store.list().unwrap().is_empty());
}

#[test]
fn rmi_keeps_layers_shared_with_another_image() {
    let t = TestStore::new();
    let base = testkit::busybox_layer_tar();
    let a = commit(&t.store, std::slice::from_ref(&base), Compress::Gzip, "a:1").unwrap();
    let b = commit(
        &t.store,
        &[base, LayerTar::new().file("extra", b"x").finish()],
        Compress::Gzip,
        "b:1",
    )
    .unwrap();
    assert_eq!(a.layers[0], b.layers[0]);
    assert_eq!(
        t.entries("layers").len(),
        2,
        "a shared layer is unpacked once"
    );
    t.store.remove("a:1", false).unwrap();
    assert_eq!(t.entries("layers").len(), 2);
    let snap = t
        .store
        .create_snapshot(&t.store.resolve("b:1").unwrap(), "b")
        .unwrap();
    let _guard = SnapshotGuard {
        store: &t.store,
        key: "b".into(),
    };
    assert!(snap.rootfs.join("bin/busybox").is_file() && snap.rootfs.join("extra").is_file());
}

#[test]
fn prune_removes_dangling_images_then_all_unused() {
    let t = TestStore::new();
    let old = commit(
        &t.store,
        &[LayerTar::new().file("v", b"1").finish()],
        Compress::Gzip,
        "app:latest",
    )
    .unwrap();
    let new = commit(
        &t.store,
        &[LayerTar::new().file("v", b"2").finish()],
        Compress::Gzip,
        "app:latest",
    )
    .unwrap();
    assert!(
        t.store.resolve(&old.id).unwrap().names.is_empty(),
        "old image is dangling"
    );
    let report = t.store.prune(false).unwrap();
    assert_eq!(report.deleted_images, vec![old.id.clone()]);
    assert!(report.reclaimed_bytes > 0);
    assert!(t.store.resolve(&old.id).is_err());
    assert_eq!(t.store.resolve("app").unwrap().id, new.id);
    let snap_img = busybox(&t, "busybox:latest");
    let _s = t.store.create_snapshot(&snap_img, "keep").unwrap();
    let _guard = SnapshotGuard {
        store: &t.store,
        key: "keep".into(),
    };
    let report = t.store.prune(true).unwrap();
    assert_eq!(report.deleted_images, vec![new.id]);
    assert_eq!(report.untagged, vec!["app:latest".to_string()]);
    assert!(
        t.store.resolve("busybox").is_ok(),
        "an image in use survives prune -a"
    );
}

#[test]
fn snapshot_remounts_after_unmount_and_removal_cleans_up() {
    let t = TestStore::new();
    let img = busybox(&t, "busybox:latest");
    let snap = t.store.create_snapshot(&img, "re").unwrap();
    let _guard = SnapshotGuard {
        store: &t.store,
        key: "re".into(),
    };
    assert_eq!(snap.driver, image::SnapshotDriver::Overlay);
    fs::write(snap.rootfs.join("root/note"), b"kept").unwrap();
    nix::mount::umount2(&snap.rootfs, nix::mount::MntFlags::empty()).unwrap();
    assert!(!snap.rootfs.join("bin/busybox").exists());
    let again = t.store.snapshot("re").unwrap();
    assert_eq!(again.image_id, img.id);
    assert_eq!(fs::read(again.rootfs.join("root/note")).unwrap(), b"kept");
    assert!(matches!(
        t.store.create_snapshot(&img, "re"),
        Err(Error::SnapshotExists(_))
    ));
    assert!(t.store.create_snapshot(&img, "../x").is_err());
    t.store.remove_snapshot("re").unwrap();
    assert!(matches!(
        t.store.snapshot("re"),
        Err(Error::SnapshotNotFound(_))
    ));
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(t.store.root().to_str().unwrap()),
        "no mount left"
    );
}

#[test]
fn concurrent_commits_from_threads_neither_corrupt_nor_duplicate() {
    let t = TestStore::new();
    let m = common::write_image(&t.store, &[testkit::busybox_layer_tar()], Compress::Gzip);
    let store = Arc::new(t.store.clone());
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            let m = m.clone();
            std::thread::spawn(move || {
                store
                    .commit_image(&m, Some(&"busybox:latest".parse().unwrap()))
                    .map(|i| i.id)
                    .map_err(|e| chain(&e))
            })
        })
        .collect();
    let ids: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(t.entries("layers").len(), 1);
    assert_eq!(t.entries("images").len(), 1);
    assert!(t.entries("tmp").is_empty());
    let snap = t
        .store
        .create_snapshot(&t.store.resolve("busybox").unwrap(), "c")
        .unwrap();
    let _guard = SnapshotGuard {
        store: &t.store,
        key: "c".into(),
    };
    let out = Command::new("chroot")
        .arg(&snap.rootfs)
        .args(["/bin/busybox", "echo", "ok"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "the unpacked busybox runs"
    );
}

/// Child mode for the multi-process test: commit and exit.
#[test]
fn concurrent_commits_from_processes_neither_corrupt_nor_duplicate() {
    if let Ok(root) = std::env::var("ISOLA_TEST_COMMIT_ROOT") {
        let store = Store::open(std::path::Path::new(&root)).unwrap();
        let m = std::env::var("ISOLA_TEST_COMMIT_MANIFEST").unwrap();
        store
            .commit_image(&m, Some(&"busybox:latest".parse().unwrap()))
            .unwrap();
        return;
    }
    let t = TestStore::new();
    let m = common::write_image(&t.store, &[testkit::busybox_layer_tar()], Compress::Gzip);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "concurrent_commits_from_processes_neither_corrupt_nor_duplicate",
                    "--nocapture",
                ])
                .env("ISOLA_TEST_COMMIT_ROOT", t.dir.path())
                .env("ISOLA_TEST_COMMIT_MANIFEST", &m)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(t.entries("layers").len(), 1);
    assert_eq!(t.entries("images").len(), 1);
    assert!(t.entries("tmp").is_empty());
    let img = t.store.resolve("busybox:latest").unwrap();
    let layer = t
        .store
        .root()
        .join("layers")
        .join(&img.layers[0][7..])
        .join("diff");
    assert_eq!(
        fs::read(layer.join("bin/busybox")).unwrap(),
        fs::read(testkit::BUSYBOX).unwrap()
    );
}

#[test]
fn an_image_with_a_hundred_layers_mounts_and_remounts() {
    let t = TestStore::new();
    let tars: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            LayerTar::new()
                .file(&format!("f{i}"), b"x")
                .file("top", format!("{i}").as_bytes())
                .finish()
        })
        .collect();
    let img = commit(&t.store, &tars, Compress::Gzip, "many:latest").unwrap();
    let snap = t
        .store
        .create_snapshot_as(&img, "many", image::SnapshotDriver::Overlay)
        .unwrap();
    let _guard = SnapshotGuard {
        store: &t.store,
        key: "many".into(),
    };
    assert!(snap.rootfs.join("f0").exists() && snap.rootfs.join("f99").exists());
    assert_eq!(
        fs::read(snap.rootfs.join("top")).unwrap(),
        b"99",
        "top layer wins"
    );
    nix::mount::umount2(&snap.rootfs, nix::mount::MntFlags::empty()).unwrap();
    let again = t.store.snapshot("many").unwrap();
    assert_eq!(fs::read(again.rootfs.join("top")).unwrap(), b"99");
}

#[test]
fn prune_clears_crash_debris_but_not_work_in_progress() {
    let t = TestStore::new();
    let tmp = t.store.root().join("tmp");
    let hex = "ab".repeat(32);
    fs::create_dir_all(tmp.join(format!("layer-{hex}-crash/diff"))).unwrap();
    fs::create_dir_all(tmp.join("deleting-x/layer")).unwrap();
    fs::write(tmp.join("blob-old"), b"partial").unwrap();
    let two_hours_ago = filetime::FileTime::from_unix_time(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            - 7200,
        0,
    );
    filetime::set_file_mtime(tmp.join("blob-old"), two_hours_ago).unwrap();
    fs::write(tmp.join("blob-writing"), b"in progress").unwrap();
    t.store.prune(false).unwrap();
    assert_eq!(t.entries("tmp"), vec!["blob-writing".to_string()]);
}

#[test]
fn a_disk_snapshot_keeps_its_writes_on_its_disk_and_leaves_nothing() {
    let t = TestStore::new();
    // Forty layers (more than one mount's options name by full path), the
    // top one deleting a file of the first: the image disk has it applied.
    let mut tars: Vec<Vec<u8>> = vec![LayerTar::new()
        .file("gone", b"x")
        .file("kept", b"1")
        .finish()];
    tars.extend((1..40).map(|i| LayerTar::new().file(&format!("f{i}"), b"x").finish()));
    tars.push(LayerTar::new().file(".wh.gone", b"").finish());
    let img = commit(&t.store, &tars, Compress::Gzip, "many:latest").unwrap();
    let made = t.store.create_disk_snapshot(&img, "vm").unwrap();
    let guard = SnapshotGuard {
        store: &t.store,
        key: "vm".into(),
    };
    // Made unmounted (a VM takes it as it is); its files are its image's.
    assert!(!made.rootfs.join("f39").exists(), "mounted at create");
    let view = t.store.image_view("vm").unwrap().unwrap();
    assert!(view.path().join("f39").exists() && !view.path().join("gone").exists());
    drop(view);
    // The host mounts it when it needs its files.
    let snap = t.store.snapshot("vm").unwrap();
    assert!(snap.rootfs.join("f39").exists() && !snap.rootfs.join("gone").exists());
    fs::write(snap.rootfs.join("note"), b"on the disk").unwrap();
    let changes: Vec<String> = t
        .store
        .changes("vm")
        .unwrap()
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert_eq!(changes, ["/note"]);

    // Released for a VM: nothing of it mounted on the host any more, and
    // the writable disk holds the note (an ext4 image with upper/, work/).
    let disks = t.store.release_snapshot("vm").unwrap();
    let dir = t.store.root().join("snapshots/vm");
    assert!(!snap.rootfs.join("note").exists(), "rootfs still mounted");
    assert!(
        !dir.join("disk/upper").exists(),
        "writable disk still mounted"
    );
    assert_eq!(disks.writable, dir.join("writable.disk"));
    assert_eq!(
        fs::metadata(&disks.writable).unwrap().len(),
        image::store::WRITABLE_DISK_BYTES
    );
    let dump = Command::new("debugfs")
        .args(["-R", "cat /upper/note"])
        .arg(&disks.writable)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&dump.stdout), "on the disk");
    // EROFS's superblock magic, at 1 KiB.
    let mut head = [0u8; 1028];
    std::io::Read::read_exact(&mut fs::File::open(&disks.image).unwrap(), &mut head).unwrap();
    assert_eq!(head[1024..], 0xE0F5_E1E2u32.to_le_bytes());
    assert_eq!(
        fs::metadata(&disks.image).unwrap().len(),
        image::store::IMAGE_DISK_BYTES
    );

    // The host reaches it again once it is back: the note is there.
    let again = t.store.snapshot("vm").unwrap();
    assert_eq!(fs::read(again.rootfs.join("note")).unwrap(), b"on the disk");
    assert!(t.store.snapshot_upper_size("vm") >= 11);
    drop(guard);
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(t.store.root().to_str().unwrap()),
        "no mount left"
    );
    assert!(!dir.exists(), "the snapshot and its disk are gone");
}
