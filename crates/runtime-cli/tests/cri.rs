//! End-to-end through Kubernetes' CRI, the way kubelet drives a node:
//! Debian's containerd with its CRI plugin enabled (private socket, root and
//! state; a CNI bridge network private to the test) runs pods with
//! isola-runtime as a runc-shim runtime handler, once with process isolation
//! (`isola`) and once with the pod in one utility VM (`isola-vm`). The test
//! speaks CRI's gRPC API itself (the `k8s-cri` crate), imports a pause and a
//! busybox image it builds into containerd's `k8s.io` namespace, and checks
//! what kubelet relies on: the pod's IP from CNI, exec, the container's CRI
//! log, and that removing the pod leaves nothing. Needs root.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ExecSyncRequest, ExecSyncResponse,
    ImageSpec, ImageStatusRequest, LinuxPodSandboxConfig, ListPodSandboxRequest, PodSandboxConfig,
    PodSandboxMetadata, PodSandboxStatusRequest, PodSandboxStatusResponse, RemoveContainerRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest, VersionRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};

use common::BIN;

const BUSYBOX: &str = "docker.io/library/busybox:latest";
const PAUSE: &str = "docker.io/isola-test/pause:1";
const PAGE: &str = "hello from the CRI pod";

/// A containerd with the CRI plugin, its CNI network and a CRI client;
/// on drop, removes the pods left, stops containerd and deletes the bridge.
struct Node {
    dir: tempfile::TempDir,
    child: Child,
    bridge: String,
    /// The pods' /24, as `10.212.<n>`.
    subnet: String,
    /// The pods' cgroup parent, removed on drop (the runtime removes its children).
    cgroup_parent: String,
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Node {
    /// `slot` keeps two nodes of one test process apart (bridge, subnet).
    fn start(slot: u32, env: &[(&str, &Path)]) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("isola-cri-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let n = (std::process::id() % 100) * 2 + slot + 20;
        let subnet = format!("10.212.{n}");
        let bridge = format!("icri{}s{slot}", std::process::id() % 100_000);
        let cgroup_parent = format!("/{}", testkit::unique_name("isola-cri"));

        std::fs::create_dir_all(d.join("cni")).unwrap();
        let conflist = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": format!("isola-cri-{n}"),
            "plugins": [{
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": format!("{subnet}.0/24") }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": d.join("ipam"),
                },
            }],
        });
        std::fs::write(
            d.join("cni/10-isola-cri.conflist"),
            serde_json::to_vec_pretty(&conflist).unwrap(),
        )
        .unwrap();

        let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
        let runtime = |name: &str, bin: &str| {
            format!(
                "[{cri}.containerd.runtimes.{name}]\n  runtime_type = \"io.containerd.runc.v2\"\n\
                 [{cri}.containerd.runtimes.{name}.options]\n  BinaryName = \"{bin}\"\n  Root = \"{root}\"\n",
                root = d.join("runc").display(),
            )
        };
        // restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, which
        // the sandbox's oom_score_adj of -998 needs.
        let config = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             [grpc]\n  address = \"{sock}\"\n\
             [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"\"\n\
             [{cri}]\n  sandbox_image = \"{PAUSE}\"\n  stream_server_address = \"127.0.0.1\"\n  \
               stream_server_port = \"0\"\n  enable_selinux = false\n  \
               disable_apparmor = true\n  restrict_oom_score_adj = true\n\
             [{cri}.cni]\n  bin_dir = \"/usr/lib/cni\"\n  conf_dir = \"{cni}\"\n  max_conf_num = 1\n\
             [{cri}.containerd]\n  default_runtime_name = \"isola\"\n  snapshotter = \"overlayfs\"\n\
             {isola}{isola_vm}",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
            cni = d.join("cni").display(),
            isola = runtime("isola", BIN),
            isola_vm = runtime("isola-vm", &common::vm_binary().display().to_string()),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .envs(env.iter().copied())
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sock = d.join("containerd.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        let channel = loop {
            let sock = sock.clone();
            let connected = rt.block_on(async move {
                Endpoint::try_from("http://[::]")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let sock = sock.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(sock).await?,
                            ))
                        }
                    }))
                    .await
            });
            match connected {
                Ok(c) => break c,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "containerd's socket does not answer: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let mut node = Node {
            dir,
            child,
            bridge,
            subnet,
            cgroup_parent,
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        };
        // The CRI service answers once its plugin has started.
        let version = node.poll("CRI's Version call", |n| {
            let mut c = n.runtime.clone();
            n.rt.block_on(c.version(VersionRequest {
                version: "v1".into(),
            }))
            .ok()
        });
        let version = version.into_inner();
        assert_eq!(version.runtime_name, "containerd", "{version:?}");
        node.import_images();
        node
    }

    /// Polls `f` every 50 ms for up to 60 s (a VM pod under TCG is slow to
    /// start); panics naming `what`, with containerd's log, otherwise.
    fn poll<T>(&mut self, what: &str, mut f: impl FnMut(&mut Node) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\ncontainerd log tail:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The runtime's --root as the shim gives it (its Root option joined
    /// with containerd's namespace).
    fn runtime_root(&self) -> PathBuf {
        self.dir.path().join("runc/k8s.io")
    }

    fn ctr(&self, args: &[&str]) -> String {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["--namespace", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctr {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The pause image (busybox sleeping) and busybox, built here from
    /// busybox-static and imported where CRI looks for images.
    fn import_images(&mut self) {
        let layout = self.dir.path().join("layout");
        let layer = testkit::busybox_layer_tar();
        let env = serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ]);
        for (name, config) in [
            (BUSYBOX, serde_json::json!({ "Cmd": ["sh"], "Env": env })),
            (
                PAUSE,
                serde_json::json!({ "Entrypoint": ["/bin/sleep"], "Cmd": ["2147483647"], "Env": env }),
            ),
        ] {
            let (repo, tag) = name.rsplit_once(':').unwrap();
            let image = testkit::LayoutImage::new(repo, tag, vec![layer.clone()], config);
            testkit::write_oci_layout(&layout, &image);
        }
        let archive = self.dir.path().join("images.tar");
        testkit::tar_dir(&layout, &archive);
        self.ctr(&["images", "import", archive.to_str().unwrap()]);
        for name in [BUSYBOX, PAUSE] {
            self.poll(&format!("CRI to see {name}"), |n| {
                let mut c = n.images.clone();
                let status =
                    n.rt.block_on(c.image_status(ImageStatusRequest {
                        image: Some(ImageSpec {
                            image: name.into(),
                            ..Default::default()
                        }),
                        verbose: false,
                    }))
                    .ok()?;
                status.into_inner().image.map(|_| ())
            });
        }
    }

    fn pod_config(&self, name: &str) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: testkit::unique_name("uid"),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: self
                .dir
                .path()
                .join("pods")
                .join(name)
                .display()
                .to_string(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run_pod(&mut self, config: &PodSandboxConfig, handler: &str) -> String {
        let mut c = self.runtime.clone();
        let resp = self.rt.block_on(c.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        }));
        match resp {
            Ok(r) => r.into_inner().pod_sandbox_id,
            Err(e) => panic!("RunPodSandbox ({handler}): {e}\n{}", self.log_tail()),
        }
    }

    fn pod_status(&mut self, id: &str) -> PodSandboxStatusResponse {
        let mut c = self.runtime.clone();
        self.rt
            .block_on(c.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: true,
            }))
            .unwrap()
            .into_inner()
    }

    /// Creates and starts a busybox container running `sh -c script`,
    /// logging to `<pod log dir>/<name>.log`.
    fn start_container(
        &mut self,
        pod: &str,
        pod_config: &PodSandboxConfig,
        name: &str,
        script: &str,
    ) -> String {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: BUSYBOX.into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: format!("{name}.log"),
            ..Default::default()
        };
        let mut c = self.runtime.clone();
        let created = self.rt.block_on(c.create_container(CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        }));
        let id = match created {
            Ok(r) => r.into_inner().container_id,
            Err(e) => panic!("CreateContainer {name}: {e}\n{}", self.log_tail()),
        };
        let started = self.rt.block_on(c.start_container(StartContainerRequest {
            container_id: id.clone(),
        }));
        if let Err(e) = started {
            panic!("StartContainer {name}: {e}\n{}", self.log_tail());
        }
        id
    }

    fn exec_sync(&mut self, id: &str, cmd: &[&str]) -> ExecSyncResponse {
        let mut c = self.runtime.clone();
        let resp = self.rt.block_on(c.exec_sync(ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 60,
        }));
        match resp {
            Ok(r) => r.into_inner(),
            Err(e) => panic!("ExecSync {cmd:?}: {e}\n{}", self.log_tail()),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Pods a failed test left: RemovePodSandbox force-removes their containers.
        let mut c = self.runtime.clone();
        if let Ok(pods) = self
            .rt
            .block_on(c.list_pod_sandbox(ListPodSandboxRequest { filter: None }))
        {
            for pod in pods.into_inner().items {
                let _ = self.rt.block_on(c.stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: pod.id.clone(),
                }));
                let _ = self
                    .rt
                    .block_on(c.remove_pod_sandbox(RemovePodSandboxRequest {
                        pod_sandbox_id: pod.id,
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
            .stderr(Stdio::null())
            .status();
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                let _ = std::fs::remove_dir(h.path().join(&self.cgroup_parent[1..]));
            }
        }
        for m in common::mounts_under(self.dir.path()).iter().rev() {
            let _ = nix::mount::umount2(Path::new(m), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Host processes whose command line is exactly `args`.
fn host_processes(args: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .as_deref()
                == Some(&want[..])
        })
        .collect()
}

/// The container's process as the runtime reports it to the shim (in VM
/// mode, its stand-in on the host).
fn runtime_pid(node: &Node, id: &str) -> i32 {
    let out = Command::new(BIN)
        .arg("--root")
        .arg(node.runtime_root())
        .args(["state", id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "state {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["status"], "running", "{state}");
    state["pid"].as_i64().unwrap() as i32
}

fn installed(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn tools_missing() -> Option<String> {
    [
        ("containerd", "containerd"),
        ("ctr", "containerd"),
        ("curl", "curl"),
        ("ip", "iproute2"),
    ]
    .into_iter()
    .find(|(cmd, _)| !installed(cmd))
    .map(|(cmd, pkg)| format!("{cmd} not installed (Debian package `{pkg}`)"))
    .or_else(|| {
        (!Path::new("/usr/lib/cni/bridge").is_file())
            .then(|| "no CNI plugins in /usr/lib/cni (containernetworking-plugins)".into())
    })
}

#[test]
fn pod_through_cri_with_process_isolation() {
    if !testkit::require("CRI test", tools_missing()) {
        return;
    }
    let mut node = Node::start(0, &[]);
    pod_checks(&mut node, "isola");
}

#[test]
fn pod_through_cri_in_one_vm() {
    if !testkit::require("CRI test", tools_missing())
        || !testkit::require("CRI VM test", common::vm_missing())
    {
        return;
    }
    let mut node = Node::start(1, &[("ISOLA_AGENT", testkit::static_agent())]);
    pod_checks(&mut node, "isola-vm");
}

/// One pod, run by the runtime handler `handler`, the way kubelet drives it.
fn pod_checks(node: &mut Node, handler: &str) {
    let vm = handler == "isola-vm";
    let pod_name = testkit::unique_name("pod");
    let pod_config = node.pod_config(&pod_name);
    let pod = node.run_pod(&pod_config, handler);

    // The pod's address comes from the test's CNI network.
    let status = node.pod_status(&pod);
    let ip = status
        .status
        .as_ref()
        .and_then(|s| s.network.as_ref())
        .map(|n| n.ip.clone())
        .unwrap_or_default();
    assert!(
        ip.starts_with(&format!("{}.", node.subnet)),
        "pod IP {ip:?} not in {}.0/24: {status:?}",
        node.subnet
    );
    let info: serde_json::Value =
        serde_json::from_str(status.info.get("info").map(String::as_str).unwrap_or("{}")).unwrap();
    let netns = info["runtimeSpec"]["linux"]["namespaces"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["type"] == "network"))
        .and_then(|n| n["path"].as_str())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no network namespace path in {info}"));
    assert!(netns.exists(), "{}", netns.display());

    // A web server and a client of it on the pod's localhost.
    let www = format!("/www-{}", testkit::unique_name("cri"));
    let web = node.start_container(
        &pod,
        &pod_config,
        "web",
        &format!(
            "mkdir {www} && echo '{PAGE}' > {www}/index.html && exec httpd -f -p 8080 -h {www}"
        ),
    );
    let client = node.start_container(
        &pod,
        &pod_config,
        "client",
        "for i in $(seq 300); do wget -qO- http://127.0.0.1:8080/ && break; sleep 0.2; done; exec sleep 987657",
    );

    // The client's CRI log holds the page, in CRI's log format.
    let log = Path::new(&pod_config.log_directory).join("client.log");
    let line = node.poll("the client's log to hold the page", |_| {
        let text = std::fs::read_to_string(&log).ok()?;
        text.lines().find(|l| l.ends_with(PAGE)).map(str::to_string)
    });
    let fields: Vec<&str> = line.splitn(4, ' ').collect();
    assert_eq!(fields.len(), 4, "{line}");
    assert!(
        humantime::parse_rfc3339(fields[0]).is_ok(),
        "not a CRI log line: {line}"
    );
    assert_eq!(&fields[1..], ["stdout", "F", PAGE], "{line}");

    // The host reaches the pod at its IP.
    let page = Command::new("curl")
        .args(["-s", "-m", "20"])
        .arg(format!("http://{ip}:8080/"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&page.stdout),
        format!("{PAGE}\n"),
        "curl: {}",
        String::from_utf8_lossy(&page.stderr)
    );

    // ExecSync: output and exit code.
    let exec = node.exec_sync(
        &web,
        &["sh", "-c", "echo exec-out; echo exec-err >&2; exit 3"],
    );
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "exec-out\n");
    assert_eq!(String::from_utf8_lossy(&exec.stderr), "exec-err\n");
    assert_eq!(exec.exit_code, 3);

    // Where the pod's processes run.
    let httpd = host_processes(&["httpd", "-f", "-p", "8080", "-h", &www]);
    let guest = node.exec_sync(&client, &["uname", "-r"]);
    let guest_release = String::from_utf8_lossy(&guest.stdout).trim().to_string();
    let host_release = String::from_utf8(Command::new("uname").arg("-r").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(guest.exit_code, 0);
    let pids: HashMap<&str, i32> = [("pod", &pod), ("web", &web), ("client", &client)]
        .into_iter()
        .map(|(k, id)| (k, runtime_pid(node, id)))
        .collect();
    if vm {
        assert_eq!(common::qemus_of(&pod).len(), 1, "one QEMU for the pod");
        assert!(
            common::qemus_of(&web).is_empty() && common::qemus_of(&client).is_empty(),
            "a container of the pod got a VM of its own"
        );
        assert_ne!(
            guest_release, host_release,
            "the pod runs on the host's kernel"
        );
        assert!(httpd.is_empty(), "httpd runs on the host: {httpd:?}");
    } else {
        assert!(common::qemus_of(&pod).is_empty());
        assert_eq!(guest_release, host_release);
        assert_eq!(httpd, [pids["web"]], "httpd is the web container's process");
    }

    // Stop and remove, as kubelet does when the pod is deleted.
    let mut c = node.runtime.clone();
    for id in [&client, &web] {
        node.rt
            .block_on(c.stop_container(StopContainerRequest {
                container_id: id.clone(),
                timeout: 10,
            }))
            .unwrap_or_else(|e| panic!("StopContainer: {e}"));
        node.rt
            .block_on(c.remove_container(RemoveContainerRequest {
                container_id: id.clone(),
            }))
            .unwrap_or_else(|e| panic!("RemoveContainer: {e}"));
    }
    if vm {
        assert_eq!(
            common::qemus_of(&pod).len(),
            1,
            "the pod's VM outlives its containers"
        );
    }
    node.rt
        .block_on(c.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        }))
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}"));
    node.rt
        .block_on(c.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        }))
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}"));

    // Nothing left: VM, processes (stand-ins in VM mode), runtime state,
    // cgroups, mounts, the pod's network namespace.
    assert!(common::qemus_of(&pod).is_empty(), "QEMU outlived the pod");
    for (what, pid) in &pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{what}'s process {pid} outlived the pod"
        );
    }
    let root = node.runtime_root();
    let left: Vec<_> = std::fs::read_dir(&root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n == ".vm"),
        "runtime state left in {}: {left:?}",
        root.display()
    );
    let vms: Vec<_> = std::fs::read_dir(root.join(".vm"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(vms.is_empty(), "VM state left: {vms:?}");
    for id in [&pod, &web, &client] {
        assert!(
            common::cgroup_dirs_named(id).is_empty(),
            "cgroup of {id} left"
        );
    }
    let mounts = common::mounts_under(node.dir.path());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    assert!(
        !netns.exists(),
        "the pod's network namespace {} outlived it",
        netns.display()
    );
}
