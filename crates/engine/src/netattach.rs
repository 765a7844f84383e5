//! netattach: a process container's network for as long as it runs. Its
//! monitor calls [`attach`] before the container is created and
//! [`release`] once it has exited; `rm` and the truth check release what a
//! dead monitor left. Attaching makes the persistent namespace the bundle
//! names (`<root>/netns/<id>`), runs the network's CNI chain with the
//! published ports, records the result in the container's state, and
//! rewrites the `/etc/hosts` of every container on the network, so that
//! on a user network each finds the others by name and alias (as docker's
//! embedded DNS answers; here a hosts file kept current, as nerdctl does).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::networks::{NetworkError, NetworkRecord, Networks};
use crate::state::{ContainerConfig, NetworkMode, NetworkState};
use crate::store::ContainerStore;

/// The persistent network namespace of container `id`.
pub fn netns_path(root: &Path, id: &str) -> PathBuf {
    root.join("netns").join(id)
}

/// Errors of attaching and releasing.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("network namespace of container {id}")]
    Netns {
        id: String,
        #[source]
        source: Box<network::Error>,
    },
    #[error("attaching container {id} to network {network}")]
    Cni {
        id: String,
        network: String,
        #[source]
        source: Box<network::Error>,
    },
    #[error("port {port} is already allocated ({by})")]
    PortInUse { port: String, by: String },
    #[error("no free host port for {0}")]
    NoFreePort(String),
    #[error("address {ip} is already in use on network {network} by container {by}")]
    AddressInUse {
        ip: Ipv4Addr,
        network: String,
        by: String,
    },
    #[error("container {0} (whose network namespace this one joins) is not running")]
    PeerNotRunning(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("writing {path}")]
    Hosts {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn port_text(m: &network::PortMapping) -> String {
    format!(
        "{}:{}/{}",
        m.host_ip
            .map(|i| i.to_string())
            .unwrap_or_else(|| "0.0.0.0".into()),
        m.host_port,
        m.protocol.as_str()
    )
}

/// Whether two host bindings collide (same port and protocol, and the same
/// address or either on every address).
fn collide(a: &network::PortMapping, b: &network::PortMapping) -> bool {
    a.host_port == b.host_port
        && a.protocol == b.protocol
        && (a.host_ip.is_none() || b.host_ip.is_none() || a.host_ip == b.host_ip)
}

/// The container's published ports with host ports chosen: `-P` adds the
/// image's exposed ports; a port 0 gets a free one; a taken one (by
/// another container or a host process) fails, naming it.
fn resolve_ports(
    store: &ContainerStore,
    config: &ContainerConfig,
) -> Result<Vec<network::PortMapping>, AttachError> {
    let mut wanted = config.network_options.ports.clone();
    if config.network_options.publish_all {
        for exposed in &config.network_options.exposed {
            for m in network::ports::parse(exposed).unwrap_or_default() {
                let published = wanted
                    .iter()
                    .any(|w| w.container_port == m.container_port && w.protocol == m.protocol);
                if !published {
                    wanted.push(m);
                }
            }
        }
    }
    let mut taken: Vec<(network::PortMapping, String)> = Vec::new();
    for rec in store.list()? {
        if rec.config.id == config.id {
            continue;
        }
        if let Some(n) = &rec.state.network {
            taken.extend(n.ports.iter().map(|p| (*p, rec.config.name.clone())));
        }
    }
    let mut out: Vec<network::PortMapping> = Vec::new();
    for mut m in wanted {
        if m.host_port == 0 {
            let mut picked = None;
            for _ in 0..20 {
                let Some(port) = network::ports::pick_free(&m) else {
                    break;
                };
                let candidate = network::PortMapping {
                    host_port: port,
                    ..m
                };
                if !taken.iter().any(|(t, _)| collide(t, &candidate))
                    && !out.iter().any(|o| collide(o, &candidate))
                {
                    picked = Some(port);
                    break;
                }
            }
            m.host_port = picked.ok_or_else(|| AttachError::NoFreePort(port_text(&m)))?;
        } else {
            if let Some((_, by)) = taken.iter().find(|(t, _)| collide(t, &m)) {
                return Err(AttachError::PortInUse {
                    port: port_text(&m),
                    by: format!("container {by}"),
                });
            }
            if out.iter().any(|o| collide(o, &m)) {
                return Err(AttachError::PortInUse {
                    port: port_text(&m),
                    by: "published twice".into(),
                });
            }
            if !network::ports::is_free(&m) {
                return Err(AttachError::PortInUse {
                    port: port_text(&m),
                    by: "a host process listens there".into(),
                });
            }
        }
        out.push(m);
    }
    Ok(out)
}

/// Attaches a process container before it is created: its namespace, and
/// with a network mode its address and ports. Returns what it holds, also
/// recorded in its state. On error nothing is left.
pub fn attach(
    root: &Path,
    store: &ContainerStore,
    config: &ContainerConfig,
) -> Result<Option<NetworkState>, AttachError> {
    // A dead run of this container may have left its attachment.
    release(root, store, config);
    let netns = netns_path(root, &config.id);
    match &config.network {
        NetworkMode::Host => return Ok(None),
        NetworkMode::Container(other) => {
            let peer = netns_path(root, other);
            return if network::netns::is_mounted(&peer) {
                Ok(None)
            } else {
                Err(AttachError::PeerNotRunning(other.clone()))
            };
        }
        NetworkMode::None | NetworkMode::Network(_) => {}
    }
    let dir = netns.parent().expect("netns has a parent");
    std::fs::create_dir_all(dir).map_err(|source| AttachError::Hosts {
        path: dir.to_path_buf(),
        source,
    })?;
    network::netns::create(&netns).map_err(|source| AttachError::Netns {
        id: config.id.clone(),
        source: Box::new(source),
    })?;
    let Some(name) = config.network.network() else {
        return Ok(None);
    };
    let done = (|| -> Result<NetworkState, AttachError> {
        let networks = Networks::open(root)?;
        let net = networks.get(name)?;
        let _lock = networks.lock()?;
        let ports = resolve_ports(store, config)?;
        if let Some(ip) = config.network_options.ip {
            for rec in store.list()? {
                let taken = rec
                    .state
                    .attachments()
                    .any(|n| n.network == net.name && n.attachment.ip == ip);
                if taken && rec.config.id != config.id {
                    return Err(AttachError::AddressInUse {
                        ip,
                        network: net.name.clone(),
                        by: rec.config.name.clone(),
                    });
                }
            }
        }
        let opts = &config.network_options;
        let state = attach_one(
            &networks,
            &net,
            config,
            &netns,
            "eth0",
            &ports,
            opts.ip,
            opts.mac.as_deref(),
        )?;
        let recorded = state.clone();
        store.update_state(&config.id, move |s| s.network = Some(recorded))?;
        let mut touched = vec![net];
        for (i, extra) in opts.extra_networks.iter().enumerate() {
            let other = networks.get(extra)?;
            let ifname = format!("eth{}", i + 1);
            let held = attach_one(&networks, &other, config, &netns, &ifname, &[], None, None)?;
            store.update_state(&config.id, move |s| s.extra_networks.push(held))?;
            touched.push(other);
        }
        // Its own file too: it is a member now.
        for net in &touched {
            refresh_hosts(store, net, &config.id)?;
        }
        Ok(state)
    })();
    match done {
        Ok(state) => Ok(Some(state)),
        Err(e) => {
            release(root, store, config);
            Err(e)
        }
    }
}

/// Runs `net`'s CNI chain for one interface of the container's namespace.
#[allow(clippy::too_many_arguments)]
fn attach_one(
    networks: &Networks,
    net: &NetworkRecord,
    config: &ContainerConfig,
    netns: &Path,
    ifname: &str,
    ports: &[network::PortMapping],
    ip: Option<Ipv4Addr>,
    mac: Option<&str>,
) -> Result<NetworkState, AttachError> {
    let attachment = networks
        .cni()
        .add(
            &networks.conflist(net),
            &network::cni::AttachRequest {
                container_id: &config.id,
                netns,
                ifname,
                ports,
                ip,
                mac,
            },
        )
        .map_err(|source| AttachError::Cni {
            id: config.id.clone(),
            network: net.name.clone(),
            source: Box::new(source),
        })?;
    Ok(NetworkState {
        network: net.name.clone(),
        netns: netns.to_path_buf(),
        attachment,
        ports: ports.to_vec(),
    })
}

/// `network connect`: joins a running container to `net` now (its next
/// free interface); a stopped one joins at its next start. The caller has
/// recorded the network in the container's configuration.
pub fn connect(
    root: &Path,
    store: &ContainerStore,
    config: &ContainerConfig,
    net: &NetworkRecord,
) -> Result<(), AttachError> {
    let Some(rec) = store.read(&config.id)? else {
        return Ok(());
    };
    let Some(primary) = rec.state.network.clone() else {
        return Ok(());
    };
    let networks = Networks::open(root)?;
    let _lock = networks.lock()?;
    let used: Vec<String> = rec
        .state
        .attachments()
        .map(|n| n.attachment.ifname.clone())
        .collect();
    let ifname = (1..)
        .map(|n| format!("eth{n}"))
        .find(|i| !used.contains(i))
        .unwrap_or_default();
    let held = attach_one(
        &networks,
        net,
        config,
        &primary.netns,
        &ifname,
        &[],
        None,
        None,
    )?;
    store.update_state(&config.id, move |s| s.extra_networks.push(held))?;
    refresh_hosts(store, net, &config.id)
}

/// `network disconnect`: leaves `net` (its interface goes, its name leaves
/// the others' hosts files). The caller drops the network from the
/// container's configuration.
pub fn disconnect(
    root: &Path,
    store: &ContainerStore,
    config: &ContainerConfig,
    net: &NetworkRecord,
) -> Result<(), AttachError> {
    let Some(rec) = store.read(&config.id)? else {
        return Ok(());
    };
    let Some(held) = rec
        .state
        .extra_networks
        .iter()
        .find(|n| n.network == net.name)
        .cloned()
    else {
        return Ok(());
    };
    let networks = Networks::open(root)?;
    let _lock = networks.lock()?;
    let ns = Some(held.netns.as_path()).filter(|p| network::netns::is_mounted(p));
    networks
        .cni()
        .del(
            &networks.conflist(net),
            &config.id,
            ns,
            &held.attachment.ifname,
        )
        .map_err(|source| AttachError::Cni {
            id: config.id.clone(),
            network: net.name.clone(),
            source: Box::new(source),
        })?;
    let name = net.name.clone();
    store.update_state(&config.id, move |s| {
        s.extra_networks.retain(|n| n.network != name)
    })?;
    refresh_hosts(store, net, &config.id)
}

/// Releases what a container holds: its addresses, ports and host veth
/// (CNI DEL), its namespace, its name in its peers' hosts files. Idempotent
/// and best effort (each step runs whatever the others did), since it also
/// cleans after a killed monitor or a reboot.
pub fn release(root: &Path, store: &ContainerStore, config: &ContainerConfig) {
    let netns = netns_path(root, &config.id);
    let state = store.read(&config.id).ok().flatten().map(|r| r.state);
    let holds_state = state
        .as_ref()
        .is_some_and(|s| s.attachments().next().is_some());
    // A DEL of the whole chain costs as much as the ADD: only when it holds
    // anything, by its state, its namespace file or the CNI results an
    // interrupted ADD left (the monitor released it at the exit: `rm`
    // finds nothing).
    let holds_anything = holds_state
        || netns.exists()
        || Networks::open(root).is_ok_and(|n| n.cni().holds_results(&config.id));
    if !holds_anything {
        return;
    }
    // What it holds by its state, else (a state lost or never written) by
    // its configuration: the mode's network on eth0, the connected ones
    // on eth1, eth2, ...
    let mut held: Vec<(String, String)> = Vec::new();
    if let Some(name) = config.network.network() {
        held.push((name.to_string(), "eth0".into()));
    }
    for (i, name) in config.network_options.extra_networks.iter().enumerate() {
        let ifname = state
            .iter()
            .flat_map(|s| s.extra_networks.iter())
            .find(|n| &n.network == name)
            .map(|n| n.attachment.ifname.clone())
            .unwrap_or_else(|| format!("eth{}", i + 1));
        held.push((name.clone(), ifname));
    }
    for n in state.iter().flat_map(|s| s.extra_networks.iter()) {
        if !held.iter().any(|(name, _)| *name == n.network) {
            held.push((n.network.clone(), n.attachment.ifname.clone()));
        }
    }
    let networks = Networks::open(root).ok().filter(|_| !held.is_empty());
    // The chains run outside this root's lock, side by side with other
    // containers' ADDs and DELs, as kubelet runs its pods': the plugins take
    // their own (host-local its lease directory, iptables the xtables lock),
    // and a DEL releases the address last. The lock guards what isola keeps:
    // the state and the hosts files.
    let mut touched = Vec::new();
    if let Some(networks) = &networks {
        let ns = Some(netns.as_path()).filter(|p| network::netns::is_mounted(p));
        for (name, ifname) in &held {
            let Ok(net) = networks.get(name) else {
                continue;
            };
            // DEL is also right when ADD never ran: plugins release only
            // what they find.
            if let Err(e) = networks
                .cni()
                .del(&networks.conflist(&net), &config.id, ns, ifname)
            {
                tracing::warn!(id = %config.id, network = %name, error = %e, "releasing the network");
            }
            touched.push(net);
        }
    }
    let lock = networks.as_ref().map(Networks::lock);
    // Out of its state before its peers' hosts files are rewritten.
    if holds_state {
        let _ = store.update_state(&config.id, |s| {
            s.network = None;
            s.extra_networks.clear();
        });
    }
    for net in &touched {
        let _ = refresh_hosts(store, net, &config.id);
    }
    drop(lock);
    if let Err(e) = network::netns::remove(&netns) {
        tracing::warn!(id = %config.id, error = %e, "removing the network namespace");
    }
}

/// One container's names on a network: its name, its aliases, its short id.
fn names(config: &ContainerConfig) -> Vec<String> {
    let mut v = vec![config.name.clone()];
    v.extend(config.network_options.aliases.iter().cloned());
    v.push(crate::ids::short(&config.id).to_string());
    v.push(config.hostname.clone());
    let mut seen = BTreeSet::new();
    v.retain(|n| !n.is_empty() && seen.insert(n.clone()));
    v
}

/// Writes a container's /etc/hosts (in its directory, bind-mounted into it):
/// localhost, its own address and names, `--add-host` entries, and `peers`
/// (address and names of the other containers on its user network). The
/// file is rewritten in place: the bind mount holds its inode.
pub fn write_hosts_file(
    dir: &Path,
    config: &ContainerConfig,
    state: Option<&NetworkState>,
    peers: &[(Ipv4Addr, Vec<String>)],
) -> Result<(), AttachError> {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    match state {
        Some(s) => text.push_str(&format!(
            "{}\t{}\n",
            s.attachment.ip,
            names(config).join(" ")
        )),
        None => text.push_str(&format!("127.0.0.1\t{}\n", config.hostname)),
    }
    for (host, ip) in &config.network_options.extra_hosts {
        text.push_str(&format!("{ip}\t{host}\n"));
    }
    for (ip, names) in peers {
        text.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    let path = dir.join("hosts");
    std::fs::write(&path, text).map_err(|source| AttachError::Hosts { path, source })
}

/// Rewrites the hosts files that `changed` joining or leaving `net` alters,
/// from who is attached now (called with the networks lock held).
fn refresh_hosts(
    store: &ContainerStore,
    net: &NetworkRecord,
    changed: &str,
) -> Result<(), AttachError> {
    let all = store.list()?;
    let on = |r: &crate::store::ContainerRecord, network: &str| {
        r.state
            .attachments()
            .find(|n| n.network == network)
            .map(|n| n.attachment.ip)
    };
    // On a network that resolves no names, the others' files do not name
    // `changed`: only its own is rewritten (fifty containers leaving the
    // default network would otherwise rewrite 50 × 49 files).
    let affected = |r: &crate::store::ContainerRecord| {
        crate::networks::resolves_names(&net.name) || r.config.id == changed
    };
    for me in all
        .iter()
        .filter(|r| on(r, &net.name).is_some() && affected(r))
    {
        // Its peers on every user network it is on (the default network
        // resolves no names, as docker's).
        let mut peers: Vec<(Ipv4Addr, Vec<String>)> = Vec::new();
        for mine in me
            .state
            .attachments()
            .filter(|n| crate::networks::resolves_names(&n.network))
        {
            for p in all.iter().filter(|p| p.config.id != me.config.id) {
                if let Some(ip) = on(p, &mine.network) {
                    peers.push((ip, names(&p.config)));
                }
            }
        }
        write_hosts_file(&me.dir, &me.config, me.state.network.as_ref(), &peers)?;
    }
    Ok(())
}

/// /etc/resolv.conf for a container with a network of its own: the host's,
/// with loopback name servers left out (they would be the container's own
/// loopback), docker's public fallbacks if none is left, then `--dns`,
/// `--dns-search` and `--dns-option` in place of the host's.
pub fn resolv_conf(host: &str, config: &ContainerConfig) -> String {
    let opts = &config.network_options;
    let mut servers: Vec<String> = opts.dns.clone();
    let mut search: Vec<String> = opts.dns_search.clone();
    let mut options: Vec<String> = opts.dns_options.clone();
    let (mut host_servers, mut host_search, mut host_options) =
        (Vec::new(), Vec::new(), Vec::new());
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next() {
                    let loopback = ip
                        .parse::<std::net::IpAddr>()
                        .map(|a| a.is_loopback())
                        .unwrap_or(false);
                    if !loopback {
                        host_servers.push(ip.to_string());
                    }
                }
            }
            Some("search") | Some("domain") => host_search.extend(words.map(str::to_string)),
            Some("options") => host_options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    if servers.is_empty() {
        servers = host_servers;
        if servers.is_empty() {
            servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
        }
    }
    if search.is_empty() {
        search = host_search;
    }
    if options.is_empty() {
        options = host_options;
    }
    let mut text = String::new();
    for s in servers {
        text.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        text.push_str(&format!("options {}\n", options.join(" ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_servers_and_takes_flags() {
        let c = crate::store::tests_support::config("a", "web");
        let host =
            "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions ndots:2\n";
        assert_eq!(
            resolv_conf(host, &c),
            "nameserver 10.0.0.2\nsearch corp.example\noptions ndots:2\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", &c),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let mut c = crate::store::tests_support::config("a", "web");
        c.network_options.dns = vec!["1.1.1.1".into()];
        c.network_options.dns_search = vec!["a.example".into()];
        c.network_options.dns_options = vec!["ndots:1".into()];
        assert_eq!(
            resolv_conf(host, &c),
            "nameserver 1.1.1.1\nsearch a.example\noptions ndots:1\n"
        );
    }

    #[test]
    fn ports_collide_by_port_protocol_and_address() {
        let m = |ip: Option<Ipv4Addr>, port, proto| network::PortMapping {
            host_ip: ip,
            host_port: port,
            container_port: 80,
            protocol: proto,
        };
        use network::Protocol::{Tcp, Udp};
        let lo = Some(Ipv4Addr::LOCALHOST);
        let other = Some(Ipv4Addr::new(10, 0, 0, 1));
        assert!(collide(&m(None, 80, Tcp), &m(lo, 80, Tcp)));
        assert!(collide(&m(lo, 80, Tcp), &m(lo, 80, Tcp)));
        assert!(!collide(&m(lo, 80, Tcp), &m(other, 80, Tcp)));
        assert!(!collide(&m(lo, 80, Tcp), &m(lo, 80, Udp)));
        assert!(!collide(&m(lo, 80, Tcp), &m(lo, 81, Tcp)));
    }
}
