//! End-to-end: what a VM's guest sends the host is bounded. A VM container
//! writes output as fast as it can for a while, detached, then with an
//! attached client that stops reading; its monitor's memory stays bounded
//! throughout (the agent sends only what the host has taken, see
//! `vm::client`), its log is correct and rotated, and it stops promptly
//! even while that client holds its output up. One VM: each boot costs
//! seconds under TCG.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{eventually, Root};

/// How long the container floods its output into the log.
const FLOOD: Duration = Duration::from_secs(25);
/// How long after that an attached client reads nothing.
const STALLED: Duration = Duration::from_secs(8);

/// The monitor's resident memory may not pass this during the flood. The
/// client holds at most one output window (1 MiB) for the container's
/// stream, one frame being read (at most 4 MiB) and the pipe to the log
/// writer (64 KiB); the rest is the monitor itself (its binary, threads'
/// stacks, the allocator). Measured here: 13 to 31 MiB at its peak, the
/// same flooding and stalled. Without the bounds it grew by the rate the
/// guest outran the log writer: 1.4 GiB after 30 s of flooding.
const MONITOR_RSS_BOUND: u64 = 64 << 20;

/// Each line the container writes.
const LINE: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-+";

/// A process's resident memory, from /proc (0 once it is gone).
fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Attaches to the container's monitor (as `isola attach` does) and then
/// reads nothing: the monitor's writes to it block once its socket is full.
fn attach_and_stop_reading(container_dir: &Path) -> UnixStream {
    let dir = std::fs::File::open(container_dir).unwrap();
    // Through /proc/self/fd: the socket's path is longer than sun_path.
    UnixStream::connect(format!("/proc/self/fd/{}/monitor.sock", dir.as_raw_fd())).unwrap()
}

/// The highest resident memory of `pid` seen over `how_long`.
fn peak_rss(pid: i32, how_long: Duration) -> u64 {
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < how_long {
        peak = peak.max(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    peak
}

#[test]
fn a_vm_container_flooding_its_output_keeps_its_monitor_bounded_and_its_log_correct() {
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    if !root.vm_kernel_or_skip("VM output flood") {
        return;
    }
    let id = root.run_detached(&["--isolation=vm", "busybox", "yes", LINE]);
    let monitor: i32 = root.inspect(&id, ".State.MonitorPid").parse().unwrap();
    let dir = root.containers_dir().join(&id);
    let log = dir.join("container.log");
    eventually("the flood in the log", || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() > 0)
    });

    let flooding = peak_rss(monitor, FLOOD);
    assert_eq!(root.inspect(&id, ".State.Status"), "running");
    let stalled_client = attach_and_stop_reading(&dir);
    let stalled = peak_rss(monitor, STALLED);
    eprintln!(
        "monitor peak RSS: {} KiB flooding, {} KiB with a stalled client",
        flooding / 1024,
        stalled / 1024
    );
    for peak in [flooding, stalled] {
        assert!(
            peak < MONITOR_RSS_BOUND,
            "the monitor grew to {} MiB (bound {} MiB)",
            peak >> 20,
            MONITOR_RSS_BOUND >> 20
        );
    }

    // Stopped promptly, the stalled client still attached: the agent still
    // answers while the output is held up, and the exit gets through
    // (`yes` as the container's init ignores SIGTERM: this is the SIGKILL
    // after -t 1). Promptly means before `stop`'s last resort, killing the
    // VM 10 s after the SIGKILL, which would record a VM fault and exit
    // code 255 instead (it takes about 5 s here).
    let asked = Instant::now();
    root.ok(&["stop", "-t", "1", &id]);
    let took = asked.elapsed();
    eprintln!("stop took {took:?}");
    assert_eq!(root.inspect(&id, ".State.Status"), "exited");
    assert_eq!(root.inspect(&id, ".State.Error"), "");
    assert_eq!(root.inspect(&id, ".State.ExitCode"), "137");
    assert!(took < Duration::from_secs(20), "stop took {took:?}");
    drop(stalled_client);

    // Rotation holds: the current log within its size (plus one record)
    // and one rotated file, if it came to that.
    let max = 10 * 1024 * 1024 + 1024;
    let current = std::fs::metadata(&log).unwrap().len();
    assert!(current <= max, "container.log is {current} bytes");
    let rotated = std::fs::metadata(dir.join("container.log.1")).map_or(0, |m| m.len());
    assert!(rotated <= max, "container.log.1 is {rotated} bytes");
    assert!(!dir.join("container.log.2").exists());

    // Every line as written, in full; only the very last may be cut short
    // by the kill (a partial line is logged at the end of the stream).
    let out = root.ok(&["logs", &id]);
    let lines: Vec<&str> = out.lines().collect();
    eprintln!(
        "{} lines logged ({current} + {rotated} bytes of log)",
        lines.len()
    );
    assert!(lines.len() > 1000, "only {} lines logged", lines.len());
    let (last, full) = lines.split_last().unwrap();
    for (i, l) in full.iter().enumerate() {
        assert_eq!(*l, LINE, "line {i} of {}", lines.len());
    }
    assert!(LINE.starts_with(last), "last line {last:?}");
    root.ok(&["rm", &id]);
    root.assert_clean();
}
