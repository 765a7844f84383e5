//! Archives against an independent implementation: skopeo writes
//! docker-archive and oci-archive tars that `load` must accept, and must
//! accept what `save` writes. Also import, compressed archives and broken
//! archives.

mod common;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{busybox_oci_archive, chain, SnapshotGuard, TestStore};
use image::{archive, Error};

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn load_file(t: &TestStore, path: &Path) -> Result<Vec<image::Image>, Error> {
    archive::load(&t.store, &mut File::open(path).unwrap())
}

fn assert_busybox_runs(t: &TestStore, name: &str, key: &str) {
    let img = t.store.resolve(name).unwrap();
    let snap = t.store.create_snapshot(&img, key).unwrap();
    let _guard = SnapshotGuard {
        store: &t.store,
        key: key.into(),
    };
    let out = Command::new("chroot")
        .arg(&snap.rootfs)
        .args(["/bin/sh", "-c", "echo hello from $(basename $0)"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from sh\n");
}

#[test]
fn loads_what_skopeo_writes_as_docker_archive() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    testkit::oci_layout(&layout, "busybox", "latest");
    let tar = work.path().join("docker.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker-archive:{}:busybox:latest", tar.display()),
    ]);
    let t = TestStore::new();
    let images = load_file(&t, &tar).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].names[0].familiar(), "busybox:latest");
    assert!(
        images[0].repo_digests.is_empty(),
        "a loaded image has no repo digest"
    );
    assert_eq!(
        images[0].config.config().as_ref().unwrap().cmd().as_deref(),
        Some(&["sh".to_string()][..])
    );
    assert!(t.entries("tmp").is_empty());
    assert_busybox_runs(&t, "busybox", "d");
}

#[test]
fn loads_what_skopeo_writes_as_oci_archive() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    testkit::oci_layout(&layout, "busybox", "latest");
    let tar = work.path().join("oci.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:latest", layout.display()),
        &format!(
            "oci-archive:{}:127.0.0.1:5000/tools/busybox:v2",
            tar.display()
        ),
    ]);
    let t = TestStore::new();
    let images = load_file(&t, &tar).unwrap();
    assert_eq!(
        images[0].names[0].to_string(),
        "127.0.0.1:5000/tools/busybox:v2"
    );
    assert_busybox_runs(&t, "127.0.0.1:5000/tools/busybox:v2", "o");
}

#[test]
fn loads_an_oci_layout_tar_with_containerd_names_gzip_compressed() {
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_oci_archive(work.path(), "example.com/box", "1.0");
    let gz = work.path().join("oci.tar.gz");
    let mut enc =
        flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut File::open(&tar).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    let t = TestStore::new();
    let images = load_file(&t, &gz).unwrap();
    assert_eq!(images[0].names[0].to_string(), "example.com/box:1.0");
    // Loading again changes nothing and duplicates nothing.
    let again = load_file(&t, &gz).unwrap();
    assert_eq!(again[0].id, images[0].id);
    assert_eq!(t.entries("images").len(), 1);
    assert_eq!(t.entries("layers").len(), 1);
}

#[test]
fn save_output_is_accepted_by_skopeo_and_loads_back() {
    let work = tempfile::tempdir().unwrap();
    let src = busybox_oci_archive(work.path(), "busybox", "latest");
    let t = TestStore::new();
    let loaded = load_file(&t, &src).unwrap();
    t.store.tag("busybox", &"mybox:2".parse().unwrap()).unwrap();
    let out = work.path().join("saved.tar");
    archive::save(
        &t.store,
        &["busybox:latest".to_string(), "mybox:2".to_string()],
        &mut File::create(&out).unwrap(),
    )
    .unwrap();
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}:busybox:latest", out.display()),
    ]))
    .unwrap();
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
    let config: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--config",
        &format!("docker-archive:{}:mybox:2", out.display()),
    ]))
    .unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        loaded[0].layers[0].as_str()
    );

    // skopeo copies our archive to an OCI layout: the layer digests match.
    let copied = work.path().join("copied");
    skopeo(&[
        "copy",
        &format!("docker-archive:{}:busybox:latest", out.display()),
        &format!("oci:{}:x", copied.display()),
    ]);

    let fresh = TestStore::new();
    let back = load_file(&fresh, &out).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].id, loaded[0].id, "same config, same image id");
    assert_eq!(fresh.store.resolve("mybox:2").unwrap().id, loaded[0].id);
    assert_busybox_runs(&fresh, "busybox:latest", "s");
}

#[test]
fn import_makes_a_one_layer_image_from_a_rootfs_tar() {
    let t = TestStore::new();
    let tar = testkit::busybox_layer_tar();
    let gz = common::compress(&tar, common::Compress::Gzip);
    let img = archive::import(
        &t.store,
        &mut &gz[..],
        Some(&"imported:1".parse().unwrap()),
        None,
    )
    .unwrap();
    assert_eq!(img.layers, vec![image::digest::sha256(&tar)]);
    assert_eq!(img.names[0].familiar(), "imported:1");
    assert!(img
        .config
        .config()
        .as_ref()
        .and_then(|c| c.cmd().clone())
        .is_none());
    assert!(img.created.is_some());
    assert_busybox_runs(&t, "imported:1", "i");
    let anon = archive::import(&t.store, &mut &tar[..], None, None).unwrap();
    assert!(anon.names.is_empty());
}

#[test]
fn import_of_a_malicious_tar_fails_and_leaves_nothing() {
    let t = TestStore::new();
    let tar = common::LayerTar::new().file("../escape", b"x").finish();
    let err = archive::import(
        &t.store,
        &mut &tar[..],
        Some(&"bad:1".parse().unwrap()),
        None,
    )
    .unwrap_err();
    assert!(chain(&err).contains("\"../escape\""), "{}", chain(&err));
    t.assert_nothing_partial();
    assert!(
        t.entries("blobs/sha256").is_empty(),
        "import's blobs are discarded"
    );
}

/// The digest of the first layer of the first image in the OCI layout at
/// `layout`, and the file that holds it.
fn first_layer_blob(layout: &Path) -> (String, PathBuf) {
    let blob = |digest: &str| layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(blob(m)).unwrap()).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = blob(&layer);
    (layer, path)
}

#[test]
fn an_archive_whose_manifest_names_a_missing_blob_is_rejected_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    testkit::oci_layout(&layout, "busybox", "latest");
    let (layer, path) = first_layer_blob(&layout);
    fs::remove_file(path).unwrap();
    let tar = work.path().join("broken.tar");
    testkit::tar_dir(&layout, &tar);
    let t = TestStore::new();
    let err = load_file(&t, &tar).unwrap_err();
    let msg = chain(&err);
    assert!(matches!(err, Error::MissingBlob { .. }), "{msg}");
    assert!(msg.contains(&layer), "{msg}");
    t.assert_nothing_partial();
    assert!(
        t.entries("blobs/sha256").is_empty(),
        "the load's blobs are discarded: {:?}",
        t.entries("blobs/sha256")
    );
}

#[test]
fn an_archive_blob_with_a_wrong_digest_is_rejected_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    testkit::oci_layout(&layout, "busybox", "latest");
    let (layer, path) = first_layer_blob(&layout);
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let tar = work.path().join("tampered.tar");
    testkit::tar_dir(&layout, &tar);
    let t = TestStore::new();
    let err = load_file(&t, &tar).unwrap_err();
    let msg = chain(&err);
    assert!(matches!(err, Error::DigestMismatch { .. }), "{msg}");
    assert!(msg.contains(&layer), "{msg}");
    t.assert_nothing_partial();
    assert!(!t.store.has_blob(&layer));
    assert!(t.entries("blobs/sha256").is_empty());
}

#[test]
fn an_archive_with_an_escaping_link_is_rejected() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_cksum();
    b.append_link(&mut h, "manifest.json", "../../../etc/passwd")
        .unwrap();
    let data = b.into_inner().unwrap();
    let t = TestStore::new();
    let err = archive::load(&t.store, &mut &data[..]).unwrap_err();
    assert!(
        chain(&err).contains("outside the archive"),
        "{}",
        chain(&err)
    );
    // Five bytes are not even one tar header: said as such, never quoted.
    let not_archive = archive::load(&t.store, &mut &b"hello"[..]).unwrap_err();
    assert!(
        matches!(not_archive, Error::NotATar { .. }),
        "{}",
        chain(&not_archive)
    );
    assert!(
        chain(&not_archive).starts_with("not a tar archive: expected ")
            && !chain(&not_archive).contains("hello"),
        "{}",
        chain(&not_archive)
    );
    t.assert_nothing_partial();
}

#[test]
fn an_archive_of_no_known_format_says_which_it_is_not() {
    let tar_of = |name: &str| {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &b"{}"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let t = TestStore::new();
    let err = archive::load(&t.store, &mut &tar_of("repositories")[..]).unwrap_err();
    assert!(matches!(err, Error::LegacyDockerArchive), "{}", chain(&err));
    assert!(
        chain(&err).contains("legacy docker archive") && chain(&err).contains("newer docker"),
        "{}",
        chain(&err)
    );
    let err = archive::load(&t.store, &mut &tar_of("hello.txt")[..]).unwrap_err();
    assert!(
        matches!(err, Error::UnknownArchiveFormat),
        "{}",
        chain(&err)
    );
    assert!(
        chain(&err).contains(
            "neither a docker archive (manifest.json) nor an OCI image layout (index.json)"
        ),
        "{}",
        chain(&err)
    );
    t.assert_nothing_partial();
}
