//! network: a container's network namespace and what is in it, through the
//! CNI reference plugins (Debian's containernetworking-plugins), chained as
//! nerdctl chains them: `bridge` with `host-local` IPAM, `portmap`,
//! `firewall` and `tuning`. CNI is also what containerd and Kubernetes use,
//! so one network model serves `isola run` and a cluster, and a user's own
//! CNI plugins drop in.
//!
//! It owns: persistent network namespaces ([`netns`]), invoking plugins per
//! the CNI spec ([`cni`]), the configuration list a network becomes
//! ([`NetworkSpec::conflist`]), published-port syntax ([`ports`]) and subnet
//! arithmetic ([`subnet`]). It knows nothing of containers beyond an id and
//! a namespace path, and nothing of the engine's records: the engine keeps
//! which networks exist and which container is on which.

pub mod bridge;
pub mod cni;
mod error;
pub mod netns;
pub mod ports;
pub mod subnet;
mod sys;
pub mod tap;

pub use cni::{Attachment, Cni};
pub use error::Error;
pub use ports::{PortMapping, Protocol};

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

/// The CNI specification version isola speaks (the plugins of Debian 12
/// speak it).
pub const CNI_VERSION: &str = "1.0.0";

/// One bridge network, as the plugins need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The network's name (the CNI network name too).
    pub name: String,
    /// The Linux bridge device.
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Addresses are handed out from here (inside `subnet`).
    pub ip_range: Option<Ipv4Net>,
    /// No route out and no NAT (`--internal`).
    pub internal: bool,
    /// The interfaces' MTU (`None`: the kernel's default).
    pub mtu: Option<u32>,
}

impl NetworkSpec {
    /// The CNI configuration list of this network. IPAM state lives in
    /// `ipam_dir`, so that it goes with the engine's root.
    pub fn conflist(&self, ipam_dir: &std::path::Path) -> Value {
        let mut range = json!({
            "subnet": self.subnet.to_string(),
            "gateway": self.gateway.to_string(),
        });
        if let Some(r) = self.ip_range {
            let first = subnet::first_host(r).max(subnet::first_host(self.subnet));
            range["rangeStart"] = json!(first.to_string());
            range["rangeEnd"] = json!(subnet::last_host(r).to_string());
        }
        let mut ipam = json!({
            "type": "host-local",
            "ranges": [[range]],
            "dataDir": ipam_dir,
        });
        if !self.internal {
            ipam["routes"] = json!([{"dst": "0.0.0.0/0"}]);
        }
        let mut bridge = json!({
            "type": "bridge",
            "bridge": self.bridge,
            // An internal network has no gateway on the host: no route out
            // and no NAT; its containers reach each other over the bridge.
            "isGateway": !self.internal,
            "ipMasq": !self.internal,
            "hairpinMode": true,
            // The bridge hands its whole configuration, runtimeConfig with
            // the address asked for included, to host-local.
            "capabilities": {"ips": true},
            "ipam": ipam,
        });
        if let Some(mtu) = self.mtu {
            bridge["mtu"] = json!(mtu);
        }
        json!({
            "cniVersion": CNI_VERSION,
            "name": self.name,
            "plugins": [
                bridge,
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
                // same-bridge: containers of other networks cannot reach
                // this one's (docker's isolation between networks).
                {"type": "firewall", "backend": "iptables", "ingressPolicy": "same-bridge"},
                {"type": "tuning", "capabilities": {"mac": true}},
            ],
        })
    }
}
