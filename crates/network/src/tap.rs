//! tap: a VM container's link to its network namespace, as Kata
//! Containers' tcfilter model makes it: the CNI chain gives the namespace
//! a veth (`eth0`) as for a process container; a tap device beside it is
//! joined to it by tc `mirred` redirects in both directions, so every frame
//! the veth receives leaves through the tap to QEMU's virtio-net device and
//! every frame from the guest leaves through the veth. The guest's NIC gets
//! the veth's MAC and addresses, so the network sees the same endpoint a
//! process container would be.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Command;

use crate::{netns, sys, Error};

/// The tap device's name inside the container's namespace.
pub const TAP: &str = "tap0";

fn run(args: &[&str]) -> std::io::Result<()> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Makes the tap in namespace `ns` and the redirects between it and
/// `veth`; returns the tap's descriptor for QEMU (`-netdev tap,fd=`) and
/// the veth's MTU (the guest's NIC takes it). The tap and its filters go
/// away when the descriptor's last holder closes it (QEMU exits), the
/// veth's with the namespace.
pub fn connect(ns: &Path, veth: &str) -> Result<(OwnedFd, u32), Error> {
    netns::in_namespace(ns, || {
        let tap = sys::open_tap(TAP)?;
        // Commands started from this thread run in its namespace (its
        // /sys is still the host's: ask ip for the veth's MTU).
        let out = Command::new("ip")
            .args(["-o", "link", "show", veth])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mtu = text
            .split_whitespace()
            .skip_while(|w| *w != "mtu")
            .nth(1)
            .unwrap_or("1500")
            .to_string();
        run(&["ip", "link", "set", TAP, "mtu", &mtu, "up"])?;
        for (from, to) in [(veth, TAP), (TAP, veth)] {
            run(&["tc", "qdisc", "add", "dev", from, "ingress"])?;
            run(&[
                "tc", "filter", "add", "dev", from, "parent", "ffff:", "protocol", "all", "u32",
                "match", "u8", "0", "0", "action", "mirred", "egress", "redirect", "dev", to,
            ])?;
        }
        Ok((tap, mtu.parse().unwrap_or(1500)))
    })
}

/// The interface a CNI chain left in a namespace, as the guest's NIC must
/// stand for it (Kata reads a pod's namespace the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ifname: String,
    pub mac: String,
    pub address: std::net::Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<std::net::Ipv4Addr>,
}

/// The first interface but `lo` with an IPv4 address in namespace `ns`,
/// and the namespace's default route; None if it has no such interface.
pub fn endpoint(ns: &Path) -> Result<Option<Endpoint>, Error> {
    netns::in_namespace(ns, || {
        let json = |args: &[&str]| -> std::io::Result<serde_json::Value> {
            let out = Command::new("ip").args(args).output()?;
            if !out.status.success() {
                return Err(std::io::Error::other(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            serde_json::from_slice(&out.stdout).map_err(std::io::Error::other)
        };
        let links = json(&["-j", "addr", "show"])?;
        let routes = json(&["-j", "-4", "route", "show", "default"])?;
        let gateway = routes
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|r| r["gateway"].as_str()?.parse().ok());
        for link in links.as_array().into_iter().flatten() {
            let (Some(ifname), Some(mac)) = (link["ifname"].as_str(), link["address"].as_str())
            else {
                continue;
            };
            if ifname == "lo" {
                continue;
            }
            let Some(addr) = link["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["family"] == "inet")
            else {
                continue;
            };
            let (Some(address), Some(prefix_len)) = (
                addr["local"].as_str().and_then(|a| a.parse().ok()),
                addr["prefixlen"].as_u64(),
            ) else {
                continue;
            };
            return Ok(Some(Endpoint {
                ifname: ifname.to_string(),
                mac: mac.to_string(),
                address,
                prefix_len: prefix_len as u8,
                gateway,
            }));
        }
        Ok(None)
    })
}

/// Opens a tap in a network namespace of its own, which has nothing else
/// in it and no name: the NIC of a VM template, a machine saved before it
/// has anywhere to send frames (each VM restored from it gets its own tap
/// from [`connect`]). The tap's descriptor holds the namespace; both go
/// away when its last holder closes it.
pub fn isolated() -> Result<OwnedFd, Error> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // The namespace is this thread's alone, and ends with it but
            // for the tap.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            sys::open_tap(TAP)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the thread panicked")))
    })
    .map_err(Error::io(
        "opening a tap in a new network namespace",
        "/dev/net/tun",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_between_veth_and_tap() {
        let dir = tempfile::tempdir().unwrap();
        let ns = dir.path().join("ns");
        netns::create(&ns).unwrap();
        // A veth pair inside the namespace stands for the CNI one.
        netns::in_namespace(&ns, || {
            run(&[
                "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
            ])?;
            run(&["ip", "link", "set", "eth0", "up"])?;
            run(&["ip", "link", "set", "peer0", "up"])
        })
        .unwrap();
        let (tap, mtu) = connect(&ns, "eth0").unwrap();
        assert_eq!(mtu, 1500);
        let filters = netns::in_namespace(&ns, || {
            let out = Command::new("tc")
                .args(["filter", "show", "dev", "eth0", "ingress"])
                .output()?;
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .unwrap();
        assert!(
            filters.contains("mirred") && filters.contains(TAP),
            "{filters}"
        );
        let tap_exists = || {
            netns::in_namespace(&ns, || {
                Ok(Command::new("ip")
                    .args(["link", "show", TAP])
                    .output()?
                    .status
                    .success())
            })
            .unwrap()
        };
        assert!(tap_exists());
        drop(tap);
        // Without its descriptor the tap is gone.
        assert!(!tap_exists());
        netns::remove(&ns).unwrap();
    }

    #[test]
    fn an_isolated_tap_is_in_no_namespace_but_its_own() {
        let own = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let tap = isolated().unwrap();
        // Not here: the host (this thread's namespace) has no tap0 from it.
        let here = Command::new("ip")
            .args(["link", "show", TAP])
            .output()
            .unwrap();
        assert!(!here.status.success(), "a tap0 in this namespace");
        // Yet it is a live tap (the tun driver names it in fdinfo).
        let fd = std::os::fd::AsRawFd::as_raw_fd(&tap);
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        assert!(info.contains(&format!("iff:\t{TAP}")), "{info}");
        assert_eq!(std::fs::read_link("/proc/thread-self/ns/net").unwrap(), own);
    }

    #[test]
    fn the_endpoint_is_the_addressed_interface_and_the_default_route() {
        let dir = tempfile::tempdir().unwrap();
        let ns = dir.path().join("ns");
        netns::create(&ns).unwrap();
        assert_eq!(endpoint(&ns).unwrap(), None, "only lo: no endpoint");
        netns::in_namespace(&ns, || {
            run(&[
                "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
            ])?;
            run(&[
                "ip",
                "link",
                "set",
                "eth0",
                "address",
                "02:00:00:00:00:2a",
                "up",
            ])?;
            run(&["ip", "addr", "add", "10.99.7.5/24", "dev", "eth0"])?;
            run(&["ip", "route", "add", "default", "via", "10.99.7.1"])
        })
        .unwrap();
        let e = endpoint(&ns).unwrap().expect("eth0");
        assert_eq!(
            e,
            Endpoint {
                ifname: "eth0".into(),
                mac: "02:00:00:00:00:2a".into(),
                address: "10.99.7.5".parse().unwrap(),
                prefix_len: 24,
                gateway: Some("10.99.7.1".parse().unwrap()),
            }
        );
        netns::remove(&ns).unwrap();
    }
}
