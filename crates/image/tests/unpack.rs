//! Layer unpacking through the store: malicious and broken layers are
//! rejected with an error naming the entry and the layer, and leave nothing
//! behind; legitimate features (whiteouts, hardlinks, devices, owners,
//! modes, mtimes, xattrs, compressions) unpack as a container expects.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use common::{chain, commit, Compress, LayerTar, SnapshotGuard, TestStore};
use image::Error;

/// Where the store unpacked `img`'s first layer.
fn first_layer_dir(t: &TestStore, img: &image::Image) -> std::path::PathBuf {
    t.store
        .root()
        .join("layers")
        .join(&img.layers[0]["sha256:".len()..])
        .join("diff")
}

/// Commits a one-layer image and expects the unpack to be rejected.
fn expect_rejected(tar: Vec<u8>, entry: &str, why: &str) {
    let t = TestStore::new();
    let layer_digest = image::digest::sha256(&common::compress(&tar, Compress::Gzip));
    let err = commit(&t.store, &[tar], Compress::Gzip, "evil:latest").unwrap_err();
    let msg = chain(&err);
    assert!(matches!(err, Error::Unpack { .. }), "{msg}");
    assert!(
        msg.contains(&layer_digest),
        "error should name the layer: {msg}"
    );
    assert!(
        msg.contains(&format!("\"{entry}\"")),
        "error should name the entry: {msg}"
    );
    assert!(msg.contains(why), "error should say why ({why}): {msg}");
    t.assert_nothing_partial();
    assert!(t.store.resolve("evil:latest").is_err());
    assert!(!std::path::Path::new("/etc/isola-evil").exists());
}

#[test]
fn dotdot_path_is_rejected() {
    let tar = LayerTar::new()
        .file("ok", b"fine")
        .file("../../etc/isola-evil", b"x")
        .finish();
    expect_rejected(tar, "../../etc/isola-evil", "\"..\"");
}

#[test]
fn dotdot_in_the_middle_is_rejected() {
    let tar = LayerTar::new()
        .dir("a")
        .file("a/../../isola-evil", b"x")
        .finish();
    expect_rejected(tar, "a/../../isola-evil", "\"..\"");
}

#[test]
fn absolute_paths_are_taken_relative_to_the_layer() {
    // As docker and containerd unpack them: under the layer, never on the host.
    let t = TestStore::new();
    let tar = LayerTar::new()
        .dir("/etc")
        .file("/etc/isola-evil", b"x")
        .hardlink("/etc/again", "/etc/isola-evil")
        .finish();
    let img = commit(&t.store, &[tar], Compress::Gzip, "abs:latest").unwrap();
    let layer = first_layer_dir(&t, &img);
    assert_eq!(fs::read(layer.join("etc/isola-evil")).unwrap(), b"x");
    assert_eq!(
        fs::metadata(layer.join("etc/again")).unwrap().ino(),
        fs::metadata(layer.join("etc/isola-evil")).unwrap().ino()
    );
    assert!(!std::path::Path::new("/etc/isola-evil").exists());
}

#[test]
fn file_through_a_symlink_is_rejected() {
    let tar = LayerTar::new()
        .symlink("escape", "/etc")
        .file("escape/isola-evil", b"x")
        .finish();
    expect_rejected(tar, "escape/isola-evil", "symlink");
}

#[test]
fn file_through_a_relative_symlink_is_rejected() {
    let tar = LayerTar::new()
        .dir("d")
        .symlink("d/up", "../..")
        .file("d/up/isola-evil", b"x")
        .finish();
    expect_rejected(tar, "d/up/isola-evil", "symlink");
}

#[test]
fn a_dir_replaced_by_a_symlink_is_not_written_through() {
    let tar = LayerTar::new()
        .dir("d")
        .file("d/f", b"in the dir")
        .symlink("d", "/etc")
        .file("d/isola-evil", b"x")
        .finish();
    expect_rejected(tar, "d/isola-evil", "symlink");
}

#[test]
fn hardlink_to_outside_is_rejected() {
    let tar = LayerTar::new()
        .hardlink("passwd", "../../../../etc/passwd")
        .finish();
    expect_rejected(tar, "passwd", "outside the layer");
    // An absolute target is in the layer too: the host's /etc/passwd is not
    // an earlier entry of it.
    let tar = LayerTar::new().hardlink("passwd", "/etc/passwd").finish();
    expect_rejected(tar, "passwd", "hardlink target \"/etc/passwd\"");
}

#[test]
fn hardlink_through_a_symlink_is_rejected() {
    let tar = LayerTar::new()
        .symlink("etc", "/etc")
        .hardlink("passwd", "etc/passwd")
        .finish();
    expect_rejected(tar, "passwd", "symlink");
}

#[test]
fn truncated_gzip_is_rejected_and_leaves_nothing() {
    let t = TestStore::new();
    let tar = LayerTar::new()
        .file("big", &vec![7u8; 300_000])
        .file("after", b"x")
        .finish();
    let diff_id = image::digest::sha256(&tar);
    let gz = common::compress(&tar, Compress::Gzip);
    let cut = gz[..gz.len() / 2].to_vec();
    let m = common::write_image_blobs(
        &t.store,
        std::slice::from_ref(&cut),
        &[diff_id],
        serde_json::json!({}),
    );
    let err = t
        .store
        .commit_image(&m, Some(&"cut:latest".parse().unwrap()))
        .unwrap_err();
    let msg = chain(&err);
    assert!(msg.contains(&image::digest::sha256(&cut)), "{msg}");
    assert!(msg.contains("truncated or corrupt"), "{msg}");
    t.assert_nothing_partial();
}

#[test]
fn layer_not_matching_its_diff_id_is_rejected() {
    let t = TestStore::new();
    let tar = LayerTar::new().file("a", b"a").finish();
    let wrong = image::digest::sha256(b"something else");
    let m = common::write_image_blobs(
        &t.store,
        &[common::compress(&tar, Compress::Gzip)],
        std::slice::from_ref(&wrong),
        serde_json::json!({}),
    );
    let err = t.store.commit_image(&m, None).unwrap_err();
    let msg = chain(&err);
    assert!(matches!(err, Error::DiffIdMismatch(_)), "{msg}");
    assert!(
        msg.contains(&wrong) && msg.contains(&image::digest::sha256(&tar)),
        "{msg}"
    );
    t.assert_nothing_partial();
}

#[test]
fn whiteouts_opaque_dirs_and_hardlinks_give_the_right_view() {
    for driver in [image::SnapshotDriver::Overlay, image::SnapshotDriver::Copy] {
        let t = TestStore::new();
        let base = LayerTar::new()
            .dir("a")
            .file("a/keep", b"keep")
            .file("a/gone", b"gone")
            .file("top-gone", b"x")
            .dir("opq")
            .file("opq/old1", b"1")
            .dir("opq/olddir")
            .file("opq/olddir/f", b"2")
            .dir("gone-dir")
            .file("gone-dir/f", b"3")
            .finish();
        let upper = LayerTar::new()
            .file("a/.wh.gone", b"")
            .file(".wh.top-gone", b"")
            .file(".wh.gone-dir", b"")
            .dir("opq")
            .file("opq/.wh..wh..opq", b"")
            .file("opq/new", b"new")
            .dir("hl")
            .file("hl/orig", b"shared")
            .hardlink("hl/link", "hl/orig")
            .finish();
        let img = commit(&t.store, &[base, upper], Compress::Gzip, "layers:latest").unwrap();
        let key = format!("wh-{driver:?}").to_lowercase();
        let snap = t.store.create_snapshot_as(&img, &key, driver).unwrap();
        let _guard = SnapshotGuard {
            store: &t.store,
            key: key.clone(),
        };
        assert_eq!(snap.driver, driver);
        let r = &snap.rootfs;
        assert_eq!(fs::read(r.join("a/keep")).unwrap(), b"keep");
        assert!(
            !r.join("a/gone").exists(),
            "{driver:?}: whiteout a/.wh.gone"
        );
        assert!(!r.join("top-gone").exists(), "{driver:?}");
        assert!(!r.join("gone-dir").exists(), "{driver:?}");
        let mut opq: Vec<String> = fs::read_dir(r.join("opq"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        opq.sort();
        assert_eq!(
            opq,
            vec!["new".to_string()],
            "{driver:?}: opaque dir hides the lower layer"
        );
        assert_eq!(fs::read(r.join("hl/link")).unwrap(), b"shared");
        let (a, b) = (
            fs::metadata(r.join("hl/orig")).unwrap(),
            fs::metadata(r.join("hl/link")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino(), "{driver:?}: hardlink shares the inode");
        // No whiteout device shows through.
        let names: Vec<_> = fs::read_dir(r)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(!names
            .iter()
            .any(|n| n.to_string_lossy().starts_with(".wh.")));
        // Writes land in the snapshot, never in the shared layer.
        fs::write(r.join("a/keep"), b"changed").unwrap();
        let img2 = t.store.resolve("layers:latest").unwrap();
        let key2 = format!("{key}-2");
        let snap2 = t.store.create_snapshot_as(&img2, &key2, driver).unwrap();
        let _guard2 = SnapshotGuard {
            store: &t.store,
            key: key2.clone(),
        };
        assert_eq!(fs::read(snap2.rootfs.join("a/keep")).unwrap(), b"keep");
    }
}

#[test]
fn devices_fifos_owners_modes_mtimes_and_xattrs_are_kept() {
    let t = TestStore::new();
    let mut tar = LayerTar::new();
    tar.dir("dev");
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    tar.with_header(&mut h, "dev/null", b"");
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_mode(0o600);
    h.set_size(0);
    tar.with_header(&mut h, "fifo", b"");
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o4755);
    h.set_uid(1000);
    h.set_gid(2000);
    h.set_mtime(1_234_567_890);
    h.set_size(4);
    tar.pax(&[("SCHILY.xattr.user.isola", b"yes")]);
    tar.with_header(&mut h, "bin/suid", b"\x7fELF");
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o1777);
    h.set_mtime(1_000_000_000);
    h.set_size(0);
    tar.with_header(&mut h, "tmp", b"");
    tar.file("tmp/inside", b"x");
    tar.symlink("bin/sh", "/bin/busybox");
    let img = commit(&t.store, &[tar.finish()], Compress::Zstd, "special:latest").unwrap();
    let layer = first_layer_dir(&t, &img);
    let null = fs::symlink_metadata(layer.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(fs::symlink_metadata(layer.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let suid = fs::symlink_metadata(layer.join("bin/suid")).unwrap();
    assert_eq!(
        suid.permissions().mode() & 0o7777,
        0o4755,
        "setuid kept after chown"
    );
    assert_eq!((suid.uid(), suid.gid()), (1000, 2000));
    assert_eq!(suid.mtime(), 1_234_567_890);
    assert_eq!(
        xattr::get(layer.join("bin/suid"), "user.isola")
            .unwrap()
            .as_deref(),
        Some(&b"yes"[..])
    );
    let tmp = fs::symlink_metadata(layer.join("tmp")).unwrap();
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    assert_eq!(
        tmp.mtime(),
        1_000_000_000,
        "dir mtime set after its children"
    );
    assert_eq!(
        fs::read_link(layer.join("bin/sh")).unwrap().to_str(),
        Some("/bin/busybox")
    );
    assert_eq!(img.size, 4 + 1);
}

#[test]
fn gzip_zstd_and_plain_layers_unpack_alike() {
    for how in [Compress::None, Compress::Gzip, Compress::Zstd] {
        let t = TestStore::new();
        let tar = LayerTar::new()
            .dir("etc")
            .file("etc/hostname", b"box\n")
            .finish();
        let img = commit(&t.store, std::slice::from_ref(&tar), how, "c:latest").unwrap();
        assert_eq!(img.layers, vec![image::digest::sha256(&tar)], "{how:?}");
        let layer = first_layer_dir(&t, &img);
        assert_eq!(
            fs::read(layer.join("etc/hostname")).unwrap(),
            b"box\n",
            "{how:?}"
        );
    }
}

#[test]
fn later_entries_replace_earlier_ones() {
    let t = TestStore::new();
    let tar = LayerTar::new()
        .file("x", b"first")
        .file("x", b"second")
        .symlink("y", "x")
        .file("y", b"file now")
        .finish();
    let img = commit(&t.store, &[tar], Compress::Gzip, "r:latest").unwrap();
    let layer = first_layer_dir(&t, &img);
    assert_eq!(fs::read(layer.join("x")).unwrap(), b"second");
    assert!(fs::symlink_metadata(layer.join("y")).unwrap().is_file());
    assert_eq!(fs::read(layer.join("y")).unwrap(), b"file now");
}

#[test]
fn pax_owners_and_subsecond_mtimes_are_kept() {
    let t = TestStore::new();
    let mut tar = LayerTar::new();
    tar.pax(&[
        ("uid", b"3000000"),
        ("gid", b"3000001"),
        ("mtime", b"1700000000.25"),
    ]);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o600);
    h.set_size(2);
    tar.with_header(&mut h, "big-ids", b"hi");
    let img = commit(&t.store, &[tar.finish()], Compress::Gzip, "pax:latest").unwrap();
    let layer = first_layer_dir(&t, &img);
    let m = fs::symlink_metadata(layer.join("big-ids")).unwrap();
    assert_eq!((m.uid(), m.gid()), (3_000_000, 3_000_001));
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_700_000_000, 250_000_000));
}
