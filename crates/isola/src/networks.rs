//! `isola network create|ls|inspect|rm|prune` and `isola port`: printing
//! what the engine's networks and containers say, docker's shapes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::bail;
use clap::{Args, Subcommand};
use engine::networks::{NetworkCreate, NetworkRecord};
use engine::Engine;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkGroup),
    /// List a container's published ports (or the mapping of one).
    Port(PortArgs),
}

/// `port` (also `container port`).
#[derive(Debug, clap::Args)]
pub struct PortArgs {
    pub container: String,
    /// A container port, e.g. 80 or 80/tcp.
    pub port: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum NetworkGroup {
    /// Create a bridge network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks as JSON.
    Inspect {
        /// A Go template over each network (e.g. '{{.Name}} {{.Driver}}').
        #[arg(short, long)]
        format: Option<String>,
        networks: Vec<String>,
    },
    /// Remove networks (refused while containers use them).
    #[command(alias = "remove")]
    Rm { networks: Vec<String> },
    /// Connect a container to a network (at once if it runs).
    Connect { network: String, container: String },
    /// Disconnect a container from a network it was connected to.
    Disconnect {
        network: String,
        container: String,
        /// Accepted for docker's compatibility.
        #[arg(short, long)]
        force: bool,
    },
    /// Remove every network no container uses.
    Prune {
        /// Do not ask (isola never asks).
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub name: String,
    /// Driver: only bridge.
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// IPv4 subnet in CIDR form (a free /24 from 10.211.0.0/16 if absent).
    #[arg(long)]
    pub subnet: Option<String>,
    #[arg(long)]
    pub gateway: Option<String>,
    /// Hand out addresses from this sub-range only.
    #[arg(long)]
    pub ip_range: Option<String>,
    /// No route out, no NAT: containers reach only each other.
    #[arg(long)]
    pub internal: bool,
    /// key=value
    #[arg(long)]
    pub label: Vec<String>,
    /// Driver options, key=value (com.docker.network.driver.mtu).
    #[arg(short, long = "opt")]
    pub opt: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[arg(short, long)]
    pub quiet: bool,
    /// name=<substring>, id=<prefix>, label=<key>[=<value>], driver=bridge, type=builtin|custom.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// table (default), json, or a Go template over docker's fields (ID,
    /// Name, Driver, Scope, IPv6, Internal, Labels, CreatedAt); `table
    /// TEMPLATE` adds docker's column titles.
    #[arg(long, default_value = "table")]
    pub format: String,
    #[arg(long)]
    pub no_trunc: bool,
}

/// `key=value` flags (`--label`, `--opt`) into a map; a bare `key` has an
/// empty value, as in docker.
pub(crate) fn key_values(flag: &str, items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            None if !kv.is_empty() => Ok((kv.to_string(), String::new())),
            _ => bail!("invalid {flag} {kv:?}: expected key=value"),
        })
        .collect()
}

impl NetworkCommand {
    pub fn run(self, root: &Path) -> anyhow::Result<u8> {
        let engine = Engine::open(root)?;
        match self {
            NetworkCommand::Port(a) => port_command(&engine, &a.container, a.port),
            NetworkCommand::Network(g) => g.run(&engine),
        }
    }
}

impl NetworkGroup {
    fn run(self, engine: &Engine) -> anyhow::Result<u8> {
        match self {
            NetworkGroup::Create(a) => {
                if a.driver != "bridge" {
                    bail!(
                        "invalid --driver {:?}: isola networks are bridge networks",
                        a.driver
                    );
                }
                let net = engine.networks()?.create(&NetworkCreate {
                    name: a.name,
                    subnet: a.subnet,
                    gateway: a.gateway,
                    ip_range: a.ip_range,
                    internal: a.internal,
                    labels: key_values("--label", &a.label)?,
                    options: key_values("--opt", &a.opt)?,
                })?;
                println!("{}", net.id);
                Ok(0)
            }
            NetworkGroup::Ls(a) => {
                let mut pairs = Vec::new();
                for f in &a.filter {
                    let Some(kv) = f.split_once('=') else {
                        bail!("invalid filter {f:?}: expected key=value");
                    };
                    pairs.push(kv);
                }
                let filters = engine::filters::NetworkFilters::parse(pairs)?;
                let mut nets = engine.networks()?.list()?;
                nets.retain(|n| filters.matches(n));
                let id = |n: &NetworkRecord| {
                    if a.no_trunc {
                        n.id.clone()
                    } else {
                        n.id[..12].to_string()
                    }
                };
                if a.quiet {
                    for n in &nets {
                        println!("{}", id(n));
                    }
                    return Ok(0);
                }
                let rows: Vec<serde_json::Value> = nets
                    .iter()
                    .map(|n| {
                        json!({
                            "ID": id(n),
                            "Name": n.name,
                            "Driver": n.driver,
                            "Scope": "local",
                            "IPv6": "false",
                            "Internal": n.internal.to_string(),
                            "Labels": n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                            "CreatedAt": n.created.to_rfc3339(),
                        })
                    })
                    .collect();
                crate::format::print_rows(&a.format, &rows, &[("ID", "NETWORK ID")], || {
                    let rows: Vec<Vec<String>> = nets
                        .iter()
                        .map(|n| vec![id(n), n.name.clone(), n.driver.clone(), "local".into()])
                        .collect();
                    crate::containers::list::print_table(
                        &["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                        &rows,
                    );
                })?;
                Ok(0)
            }
            NetworkGroup::Inspect { format, networks } => {
                if networks.is_empty() {
                    bail!("network inspect needs at least one network");
                }
                let mut out = Vec::new();
                for n in &networks {
                    out.push(engine::inspect::network(
                        engine,
                        &engine.networks()?.get(n)?,
                    )?);
                }
                crate::format::print_objects(format.as_deref(), out)?;
                Ok(0)
            }
            NetworkGroup::Rm { networks } => {
                if networks.is_empty() {
                    bail!("network rm needs at least one network");
                }
                let mut failed = None;
                for n in &networks {
                    match engine.remove_network(n) {
                        Ok(_) => println!("{n}"),
                        Err(e) => {
                            eprintln!("isola: {}", runtime::error_chain(&e));
                            failed = Some(1);
                        }
                    }
                }
                Ok(failed.unwrap_or(0))
            }
            NetworkGroup::Connect { network, container } => {
                engine.connect_network(&container, &network)?;
                Ok(0)
            }
            NetworkGroup::Disconnect {
                network, container, ..
            } => {
                engine.disconnect_network(&container, &network)?;
                Ok(0)
            }
            NetworkGroup::Prune { .. } => {
                let removed = engine.prune_networks()?;
                if !removed.is_empty() {
                    println!("Deleted Networks:");
                    for n in removed {
                        println!("{n}");
                    }
                }
                Ok(0)
            }
        }
    }
}

pub fn port_command(engine: &Engine, container: &str, port: Option<String>) -> anyhow::Result<u8> {
    let rec = engine.lookup(container)?;
    let ports = rec.state.network.map(|n| n.ports).unwrap_or_default();
    let wanted = match &port {
        Some(p) => {
            let (number, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let number: u16 = number
                .parse()
                .map_err(|_| anyhow::anyhow!("invalid port {p:?}: expected PORT[/tcp|udp]"))?;
            Some((number, proto.to_string()))
        }
        None => None,
    };
    let mut found = false;
    for m in &ports {
        let host = format!(
            "{}:{}",
            m.host_ip
                .map(|i| i.to_string())
                .unwrap_or_else(|| "0.0.0.0".into()),
            m.host_port
        );
        match &wanted {
            Some((n, proto)) if *n == m.container_port && proto == m.protocol.as_str() => {
                println!("{host}");
                found = true;
            }
            Some(_) => {}
            None => println!("{}/{} -> {host}", m.container_port, m.protocol.as_str()),
        }
    }
    if let (Some(p), false) = (&port, found) {
        bail!("no public port '{p}' published for {container}");
    }
    Ok(0)
}
