//! End-to-end: bridge networking of process containers through the real
//! CNI plugins (Debian's containernetworking-plugins), driven by the real
//! `isola` binary. Published ports are fetched from the host's loopback,
//! from its own address and from an "outside" machine (a network
//! namespace the test makes, joined to the host by a veth on TEST-NET-2,
//! 198.51.100.0/24); egress goes to a server in that namespace through
//! NAT; user networks resolve names; nothing is left behind. All traffic
//! stays on this machine. Needs root.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{eventually, Root};

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn plugins_or_skip(test: &str) -> bool {
    testkit::require(
        test,
        (!Path::new("/usr/lib/cni/bridge").exists())
            .then(|| "CNI plugins missing (Debian package containernetworking-plugins)".into()),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET / from addr:port, retried briefly; the body, or None.
fn fetch(addr: Ipv4Addr, port: u16) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut c) = TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(1))
        {
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut body = String::new();
            let _ = c.read_to_string(&mut body);
            if !body.is_empty() {
                return Some(body);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The host's address on its main interface (not loopback).
fn host_address() -> Ipv4Addr {
    let text = sh("ip -o -4 route get 1.1.1.1");
    let src = text
        .split_whitespace()
        .skip_while(|w| *w != "src")
        .nth(1)
        .unwrap();
    src.parse().unwrap()
}

/// An "outside" machine: a namespace joined to the host by a veth, the host
/// at 198.51.100.1 and the outside at .2 (a third octet of its own per
/// test process, so parallel tests do not share one). Removed on drop.
struct Outside {
    ns: String,
    veth: String,
    /// The host's address on the outside link.
    host_ip: String,
    /// The outside machine's address.
    ip: String,
}

impl Outside {
    fn new() -> Outside {
        let n = std::process::id() % 200;
        let ns = format!("isola-t-out-{}", std::process::id());
        let veth = format!("vo{}", std::process::id() % 10_000_000);
        let (host_ip, ip) = (format!("198.51.{n}.1"), format!("198.51.{n}.2"));
        sh(&format!(
            "ip netns add {ns} && ip link add {veth} type veth peer name eth0 netns {ns} && \
             ip addr add {host_ip}/24 dev {veth} && ip link set {veth} up && \
             ip -n {ns} addr add {ip}/24 dev eth0 && ip -n {ns} link set eth0 up && \
             ip -n {ns} link set lo up && ip -n {ns} route add default via {host_ip}"
        ));
        Outside {
            ns,
            veth,
            host_ip,
            ip,
        }
    }

    fn path(&self) -> std::path::PathBuf {
        Path::new("/run/netns").join(&self.ns)
    }

    /// GET / from the outside machine (a thread in its namespace: Debian's
    /// static busybox wget crashes in the host's NSS set-up there).
    fn fetch(&self, addr: &str, port: u16) -> Option<String> {
        let addr: Ipv4Addr = addr.parse().unwrap();
        network::netns::in_namespace(&self.path(), || {
            let mut c = TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(3))?;
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            c.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut body = String::new();
            c.read_to_string(&mut body)?;
            Ok(body)
        })
        .ok()
    }

    /// Serves `body` to every connection on the outside machine's port,
    /// until the returned guard is dropped.
    fn serve(&self, port: u16, body: &'static str) -> Server {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listener = network::netns::in_namespace(&self.path(), || {
            let l = TcpListener::bind(("0.0.0.0", port))?;
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .unwrap();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let mut buf = [0u8; 1024];
                        let _ = c.read(&mut buf);
                        let _ = c.write_all(
                            format!(
                                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

struct Server {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// What the host holds for containers: namespaces under the root,
/// iptables lines naming a container id, address leases. (Veths are
/// counted per bridge by the tests: other tests run beside these.)
fn held(root: &Root, ids: &[String]) -> (usize, usize, usize) {
    let netns = std::fs::read_dir(root.path().join("netns"))
        .map(|d| d.count())
        .unwrap_or(0);
    let rules = sh("iptables-save")
        .lines()
        .filter(|l| ids.iter().any(|id| l.contains(id.as_str())))
        .count();
    let leases = walk_files(&root.path().join("cni/ipam"))
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.parse::<Ipv4Addr>().is_ok())
        })
        .count();
    (netns, rules, leases)
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// busybox wget of `url` to stdout, bounded by `timeout` (the wget of
/// Debian's static busybox crashes with its own -T) under a shell (PID 1
/// would not die of timeout's SIGTERM).
fn wget(url: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("timeout 5 wget -q -O - {url}"),
    ]
}

fn www(dir: &Path, text: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("index.html"), text).unwrap();
    format!("{}:/www:ro", dir.display())
}

#[test]
fn published_ports_reach_the_container_from_loopback_the_host_and_outside() {
    if !plugins_or_skip("published ports") {
        return;
    }
    let root = Root::new();
    let outside = Outside::new();
    let site = tempfile::tempdir().unwrap();
    let volume = www(site.path(), "served by isola");
    let port = free_port();
    let id = root.run_detached(&[
        "-p",
        &format!("{port}:80"),
        "-v",
        &volume,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    for addr in [Ipv4Addr::LOCALHOST, host_address()] {
        let body = fetch(addr, port).unwrap_or_else(|| panic!("nothing on {addr}:{port}"));
        assert!(body.contains("served by isola"), "{addr}: {body}");
    }
    // From the outside machine, to the host's address on its side.
    let body = outside.fetch(&outside.host_ip, port);
    assert!(
        body.as_deref()
            .is_some_and(|b| b.contains("served by isola")),
        "outside: {body:?}"
    );
    // Hairpin: the container reaches its own published port through the
    // host's address.
    let url = format!("http://{}:{port}/", host_address());
    let get = wget(&url);
    let mut exec = vec!["exec", id.as_str()];
    exec.extend(get.iter().map(String::as_str));
    let hairpin = root.ok(&exec);
    assert!(hairpin.contains("served by isola"), "{hairpin}");
    assert_eq!(
        root.ok(&["port", &id]).trim(),
        format!("80/tcp -> 0.0.0.0:{port}")
    );
    assert_eq!(
        root.ok(&["port", &id, "80"]).trim(),
        format!("0.0.0.0:{port}")
    );
    let ps = root.ok(&["ps"]);
    assert!(
        ps.contains("PORTS") && ps.contains(&format!("0.0.0.0:{port}->80/tcp")),
        "{ps}"
    );
    // On the default network (another root on this host, a test beside
    // this one, may hold the usual 10.210.0.0/16; then it is another).
    let ip: Ipv4Addr = root
        .inspect(&id, ".NetworkSettings.IPAddress")
        .parse()
        .unwrap();
    let default: serde_json::Value =
        serde_json::from_str(&root.ok(&["network", "inspect", "bridge"])).unwrap();
    let subnet: ipnet::Ipv4Net = default[0]["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(subnet.contains(&ip), "{ip} outside {subnet}");
    assert_eq!(
        root.inspect(&id, ".NetworkSettings.Gateway"),
        default[0]["IPAM"]["Config"][0]["Gateway"].as_str().unwrap()
    );
    assert_eq!(root.inspect(&id, ".HostConfig.NetworkMode"), "bridge");

    // Only loopback for a port published on 127.0.0.1.
    let port2 = free_port();
    let id2 = root.run_detached(&[
        "-p",
        &format!("127.0.0.1:{port2}:80"),
        "-v",
        &volume,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    assert!(fetch(Ipv4Addr::LOCALHOST, port2).is_some());
    assert_eq!(
        outside.fetch(&outside.host_ip, port2),
        None,
        "a 127.0.0.1-only port reached from outside"
    );

    // -P: the image's exposed ports, each on a free host port that `port`
    // reports; and -p 80 with a picked host port.
    let img = testkit::LayoutImage::new(
        "exposing",
        "latest",
        vec![testkit::busybox_layer_tar()],
        serde_json::json!({"Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}, "53/udp": {}}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("exposing.tar");
    common::layout_tar(&img, &tar);
    root.load(&tar);
    let all = root.run_detached(&[
        "-P", "-v", &volume, "exposing", "httpd", "-f", "-p", "80", "-h", "/www",
    ]);
    let listed = root.ok(&["port", &all]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("53/udp -> 0.0.0.0:"), "{listed}");
    let tcp: u16 = root
        .ok(&["port", &all, "80/tcp"])
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(fetch(Ipv4Addr::LOCALHOST, tcp).is_some_and(|b| b.contains("served by isola")));
    root.ok(&["rm", "-f", &all]);
    let id3 = root.run_detached(&[
        "-p", "80", "-v", &volume, "busybox", "httpd", "-f", "-p", "80", "-h", "/www",
    ]);
    let picked = root.ok(&["port", &id3, "80/tcp"]);
    let picked: u16 = picked.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(fetch(Ipv4Addr::LOCALHOST, picked).is_some_and(|b| b.contains("served by isola")));

    let ids = vec![id.clone(), id2.clone(), id3.clone()];
    root.ok(&["rm", "-f", &id, &id2, &id3]);
    assert_eq!(held(&root, &ids), (0, 0, 0), "left after rm");
    assert!(
        fetch(Ipv4Addr::LOCALHOST, port).is_none(),
        "port still answers after rm"
    );
    root.assert_clean();
}

#[test]
fn user_networks_resolve_names_isolate_and_egress_goes_through_nat() {
    if !plugins_or_skip("user networks") {
        return;
    }
    let root = Root::new();
    let outside = Outside::new();
    let pid = std::process::id();
    let (front, back, internal) = (
        format!("front{pid}"),
        format!("back{pid}"),
        format!("int{pid}"),
    );
    root.ok(&["network", "create", &front]);
    root.ok(&["network", "create", "--label", "tier=back", &back]);
    root.ok(&["network", "create", "--internal", &internal]);
    let ls = root.ok(&["network", "ls"]);
    assert!(ls.contains(&front) && ls.contains("isola"), "{ls}");
    // Labels are kept and filtered on (compose finds its networks so).
    let names = |filters: &[&str]| {
        let mut args = vec!["network", "ls", "--format", "json"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        let out = root.ok(&args);
        out.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["Name"].to_string())
            .map(|n| n.trim_matches('"').to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&["label=tier=back"]), [back.as_str()]);
    assert_eq!(names(&["label=tier"]), [back.as_str()]);
    assert_eq!(names(&["label=tier=front"]), Vec::<String>::new());
    assert_eq!(names(&["type=builtin"]), ["isola"]);
    assert_eq!(names(&["name=front", "name=back"]).len(), 2);
    let inspect: serde_json::Value =
        serde_json::from_str(&root.ok(&["network", "inspect", &back])).unwrap();
    assert_eq!(inspect[0]["Labels"], serde_json::json!({"tier": "back"}));
    let (code, err) = root.fails(&["network", "ls", "--filter", "colour=red"]);
    assert_eq!(code, 125, "{err}");

    let db = root.run_detached(&[
        "--name",
        &format!("db{pid}"),
        "--network",
        &front,
        "--network-alias",
        "database",
        "busybox",
        "sleep",
        "1000",
    ]);
    let ping = |net: &str, target: &str| {
        root.run(&[
            "run",
            "--rm",
            "--network",
            net,
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            target,
        ])
        .status
        .success()
    };
    assert!(ping(&front, &format!("db{pid}")), "by name");
    assert!(ping(&front, "database"), "by alias");
    let db_ip = root.inspect(&db, ".NetworkSettings.IPAddress");
    assert!(!ping(&back, &db_ip), "another network reached {db_ip}");
    assert!(
        !ping(&back, &format!("db{pid}")),
        "another network resolved the name"
    );
    assert!(
        !ping("bridge", &format!("db{pid}")),
        "the default network resolves no names"
    );
    let inspect = root.ok(&["network", "inspect", &front]);
    assert!(
        inspect.contains(&db) && inspect.contains(&db_ip),
        "{inspect}"
    );

    // Egress to a server on the outside machine, masqueraded: the outside
    // has no route back to the containers' subnet.
    let _server = outside.serve(8080, "outside world");
    let url = format!("http://{}:8080/", outside.ip);
    let get = wget(&url);
    let fetch_on = |net: &str| {
        let mut args = vec!["run", "--rm", "--network", net, "busybox"];
        args.extend(get.iter().map(String::as_str));
        root.run(&args)
    };
    let got = fetch_on(&front);
    assert!(
        String::from_utf8_lossy(&got.stdout).contains("outside world"),
        "user network: {got:?}"
    );
    let got = fetch_on("bridge");
    assert!(
        String::from_utf8_lossy(&got.stdout).contains("outside world"),
        "default network: {got:?}"
    );
    assert!(
        !fetch_on(&internal).status.success(),
        "an --internal network reached outside"
    );

    // In use: refused, naming the container.
    let (_, err) = root.fails(&["network", "rm", &front]);
    assert!(
        err.contains("in use") && err.contains(&format!("db{pid}")),
        "{err}"
    );
    root.ok(&["rm", "-f", &db]);
    root.ok(&["network", "rm", &front, &back]);
    let pruned = root.ok(&["network", "prune", "-f"]);
    assert!(pruned.contains(&internal), "{pruned}");
    for net in [&front, &back, &internal] {
        root.fails(&["network", "inspect", net]);
    }
    root.assert_clean();
}

#[test]
fn network_modes_none_host_and_container() {
    if !plugins_or_skip("network modes") {
        return;
    }
    let root = Root::new();
    let links = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["run", "--rm"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["busybox", "ip", "-o", "link"]);
        root.ok(&full)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        links(&[]),
        ["lo", "eth0"],
        "the default: a network of its own"
    );
    assert_eq!(links(&["--network", "none"]), ["lo"]);
    assert!(links(&["--network", "host"]).len() > 2);

    let web = root.run_detached(&["busybox", "sleep", "1000"]);
    let ip = root.inspect(&web, ".NetworkSettings.IPAddress");
    let shared = root.ok(&[
        "run",
        "--rm",
        "--network",
        &format!("container:{web}"),
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
    ]);
    assert!(shared.contains(&format!("{ip}/")), "{shared}");
    root.ok(&["rm", "-f", &web]);
    let (code, err) = root.fails(&[
        "run",
        "--rm",
        "--network",
        &format!("container:{web}"),
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(
        err.contains(&web[..12]) || err.contains("no such container"),
        "{err}"
    );
    root.assert_clean();
}

#[test]
fn twenty_containers_in_parallel_get_distinct_addresses_and_leave_nothing() {
    if !plugins_or_skip("parallel containers") {
        return;
    }
    let root = Root::new();
    let net = format!("par{}", std::process::id());
    root.ok(&["network", "create", &net]);

    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    root.ok(&["run", "-d", "--network", &net, "busybox", "sleep", "1000"])
                        .trim()
                        .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ips: Vec<String> = ids
        .iter()
        .map(|id| root.inspect(id, ".NetworkSettings.IPAddress"))
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "addresses: {ips:?}");
    // Every one reachable from a container on the network.
    let script: String = ips
        .iter()
        .map(|ip| format!("ping -c 1 -W 2 {ip} >/dev/null || echo unreachable {ip}; "))
        .collect();
    let out = root.ok(&[
        "run",
        "--rm",
        "--network",
        &net,
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(out.trim(), "", "{out}");
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.iter().map(String::as_str));
    root.ok(&rm);
    let after = held(&root, &ids);
    assert_eq!(after, (0, 0, 0), "namespaces, rules, leases left");
    let inspect: serde_json::Value =
        serde_json::from_str(&root.ok(&["network", "inspect", &net])).unwrap();
    let bridge = inspect[0]["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        sh(&format!("ip -o link show master {bridge}")).trim(),
        "",
        "veths left on {bridge}"
    );

    root.ok(&["network", "rm", &net]);
    root.assert_clean();
}

#[test]
fn a_killed_monitor_then_rm_leaves_nothing() {
    if !plugins_or_skip("killed monitor") {
        return;
    }
    let root = Root::new();
    let port = free_port();
    let id = root.run_detached(&[
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "sleep",
        "1000",
    ]);
    let monitor: i32 = root.inspect(&id, ".State.MonitorPid").parse().unwrap();
    let init: i32 = root.inspect(&id, ".State.Pid").parse().unwrap();
    for pid in [monitor, init] {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // Nobody is left to release the address, the ports and the veth (a
    // reboot would also take the namespace's mount and the rules with it;
    // the lease on disk would stay).
    eventually("the container is seen dead", || {
        root.inspect(&id, ".State.Status") != "running"
    });
    // The first command that saw it dead released what it held.
    assert_eq!(
        held(&root, std::slice::from_ref(&id)),
        (0, 0, 0),
        "held before rm"
    );
    assert_eq!(root.inspect(&id, ".NetworkSettings.IPAddress"), "");
    root.ok(&["rm", "-f", &id]);
    assert_eq!(held(&root, std::slice::from_ref(&id)), (0, 0, 0));
    // The port is free again for the next container.
    let again = root.run_detached(&["-p", &format!("127.0.0.1:{port}:80"), "busybox", "true"]);
    root.ok(&["rm", "-f", &again]);
    root.assert_clean();
}

#[test]
fn bad_network_input_is_one_line_and_leaves_nothing() {
    if !plugins_or_skip("bad network input") {
        return;
    }
    let root = Root::new();
    let net = format!("bad{}", std::process::id());
    root.ok(&["network", "create", "--subnet", "10.213.7.0/24", &net]);
    let one_line = |args: &[&str], says: &str| {
        let (code, err) = root.fails(args);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err} (expected {says:?})");
    };
    one_line(
        &["run", "--rm", "-p", "70000:80", "busybox", "true"],
        "70000",
    );
    one_line(
        &["run", "--rm", "-p", "80-81:90", "busybox", "true"],
        "differ in length",
    );
    one_line(
        &["run", "--rm", "--network", "nosuchnet", "busybox", "true"],
        "network nosuchnet not found",
    );
    one_line(
        &["network", "create", "--subnet", "10.213.7.128/25", "x1"],
        "overlaps network",
    );
    one_line(
        &["network", "create", "--subnet", "10.213.8.1/24", "x2"],
        "host bits",
    );
    one_line(&["network", "create", "--subnet", "banana", "x3"], "banana");
    one_line(&["network", "create", &net], "already exists");
    one_line(
        &[
            "run",
            "--rm",
            "--network",
            &net,
            "--ip",
            "10.99.0.5",
            "busybox",
            "true",
        ],
        "10.99.0.5",
    );
    one_line(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-p",
            "80",
            "busybox",
            "true",
        ],
        "-p/--publish",
    );
    one_line(
        &[
            "run",
            "--rm",
            "--isolation=vm",
            "--network",
            "host",
            "busybox",
            "true",
        ],
        "cannot be used with VM isolation",
    );

    // A port a host process holds, and one another container holds.
    let holder = TcpListener::bind("0.0.0.0:0").unwrap();
    let busy = holder.local_addr().unwrap().port();
    one_line(
        &[
            "run",
            "--rm",
            "-p",
            &format!("{busy}:80"),
            "busybox",
            "true",
        ],
        &busy.to_string(),
    );
    let port = free_port();
    let first = root.run_detached(&["-p", &format!("{port}:80"), "busybox", "sleep", "1000"]);
    one_line(
        &[
            "run",
            "--rm",
            "-p",
            &format!("{port}:80"),
            "busybox",
            "true",
        ],
        "already allocated",
    );
    // An address taken on the network.
    let a = root.run_detached(&[
        "--network",
        &net,
        "--ip",
        "10.213.7.50",
        "busybox",
        "sleep",
        "1000",
    ]);
    one_line(
        &[
            "run",
            "--rm",
            "--network",
            &net,
            "--ip",
            "10.213.7.50",
            "busybox",
            "true",
        ],
        "already in use",
    );
    // A missing plugin names the package.
    let empty = tempfile::tempdir().unwrap();
    let (code, err) = root
        .cmd(&["run", "--rm", "busybox", "true"])
        .env("ISOLA_CNI_PATH", empty.path())
        .output()
        .map(|o| {
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stderr).to_string(),
            )
        })
        .unwrap();
    assert_eq!(code, Some(125), "{err}");
    assert!(
        err.contains("containernetworking-plugins") && err.trim().lines().count() == 1,
        "{err}"
    );

    root.ok(&["rm", "-f", &first, &a]);
    // Failed starts leave their containers created (as docker's), holding nothing.
    let leftovers: Vec<String> = root
        .ok(&["ps", "-aq"])
        .lines()
        .map(str::to_string)
        .collect();
    if !leftovers.is_empty() {
        let mut rm = vec!["rm", "-f"];
        rm.extend(leftovers.iter().map(String::as_str));
        root.ok(&rm);
    }
    assert_eq!(held(&root, &leftovers), (0, 0, 0));
    root.ok(&["network", "rm", &net]);
    root.assert_clean();
}

/// VM isolation on the same networks (Kata's tcfilter model: the veth the
/// CNI chain made, a tap beside it joined by tc redirects, the guest's NIC
/// configured with the veth's MAC and address). One VM checks: a published
/// port from the host's loopback and from outside, name resolution both
/// ways with a process container, egress through NAT; then QEMU killed and
/// `rm`, with nothing left.
#[test]
fn a_vm_container_gets_the_same_networks() {
    if !plugins_or_skip("VM networking") {
        return;
    }
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    if !root.vm_kernel_or_skip("VM networking") {
        return;
    }
    // VMs with a NIC start from templates too (the default).
    let out = root.cmd(&["info", "--format", "json"]).output().unwrap();
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let template = info["Vm"]["Template"].as_str().unwrap_or_default();
    assert!(template.starts_with("on:"), "{template}");
    let outside = Outside::new();
    let _server = outside.serve(8081, "outside world");
    let pid = std::process::id();
    let net = format!("mix{pid}");
    root.ok(&["network", "create", &net]);
    let site = tempfile::tempdir().unwrap();
    let volume = www(site.path(), "served from a VM");
    let port = free_port();
    let vm = root.run_detached(&[
        "--name",
        &format!("vmweb{pid}"),
        "--isolation=vm",
        "--network",
        &net,
        "--network-alias",
        "web",
        "-p",
        &format!("{port}:80"),
        "-v",
        &volume,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    assert_eq!(root.inspect(&vm, ".Isolation"), "vm");
    for addr in [Ipv4Addr::LOCALHOST, host_address()] {
        let body = fetch(addr, port).unwrap_or_else(|| panic!("nothing on {addr}:{port}"));
        assert!(body.contains("served from a VM"), "{addr}: {body}");
    }
    let body = outside.fetch(&outside.host_ip, port);
    assert!(
        body.as_deref()
            .is_some_and(|b| b.contains("served from a VM")),
        "outside: {body:?}"
    );
    // A process container on the network finds the VM by name and alias...
    let get = wget("http://web/");
    let mut args = vec!["run", "--rm", "--network", net.as_str(), "busybox"];
    args.extend(get.iter().map(String::as_str));
    assert!(root.ok(&args).contains("served from a VM"));
    let proc_name = format!("peer{pid}");
    let peer = root.run_detached(&[
        "--name",
        &proc_name,
        "--network",
        &net,
        "busybox",
        "sleep",
        "1000",
    ]);
    // ...and the VM finds it, and reaches the outside through NAT.
    let ping = root.run(&["exec", &vm, "ping", "-c", "1", "-W", "3", &proc_name]);
    assert!(ping.status.success(), "{ping:?}");
    let url = format!("http://{}:8081/", outside.ip);
    let get = wget(&url);
    let mut args = vec!["exec", vm.as_str()];
    args.extend(get.iter().map(String::as_str));
    assert!(root.ok(&args).contains("outside world"));
    let ip = root.inspect(&vm, ".NetworkSettings.IPAddress");
    let guest = root.ok(&["exec", &vm, "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(guest.contains(&format!("{ip}/")), "{guest}");
    assert_eq!(
        root.inspect(&vm, ".NetworkSettings.MacAddress"),
        root.ok(&["exec", &vm, "cat", "/sys/class/net/eth0/address"])
            .trim()
    );

    // A second VM of the same shape starts from the template the first
    // one's start made (or found): its machine comes up with the template's
    // NIC and MAC, which the agent replaces with the container's. A booted
    // VM's NIC has the container's MAC from its device (addr_assign_type 0,
    // permanent); only a restored one has it set (3, NET_ADDR_SET).
    let port2 = free_port();
    let vm2 = root.run_detached(&[
        "--name",
        &format!("vmweb2{pid}"),
        "--isolation=vm",
        "--network",
        &net,
        "-p",
        &format!("{port2}:80"),
        "-v",
        &volume,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    for id in [&vm, &vm2] {
        let set = root.ok(&["exec", id, "cat", "/sys/class/net/eth0/addr_assign_type"]);
        assert_eq!(set.trim(), "3", "{id}: not started from a template");
        assert_eq!(
            root.inspect(id, ".NetworkSettings.MacAddress"),
            root.ok(&["exec", id, "cat", "/sys/class/net/eth0/address"])
                .trim()
        );
    }
    assert_ne!(
        root.inspect(&vm, ".NetworkSettings.MacAddress"),
        root.inspect(&vm2, ".NetworkSettings.MacAddress")
    );
    // Frames for its own MAC reach it (QEMU's receive filter follows the
    // guest's new address), from the host and from the first VM.
    let body = fetch(Ipv4Addr::LOCALHOST, port2).unwrap_or_else(|| panic!("nothing on :{port2}"));
    assert!(body.contains("served from a VM"), "{body}");
    let ip2 = root.inspect(&vm2, ".NetworkSettings.IPAddress");
    let get = wget(&format!("http://{ip2}/"));
    let mut args = vec!["exec", vm.as_str()];
    args.extend(get.iter().map(String::as_str));
    assert!(root.ok(&args).contains("served from a VM"));
    root.ok(&["rm", "-f", &vm2]);

    // QEMU killed under it, then rm: nothing left.
    let qemu: i32 = root.inspect(&vm, ".State.Pid").parse().unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(qemu),
        nix::sys::signal::Signal::SIGKILL,
    );
    eventually("the VM container is seen exited", || {
        root.inspect(&vm, ".State.Status") == "exited"
    });
    root.ok(&["rm", "-f", &vm, &peer]);
    assert_eq!(held(&root, &[vm.clone(), vm2, peer.clone()]), (0, 0, 0));
    assert!(
        fetch(Ipv4Addr::LOCALHOST, port).is_none(),
        "the port still answers"
    );
    root.ok(&["network", "rm", &net]);
    root.assert_clean();
}

#[test]
fn network_connect_and_disconnect_a_running_container() {
    if !plugins_or_skip("network connect") {
        return;
    }
    let root = Root::new();
    let pid = std::process::id();
    let (n1, n2) = (format!("one{pid}"), format!("two{pid}"));
    root.ok(&["network", "create", &n1]);
    root.ok(&["network", "create", &n2]);
    let (a, b) = (format!("ca{pid}"), format!("cb{pid}"));
    root.run_detached(&["--name", &a, "--network", &n1, "busybox", "sleep", "1000"]);
    root.run_detached(&["--name", &b, "--network", &n2, "busybox", "sleep", "1000"]);
    let reaches = || {
        root.run(&["exec", &b, "ping", "-c", "1", "-W", "2", &a])
            .status
            .success()
    };
    assert!(!reaches(), "{b} reached {a} before connect");
    root.ok(&["network", "connect", &n2, &a]);
    let links = root.ok(&["exec", &a, "ip", "-o", "-4", "addr"]);
    assert!(links.contains("eth0") && links.contains("eth1"), "{links}");
    assert!(reaches(), "{b} cannot reach {a} after connect");
    let networks = root.inspect(&a, "json .NetworkSettings.Networks");
    assert!(
        networks.contains(&n1) && networks.contains(&n2),
        "{networks}"
    );
    let (_, err) = root.fails(&["network", "connect", &n2, &a]);
    assert!(err.contains("already connected"), "{err}");
    let (_, err) = root.fails(&["network", "disconnect", &n1, &a]);
    assert!(err.contains("created on"), "{err}");
    let (_, err) = root.fails(&["network", "rm", &n2]);
    assert!(err.contains(&a) && err.contains(&b), "{err}");

    // The connection is kept across a restart.
    root.ok(&["stop", "-t", "0", &a]);
    root.ok(&["start", &a]);
    assert!(root
        .ok(&["exec", &a, "ip", "-o", "-4", "addr"])
        .contains("eth1"));
    assert!(reaches(), "{b} cannot reach {a} after a restart");

    root.ok(&["network", "disconnect", &n2, &a]);
    let links = root.ok(&["exec", &a, "ip", "-o", "-4", "addr"]);
    assert!(!links.contains("eth1"), "{links}");
    assert!(!reaches(), "{b} still reaches {a} after disconnect");
    let (_, err) = root.fails(&["network", "disconnect", &n2, &a]);
    assert!(err.contains("not connected"), "{err}");
    let ids = vec![root.inspect(&a, ".Id"), root.inspect(&b, ".Id")];
    root.ok(&["rm", "-f", &a, &b]);
    assert_eq!(held(&root, &ids), (0, 0, 0));
    root.ok(&["network", "rm", &n1, &n2]);
    root.assert_clean();
}

#[test]
fn address_mac_dns_and_hosts_flags_reach_the_container() {
    if !plugins_or_skip("network flags") {
        return;
    }
    let root = Root::new();
    let net = format!("flags{}", std::process::id());
    root.ok(&["network", "create", "--subnet", "10.213.99.0/24", &net]);
    let out = root.ok(&[
        "run",
        "--rm",
        "--network",
        &net,
        "--ip",
        "10.213.99.77",
        "--mac-address",
        "02:42:0a:d5:63:4d",
        "--hostname",
        "web1",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.test",
        "--dns-option",
        "ndots:3",
        "--add-host",
        "db.local:192.0.2.10",
        "--add-host",
        "gw:host-gateway",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; cat /sys/class/net/eth0/address; hostname; cat /etc/resolv.conf /etc/hosts",
    ]);
    assert!(out.contains("10.213.99.77/24"), "{out}");
    assert!(out.contains("02:42:0a:d5:63:4d"), "{out}");
    assert!(out.lines().any(|l| l == "web1"), "{out}");
    assert!(out.contains("nameserver 192.0.2.53"), "{out}");
    assert!(out.contains("search example.test"), "{out}");
    assert!(out.contains("options ndots:3"), "{out}");
    assert!(out.contains("192.0.2.10\tdb.local"), "{out}");
    assert!(
        out.contains("10.213.99.1\tgw"),
        "host-gateway is the network's gateway: {out}"
    );
    assert!(
        out.contains("10.213.99.77\t"),
        "its own name and address: {out}"
    );
    root.ok(&["network", "rm", &net]);
    root.assert_clean();
}
