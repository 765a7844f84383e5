//! The real CNI plugins (Debian's containernetworking-plugins) through
//! isola's chain: a namespace gets an address on a bridge, a published
//! port reaches a server inside it from the host, and DEL leaves no veth,
//! iptables rule or lease. Needs root.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;

use network::cni::{AttachRequest, DEBIAN_PLUGIN_DIR};
use network::{netns, Cni, NetworkSpec, PortMapping, Protocol};

fn iptables_save() -> String {
    let out = Command::new("iptables-save").output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

fn in_ns(ns: &Path, args: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn add_gives_an_address_and_a_published_port_del_leaves_nothing() {
    if !testkit::require(
        "CNI test",
        (!Path::new(DEBIAN_PLUGIN_DIR).join("bridge").exists())
            .then(|| "CNI plugins missing (Debian package containernetworking-plugins)".into()),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let id = format!("cnitest{pid}");
    let bridge = format!("isolat{}", pid % 100_000);
    // A subnet of this run's own, so that no other run routes the same.
    let third = (pid % 250) as u8;
    let spec = NetworkSpec {
        name: format!("n{id}"),
        bridge: bridge.clone(),
        subnet: format!("10.212.{third}.0/24").parse().unwrap(),
        gateway: Ipv4Addr::new(10, 212, third, 1),
        ip_range: None,
        internal: false,
        mtu: None,
    };
    let conflist = spec.conflist(&dir.path().join("ipam"));
    let cni = Cni::new(DEBIAN_PLUGIN_DIR, dir.path().join("cache"));
    let ns = dir.path().join("ns");
    netns::create(&ns).unwrap();

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ports = [PortMapping {
        host_ip: None,
        host_port: port,
        container_port: 8080,
        protocol: Protocol::Tcp,
    }];
    let a = cni
        .add(
            &conflist,
            &AttachRequest {
                container_id: &id,
                netns: &ns,
                ifname: "eth0",
                ports: &ports,
                ip: Some(Ipv4Addr::new(10, 212, third, 9)),
                mac: Some("02:42:0a:d4:07:09"),
            },
        )
        .unwrap();
    let _cleanup = Cleanup {
        cni: cni.clone(),
        conflist: conflist.clone(),
        id: id.clone(),
        ns: ns.clone(),
        bridge: bridge.clone(),
    };
    assert_eq!(a.ip, Ipv4Addr::new(10, 212, third, 9));
    assert_eq!(a.gateway, Some(Ipv4Addr::new(10, 212, third, 1)));
    assert_eq!(a.mac, "02:42:0a:d4:07:09");
    let addr =
        String::from_utf8(in_ns(&ns, &["ip", "-o", "-4", "addr", "show", "eth0"]).stdout).unwrap();
    assert!(addr.contains(&format!("10.212.{third}.9/24")), "{addr}");

    // A server in the namespace answers on the published port, through
    // the host's own address (the portmap plugin's DNAT).
    let server = std::thread::spawn({
        let ns = ns.clone();
        move || {
            netns::in_namespace(&ns, || {
                let l = TcpListener::bind("0.0.0.0:8080")?;
                l.set_nonblocking(true)?;
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while std::time::Instant::now() < deadline {
                    if let Ok((mut c, _)) = l.accept() {
                        c.set_nonblocking(false)?;
                        c.write_all(b"hello from the namespace")?;
                        return Ok(());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Ok(())
            })
            .unwrap()
        }
    });
    let host_ip = {
        let out = Command::new("ip")
            .args(["-o", "-4", "route", "get", "1.1.1.1"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let src = text
            .split_whitespace()
            .skip_while(|w| *w != "src")
            .nth(1)
            .unwrap()
            .to_string();
        src.parse::<Ipv4Addr>().unwrap()
    };
    let mut got = String::new();
    for _ in 0..50 {
        if let Ok(mut c) = TcpStream::connect((host_ip, port)) {
            c.read_to_string(&mut got).unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.join().unwrap();
    assert_eq!(got, "hello from the namespace");

    cni.del(&conflist, &id, Some(&ns), "eth0").unwrap();
    netns::remove(&ns).unwrap();
    // The bridge stays (it belongs to the network, not the container), with
    // no port left on it. (Only this bridge: tests beside this one make
    // veths of their own on the host.)
    let ports = Command::new("ip")
        .args(["-o", "link", "show", "master", &bridge])
        .output()
        .unwrap();
    let ports = String::from_utf8(ports.stdout).unwrap();
    assert_eq!(ports.trim(), "", "veths left on {bridge}");
    let rules = iptables_save();
    assert!(
        !rules.contains(&id) && !rules.contains("10.212.7.9"),
        "rules left:\n{rules}"
    );
    let leases: Vec<_> = std::fs::read_dir(dir.path().join("ipam").join(&spec.name))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leases
            .iter()
            .all(|l| !l.to_string_lossy().starts_with("10.")),
        "leases left: {leases:?}"
    );
}

/// Deletes what the test made even when an assertion fails half-way.
struct Cleanup {
    cni: Cni,
    conflist: serde_json::Value,
    id: String,
    ns: std::path::PathBuf,
    bridge: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self
            .cni
            .del(&self.conflist, &self.id, Some(&self.ns), "eth0");
        let _ = netns::remove(&self.ns);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}
