//! networks: the networks a root knows (`isola network create|ls|inspect|
//! rm|prune`), stored one JSON record each under `<root>/networks/`,
//! written atomically under one lock so names and subnets stay unique. The
//! default network ([`DEFAULT_NETWORK`], bridge `isola0`) is made on first
//! use. What a network becomes on the host (a bridge, addresses, NAT) is
//! the CNI plugins' work, through the `network` crate; this module only
//! keeps the records and turns one into a [`network::NetworkSpec`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::lifecycle::{Engine, Error as LifecycleError};
use crate::state::DEFAULT_NETWORK;
use crate::store::{lock_file, write_json_atomic, Lock, StoreError};

/// Names the directory of the CNI plugins (default: Debian's /usr/lib/cni).
pub const CNI_PATH_ENV: &str = "ISOLA_CNI_PATH";

/// The default network's bridge device.
pub const DEFAULT_BRIDGE: &str = "isola0";

/// Names a user network cannot take: they are network modes.
const RESERVED: &[&str] = &["none", "host", "bridge", "default", DEFAULT_NETWORK];

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network {0} not found")]
    NotFound(String),
    #[error("network with name {0} already exists")]
    Exists(String),
    #[error("invalid network name {0:?}: letters, digits, '_', '.' and '-', starting with a letter or digit")]
    InvalidName(String),
    #[error("network name {0:?} is reserved")]
    Reserved(String),
    #[error(transparent)]
    Network(#[from] network::Error),
    #[error("invalid {flag} {value:?}: {reason}")]
    InvalidValue {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("subnet {subnet} overlaps network {other} ({other_subnet})")]
    Overlap {
        subnet: Ipv4Net,
        other: String,
        other_subnet: Ipv4Net,
    },
    #[error("no free subnet left in {pool} for a new network (give one with --subnet)")]
    PoolExhausted { pool: &'static str },
    #[error("network {network} is in use by container(s) {containers}: remove them first")]
    InUse { network: String, containers: String },
    #[error("the default network {0} cannot be removed")]
    DefaultNetwork(String),
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected { container: String, network: String },
    #[error("container {container} is not connected to network {network}")]
    NotConnected { container: String, network: String },
    #[error("container {container} cannot leave {network}, the network it was created on")]
    PrimaryNetwork { container: String, network: String },
    #[error("container {container} cannot be connected to another network: {reason}")]
    NotConnectable {
        container: String,
        reason: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One network, as `network inspect` shows it (docker's field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub created: DateTime<Utc>,
    /// The Linux bridge device.
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub ip_range: Option<Ipv4Net>,
    pub internal: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl NetworkRecord {
    pub fn spec(&self) -> network::NetworkSpec {
        network::NetworkSpec {
            name: self.name.clone(),
            bridge: self.bridge.clone(),
            subnet: self.subnet,
            gateway: self.gateway,
            ip_range: self.ip_range,
            internal: self.internal,
            mtu: self
                .options
                .get("com.docker.network.driver.mtu")
                .and_then(|m| m.parse().ok()),
        }
    }
}

/// Whether containers on network `name` find each other by name (user
/// networks, not the default one, as in docker).
pub fn resolves_names(name: &str) -> bool {
    name != DEFAULT_NETWORK
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// The networks of one root.
#[derive(Debug, Clone)]
pub struct Networks {
    root: PathBuf,
    dir: PathBuf,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> NetworkError + 'a {
    move |source| NetworkError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 64
}

fn random_id() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Networks {
    pub fn open(root: &Path) -> Result<Networks, NetworkError> {
        let dir = root.join("networks");
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        Ok(Networks {
            root: root.to_path_buf(),
            dir,
        })
    }

    /// Held while networks are made or removed and while a container's
    /// addresses, ports and hosts entries change, so that two commands
    /// never pick the same subnet or port.
    pub fn lock(&self) -> Result<Lock, NetworkError> {
        Ok(lock_file(&self.dir.join(".lock"))?)
    }

    /// The CNI runner for this root: the plugins in `ISOLA_CNI_PATH`, else
    /// Debian's; results cached in `<root>/cni`.
    pub fn cni(&self) -> network::Cni {
        let dir = std::env::var_os(CNI_PATH_ENV)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(network::cni::DEBIAN_PLUGIN_DIR));
        network::Cni::new(dir, self.root.join("cni/results"))
    }

    /// The CNI configuration list of `net`.
    pub fn conflist(&self, net: &NetworkRecord) -> serde_json::Value {
        net.spec().conflist(&self.root.join("cni/ipam"))
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn read_all(&self) -> Result<Vec<NetworkRecord>, NetworkError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io("listing", &self.dir))? {
            let path = entry.map_err(io("listing", &self.dir))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let data = std::fs::read(&path).map_err(io("reading", &path))?;
                let rec: NetworkRecord = serde_json::from_slice(&data)
                    .map_err(|source| StoreError::Parse { path, source })?;
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    /// Every network, the default one first (made if missing).
    pub fn list(&self) -> Result<Vec<NetworkRecord>, NetworkError> {
        self.default_network()?;
        let mut all = self.read_all()?;
        all.sort_by_key(|n| n.name != DEFAULT_NETWORK);
        Ok(all)
    }

    /// The default network, made on first use.
    pub fn default_network(&self) -> Result<NetworkRecord, NetworkError> {
        if let Some(n) = self
            .read_all()?
            .into_iter()
            .find(|n| n.name == DEFAULT_NETWORK)
        {
            return Ok(n);
        }
        let _host = host_lock()?;
        let _lock = self.lock()?;
        let all = self.read_all()?;
        if let Some(n) = all.iter().find(|n| n.name == DEFAULT_NETWORK) {
            return Ok(n.clone());
        }
        // Another root on this host (a second engine, a test) may hold the
        // usual subnet and bridge: then the next free ones.
        let taken = taken_subnets(&all);
        let usual = configured_default_subnet(Path::new(crate::isolation::CONFIG_FILE))?
            .unwrap_or(network::subnet::parse(network::subnet::DEFAULT_SUBNET)?);
        let subnet = if taken.iter().any(|t| network::subnet::overlaps(*t, usual)) {
            network::subnet::pick_free(&taken).ok_or(NetworkError::PoolExhausted {
                pool: network::subnet::POOL,
            })?
        } else {
            usual
        };
        let bridge = std::iter::once(DEFAULT_BRIDGE.to_string())
            .chain((1..100).map(|n| format!("isola{n}")))
            .find(|b| !network::bridge::exists(b))
            .ok_or(NetworkError::PoolExhausted {
                pool: "isola0..isola99",
            })?;
        let rec = NetworkRecord {
            id: random_id(),
            name: DEFAULT_NETWORK.into(),
            driver: "bridge".into(),
            created: Utc::now(),
            bridge,
            subnet,
            gateway: network::subnet::first_host(subnet),
            ip_range: None,
            internal: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
        };
        self.make(&rec)?;
        Ok(rec)
    }

    /// Claims the record's bridge and subnet on the host, then writes it.
    fn make(&self, rec: &NetworkRecord) -> Result<(), NetworkError> {
        self.cni().check_plugins(&self.conflist(rec))?;
        network::bridge::create(&rec.bridge, rec.gateway, rec.subnet)?;
        if let Err(e) = write_json_atomic(&self.path(&rec.id), rec) {
            let _ = network::bridge::remove(&rec.bridge);
            return Err(e.into());
        }
        Ok(())
    }

    /// Removes every network of this root, the default one too: for a root
    /// that goes away as a whole (nothing of it may run any more).
    pub fn destroy(&self) -> Result<(), NetworkError> {
        let _lock = self.lock()?;
        for net in self.read_all()? {
            network::bridge::remove(&net.bridge)?;
            let _ = std::fs::remove_file(self.path(&net.id));
        }
        Ok(())
    }

    /// A network by name, full id or unique id prefix.
    pub fn get(&self, reference: &str) -> Result<NetworkRecord, NetworkError> {
        let reference = match reference {
            "bridge" | "default" => DEFAULT_NETWORK,
            r => r,
        };
        let all = self.list()?;
        if let Some(n) = all
            .iter()
            .find(|n| n.name == reference || n.id == reference)
        {
            return Ok(n.clone());
        }
        let mut prefixed = all.iter().filter(|n| n.id.starts_with(reference));
        match (prefixed.next(), prefixed.next()) {
            (Some(n), None) if !reference.is_empty() => Ok(n.clone()),
            _ => Err(NetworkError::NotFound(reference.into())),
        }
    }

    /// Makes a user network: the name is new, the subnet valid, overlapping
    /// no other network, the gateway and range inside it.
    pub fn create(&self, req: &NetworkCreate) -> Result<NetworkRecord, NetworkError> {
        if RESERVED.contains(&req.name.as_str()) {
            return Err(NetworkError::Reserved(req.name.clone()));
        }
        if !valid_name(&req.name) {
            return Err(NetworkError::InvalidName(req.name.clone()));
        }
        self.default_network()?;
        let _host = host_lock()?;
        let _lock = self.lock()?;
        let all = self.read_all()?;
        if all.iter().any(|n| n.name == req.name) {
            return Err(NetworkError::Exists(req.name.clone()));
        }
        let subnet = match &req.subnet {
            Some(s) => network::subnet::parse(s)?,
            None => network::subnet::pick_free(&taken_subnets(&all)).ok_or(
                NetworkError::PoolExhausted {
                    pool: network::subnet::POOL,
                },
            )?,
        };
        if let Some((route, dev)) = network::bridge::host_routes()
            .into_iter()
            .find(|(r, _)| network::subnet::overlaps(*r, subnet))
        {
            if !all.iter().any(|n| n.bridge == dev) {
                return Err(NetworkError::Overlap {
                    subnet,
                    other: format!("the host's route via {dev}"),
                    other_subnet: route,
                });
            }
        }
        if let Some(other) = all
            .iter()
            .find(|n| network::subnet::overlaps(n.subnet, subnet))
        {
            return Err(NetworkError::Overlap {
                subnet,
                other: other.name.clone(),
                other_subnet: other.subnet,
            });
        }
        let inside = |flag: &'static str, value: &str, addr: Ipv4Addr| {
            if subnet.contains(&addr) && addr != subnet.network() && addr != subnet.broadcast() {
                Ok(addr)
            } else {
                Err(NetworkError::InvalidValue {
                    flag,
                    value: value.into(),
                    reason: format!("not a host address of subnet {subnet}"),
                })
            }
        };
        let gateway = match &req.gateway {
            Some(g) => {
                let addr = g.parse().map_err(|_| NetworkError::InvalidValue {
                    flag: "--gateway",
                    value: g.clone(),
                    reason: "not an IPv4 address".into(),
                })?;
                inside("--gateway", g, addr)?
            }
            None => network::subnet::first_host(subnet),
        };
        let ip_range = match &req.ip_range {
            Some(r) => {
                let range = network::subnet::parse(r).map_err(|e| NetworkError::InvalidValue {
                    flag: "--ip-range",
                    value: r.clone(),
                    reason: e.to_string(),
                })?;
                if !(subnet.contains(&range.network()) && subnet.contains(&range.broadcast())) {
                    return Err(NetworkError::InvalidValue {
                        flag: "--ip-range",
                        value: r.clone(),
                        reason: format!("not inside subnet {subnet}"),
                    });
                }
                Some(range)
            }
            None => None,
        };
        let id = random_id();
        let rec = NetworkRecord {
            bridge: format!("br-{}", &id[..12]),
            id,
            name: req.name.clone(),
            driver: "bridge".into(),
            created: Utc::now(),
            subnet,
            gateway,
            ip_range,
            internal: req.internal,
            labels: req.labels.clone(),
            options: req.options.clone(),
        };
        self.make(&rec)?;
        let attrs = [("name", rec.name.clone()), ("type", rec.driver.clone())];
        crate::events::simple(
            &self.root,
            crate::events::EventType::Network,
            "create",
            &rec.id,
            &attrs,
        );
        Ok(rec)
    }

    /// Removes a network nobody uses (`users`: the containers on it, which
    /// the caller found): its record, its bridge and its address leases.
    pub fn remove(&self, net: &NetworkRecord, users: &[String]) -> Result<(), NetworkError> {
        if net.name == DEFAULT_NETWORK {
            return Err(NetworkError::DefaultNetwork(net.name.clone()));
        }
        if !users.is_empty() {
            return Err(NetworkError::InUse {
                network: net.name.clone(),
                containers: users.join(", "),
            });
        }
        let _lock = self.lock()?;
        network::bridge::remove(&net.bridge)?;
        let leases = self.root.join("cni/ipam").join(&net.name);
        match std::fs::remove_dir_all(&leases) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing", &leases)(e)),
        }
        let path = self.path(&net.id);
        std::fs::remove_file(&path).map_err(io("removing", &path))?;
        let attrs = [("name", net.name.clone()), ("type", net.driver.clone())];
        crate::events::simple(
            &self.root,
            crate::events::EventType::Network,
            "destroy",
            &net.id,
            &attrs,
        );
        Ok(())
    }
}

/// `[network]` in the host's config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkSettings {
    default_subnet: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct HostFile {
    #[serde(default)]
    network: NetworkSettings,
}

/// `default_subnet` of `[network]` in `file` (the default network's subnet,
/// for a host where 10.210.0.0/16 is taken); `None` without one.
fn configured_default_subnet(file: &Path) -> Result<Option<Ipv4Net>, NetworkError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading", file)(e)),
    };
    let host: HostFile = toml::from_str(&text).map_err(|e| NetworkError::InvalidValue {
        flag: "[network] in the config file",
        value: file.display().to_string(),
        reason: e.message().to_string(),
    })?;
    host.network
        .default_subnet
        .map(|s| {
            network::subnet::parse(&s).map_err(|e| NetworkError::InvalidValue {
                flag: "[network] default_subnet",
                value: s.clone(),
                reason: format!("{e} (in {})", file.display()),
            })
        })
        .transpose()
}

/// Subnets a new network must not overlap: this root's networks and the
/// host's routes (other roots' bridges, the host's own links).
fn taken_subnets(all: &[NetworkRecord]) -> Vec<Ipv4Net> {
    let mut taken: Vec<Ipv4Net> = all.iter().map(|n| n.subnet).collect();
    taken.extend(network::bridge::host_routes().into_iter().map(|(r, _)| r));
    taken
}

/// Held while a network's subnet and bridge are chosen and claimed, across
/// every root of the host (another engine root picks from the same pool).
fn host_lock() -> Result<Lock, NetworkError> {
    let dir = Path::new("/run/isola");
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    Ok(lock_file(&dir.join("networks.lock"))?)
}

/// [`Networks`], users from the container store.
impl Engine {
    pub fn networks(&self) -> Result<Networks, LifecycleError> {
        Ok(Networks::open(self.root())?)
    }

    /// Names of the containers configured on network `name` (running or not).
    pub fn network_users(&self, name: &str) -> Result<Vec<String>, LifecycleError> {
        Ok(self
            .store()
            .list()?
            .into_iter()
            .filter(|r| {
                r.config.network.network() == Some(name)
                    || r.config
                        .network_options
                        .extra_networks
                        .iter()
                        .any(|n| n == name)
            })
            .map(|r| r.config.name)
            .collect())
    }

    /// `network connect`: the container joins `network` beside its own (at
    /// once if it runs, else at its next start). Process containers with a
    /// network of their own only.
    pub fn connect_network(&self, container: &str, network: &str) -> Result<(), LifecycleError> {
        let rec = self.lookup(container)?;
        let net = self.networks()?.get(network)?;
        self.check_connectable(&rec.config)?;
        let cfg = &rec.config;
        if cfg.network.network() == Some(net.name.as_str())
            || cfg.network_options.extra_networks.contains(&net.name)
        {
            return Err(NetworkError::AlreadyConnected {
                container: cfg.name.clone(),
                network: net.name.clone(),
            }
            .into());
        }
        let name = net.name.clone();
        let config = self
            .store()
            .update_config(&cfg.id, |c| c.network_options.extra_networks.push(name))?;
        if let Err(e) = crate::netattach::connect(self.root(), self.store(), &config, &net) {
            let name = net.name.clone();
            let _ = self.store().update_config(&cfg.id, |c| {
                c.network_options.extra_networks.retain(|n| *n != name)
            });
            return Err(e.into());
        }
        crate::events::network(self.root(), &net.name, "connect", &cfg.id);
        Ok(())
    }

    /// `network disconnect`: the container leaves a network it joined with
    /// `connect`.
    pub fn disconnect_network(&self, container: &str, network: &str) -> Result<(), LifecycleError> {
        let rec = self.lookup(container)?;
        let net = self.networks()?.get(network)?;
        let cfg = &rec.config;
        if cfg.network.network() == Some(net.name.as_str()) {
            return Err(NetworkError::PrimaryNetwork {
                container: cfg.name.clone(),
                network: net.name.clone(),
            }
            .into());
        }
        if !cfg.network_options.extra_networks.contains(&net.name) {
            return Err(NetworkError::NotConnected {
                container: cfg.name.clone(),
                network: net.name.clone(),
            }
            .into());
        }
        crate::netattach::disconnect(self.root(), self.store(), cfg, &net)?;
        let name = net.name.clone();
        self.store().update_config(&cfg.id, |c| {
            c.network_options.extra_networks.retain(|n| *n != name)
        })?;
        crate::events::network(self.root(), &net.name, "disconnect", &cfg.id);
        Ok(())
    }

    fn check_connectable(
        &self,
        config: &crate::state::ContainerConfig,
    ) -> Result<(), LifecycleError> {
        let reason = if config.isolation == crate::isolation::Isolation::Vm {
            Some("it runs in a VM (one NIC per VM for now)")
        } else if config.network.network().is_none() {
            Some("its network mode has no network of its own (none, host or container:)")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(NetworkError::NotConnectable {
                container: config.name.clone(),
                reason,
            }
            .into()),
            None => Ok(()),
        }
    }

    /// `network rm`: refused while a container is on it, naming them.
    pub fn remove_network(&self, reference: &str) -> Result<NetworkRecord, LifecycleError> {
        let networks = self.networks()?;
        let net = networks.get(reference)?;
        let users = self.network_users(&net.name)?;
        networks.remove(&net, &users)?;
        Ok(net)
    }

    /// `network prune`: removes every user network no container is on;
    /// returns their names.
    pub fn prune_networks(&self) -> Result<Vec<String>, LifecycleError> {
        let networks = self.networks()?;
        let mut removed = Vec::new();
        for net in networks.list()? {
            if net.name == crate::state::DEFAULT_NETWORK
                || !self.network_users(&net.name)?.is_empty()
            {
                continue;
            }
            networks.remove(&net, &[])?;
            removed.push(net.name);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_subnet_comes_from_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        assert_eq!(configured_default_subnet(&file).unwrap(), None);
        std::fs::write(
            &file,
            "default_isolation = \"process\"\n[vm]\ntemplate = true\n",
        )
        .unwrap();
        assert_eq!(configured_default_subnet(&file).unwrap(), None);
        std::fs::write(&file, "[network]\ndefault_subnet = \"10.99.0.0/16\"\n").unwrap();
        assert_eq!(
            configured_default_subnet(&file)
                .unwrap()
                .unwrap()
                .to_string(),
            "10.99.0.0/16"
        );
        std::fs::write(&file, "[network]\ndefault_subnet = \"10.99.0.1/16\"\n").unwrap();
        let e = configured_default_subnet(&file).unwrap_err().to_string();
        assert!(
            e.contains("default_subnet") && e.contains("host bits"),
            "{e}"
        );
        std::fs::write(&file, "[network]\nsubnet = \"x\"\n").unwrap();
        assert!(configured_default_subnet(&file).is_err());
    }

    fn req(name: &str, subnet: Option<&str>) -> NetworkCreate {
        NetworkCreate {
            name: name.into(),
            subnet: subnet.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn create_checks_names_subnets_and_picks_free_ones() {
        /// The networks' bridges are real: they go when the test ends.
        struct Destroy(Networks);
        impl Drop for Destroy {
            fn drop(&mut self) {
                let _ = self.0.destroy();
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let nets = Networks::open(dir.path()).unwrap();
        let _destroy = Destroy(nets.clone());
        let host_before = network::bridge::host_routes();
        let def = nets.default_network().unwrap();
        assert_eq!(def.name, "isola");
        assert!(network::bridge::exists(&def.bridge), "{}", def.bridge);
        // A second root on the same host gets a bridge and subnet of its own.
        let dir2 = tempfile::tempdir().unwrap();
        let other = Networks::open(dir2.path()).unwrap();
        let _destroy2 = Destroy(other.clone());
        let def2 = other.default_network().unwrap();
        assert_ne!(def2.bridge, def.bridge);
        assert!(!network::subnet::overlaps(def2.subnet, def.subnet));

        let a = nets.create(&req("a", None)).unwrap();
        let pool: Ipv4Net = network::subnet::POOL.parse().unwrap();
        assert!(pool.contains(&a.subnet.network()) && a.subnet.prefix_len() == 24);
        assert!(!host_before
            .iter()
            .any(|(r, _)| network::subnet::overlaps(*r, a.subnet)));
        assert_eq!(a.gateway, network::subnet::first_host(a.subnet));
        assert!(a.bridge.starts_with("br-") && a.bridge.len() == 15);
        assert!(network::bridge::exists(&a.bridge));
        let b = nets.create(&req("b", None)).unwrap();
        assert!(!network::subnet::overlaps(a.subnet, b.subnet));
        assert!(matches!(
            nets.create(&req("a", None)),
            Err(NetworkError::Exists(_))
        ));
        assert!(matches!(
            nets.create(&req("host", None)),
            Err(NetworkError::Reserved(_))
        ));
        assert!(matches!(
            nets.create(&req("-x", None)),
            Err(NetworkError::InvalidName(_))
        ));
        let inside_b = format!("{}/25", b.subnet.network());
        let e = nets
            .create(&req("c", Some(&inside_b)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlaps network b"), "{e}");
        // Another root's network is seen through the host's routes.
        let e = other
            .create(&req("c", Some(&inside_b)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("the host's route via"), "{e}");
        let e = nets
            .create(&req("c", Some("10.1.2.3/24")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("host bits"), "{e}");
        let mut r = req("c", Some("10.214.77.0/24"));
        r.gateway = Some("10.215.0.1".into());
        let e = nets.create(&r).unwrap_err().to_string();
        assert!(
            e.contains("--gateway") && e.contains("10.214.77.0/24"),
            "{e}"
        );
        r.gateway = None;
        r.ip_range = Some("10.214.78.0/28".into());
        assert!(nets.create(&r).is_err());
        r.ip_range = Some("10.214.77.16/28".into());
        let c = nets.create(&r).unwrap();
        assert_eq!(nets.get("c").unwrap(), c);
        assert_eq!(nets.get(&c.id[..6]).unwrap(), c);
        assert_eq!(nets.get("bridge").unwrap().name, "isola");
        assert_eq!(nets.list().unwrap().len(), 4);

        let e = nets.remove(&c, &["web".into()]).unwrap_err().to_string();
        assert!(e.contains("in use") && e.contains("web"), "{e}");
        nets.remove(&c, &[]).unwrap();
        // By its full id: "c" alone may be the prefix of another network's
        // random id.
        assert!(matches!(nets.get(&c.id), Err(NetworkError::NotFound(_))));
        assert!(nets.list().unwrap().iter().all(|n| n.name != "c"));
        assert!(nets.remove(&def, &[]).is_err());
    }
}
