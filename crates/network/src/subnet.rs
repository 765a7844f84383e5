//! subnet: the IPv4 arithmetic networks need: parsing a `--subnet`, its
//! first and last host address, overlap, and picking a free /24 for a new
//! network from isola's pool.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::Error;

/// The default network's subnet: outside docker's (172.17.0.0/16 and up,
/// 192.168.0.0/16 pools) and podman's (10.88.0.0/16, 10.89.0.0/16) defaults.
pub const DEFAULT_SUBNET: &str = "10.210.0.0/16";

/// User-defined networks without `--subnet` get a /24 from here.
pub const POOL: &str = "10.211.0.0/16";

/// Parses `value` as an IPv4 network in CIDR form; host bits must be zero.
pub fn parse(value: &str) -> Result<Ipv4Net, Error> {
    let invalid = |reason: &str| Error::InvalidSubnet {
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let net: Ipv4Net = value
        .parse()
        .map_err(|_| invalid("not an IPv4 network in CIDR form, e.g. 10.5.0.0/24"))?;
    if net.trunc() != net {
        return Err(invalid(&format!(
            "host bits are set (the network is {})",
            net.trunc()
        )));
    }
    if net.prefix_len() > 30 {
        return Err(invalid(
            "a /30 or larger is needed for a gateway and a container",
        ));
    }
    Ok(net)
}

/// The network's first usable address (the default gateway).
pub fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

/// The network's last usable address (below the broadcast address).
pub fn last_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.broadcast()) - 1)
}

/// Whether two networks share an address.
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first /24 of [`POOL`] that overlaps none of `taken`.
pub fn pick_free(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    let pool: Ipv4Net = POOL.parse().expect("a valid pool");
    pool.subnets(24)
        .ok()?
        .find(|candidate| !taken.iter().any(|t| overlaps(*t, *candidate)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_checks_form_and_host_bits() {
        assert_eq!(parse("10.5.0.0/24").unwrap().to_string(), "10.5.0.0/24");
        let e = parse("10.5.0.1/24").unwrap_err().to_string();
        assert!(e.contains("host bits") && e.contains("10.5.0.0/24"), "{e}");
        assert!(parse("10.5.0.0").is_err());
        assert!(parse("nonsense").is_err());
        assert!(parse("10.5.0.0/31").is_err());
    }

    #[test]
    fn hosts_overlap_and_free_picks() {
        let n = parse("10.5.0.0/24").unwrap();
        assert_eq!(first_host(n), Ipv4Addr::new(10, 5, 0, 1));
        assert_eq!(last_host(n), Ipv4Addr::new(10, 5, 0, 254));
        assert!(overlaps(n, parse("10.5.0.0/16").unwrap()));
        assert!(!overlaps(n, parse("10.6.0.0/24").unwrap()));
        let taken = [
            parse("10.211.0.0/24").unwrap(),
            parse("10.211.1.0/25").unwrap(),
        ];
        assert_eq!(pick_free(&taken).unwrap().to_string(), "10.211.2.0/24");
    }
}
