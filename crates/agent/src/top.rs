//! top: what the guest's /proc and cgroups say about a container's
//! processes and resources, for the Top and Stats calls. Read-only.

use std::fs;

use proto::{ContainerStats, ProcessInfo};

/// `pids` described from /proc; a process that exited meanwhile is skipped.
pub fn describe(pids: &[i32]) -> Vec<ProcessInfo> {
    pids.iter().filter_map(|&pid| process_info(pid)).collect()
}

fn process_info(pid: i32) -> Option<ProcessInfo> {
    let dir = format!("/proc/{pid}");
    let stat = fs::read_to_string(format!("{dir}/stat")).ok()?;
    // The comm is in parentheses and may hold spaces: split after the last ')'.
    let close = stat.rfind(')')?;
    let comm = stat.get(stat.find('(')? + 1..close)?.to_string();
    let ppid = stat[close + 1..].split_whitespace().nth(1)?.parse().ok()?;
    let status = fs::read_to_string(format!("{dir}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or(0);
    let cmdline = fs::read(format!("{dir}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let command = if args.is_empty() {
        format!("[{comm}]")
    } else {
        args.join(" ")
    };
    Some(ProcessInfo {
        pid,
        ppid,
        uid,
        command,
    })
}

/// Every process in the guest but the agent (PID 1) and kernel threads: used
/// when the container's cgroup cannot be read.
pub fn all_user_pids() -> Vec<i32> {
    let mut pids: Vec<i32> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&pid: &i32| pid != 1)
        .filter(|pid| {
            // Kernel threads have an empty cmdline.
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Cgroup figures plus the guest's memory totals.
pub fn stats(cgroup: Option<runtime::cgroups::Stats>) -> ContainerStats {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> u64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    let cg = cgroup.unwrap_or_default();
    ContainerStats {
        cpu_usage_ns: cg.cpu_usage_ns,
        memory_usage_bytes: cg.memory_usage_bytes,
        memory_limit_bytes: cg.memory_limit_bytes,
        pids_current: cg.pids_current,
        guest_memory_total_bytes: field("MemTotal:"),
        guest_memory_available_bytes: field("MemAvailable:"),
    }
}
