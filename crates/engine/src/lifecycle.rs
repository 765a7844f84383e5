//! lifecycle: the operations users run on containers, built from the store,
//! the image store, the monitor and the backend: create, start, stop, kill,
//! pause, remove, exec, top, stats, and the truth check that keeps `ps`
//! honest when a monitor has died. Mode-blind: it only talks to
//! [`crate::backend::Backend`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::backend::{
    self, Backend, BackendError, BackendPaths, ContainerIo, ExecutedProcess, Top, Usage,
};
use crate::events;
use crate::isolation::{self, IsolationChoice, IsolationError};
use crate::monitor::{self, MonitorError, ReadyPipe};
use crate::mounts::MountError;
use crate::networks::{NetworkError, Networks};
use crate::security::{self, SecurityError};
use crate::spec::{self, SpecError};
use crate::state::{ContainerConfig, Limits, MountPoint, NetworkMode, NetworkOptions, Status};
use crate::store::{ContainerRecord, ContainerStore, StoreError};
use crate::units::RestartPolicy;
use crate::user::{self, UserError};
use crate::volumes::{self, VolumeError};

/// Errors of container operations.
mod signals;
mod update;

pub use update::{LimitsUpdate, UpdateError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("configured logging driver does not support reading (container {id} logs with --log-driver none)")]
    LogsDisabled { id: String },
    #[error("sysctl")]
    Sysctl {
        #[source]
        source: crate::units::ValueError,
    },
    #[error("stop signal")]
    StopSignal {
        #[source]
        source: crate::units::ValueError,
    },
    #[error(transparent)]
    Isolation(#[from] IsolationError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Update(#[from] UpdateError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Security(#[from] SecurityError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error("image {image:?} not found locally (isola pull it first, or isola load/import it)")]
    ImageNotFound { image: String },
    #[error("image store")]
    Image(#[source] image::Error),
    #[error(transparent)]
    Copy(#[from] crate::copy::CopyError),
    #[error("writing container {id}'s filesystem as a tar stream")]
    Export {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Reference(#[from] image::ReferenceError),
    #[error(transparent)]
    Registry(#[from] image::registry::RegistryError),
    #[error("image {image}: {source}")]
    ImageDefaults {
        image: String,
        #[source]
        source: image::Error,
    },
    #[error("creating the root filesystem of container {id}")]
    Snapshot {
        id: String,
        #[source]
        source: image::Error,
    },
    #[error("container {id} is not running")]
    NotRunning { id: String },
    #[error("container {id} is already running")]
    AlreadyRunning { id: String },
    #[error("container {id} is paused: unpause it first")]
    Paused { id: String },
    #[error("container {id} is not paused")]
    NotPaused { id: String },
    #[error("cannot remove running container {id}: stop it first or use rm -f")]
    RemoveRunning { id: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--init needs {path}, a static init for containers: install Debian's tini package")]
    InitMissing { path: PathBuf },
    #[error("container {id} did not exit within {seconds} s after SIGKILL")]
    KillTimeout { id: String, seconds: u64 },
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    Attach(#[from] crate::netattach::AttachError),
    #[error("--network {network} cannot be used with VM isolation (the VM has its own network stack; use a network or none)")]
    VmNetwork { network: String },
    #[error("--cpuset-cpus is not supported with --isolation=vm: the VM's CPUs are its own (use --cpus)")]
    VmCpuset,
    #[error("--privileged is not supported with --isolation=vm: the host's devices and kernel are what it opens, and a VM container has neither")]
    VmPrivileged,
    #[error("invalid {flag} {value:?}: expected host, private or container:<name|id>")]
    NamespaceMode { flag: &'static str, value: String },
    #[error("{flag} {value} is not supported with --isolation=vm: a VM container's processes are in its guest")]
    VmNamespace { flag: &'static str, value: String },
    #[error("{flag} container:{other}: container {other} runs in a VM; only a process container's namespaces can be shared")]
    SharedVmNamespace { flag: &'static str, other: String },
    #[error("--device {path} is not supported with --isolation=vm: a host device does not reach the VM's guest")]
    VmDevice { path: String },
    #[error("--network container:{other}: container {other} runs in a VM; only a process container's network can be shared")]
    SharedVmNetwork { other: String },
    #[error("invalid --ip {ip}: not a host address of network {network} ({subnet})")]
    IpOutsideSubnet {
        ip: std::net::Ipv4Addr,
        network: String,
        subnet: ipnet::Ipv4Net,
    },
    #[error("refusing to tag with a digest reference {target:?}: give a tag")]
    TagWithDigest { target: String },
    #[error("attaching to container {id}")]
    AttachIo {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{flag} needs a network of the container's own (not --network {mode})")]
    NeedsNetwork { flag: &'static str, mode: String },
}

/// What `create`/`run` ask for, flags already parsed.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub image: String,
    pub name: Option<String>,
    /// Arguments after the image name.
    pub cmd: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` from -e and --env-file.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    pub open_stdin: bool,
    pub auto_remove: bool,
    pub restart: RestartPolicy,
    /// `None`: the default network, in both modes (as docker's `bridge`).
    pub network: Option<NetworkMode>,
    pub network_options: NetworkOptions,
    pub read_only: bool,
    pub mounts: Vec<MountPoint>,
    pub limits: Limits,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub isolation: Option<IsolationChoice>,
    /// `--init`: [`spec::INIT_BINARY`] as PID 1.
    pub init: bool,
    /// `--label`/`Labels`: the user's metadata, kept and shown, never acted on.
    pub labels: std::collections::BTreeMap<String, String>,
    /// A build step's image: not in the store (its layers are), used
    /// instead of looking `image` up; its VOLUMEs get no volumes, so a
    /// step's writes under them reach its layer (as BuildKit's do).
    pub base: Option<Box<image::Image>>,
    /// `--stop-signal`; the image's STOPSIGNAL when None.
    pub stop_signal: Option<String>,
    /// `--stop-timeout`, seconds.
    pub stop_timeout: Option<u64>,
    pub ulimits: Vec<crate::state::Ulimit>,
    /// `--sysctl key=value`, checked by [`crate::units::parse_sysctl`].
    pub sysctls: BTreeMap<String, String>,
    pub group_add: Vec<String>,
    /// `--device`, parsed by [`crate::units::parse_device`].
    pub devices: Vec<crate::state::Device>,
    /// `--pid`: `host`, `container:<name|id>`, or `private`/None.
    pub pid_mode: Option<String>,
    /// `--ipc`: the same, for IPC.
    pub ipc_mode: Option<String>,
    /// `--log-driver`/`--log-opt`, checked by [`crate::state::LogConfig::parse`].
    pub log_config: crate::state::LogConfig,
    /// `--privileged` (process mode).
    pub privileged: bool,
    /// `--health-*` over the image's HEALTHCHECK (its fields where these
    /// are 0 or empty).
    pub healthcheck: Option<crate::health::Healthcheck>,
    /// `--no-healthcheck`.
    pub no_healthcheck: bool,
}

/// What `exec` asks for.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub detach: bool,
}

/// The engine over one root.
#[derive(Debug, Clone)]
pub struct Engine {
    root: PathBuf,
    store: ContainerStore,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.into(),
        source,
    }
}

/// Removes a stopped container's snapshot and records, and with `volumes`
/// its anonymous volumes (`rm -v`, `run --rm`).
pub fn remove_resources(
    root: &Path,
    store: &ContainerStore,
    config: &ContainerConfig,
    volumes: bool,
) -> Result<(), Error> {
    crate::netattach::release(root, store, config);
    // Before the record: a caller that waits for the record to go (`run
    // --rm`) finds the volumes gone too.
    let volumes = match volumes {
        true => volumes::remove_anonymous(root, store, config).map_err(Error::from),
        false => Ok(()),
    };
    let images = image::store::Store::open(root).map_err(Error::Image)?;
    // The two trees are independent; removing them side by side halves the
    // wait on a disk where each directory removal costs milliseconds.
    let (snapshot, record) = std::thread::scope(|s| {
        let snapshot = s.spawn(|| match images.remove_snapshot(&config.snapshot_key) {
            Ok(()) | Err(image::Error::SnapshotNotFound(_)) => Ok(()),
            Err(e) => Err(Error::Image(e)),
        });
        let record = store.remove(&config.id).map_err(Error::from);
        (snapshot.join().unwrap_or(Ok(())), record)
    });
    let removed = snapshot.and(record).and(volumes);
    if removed.is_ok() {
        events::container(root, config, "destroy", &[]);
    }
    removed
}

const POLL: Duration = Duration::from_millis(10);

impl Engine {
    /// Opens the engine at `root` (created if missing; made absolute, since
    /// monitors run from `/`). The root is made 0700 (also when it exists
    /// with looser permissions): it holds the images' and containers' root
    /// filesystems, whose setuid binaries no other host user may reach.
    pub fn open(root: &Path) -> Result<Engine, Error> {
        runtime::private_dir(root).map_err(io_err("creating", root))?;
        let root = std::fs::canonicalize(root).map_err(io_err("resolving", root))?;
        let store = ContainerStore::open(&root)?;
        Ok(Engine { root, store })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn store(&self) -> &ContainerStore {
        &self.store
    }

    fn paths(&self) -> BackendPaths {
        BackendPaths {
            root: self.root.clone(),
        }
    }

    /// The backend of a container.
    pub fn backend(&self, config: &ContainerConfig) -> Result<Box<dyn Backend>, Error> {
        Ok(backend::open(config.isolation, &self.paths())?)
    }

    /// Creates a container: validates everything first, then writes the
    /// record, the snapshot and the bundle; on failure nothing is left.
    pub fn create(&self, req: &CreateRequest) -> Result<ContainerRecord, Error> {
        let mode = isolation::resolve(req.isolation.unwrap_or(IsolationChoice::Default))?;
        if mode == isolation::Isolation::Vm && req.limits.cpuset_cpus.is_some() {
            return Err(Error::VmCpuset);
        }
        if mode == isolation::Isolation::Vm && req.privileged {
            return Err(Error::VmPrivileged);
        }
        let pid_mode = self.namespace_mode("--pid", req.pid_mode.as_deref(), mode)?;
        let ipc_mode = self.namespace_mode("--ipc", req.ipc_mode.as_deref(), mode)?;
        if mode == isolation::Isolation::Vm && !req.devices.is_empty() {
            return Err(Error::VmDevice {
                path: req.devices[0].path_on_host.clone(),
            });
        }
        let images = image::store::Store::open(&self.root).map_err(Error::Image)?;
        let found = match &req.base {
            Some(base) => Ok((**base).clone()),
            None => images.resolve(&req.image),
        };
        let img = match found {
            Ok(i) => i,
            Err(e) if e.is_not_found() => {
                crate::images::check_reference(&req.image)?;
                return Err(Error::ImageNotFound {
                    image: req.image.clone(),
                });
            }
            Err(e) => return Err(Error::Image(e)),
        };
        // The network after the image (a missing image makes no default
        // network on a fresh root), before the backend's checks (and their
        // warnings).
        let (network, mut network_options) = self.resolve_network(mode, req)?;
        backend::open(mode, &self.paths())?.preflight(&req.limits)?;
        let (os, arch, variant) = img.platform();
        isolation::check_platform(mode, (&os, &arch, variant.as_deref()))?;
        let defaults = image::defaults::runtime_defaults(
            &img.config,
            &image::defaults::Overrides {
                entrypoint: req.entrypoint.clone(),
                cmd: req.cmd.clone(),
                env: req.env.clone(),
                workdir: req.workdir.clone(),
                user: req.user.clone(),
            },
        )
        .map_err(|source| Error::ImageDefaults {
            image: req.image.clone(),
            source,
        })?;
        network_options.exposed = defaults.exposed_ports.clone();
        let stop_signal = req.stop_signal.clone().or_else(|| {
            img.config
                .config()
                .as_ref()
                .and_then(|c| c.stop_signal().clone())
                .filter(|s| !s.is_empty())
        });
        update::check_swap(&req.limits, true)?;
        let healthcheck = if req.no_healthcheck {
            None
        } else {
            let of_image = images
                .config_bytes(&img)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .and_then(|v| crate::health::Healthcheck::of_image(&v));
            match &req.healthcheck {
                Some(over) => Some(crate::health::Healthcheck::merged(of_image, over.clone()))
                    .filter(|h| h.command().is_some()),
                None => of_image,
            }
        };
        for key in req.sysctls.keys() {
            let value = format!("{key}={}", req.sysctls[key]);
            crate::units::parse_sysctl(&value, network == NetworkMode::Host)
                .map_err(|source| Error::Sysctl { source })?;
        }
        if let Some(s) = &stop_signal {
            crate::units::parse_signal(s).map_err(|source| Error::StopSignal { source })?;
        }
        let (caps, security) = security::for_container(
            &req.cap_add,
            &req.cap_drop,
            &req.security_opt,
            req.privileged,
        )?;
        if req.init && !Path::new(spec::INIT_BINARY).exists() {
            return Err(Error::InitMissing {
                path: spec::INIT_BINARY.into(),
            });
        }
        // Last of the checks: the volumes it names are found or made here,
        // and held (under the volumes' lock) until the record is written.
        let mut mounts = req.mounts.clone();
        let image_volumes = if req.base.is_some() {
            &[][..]
        } else {
            &defaults.volumes[..]
        };
        let claim = volumes::Claim::new(&self.root, &mut mounts, image_volumes)?;

        let mut snapshot_key = None;
        let record = self.store.create(req.name.as_deref(), |id, name, dir| {
            let mut config = ContainerConfig {
                id: id.into(),
                name: name.into(),
                created: Utc::now(),
                image: req.image.clone(),
                image_id: img.id.clone(),
                isolation: mode,
                args: defaults.args.clone(),
                env: defaults.env.clone(),
                working_dir: defaults.cwd.clone(),
                user: defaults.user.clone(),
                hostname: match (&req.hostname, &network) {
                    (Some(h), _) => h.clone(),
                    (None, NetworkMode::Host) => nix::unistd::gethostname()
                        .ok()
                        .and_then(|h| h.into_string().ok())
                        .unwrap_or_else(|| crate::ids::short(id).into()),
                    (None, _) => crate::ids::short(id).into(),
                },
                tty: req.tty,
                open_stdin: req.open_stdin,
                auto_remove: req.auto_remove,
                restart_policy: req.restart,
                netns: match (&network, mode) {
                    (NetworkMode::None, isolation::Isolation::Vm) | (NetworkMode::Host, _) => None,
                    (NetworkMode::Container(other), _) => {
                        Some(crate::netattach::netns_path(&self.root, other))
                    }
                    _ => Some(crate::netattach::netns_path(&self.root, id)),
                },
                network: network.clone(),
                network_options: network_options.clone(),
                read_only: req.read_only,
                mounts: mounts.clone(),
                limits: req.limits.clone(),
                cap_add: req.cap_add.clone(),
                cap_drop: req.cap_drop.clone(),
                security_opt: req.security_opt.clone(),
                init: req.init,
                snapshot_key: id.into(),
                rootfs: PathBuf::new(),
                labels: req.labels.clone(),
                platform: match arch.is_empty() {
                    true => String::new(),
                    false => isolation::platform_string(&os, &arch, variant.as_deref()),
                },
                stop_signal: stop_signal.clone(),
                stop_timeout: req.stop_timeout,
                ulimits: req.ulimits.clone(),
                sysctls: req.sysctls.clone(),
                group_add: req.group_add.clone(),
                devices: req.devices.clone(),
                pid_mode: pid_mode.clone(),
                ipc_mode: ipc_mode.clone(),
                log_config: req.log_config.clone(),
                privileged: req.privileged,
                healthcheck: healthcheck.clone(),
            };
            // A VM container's files are disks its VM mounts (image/store/disks.rs).
            let disks = config.isolation == isolation::Isolation::Vm
                && crate::backend::vm::rootfs_on_disks()?;
            let snap = match disks {
                true => images.create_disk_snapshot(&img, &config.snapshot_key),
                false => images.create_snapshot(&img, &config.snapshot_key),
            }
            .map_err(|source| Error::Snapshot {
                id: id.into(),
                source,
            })?;
            config.rootfs = snap.rootfs;
            let finish = || -> Result<(), Error> {
                // A disk snapshot is not mounted on the host: its image's
                // files are all it has yet.
                let view = match disks {
                    true => images.image_view(&config.snapshot_key),
                    false => Ok(None),
                }
                .map_err(|source| Error::Snapshot {
                    id: id.into(),
                    source,
                })?;
                let files = view.as_ref().map_or(config.rootfs.as_path(), |v| v.path());
                claim.copy_up(files)?;
                let user = user::resolve_with_groups(files, &config.user, &config.group_add)?;
                spec::write_bundle(&config, dir, &user, &caps, &security)?;
                Ok(())
            };
            if let Err(e) = finish() {
                let _ = images.remove_snapshot(&config.snapshot_key);
                return Err(e);
            }
            snapshot_key = Some(config.snapshot_key.clone());
            Ok(config)
        });
        match record {
            Ok(r) => {
                claim.commit();
                events::container(&self.root, &r.config, "create", &[]);
                Ok(r)
            }
            Err(e) => {
                // The record's own write failed after the snapshot was made.
                if let Some(key) = snapshot_key {
                    let _ = images.remove_snapshot(&key);
                }
                Err(e)
            }
        }
    }

    /// The network mode and options a create request comes to: the
    /// default network unless told, `container:` resolved to an id, the network
    /// found and `--ip` inside it; what VM containers cannot have yet is
    /// refused.
    fn resolve_network(
        &self,
        mode: isolation::Isolation,
        req: &CreateRequest,
    ) -> Result<(NetworkMode, NetworkOptions), Error> {
        let vm = mode == isolation::Isolation::Vm;
        let network = req
            .network
            .clone()
            .unwrap_or_else(|| NetworkMode::Network(crate::state::DEFAULT_NETWORK.into()));
        let mut opts = req.network_options.clone();
        if opts.extra_hosts.iter().any(|(_, ip)| ip == "host-gateway") {
            // The host as the container reaches it: its network's gateway
            // (the default network's without a network of its own).
            let networks = Networks::open(&self.root)?;
            let net = match network.network() {
                Some(n) => networks.get(n)?,
                None => networks.default_network()?,
            };
            for (_, ip) in opts
                .extra_hosts
                .iter_mut()
                .filter(|(_, ip)| ip == "host-gateway")
            {
                *ip = net.gateway.to_string();
            }
        }
        let network = match network {
            NetworkMode::Container(other) => {
                let rec = self.lookup(&other)?;
                if rec.config.isolation == isolation::Isolation::Vm {
                    return Err(Error::SharedVmNetwork { other });
                }
                NetworkMode::Container(rec.config.id)
            }
            NetworkMode::Network(name) => {
                let networks = Networks::open(&self.root)?;
                let net = networks.get(&name)?;
                // A missing plugin fails the create, not the start.
                networks
                    .cni()
                    .check_plugins(&networks.conflist(&net))
                    .map_err(NetworkError::from)?;
                if let Some(ip) = opts.ip {
                    let usable = net.subnet.contains(&ip)
                        && ip != net.subnet.network()
                        && ip != net.subnet.broadcast()
                        && ip != net.gateway;
                    if !usable {
                        return Err(Error::IpOutsideSubnet {
                            ip,
                            network: net.name,
                            subnet: net.subnet,
                        });
                    }
                }
                NetworkMode::Network(net.name)
            }
            other => other,
        };
        if vm && matches!(network, NetworkMode::Host | NetworkMode::Container(_)) {
            return Err(Error::VmNetwork {
                network: network.as_docker(),
            });
        }
        if network.network().is_none() {
            let flag = if !opts.ports.is_empty() || opts.publish_all {
                Some("-p/--publish")
            } else if opts.ip.is_some() {
                Some("--ip")
            } else if opts.mac.is_some() {
                Some("--mac-address")
            } else if !opts.aliases.is_empty() {
                Some("--network-alias")
            } else {
                None
            };
            if let Some(flag) = flag {
                return Err(Error::NeedsNetwork {
                    flag,
                    mode: network.as_docker(),
                });
            }
        }
        Ok((network, opts))
    }

    /// Starts a created or exited container through a new monitor. With
    /// `attach`, the monitor waits for the caller to connect first;
    /// `console_size` (rows, columns) sizes a terminal before the process starts.
    pub fn start(
        &self,
        rec: &ContainerRecord,
        attach: bool,
        console_size: Option<(u16, u16)>,
    ) -> Result<ReadyPipe, Error> {
        let rec = self.refresh(rec.clone())?;
        match rec.state.status {
            Status::Running | Status::Restarting => {
                return Err(Error::AlreadyRunning {
                    id: rec.config.id.clone(),
                })
            }
            Status::Paused => {
                return Err(Error::Paused {
                    id: rec.config.id.clone(),
                })
            }
            _ => {}
        }
        self.backend(&rec.config)?;
        self.join_shared_namespaces(&rec)?;
        if rec.state.stopped_by_user || rec.state.error.is_some() {
            self.store.update_state(&rec.config.id, |s| {
                s.stopped_by_user = false;
                s.error = None;
            })?;
        }
        Ok(monitor::spawn(
            &self.root,
            &rec.config.id,
            attach,
            console_size,
        )?)
    }

    /// Re-reads a container and corrects a state nobody is left to record:
    /// the monitor died and the init is gone too.
    pub fn refresh(&self, rec: ContainerRecord) -> Result<ContainerRecord, Error> {
        if !rec.state.status.is_active() {
            return Ok(rec);
        }
        let init_alive = rec.state.init.is_some_and(|p| p.is_alive());
        let monitor_alive = rec.state.monitor.is_some_and(|p| p.is_alive());
        if init_alive || monitor_alive {
            return Ok(rec);
        }
        let seen = rec.state.clone();
        let state = self.store.update_state(&rec.config.id, |s| {
            if s.status.is_active() && s.init == seen.init && s.monitor == seen.monitor {
                s.status = Status::Exited;
                s.exit_code = Some(255);
                s.finished_at = Some(Utc::now());
                s.error = Some("the container's monitor died; its exit status is unknown".into());
                s.init = None;
                s.monitor = None;
            }
        })?;
        // Nobody is left to release what it held.
        crate::netattach::release(&self.root, &self.store, &rec.config);
        let state = self.store.read(&rec.config.id)?.map_or(state, |r| r.state);
        Ok(ContainerRecord { state, ..rec })
    }

    /// Finds a container by id, id prefix or name, with its true state.
    pub fn lookup(&self, reference: &str) -> Result<ContainerRecord, Error> {
        let rec = self.store.lookup(reference)?;
        self.refresh(rec)
    }

    /// Every container (newest first), with true states.
    pub fn list(&self) -> Result<Vec<ContainerRecord>, Error> {
        let mut out = Vec::new();
        for rec in self.store.list()? {
            match self.refresh(rec) {
                Ok(r) => out.push(r),
                Err(Error::Store(StoreError::NotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn require_running(&self, rec: &ContainerRecord) -> Result<(), Error> {
        match rec.state.status {
            Status::Running => Ok(()),
            Status::Paused => Err(Error::Paused {
                id: rec.config.id.clone(),
            }),
            _ => Err(Error::NotRunning {
                id: rec.config.id.clone(),
            }),
        }
    }

    /// `rm`: refuses an active container unless `force`, which kills it.
    /// Its volumes stay.
    pub fn remove(&self, rec: &ContainerRecord, force: bool) -> Result<(), Error> {
        self.remove_container(rec, force, false)
    }

    /// `rm -v`: [`Engine::remove`], and the container's anonymous volumes
    /// go too (those no other container names).
    pub fn remove_with_volumes(&self, rec: &ContainerRecord, force: bool) -> Result<(), Error> {
        self.remove_container(rec, force, true)
    }

    fn remove_container(
        &self,
        rec: &ContainerRecord,
        force: bool,
        volumes: bool,
    ) -> Result<(), Error> {
        let id = rec.config.id.clone();
        let rec = self.refresh(rec.clone())?;
        let backend = self.backend(&rec.config)?;
        if rec.state.status.is_active() {
            if !force {
                return Err(Error::RemoveRunning { id });
            }
            self.store.update_state(&id, |s| s.stopped_by_user = true)?;
            self.kill_and_wait(&*backend, &rec)?;
        }
        // The monitor records the exit, then goes: rm leaves no process behind.
        if let Some(m) = rec.state.monitor {
            let deadline = Instant::now() + Duration::from_secs(10);
            while m.is_alive() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
        backend.delete(&id, true)?;
        remove_resources(&self.root, &self.store, &rec.config, volumes)
    }

    pub fn rename(&self, rec: &ContainerRecord, new_name: &str) -> Result<(), Error> {
        self.store.rename(&rec.config.id, new_name)?;
        events::renamed(&self.root, &rec.config, new_name);
        Ok(())
    }

    pub fn top(&self, rec: &ContainerRecord, ps_args: &[String]) -> Result<Top, Error> {
        if !matches!(rec.state.status, Status::Running | Status::Paused) {
            return Err(Error::NotRunning {
                id: rec.config.id.clone(),
            });
        }
        Ok(self.backend(&rec.config)?.top(&rec.config.id, ps_args)?)
    }

    pub fn usage(&self, rec: &ContainerRecord) -> Result<Usage, Error> {
        if !matches!(rec.state.status, Status::Running | Status::Paused) {
            return Err(Error::NotRunning {
                id: rec.config.id.clone(),
            });
        }
        Ok(self.backend(&rec.config)?.usage(&rec.config.id)?)
    }

    /// Starts a process in a running container. `io` `None` inherits the
    /// caller's stdio (with `tty`, the caller gets a terminal master).
    pub fn exec(
        &self,
        rec: &ContainerRecord,
        opts: &ExecOptions,
        io: Option<ContainerIo>,
    ) -> Result<ExecutedProcess, Error> {
        self.require_running(rec)?;
        let config = &rec.config;
        let user_spec = opts.user.clone().unwrap_or_else(|| config.user.clone());
        // A VM that holds its disks leaves the host the image's files only
        // (process mode's exec reads no store record for this).
        let view = match config.isolation {
            isolation::Isolation::Vm => image::store::Store::open(&self.root)
                .and_then(|s| s.image_view(&config.snapshot_key))
                .map_err(|source| Error::Snapshot {
                    id: config.id.clone(),
                    source,
                })?,
            isolation::Isolation::Process => None,
        };
        let files = view.as_ref().map_or(config.rootfs.as_path(), |v| v.path());
        let user = user::resolve_with_groups(files, &user_spec, &config.group_add)?;
        let (caps, security) = security::for_container(
            &config.cap_add,
            &config.cap_drop,
            &config.security_opt,
            config.privileged,
        )?;
        let process = spec::exec_process(
            config,
            &spec::ExecRequest {
                args: &opts.args,
                env: &opts.env,
                user: &user,
                cwd: opts.workdir.as_deref(),
                tty: opts.tty,
            },
            &caps,
            &security,
        );
        let process: oci_spec::runtime::Process =
            serde_json::from_value(process).map_err(SpecError::Invalid)?;
        let io = if opts.tty {
            Some(ContainerIo::Terminal)
        } else {
            io
        };
        // No SIGPIPE juggling here (unlike the monitor's create): the runtime
        // gives an exec'd process default dispositions itself, and a
        // process-wide change would race the API service's other threads.
        events::exec(&self.root, config, "exec_create", &opts.args, &[]);
        let executed = self
            .backend(config)?
            .exec(&config.id, &process, io, opts.tty)?;
        Ok(events::track_exec(&self.root, config, &opts.args, executed))
    }

    /// `container prune`: removes every stopped container; returns their ids.
    pub fn prune(&self) -> Result<Vec<String>, Error> {
        let mut removed = Vec::new();
        for rec in self.list()? {
            if matches!(
                rec.state.status,
                Status::Exited | Status::Created | Status::Dead
            ) && rec.state.monitor.is_none_or(|m| !m.is_alive())
            {
                self.remove(&rec, false)?;
                removed.push(rec.config.id);
            }
        }
        Ok(removed)
    }
}

impl Engine {
    /// `--pid`/`--ipc`'s value, checked: `host`, or a process container's
    /// (by name or id, kept as its id); nothing in VM mode.
    fn namespace_mode(
        &self,
        flag: &'static str,
        value: Option<&str>,
        mode: isolation::Isolation,
    ) -> Result<Option<crate::state::NamespaceMode>, Error> {
        use crate::state::NamespaceMode;
        let parsed = match value {
            None | Some("") | Some("private") => return Ok(None),
            Some("host") => NamespaceMode::Host,
            Some(v) => match v.strip_prefix("container:").filter(|c| !c.is_empty()) {
                Some(other) => {
                    let rec = self.lookup(other)?;
                    if rec.config.isolation == isolation::Isolation::Vm {
                        return Err(Error::SharedVmNamespace {
                            flag,
                            other: other.into(),
                        });
                    }
                    NamespaceMode::Container(rec.config.id)
                }
                None => {
                    return Err(Error::NamespaceMode {
                        flag,
                        value: v.into(),
                    })
                }
            },
        };
        if mode == isolation::Isolation::Vm {
            return Err(Error::VmNamespace {
                flag,
                value: value.unwrap_or_default().into(),
            });
        }
        Ok(Some(parsed))
    }

    /// The bundle's namespaces joined from other containers, pointed at
    /// their inits as they are now (their pids change when they restart).
    pub(crate) fn join_shared_namespaces(&self, rec: &ContainerRecord) -> Result<(), Error> {
        use crate::state::NamespaceMode;
        let mut paths = Vec::new();
        for (kind, m) in [("pid", &rec.config.pid_mode), ("ipc", &rec.config.ipc_mode)] {
            if let Some(NamespaceMode::Container(other)) = m {
                let target = self.refresh(self.lookup(other)?)?;
                let pid = target
                    .state
                    .init
                    .filter(|_| target.state.status == Status::Running)
                    .ok_or_else(|| Error::NotRunning { id: other.clone() })?
                    .pid;
                paths.push((kind, format!("/proc/{pid}/ns/{kind}")));
            }
        }
        if !paths.is_empty() {
            spec::update_bundle_namespaces(&rec.dir, &paths)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ProcessId;
    use crate::store::tests_support::config;

    fn engine_with_running(
        init: Option<ProcessId>,
        monitor: Option<ProcessId>,
    ) -> (tempfile::TempDir, Engine, String) {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::open(root.path()).unwrap();
        let rec = engine
            .store()
            .create(None, |id, name, _| Ok::<_, StoreError>(config(id, name)))
            .unwrap();
        engine
            .store()
            .update_state(&rec.config.id, |s| {
                s.status = Status::Running;
                s.init = init;
                s.monitor = monitor;
            })
            .unwrap();
        (root, engine, rec.config.id)
    }

    /// A pid that is not running (the largest possible pid is never used here).
    fn gone() -> ProcessId {
        ProcessId {
            pid: i32::MAX,
            start_time: 1,
        }
    }

    #[test]
    fn a_container_whose_monitor_and_init_are_gone_is_marked_exited() {
        let (_root, engine, id) = engine_with_running(Some(gone()), Some(gone()));
        let rec = engine.lookup(&id).unwrap();
        assert_eq!(rec.state.status, Status::Exited);
        assert_eq!(rec.state.exit_code, Some(255));
        assert!(rec.state.error.unwrap().contains("monitor died"));
        // And it stays so on disk.
        assert_eq!(
            engine.store().read(&id).unwrap().unwrap().state.status,
            Status::Exited
        );
    }

    #[test]
    fn a_container_whose_init_still_runs_stays_running_without_its_monitor() {
        let me = ProcessId::of(std::process::id() as i32);
        let (_root, engine, id) = engine_with_running(me, Some(gone()));
        assert_eq!(engine.lookup(&id).unwrap().state.status, Status::Running);
        let (_root, engine, id) = engine_with_running(Some(gone()), me);
        assert_eq!(
            engine.lookup(&id).unwrap().state.status,
            Status::Running,
            "its live monitor will record the exit"
        );
    }
}
