//! bridge: a network's bridge device on the host, made when the network is
//! made (with its gateway address, so that the subnet is visibly taken:
//! another root or tool picking a subnet sees its route) and removed with
//! it, together with the isolation rules the firewall plugin keeps per
//! bridge (its DEL is per container and never removes them). The bridge
//! plugin finds the device ready and keeps it.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use ipnet::Ipv4Net;

use crate::Error;

fn run(program: &str, args: &[&str]) -> Result<String, Error> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| Error::Io {
            op: "running",
            path: program.into(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Whether a network device of that name exists on the host.
pub fn exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The host's IPv4 routes other than the default one (what a new subnet
/// must not overlap), from /proc/net/route.
pub fn host_routes() -> Vec<(Ipv4Net, String)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The file prints each address as the hex of its in-memory u32,
            // whose bytes are the address in network order.
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let prefix = mask.count_ones() as u8;
            if prefix == 0 {
                return None;
            }
            Some((Ipv4Net::new(dest, prefix).ok()?.trunc(), f[0].to_string()))
        })
        .collect()
}

/// Makes bridge `name` with `gateway/prefix` and brings it up. On error
/// nothing is left.
pub fn create(name: &str, gateway: Ipv4Addr, subnet: Ipv4Net) -> Result<(), Error> {
    run("ip", &["link", "add", "name", name, "type", "bridge"])?;
    let addr = format!("{gateway}/{}", subnet.prefix_len());
    let done = run("ip", &["addr", "add", &addr, "dev", name])
        .and_then(|_| run("ip", &["link", "set", name, "up"]));
    if done.is_err() {
        let _ = remove(name);
    }
    done.map(drop)
}

/// Removes bridge `name` and the firewall plugin's isolation rules that
/// name it. Absent already is fine.
pub fn remove(name: &str) -> Result<(), Error> {
    remove_isolation_rules(name);
    if !exists(name) {
        return Ok(());
    }
    match run("ip", &["link", "delete", name, "type", "bridge"]) {
        Err(_) if !exists(name) => Ok(()),
        other => other.map(drop),
    }
}

/// The firewall plugin's `ingressPolicy: same-bridge` rules are per bridge
/// in two chains; iptables deletes a rule given as it was added.
fn remove_isolation_rules(bridge: &str) {
    for chain in ["CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2"] {
        let Ok(rules) = run("iptables", &["-w", "-S", chain]) else {
            continue;
        };
        for rule in rules.lines().filter(|r| {
            r.starts_with("-A ")
                && r.split_whitespace()
                    .collect::<Vec<_>>()
                    .windows(2)
                    .any(|w| (w[0] == "-i" || w[0] == "-o") && w[1] == bridge)
        }) {
            let args = shell_words(&rule.replacen("-A ", "-D ", 1));
            let mut full = vec!["-w".to_string()];
            full.extend(args);
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            if let Err(e) = run("iptables", &refs) {
                tracing::warn!(%bridge, error = %e, "removing an isolation rule");
            }
        }
    }
}

/// Splits an `iptables -S` line into arguments (its comments are quoted).
fn shell_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_lines_split_like_a_shell() {
        let line = r#"-D CNI-ISOLATION-STAGE-2 -o br-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j DROP"#;
        let w = shell_words(line);
        assert_eq!(w[..4], ["-D", "CNI-ISOLATION-STAGE-2", "-o", "br-1"]);
        assert_eq!(
            w[7],
            "CNI firewall plugin rules (ingressPolicy: same-bridge)"
        );
        assert_eq!(w.last().unwrap(), "DROP");
    }

    #[test]
    fn host_routes_match_ip_route() {
        let out = Command::new("ip")
            .args(["-4", "route", "show", "scope", "link"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let routes = host_routes();
        for line in text.lines() {
            let net: Ipv4Net = line.split_whitespace().next().unwrap().parse().unwrap();
            assert!(
                routes.iter().any(|(r, _)| *r == net),
                "{net} not in {routes:?}"
            );
        }
    }
}
