//! Shared by the Docker Engine API tests (`mod docker_service;` in each):
//! the real docker client from Debian's docker.io (taken out with
//! `apt-get download` + `dpkg -x` by scripts/setup.sh, never installed, so
//! no dockerd ever runs), and `isola system service` on a test's own root
//! and socket, with raw HTTP for where the bytes matter.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::Root;

/// Where scripts/setup.sh puts the docker client.
pub const DOCKER: &str = "/var/cache/isola/docker-client/usr/bin/docker";

/// The tool at `path`, or why the test cannot run (see testkit::require).
pub fn tool_or_skip(test: &str, path: &str, how: &str) -> Option<PathBuf> {
    let missing = (!Path::new(path).is_file()).then(|| format!("no {path} ({how})"));
    testkit::require(test, missing).then(|| PathBuf::from(path))
}

/// The docker client, or why the test cannot run.
pub fn docker_or_skip(test: &str) -> Option<PathBuf> {
    tool_or_skip(
        test,
        DOCKER,
        "scripts/setup.sh fetches the docker client from Debian's docker.io",
    )
}

/// `isola system service` on `root`, stopped when dropped (the root then
/// removes what is left).
pub struct Service {
    child: Child,
    pub socket: PathBuf,
    docker: PathBuf,
    pub config: tempfile::TempDir,
    pub root: Root,
}

impl Service {
    pub fn start(root: Root, docker: PathBuf) -> Service {
        let socket = root.path().join("docker.sock");
        let child = root
            .cmd(&[
                "system",
                "service",
                "--listen",
                &format!("unix://{}", socket.display()),
                "--timeout",
                "600",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "the service did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Service {
            child,
            socket,
            docker,
            config: tempfile::tempdir().unwrap(),
            root,
        }
    }

    /// `isola system service --listen fd://` started as systemd's socket
    /// activation starts it (isola.socket): the test binds and listens on
    /// the socket, which the service gets as fd 3 with LISTEN_FDS=1 and
    /// LISTEN_PID its own pid. A shell sets LISTEN_PID to `$$` and then
    /// execs isola (same pid), and moves the listener from stdin to fd 3,
    /// which keeps `unsafe` pre_exec code out of the test.
    pub fn start_activated(root: Root, docker: PathBuf) -> Service {
        let socket = root.path().join("activated.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let isola = root.cmd(&["system", "service", "--listen", "fd://"]);
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(r#"exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#)
            .arg(isola.get_program())
            .args(isola.get_args());
        for (k, v) in isola.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        let child = c
            .stdin(std::os::fd::OwnedFd::from(listener))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Service {
            child,
            socket,
            docker,
            config: tempfile::tempdir().unwrap(),
            root,
        }
    }

    /// `DOCKER_HOST` for this service.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Another client (docker-compose, a docker-py script) pointed at this
    /// service through `DOCKER_HOST`, its settings in the test's directory.
    pub fn client(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.config.path())
            .stdin(Stdio::null());
        c
    }

    /// A docker client command against this service.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.docker);
        c.arg("-H")
            .arg(self.host())
            .args(args)
            // The client's own settings stay in the test's directory.
            .env("DOCKER_CONFIG", self.config.path())
            .stdin(Stdio::null());
        c
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs docker, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs docker, asserting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(!out.status.success(), "docker {args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    }

    /// One raw HTTP/1.0 request; the status, and the body's bytes.
    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
        let mut s = UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n");
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body.unwrap_or(""));
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP response");
        let head = String::from_utf8_lossy(&out[..split]).to_string();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap();
        (status, out[split + 4..].to_vec())
    }

    /// [`Service::http`] with the body as JSON (null when empty).
    pub fn http_json(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let (status, body) = self.http(method, path, body);
        if body.is_empty() {
            return (status, serde_json::Value::Null);
        }
        let v = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        (status, v)
    }
}

impl Service {
    /// Stops the service (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}
