//! End-to-end: a Kubernetes pod through containerd's CRI plugin, driven as
//! kubelet drives it (gRPC on containerd's socket, the `k8s-cri` client),
//! with CNI networking from Debian's plugins, under the two isola runtime
//! handlers: `isola` (process isolation) and `isola-vm` (the pod is one
//! VM). The test starts its own containerd on a private socket, root and
//! state, with a CNI bridge of its own, and removes all of it after. Needs
//! root; the VM variant needs the guest kernel and QEMU.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{wait_until, BIN};
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;

/// A containerd with the CRI plugin on; stopped and cleaned up on drop.
struct Cri {
    dir: tempfile::TempDir,
    child: Child,
    bridge: String,
    subnet: String,
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<tonic::transport::Channel>,
}

const NS: &str = "k8s.io";
const BUSYBOX: &str = "docker.io/library/busybox:latest";
const PAUSE: &str = "docker.io/library/pause:isola";

impl Cri {
    fn start(octet: u8) -> Cri {
        let dir = tempfile::Builder::new()
            .prefix("isola-cri-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let bridge = format!("isocri{octet}");
        let subnet = format!("10.214.{octet}");
        std::fs::create_dir_all(d.join("cni")).unwrap();
        std::fs::write(
            d.join("cni/10-isola-test.conflist"),
            serde_json::to_vec_pretty(&serde_json::json!({
                "cniVersion": "0.4.0",
                "name": format!("isola-cri-{octet}"),
                "plugins": [{
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": format!("{subnet}.0/24")}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": d.join("ipam"),
                    }
                }]
            }))
            .unwrap(),
        )
        .unwrap();
        let runtime = |name: &str, bin: &Path| {
            format!(
                "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name}]\n\
                 runtime_type = \"io.containerd.runc.v2\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name}.options]\n\
                 BinaryName = \"{}\"\n",
                bin.display()
            )
        };
        // restrict_oom_score_adj: root on these machines lacks
        // CAP_SYS_RESOURCE, which the sandbox's oom_score_adj of -998 needs.
        let config = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             [grpc]\n  address = \"{sock}\"\n\
             [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n\
             sandbox_image = \"{PAUSE}\"\n\
             disable_apparmor = true\n\
             restrict_oom_score_adj = true\n\
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
             bin_dir = \"/usr/lib/cni\"\n\
             conf_dir = \"{cni}\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
             default_runtime_name = \"isola\"\n\
             {isola}{isola_vm}",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
            cni = d.join("cni").display(),
            isola = runtime("isola", Path::new(BIN)),
            isola_vm = runtime("isola-vm", &common::vm_binary()),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .env("ISOLA_AGENT", testkit::static_agent())
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sock = d.join("containerd.sock");
        wait_until("containerd to serve its socket", || sock.exists());
        let client = rt.block_on(connect(sock));
        let mut c = Cri {
            dir,
            child,
            bridge,
            subnet,
            rt,
            client,
        };
        wait_until("the CRI plugin to answer", || {
            let mut client = c.client.clone();
            c.rt.block_on(client.version(cri::VersionRequest::default()))
                .is_ok()
        });
        c.import_images();
        c
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["--namespace", NS])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// busybox, and a pause image made of it (it sleeps), in CRI's namespace.
    fn import_images(&mut self) {
        let work = self.dir.path().join("images");
        for (name, cmd) in [
            ("busybox", serde_json::json!(["sh"])),
            ("pause", serde_json::json!(["sleep", "2147483647"])),
        ] {
            let tag = if name == "pause" { "isola" } else { "latest" };
            let layout = work.join(name);
            let image = testkit::LayoutImage::new(
                &format!("docker.io/library/{name}"),
                tag,
                vec![testkit::busybox_layer_tar()],
                serde_json::json!({
                    "Cmd": cmd,
                    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                }),
            );
            testkit::write_oci_layout(&layout, &image);
            let archive = work.join(format!("{name}.tar"));
            testkit::tar_dir(&layout, &archive);
            let out = self.ctr(&[
                "images",
                "import",
                "--base-name",
                &format!("docker.io/library/{name}"),
                archive.to_str().unwrap(),
            ]);
            assert!(
                out.status.success(),
                "import {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn call<T>(
        &self,
        f: impl FnOnce(
            RuntimeServiceClient<tonic::transport::Channel>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>>,
        >,
    ) -> T {
        match self.rt.block_on(f(self.client.clone())) {
            Ok(r) => r.into_inner(),
            Err(s) => panic!(
                "CRI call failed: {s}\ncontainerd log tail:\n{}",
                self.log_tail()
            ),
        }
    }

    fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        // What a failed test left: the pods (and their containers) first.
        let mut client = self.client.clone();
        if let Ok(pods) = self
            .rt
            .block_on(client.list_pod_sandbox(cri::ListPodSandboxRequest::default()))
        {
            for p in pods.into_inner().items {
                let mut c = self.client.clone();
                let _ = self
                    .rt
                    .block_on(c.stop_pod_sandbox(cri::StopPodSandboxRequest {
                        pod_sandbox_id: p.id.clone(),
                    }));
                let mut c = self.client.clone();
                let _ = self
                    .rt
                    .block_on(c.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                        pod_sandbox_id: p.id,
                    }));
            }
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
        for m in common::mounts_under(self.dir.path()).iter().rev() {
            let _ = nix::mount::umount2(Path::new(m), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir(format!("/run/containerd/runc/{NS}/.vm"));
    }
}

async fn connect(sock: PathBuf) -> RuntimeServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let sock = sock.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(sock).await?,
                ))
            }
        }))
        .await
        .expect("connect to containerd's CRI socket");
    RuntimeServiceClient::new(channel)
}

/// Host processes in a cgroup of container `id`: the container's own in
/// process mode (its cgroup is named after it), none in a VM.
fn host_processes_of(id: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .unwrap_or_default()
                .contains(id)
        })
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect()
}

/// A pod of two containers through CRI under `handler`: one serves a page
/// with httpd, the other fetches it on localhost. Checks what kubelet and
/// a user rely on; with `vm`, also that the pod is one VM.
fn pod_through_cri(handler: &str, octet: u8, vm: bool) {
    let missing = ["containerd", "ctr", "curl"]
        .into_iter()
        .find(|t| {
            Command::new(t)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
        })
        .map(|t| format!("{t} not installed (scripts/setup.sh installs it)"));
    if !testkit::require("CRI test", missing) {
        return;
    }
    if vm && !testkit::require("CRI VM test", common::vm_missing()) {
        return;
    }
    let c = Cri::start(octet);
    let logs = c.dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let sandbox_config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: format!("web-{handler}"),
            uid: testkit::unique_name("uid"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "isola-pod".into(),
        log_directory: logs.display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    let sandbox = {
        let req = cri::RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: handler.into(),
        };
        c.call(move |mut cl| Box::pin(async move { cl.run_pod_sandbox(req).await }))
            .pod_sandbox_id
    };
    let create = |name: &str, command: &[&str]| -> String {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata {
                    name: name.into(),
                    attempt: 0,
                }),
                image: Some(cri::ImageSpec {
                    image: BUSYBOX.into(),
                    ..Default::default()
                }),
                command: command.iter().map(|s| s.to_string()).collect(),
                log_path: format!("{name}.log"),
                linux: Some(cri::LinuxContainerConfig::default()),
                ..Default::default()
            }),
            sandbox_config: Some(sandbox_config.clone()),
        };
        let id = c
            .call(move |mut cl| Box::pin(async move { cl.create_container(req).await }))
            .container_id;
        let start = cri::StartContainerRequest {
            container_id: id.clone(),
        };
        c.call(move |mut cl| Box::pin(async move { cl.start_container(start).await }));
        id
    };
    let web = create(
        "web",
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo hello from the pod >/www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    );
    let client = create(
        "client",
        &[
            "sh",
            "-c",
            "for i in $(seq 150); do wget -qO- http://127.0.0.1:8080/ && break; sleep 0.2; done; exec sleep 100000",
        ],
    );

    // The pod's address is the CNI plugin's, and answers from the host.
    let status = {
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox.clone(),
            verbose: false,
        };
        c.call(move |mut cl| Box::pin(async move { cl.pod_sandbox_status(req).await }))
    };
    let ip = status.status.unwrap().network.unwrap().ip;
    assert!(ip.starts_with(&format!("{}.", c.subnet)), "pod ip {ip}");
    let mut page = String::new();
    wait_until("the pod's page to answer on its address", || {
        let out = Command::new("curl")
            .args(["-s", "-m", "5", &format!("http://{ip}:8080/")])
            .output()
            .unwrap();
        page = String::from_utf8_lossy(&out.stdout).into_owned();
        page == "hello from the pod\n"
    });

    // The client fetched it on localhost: its CRI log says so.
    let log = logs.join("client.log");
    wait_until("the client's log to hold the page", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(" stdout F hello from the pod")
    });

    // ExecSync: output and exit code.
    let exec = |cmd: &[&str]| {
        let req = cri::ExecSyncRequest {
            container_id: web.clone(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 30,
        };
        c.call(move |mut cl| Box::pin(async move { cl.exec_sync(req).await }))
    };
    let r = exec(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code),
        (&b"out\n"[..], &b"err\n"[..], 3)
    );
    let guest = String::from_utf8(exec(&["uname", "-r"]).stdout).unwrap();
    let host = String::from_utf8(Command::new("uname").arg("-r").output().unwrap().stdout).unwrap();
    if vm {
        assert_ne!(guest, host, "the pod runs on the host's kernel");
        assert_eq!(common::qemus_of(&sandbox).len(), 1, "one QEMU for the pod");
        let host = host_processes_of(&web);
        assert!(host.is_empty(), "the pod's processes on the host: {host:?}");
    } else {
        assert_eq!(guest, host);
        let host = host_processes_of(&web);
        assert_eq!(host, ["httpd"], "httpd is a host process in process mode");
    }

    // Stop and remove as kubelet does; nothing is left.
    for id in [&web, &client] {
        let stop = cri::StopContainerRequest {
            container_id: id.clone(),
            timeout: 2,
        };
        c.call(move |mut cl| Box::pin(async move { cl.stop_container(stop).await }));
        let rm = cri::RemoveContainerRequest {
            container_id: id.clone(),
        };
        c.call(move |mut cl| Box::pin(async move { cl.remove_container(rm).await }));
    }
    let stop = cri::StopPodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    };
    c.call(move |mut cl| Box::pin(async move { cl.stop_pod_sandbox(stop).await }));
    let rm = cri::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    };
    c.call(move |mut cl| Box::pin(async move { cl.remove_pod_sandbox(rm).await }));
    assert!(
        common::qemus_of(&sandbox).is_empty(),
        "QEMU outlived the pod"
    );
    assert!(host_processes_of(&web).is_empty() && host_processes_of(&client).is_empty());
    let state = Path::new("/run/containerd/runc").join(NS);
    let ours = [&sandbox, &web, &client];
    let left: Vec<_> = ours.iter().filter(|id| state.join(id).exists()).collect();
    assert!(left.is_empty(), "runtime state left: {left:?}");
    if vm {
        let keepers = std::fs::read_dir(state.join(".vm"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(keepers, 0, "a VM keeper directory is left");
    }
    let mounts = common::mounts_under(c.dir.path());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains(&sandbox[..12]),
        "the pod's network namespace is left"
    );
}

#[test]
fn pod_through_cri_with_process_isolation() {
    pod_through_cri("isola", (std::process::id() % 100) as u8 + 10, false);
}

#[test]
fn pod_through_cri_in_one_vm() {
    pod_through_cri("isola-vm", (std::process::id() % 100) as u8 + 120, true);
}
