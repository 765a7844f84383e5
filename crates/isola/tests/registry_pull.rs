//! `isola pull` against a real Debian docker-registry on 127.0.0.1, with
//! images pushed by skopeo; and against broken registries: tampered and
//! missing blobs, a registry that never answers.

mod support;

use std::fs;
use std::net::TcpListener;

use support::*;

#[test]
fn pull_stores_the_image_and_lists_it() {
    let reg = Registry::start();
    let (layout, manifest_digest) = busybox_layout();
    reg.push(layout.path(), "latest", "busybox:latest", None);
    let root = engine_root();
    let name = format!("{}/busybox", reg.host());

    let out = ok(isola(root.path(), &["pull", &name], &[], None));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Using default tag: latest", "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains(&format!("Digest: {manifest_digest}")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}:latest")),
        "{out}"
    );
    assert_eq!(*lines.last().unwrap(), format!("{name}:latest"));

    // Manifest, config and layer are in the store, the manifest verbatim.
    let manifest = layout_manifest(layout.path(), &manifest_digest);
    let blobs = store_blobs(root.path());
    for d in [
        manifest_digest.as_str(),
        manifest["config"]["digest"].as_str().unwrap(),
        manifest["layers"][0]["digest"].as_str().unwrap(),
    ] {
        assert!(blobs.iter().any(|b| b == d), "{d} missing from {blobs:?}");
    }

    let images = ok(isola(root.path(), &["images"], &[], None));
    assert!(images.contains(&name), "{images}");

    // Again: nothing new to fetch; quiet prints only the reference.
    let again = ok(isola(
        root.path(),
        &["pull", &format!("{name}:latest")],
        &[],
        None,
    ));
    assert!(again.contains("Image is up to date"), "{again}");
    let quiet = ok(isola(root.path(), &["pull", "-q", &name], &[], None));
    assert_eq!(quiet, format!("{name}:latest\n"));

    // By digest: the same image, named by its digest.
    let by_digest = format!("{name}@{manifest_digest}");
    let out = ok(isola(root.path(), &["pull", &by_digest], &[], None));
    assert_eq!(out.lines().last().unwrap(), by_digest);
}

#[test]
fn docker_schema2_and_zstd_images_pull() {
    let reg = Registry::start();
    let (layout, _) = busybox_layout();
    // skopeo keeps a layer's compression as it is; to get zstd layers,
    // decompress into a `dir:` copy, then push that compressed with zstd.
    let dir = tempfile::tempdir().unwrap();
    let plain = format!("dir:{}", dir.path().join("plain").display());
    let copy = |args: &[&str]| {
        let out = std::process::Command::new("skopeo")
            .args(["--insecure-policy", "copy"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let src = format!("oci:{}:latest", layout.path().display());
    copy(&["--dest-decompress", &src, &plain]);
    let dest = format!("docker://{}/zstd:latest", reg.host());
    copy(&[
        "--dest-tls-verify=false",
        "--format",
        "oci",
        "--dest-compress-format",
        "zstd",
        &plain,
        &dest,
    ]);
    // Another registry: skopeo's blob cache would reuse the zstd layer.
    let reg2 = Registry::start();
    reg2.push_with(
        layout.path(),
        "latest",
        "docker:v2s2",
        None,
        &["--format", "v2s2"],
    );
    let root = engine_root();
    for name in [
        format!("{}/docker:v2s2", reg2.host()),
        format!("{}/zstd:latest", reg.host()),
    ] {
        let out = ok(isola(root.path(), &["pull", &name], &[], None));
        assert!(out.ends_with(&format!("{name}\n")), "{out}");
    }
    // What each registry manifest said is what the store holds.
    let manifests: Vec<serde_json::Value> = store_blobs(root.path())
        .iter()
        .filter_map(|d| {
            let hex = d.strip_prefix("sha256:").unwrap();
            let bytes = fs::read(root.path().join("image/blobs/sha256").join(hex)).ok()?;
            serde_json::from_slice::<serde_json::Value>(&bytes).ok()
        })
        .filter(|v| v.get("layers").is_some())
        .collect();
    let media = |v: &serde_json::Value| v["layers"][0]["mediaType"].as_str().unwrap().to_string();
    let types: Vec<String> = manifests.iter().map(media).collect();
    assert!(
        types.contains(&"application/vnd.docker.image.rootfs.diff.tar.gzip".to_string()),
        "{types:?}"
    );
    assert!(
        types.contains(&"application/vnd.oci.image.layer.v1.tar+zstd".to_string()),
        "{types:?}"
    );
    let images = ok(isola(root.path(), &["images"], &[], None));
    assert!(
        images.contains("docker") && images.contains("zstd"),
        "{images}"
    );
}

#[test]
fn concurrent_pulls_of_one_image_share_the_store() {
    let reg = Registry::start();
    let (layout, manifest_digest) = busybox_layout();
    reg.push(layout.path(), "latest", "busybox:latest", None);
    let root = engine_root();
    let name = format!("{}/busybox:latest", reg.host());
    let pulls: Vec<_> = (0..3)
        .map(|_| {
            let root = root.path().to_path_buf();
            let name = name.clone();
            std::thread::spawn(move || isola(&root, &["pull", "-q", &name], &[], None))
        })
        .collect();
    for p in pulls {
        assert_eq!(ok(p.join().unwrap()), format!("{name}\n"));
    }
    assert_eq!(store_images(root.path()), 1);
    let manifest = layout_manifest(layout.path(), &manifest_digest);
    let mut expected = vec![
        manifest_digest.clone(),
        manifest["config"]["digest"].as_str().unwrap().to_string(),
        layout_layer(layout.path(), &manifest_digest),
    ];
    expected.sort();
    assert_eq!(store_blobs(root.path()), expected);
}

#[test]
fn multi_platform_index_picks_host_platform_or_the_one_asked_for() {
    if testkit::host_arch() != "amd64" {
        eprintln!("skipped: the index built here has amd64 as the host platform");
        return;
    }
    let reg = Registry::start();
    let (layout, amd64, arm64) = multi_platform_layout();
    reg.push(layout.path(), "latest", "multi:latest", None);
    let name = format!("{}/multi:latest", reg.host());

    let root = engine_root();
    ok(isola(root.path(), &["pull", &name], &[], None));
    let blobs = store_blobs(root.path());
    assert!(
        blobs.contains(&amd64),
        "linux/amd64 manifest not pulled: {blobs:?}"
    );
    assert!(
        !blobs.contains(&arm64),
        "linux/arm64 manifest pulled: {blobs:?}"
    );

    let root = engine_root();
    ok(isola(
        root.path(),
        &["pull", "--platform", "linux/arm64", &name],
        &[],
        None,
    ));
    let blobs = store_blobs(root.path());
    assert!(
        blobs.contains(&arm64),
        "linux/arm64 manifest not pulled: {blobs:?}"
    );
    assert!(
        !blobs.contains(&amd64),
        "linux/amd64 manifest pulled: {blobs:?}"
    );

    let err = fails(isola(
        root.path(),
        &["pull", "--platform", "linux/s390x", &name],
        &[],
        None,
    ));
    assert!(err.contains("no image for platform linux/s390x"), "{err}");
    assert!(err.contains("linux/amd64, linux/arm64"), "{err}");
}

#[test]
fn tampered_blob_is_rejected_and_nothing_is_kept() {
    let reg = Registry::start();
    let (layout, manifest_digest) = busybox_layout();
    reg.push(layout.path(), "latest", "busybox:latest", None);
    let layer = layout_layer(layout.path(), &manifest_digest);
    // Same size, other bytes: only the digest can tell.
    let data = reg.blob_data(&layer);
    let mut bytes = fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&data, bytes).unwrap();

    let root = engine_root();
    let err = fails(isola(
        root.path(),
        &["pull", &format!("{}/busybox:latest", reg.host())],
        &[],
        None,
    ));
    assert!(err.contains(&layer), "error does not name the blob: {err}");
    let blobs = store_blobs(root.path());
    assert!(!blobs.contains(&layer), "tampered blob kept: {blobs:?}");
    assert!(
        !blobs.contains(&manifest_digest),
        "manifest kept: {blobs:?}"
    );
    assert_eq!(store_images(root.path()), 0);
    let tmp = fs::read_dir(root.path().join("image/tmp")).unwrap().count();
    assert_eq!(tmp, 0, "temp files left in the store");
}

#[test]
fn manifest_naming_a_missing_blob_fails_clearly() {
    let reg = Registry::start();
    let (layout, manifest_digest) = busybox_layout();
    reg.push(layout.path(), "latest", "busybox:latest", None);
    let layer = layout_layer(layout.path(), &manifest_digest);
    fs::remove_dir_all(reg.blob_data(&layer).parent().unwrap()).unwrap();

    let root = engine_root();
    let err = fails(isola(
        root.path(),
        &["pull", &format!("{}/busybox:latest", reg.host())],
        &[],
        None,
    ));
    assert!(err.contains(&format!("blob {layer}")), "{err}");
    assert!(err.contains("missing from registry"), "{err}");
    assert_eq!(store_images(root.path()), 0);
    assert!(!store_blobs(root.path()).contains(&manifest_digest));
}

#[test]
fn unknown_image_is_reported_as_not_found() {
    let reg = Registry::start();
    let root = engine_root();
    let name = format!("{}/nothing:here", reg.host());
    let err = fails(isola(root.path(), &["pull", &name], &[], None));
    assert!(
        err.contains(&format!("image {name} not found in {}", reg.host())),
        "{err}"
    );
}

#[test]
fn registry_that_never_answers_times_out_naming_it() {
    // Accepts connections and holds them open without a byte of reply.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let root = engine_root();
    let err = fails(isola(
        root.path(),
        &["pull", &format!("{host}/busybox:latest")],
        &[("ISOLA_REGISTRY_TIMEOUT", "1")],
        None,
    ));
    assert!(
        err.contains(&format!("registry {host} did not answer within 1s")),
        "{err}"
    );
    assert_eq!(store_images(root.path()), 0);
}

#[test]
fn non_loopback_registry_is_not_spoken_to_in_plain_http() {
    // An unroutable documentation address: the point is the scheme in the
    // error, which must be https unless the registry is marked insecure.
    let root = engine_root();
    let err = fails(isola(
        root.path(),
        &["pull", "192.0.2.1:5000/busybox:latest"],
        &[("ISOLA_REGISTRY_TIMEOUT", "1")],
        None,
    ));
    assert!(err.contains("https://192.0.2.1:5000/"), "{err}");
    let err = fails(isola(
        root.path(),
        &[
            "pull",
            "--insecure-registry",
            "192.0.2.1:5000",
            "192.0.2.1:5000/busybox:latest",
        ],
        &[("ISOLA_REGISTRY_TIMEOUT", "1")],
        None,
    ));
    assert!(err.contains("http://192.0.2.1:5000/"), "{err}");
}
