//! ports: docker's `-p/--publish` syntax (`[ip:][hostPort:]containerPort[/proto]`,
//! ranges too) as a list of single-port mappings, and the checks a
//! published port needs on the host: free, and a free one picked when the
//! user named none.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One published port. `host_port` 0 means "pick a free one" (it is
/// replaced by the picked port before the container starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortMapping {
    /// `None`: every host address (0.0.0.0).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// As the portmap plugin's runtimeConfig takes it.
    pub fn to_cni(&self) -> serde_json::Value {
        serde_json::json!({
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol.as_str(),
            "hostIP": self.host_ip.map(|i| i.to_string()).unwrap_or_default(),
        })
    }
}

fn invalid(spec: &str, reason: impl Into<String>) -> Error {
    Error::InvalidPort {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

/// A port or a range `a-b` (inclusive), each 1..=65535.
fn port_range(spec: &str, text: &str) -> Result<(u16, u16), Error> {
    let number = |t: &str| -> Result<u16, Error> {
        match t.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            _ => Err(invalid(
                spec,
                format!("{t:?} is not a port number (1-65535)"),
            )),
        }
    };
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (number(a)?, number(b)?);
            if b < a {
                return Err(invalid(
                    spec,
                    format!("the range {text} ends before it starts"),
                ));
            }
            Ok((a, b))
        }
        None => {
            let n = number(text)?;
            Ok((n, n))
        }
    }
}

/// Parses one `-p` value into its single-port mappings.
pub fn parse(spec: &str) -> Result<Vec<PortMapping>, Error> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, "tcp")) => (r, Protocol::Tcp),
        Some((r, "udp")) => (r, Protocol::Udp),
        Some((_, p)) => {
            return Err(invalid(
                spec,
                format!("unknown protocol {p:?} (tcp or udp)"),
            ))
        }
        None => (spec, Protocol::Tcp),
    };
    if rest.starts_with('[') {
        return Err(invalid(
            spec,
            "IPv6 host addresses are not supported (networks are IPv4)",
        ));
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(*h), *c),
        [ip, h, c] => (Some(*ip), Some(*h).filter(|h| !h.is_empty()), *c),
        _ => {
            return Err(invalid(
                spec,
                "expected [ip:][hostPort:]containerPort[/tcp|udp]",
            ))
        }
    };
    let host_ip = match ip.filter(|i| !i.is_empty()) {
        Some(i) => Some(
            i.parse::<Ipv4Addr>()
                .map_err(|_| invalid(spec, format!("{i:?} is not an IPv4 address")))?,
        ),
        None => None,
    };
    let host_ip = host_ip.filter(|i| !i.is_unspecified());
    let (c_first, c_last) = port_range(spec, container)?;
    let host = host.map(|h| port_range(spec, h)).transpose()?;
    if let Some((h_first, h_last)) = host {
        if h_last - h_first != c_last - c_first {
            return Err(invalid(
                spec,
                "the host and container ranges differ in length",
            ));
        }
    }
    Ok((c_first..=c_last)
        .enumerate()
        .map(|(i, container_port)| PortMapping {
            host_ip,
            host_port: host.map_or(0, |(first, _)| first + i as u16),
            container_port,
            protocol,
        })
        .collect())
}

/// Whether a host process could take `mapping`'s host port: it is free when
/// we can bind it ourselves.
pub fn is_free(mapping: &PortMapping) -> bool {
    let ip = mapping.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    match mapping.protocol {
        Protocol::Tcp => TcpListener::bind((ip, mapping.host_port)).is_ok(),
        Protocol::Udp => UdpSocket::bind((ip, mapping.host_port)).is_ok(),
    }
}

/// A host port the kernel says is free now, for a mapping that named none.
/// It is only a hint (another process may take it before the container
/// starts); the container's start then fails naming the port.
pub fn pick_free(mapping: &PortMapping) -> Option<u16> {
    let ip = mapping.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    match mapping.protocol {
        Protocol::Tcp => TcpListener::bind((ip, 0))
            .ok()?
            .local_addr()
            .ok()
            .map(|a| a.port()),
        Protocol::Udp => UdpSocket::bind((ip, 0))
            .ok()?
            .local_addr()
            .ok()
            .map(|a| a.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortMapping {
        let v = parse(spec).unwrap();
        assert_eq!(v.len(), 1, "{spec}");
        v[0]
    }

    #[test]
    fn docker_forms() {
        let m = one("80");
        assert_eq!((m.host_ip, m.host_port, m.container_port), (None, 0, 80));
        let m = one("8080:80");
        assert_eq!(
            (m.host_port, m.container_port, m.protocol),
            (8080, 80, Protocol::Tcp)
        );
        let m = one("127.0.0.1:8080:80/udp");
        assert_eq!(m.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(m.protocol, Protocol::Udp);
        let m = one("127.0.0.1::80");
        assert_eq!((m.host_port, m.container_port), (0, 80));
        let m = one("0.0.0.0:81:80");
        assert_eq!(m.host_ip, None);
        let r = parse("8000-8002:80-82").unwrap();
        assert_eq!(
            r.iter()
                .map(|m| (m.host_port, m.container_port))
                .collect::<Vec<_>>(),
            [(8000, 80), (8001, 81), (8002, 82)]
        );
        assert_eq!(parse("90-91").unwrap().len(), 2);
    }

    #[test]
    fn bad_specs_name_what_is_wrong() {
        for (spec, says) in [
            ("0", "not a port number"),
            ("70000", "not a port number"),
            ("http", "not a port number"),
            ("80/sctp", "unknown protocol"),
            ("a.b.c.d:80:80", "not an IPv4 address"),
            ("8000-8001:80", "differ in length"),
            ("90-80", "ends before it starts"),
            ("1:2:3:4", "expected [ip:]"),
            ("[::1]:80:80", "IPv6"),
        ] {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.contains(spec) && e.contains(says), "{spec}: {e}");
        }
    }

    #[test]
    fn a_bound_port_is_not_free() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let m = PortMapping {
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: port,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        assert!(!is_free(&m));
        drop(l);
        assert!(is_free(&m));
        assert!(pick_free(&m).is_some_and(|p| p != 0));
    }
}
