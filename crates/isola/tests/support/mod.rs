//! Shared by the registry tests (`mod support;` in each): a real Debian
//! `docker-registry` on 127.0.0.1 in a temp dir, images pushed to it with
//! skopeo (an independent client), and a runner for the real `isola` binary.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ISOLA: &str = env!("CARGO_BIN_EXE_isola");

/// A docker-registry process serving `127.0.0.1:<port>`, killed on drop.
pub struct Registry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

/// Basic-auth user and password of [`Registry::start_with_htpasswd`].
pub const USER: &str = "isola";
pub const PASSWORD: &str = "s3cret-pw";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// An open registry (no auth).
    pub fn start() -> Registry {
        Registry::start_with_auth(|_| None)
    }

    /// A registry that wants HTTP basic auth ([`USER`], [`PASSWORD`]),
    /// checked against a bcrypt htpasswd file made by apache2-utils.
    pub fn start_with_htpasswd() -> Registry {
        let out = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd missing: install apache2-utils (scripts/setup.sh does)");
        assert!(out.status.success(), "htpasswd: {out:?}");
        Registry::start_with_auth(|dir| {
            let path = dir.join("htpasswd");
            fs::write(&path, &out.stdout).unwrap();
            Some(format!(
                "  htpasswd:\n    realm: isola-test\n    path: {}\n",
                path.display()
            ))
        })
    }

    /// A registry whose `auth:` section is what `auth` returns (indented
    /// two spaces); `auth` may write files into the registry's directory.
    pub fn start_with_auth(auth: impl FnOnce(&Path) -> Option<String>) -> Registry {
        let mut dir = tempfile::Builder::new()
            .prefix("isola-registry-")
            .tempdir()
            .unwrap();
        let auth = auth(dir.path());
        // The port is free when asked for, but another test may take it
        // before the registry binds it: then the registry exits, and it is
        // tried again on another port.
        for _ in 0..5 {
            let port = free_port();
            let mut config = format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            );
            if let Some(section) = &auth {
                config.push_str("auth:\n");
                config.push_str(section);
            }
            let config_path = dir.path().join("config.yml");
            fs::write(&config_path, config).unwrap();
            let log = fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new("/usr/bin/docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry missing: install it (scripts/setup.sh does)");
            let mut reg = Registry { port, dir, child };
            if reg.wait_ready() {
                return reg;
            }
            dir = std::mem::replace(&mut reg.dir, tempfile::tempdir().unwrap());
        }
        panic!("docker-registry did not start on any of 5 ports");
    }

    /// Waits until this registry (not another on the same port) listens;
    /// false if it exited first.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        let log = self.dir.path().join("registry.log");
        let listening = format!("listening on 127.0.0.1:{}", self.port);
        loop {
            if fs::read_to_string(&log).is_ok_and(|l| l.contains(&listening))
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return true;
            }
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the registry keeps blob `digest`'s bytes.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Pushes `<layout>:<tag>` to `<host>/<repo>` with skopeo (`--all`
    /// keeps every platform of an index).
    pub fn push(&self, layout: &Path, tag: &str, repo: &str, creds: Option<(&str, &str)>) {
        self.push_with(layout, tag, repo, creds, &[]);
    }

    /// [`Registry::push`] with more `skopeo copy` flags (`--format v2s2`,
    /// `--dest-compress-format zstd`).
    pub fn push_with(
        &self,
        layout: &Path,
        tag: &str,
        repo: &str,
        creds: Option<(&str, &str)>,
        flags: &[&str],
    ) {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--all",
            "--dest-tls-verify=false",
        ]);
        cmd.args(flags);
        if let Some((u, p)) = creds {
            cmd.arg(format!("--dest-creds={u}:{p}"));
        }
        cmd.arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo}", self.host()));
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "skopeo push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh engine root, removed on drop with its networks' bridges.
pub fn engine_root() -> EngineRoot {
    EngineRoot(
        tempfile::Builder::new()
            .prefix("isola-root-")
            .tempdir()
            .unwrap(),
    )
}

/// A temporary engine root: a directory, and on the host the bridges of
/// the networks its containers used (removed on drop).
pub struct EngineRoot(tempfile::TempDir);

impl std::ops::Deref for EngineRoot {
    type Target = tempfile::TempDir;
    fn deref(&self) -> &tempfile::TempDir {
        &self.0
    }
}

impl Drop for EngineRoot {
    fn drop(&mut self) {
        if let Ok(networks) = engine::networks::Networks::open(self.0.path()) {
            let _ = networks.destroy();
        }
    }
}

/// Runs `isola --root <root> <args>` with `env`; stdin empty unless given.
pub fn isola(root: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(ISOLA);
    cmd.arg("--root").arg(root).args(args);
    // Keep the host's docker credentials out of the test.
    cmd.env("DOCKER_CONFIG", root.join("no-docker-config"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "isola failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts failure and returns stderr.
pub fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "isola should have failed:\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

/// A busybox OCI layout tagged `latest` (testkit's writer); returns its
/// directory and manifest digest.
pub fn busybox_layout() -> (tempfile::TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix("isola-layout-")
        .tempdir()
        .unwrap();
    let digest = testkit::oci_layout(dir.path(), "busybox", "latest");
    (dir, digest)
}

/// Blob files in the engine root's store.
pub fn store_blobs(root: &Path) -> Vec<String> {
    let dir = root.join("image/blobs/sha256");
    let mut v: Vec<String> = fs::read_dir(&dir)
        .map(|rd| {
            rd.map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Image records in the engine root's store.
pub fn store_images(root: &Path) -> usize {
    fs::read_dir(root.join("image/images"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

/// The manifest `digest` of the OCI layout at `layout`, as JSON.
pub fn layout_manifest(layout: &Path, digest: &str) -> serde_json::Value {
    let hex = digest.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

/// The digest of the (first) layer of manifest `digest` in `layout`.
pub fn layout_layer(layout: &Path, digest: &str) -> String {
    layout_manifest(layout, digest)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An OCI layout whose `latest` is an image index with a linux/amd64 and a
/// linux/arm64 busybox (distinct configs, so distinct manifests). Returns
/// the directory and the (amd64, arm64) manifest digests.
pub fn multi_platform_layout() -> (tempfile::TempDir, String, String) {
    let layer = testkit::busybox_layer_tar();
    let images: Vec<_> = ["amd64", "arm64"]
        .into_iter()
        .map(|arch| {
            let config = serde_json::json!({ "Cmd": ["sh"], "Env": [format!("BUILT_FOR={arch}")] });
            (arch, layer.clone(), config)
        })
        .collect();
    let (dir, mut digests) = index_layout(&images);
    let arm64 = digests.pop().unwrap();
    let amd64 = digests.pop().unwrap();
    (dir, amd64, arm64)
}

/// An OCI layout whose `latest` is an image index of one image per
/// (architecture, layer, config) given, all linux. Returns the directory
/// and the manifest digests, in order.
pub fn index_layout(
    images: &[(&str, Vec<u8>, serde_json::Value)],
) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::Builder::new()
        .prefix("isola-layout-")
        .tempdir()
        .unwrap();
    let mut digests = Vec::new();
    for (arch, layer, config) in images {
        let mut img = testkit::LayoutImage::new("multi", arch, vec![layer.clone()], config.clone());
        img.architecture = arch.to_string();
        digests.push(testkit::write_oci_layout(dir.path(), &img));
    }
    let index_path = dir.path().join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let entries: Vec<serde_json::Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.as_object_mut().unwrap().remove("annotations");
            m
        })
        .collect();
    let image_index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .unwrap();
    let index_digest = testkit::sha256_digest(&image_index);
    fs::write(
        dir.path()
            .join("blobs/sha256")
            .join(index_digest.strip_prefix("sha256:").unwrap()),
        &image_index,
    )
    .unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest,
            "size": image_index.len(),
            "annotations": { "org.opencontainers.image.ref.name": "latest" },
        }));
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    (dir, digests)
}
