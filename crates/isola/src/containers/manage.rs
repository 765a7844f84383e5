//! `wait`, `stop`, `kill`, `restart`, `pause`/`unpause`, `rm`, `rename` and
//! `container prune`. Commands on several containers go on past a failure,
//! print each error on its own line and exit 1, like docker.

use std::time::Duration;

use anyhow::bail;
use engine::Engine;

use super::run::chain;

#[derive(Debug, clap::Args)]
pub struct RefsArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL (default: the
    /// container's --stop-timeout, else 10).
    #[arg(short = 't', long = "time", alias = "timeout")]
    pub time: Option<u64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal: name (KILL, SIGTERM) or number.
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Kill and remove running containers.
    #[arg(short, long)]
    pub force: bool,
    /// Remove the container's anonymous volumes too (`-v /path`, the image's VOLUMEs).
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Runs `op` on each reference; prints the reference on success, the error
/// on failure; exit code 1 if any failed.
fn each(
    refs: &[String],
    print: bool,
    mut op: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<u8> {
    let mut failed = false;
    for r in refs {
        match op(r) {
            Ok(()) if print => println!("{r}"),
            Ok(()) => {}
            Err(e) => {
                eprintln!("isola: {}", chain(&e));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// Parses a signal name or number.
pub fn parse_signal(s: &str) -> anyhow::Result<i32> {
    Ok(engine::units::parse_signal(s)?)
}

/// The exit code the monitor of a running container reports. `None` if the
/// monitor cannot be reached or ends without one.
fn exit_from_monitor(engine: &Engine, rec: &engine::store::ContainerRecord) -> Option<i32> {
    let mut stream = engine.attach(rec).ok()?;
    while let Ok(Some(event)) = stream.next_event() {
        if let engine::attach::AttachEvent::Exit(code) = event {
            return Some(code);
        }
    }
    None
}

pub fn wait(engine: &Engine, args: RefsArgs) -> anyhow::Result<u8> {
    each(&args.containers, false, |r| {
        let rec = engine.lookup(r)?;
        let id = rec.config.id.clone();
        // A running container's monitor tells the exit code even when --rm
        // removes the record right after.
        if rec.state.status == engine::state::Status::Running {
            if let Some(code) = exit_from_monitor(engine, &rec) {
                println!("{code}");
                return Ok(());
            }
        }
        loop {
            match engine.wait_inactive(&id, None)? {
                Some(rec) if rec.state.status == engine::state::Status::Created => {
                    // Not started yet: docker waits for it to run and exit.
                    std::thread::sleep(Duration::from_millis(50));
                }
                Some(rec) => {
                    println!("{}", rec.state.exit_code.unwrap_or(0));
                    return Ok(());
                }
                None => bail!("container {r} was removed while waiting"),
            }
        }
    })
}

pub fn stop(engine: &Engine, args: StopArgs) -> anyhow::Result<u8> {
    each(&args.containers, true, |r| {
        let rec = engine.lookup(r)?;
        engine.stop(&rec, args.time.map(Duration::from_secs))?;
        Ok(())
    })
}

pub fn kill(engine: &Engine, args: KillArgs) -> anyhow::Result<u8> {
    let sig = parse_signal(&args.signal)?;
    each(&args.containers, true, |r| {
        let rec = engine.lookup(r)?;
        engine.kill(&rec, sig)?;
        Ok(())
    })
}

pub fn restart(engine: &Engine, args: StopArgs) -> anyhow::Result<u8> {
    each(&args.containers, true, |r| {
        let rec = engine.lookup(r)?;
        engine.restart(&rec, args.time.map(Duration::from_secs), |rec| {
            engine.start(rec, false, None)?.report()?;
            anyhow::Ok(())
        })
    })
}

pub fn pause(engine: &Engine, args: RefsArgs, pause: bool) -> anyhow::Result<u8> {
    each(&args.containers, true, |r| {
        let rec = engine.lookup(r)?;
        if pause {
            engine.pause(&rec)?;
        } else {
            engine.unpause(&rec)?;
        }
        Ok(())
    })
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Memory limit (e.g. 64m, 1g; at least 6m).
    #[arg(short = 'm', long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Number of CPUs (e.g. 0.5).
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// Maximum number of processes (0 or -1: unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Memory plus swap (e.g. 1g); -1 for unlimited swap.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Relative CPU weight (1024 by default).
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period (-1: no limit).
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds (1000 to 1000000).
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// Restart policy: no, always, unless-stopped, on-failure[:max-retries].
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn update(engine: &Engine, args: UpdateArgs) -> anyhow::Result<u8> {
    use engine::units;
    let host_cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let change = engine::LimitsUpdate {
        memory: args
            .memory
            .as_deref()
            .map(units::parse_memory)
            .transpose()?,
        cpu_quota: args
            .cpus
            .as_deref()
            .map(|c| units::parse_cpus(c, host_cpus))
            .transpose()?,
        pids_limit: args
            .pids_limit
            .as_deref()
            .map(units::parse_pids_limit)
            .transpose()?,
        memory_swap: args
            .memory_swap
            .as_deref()
            .map(units::parse_memory_swap)
            .transpose()?,
        // docker's 0: leave it as it is.
        cpu_shares: args.cpu_shares.filter(|s| *s != 0),
        cfs_quota: args.cpu_quota.filter(|q| *q != 0),
        cfs_period: args.cpu_period.filter(|p| *p != 0),
        restart: args
            .restart
            .as_deref()
            .map(str::parse::<units::RestartPolicy>)
            .transpose()?,
    };
    if change.is_empty() {
        bail!("you must provide one or more flags when using this command (--memory, --memory-swap, --cpus, --cpu-shares, --cpu-quota, --cpu-period, --pids-limit, --restart)");
    }
    each(&args.containers, true, |r| {
        let rec = engine.lookup(r)?;
        engine.update(&rec, &change)?;
        Ok(())
    })
}

pub fn rm(engine: &Engine, args: RmArgs) -> anyhow::Result<u8> {
    each(&args.containers, true, |r| {
        let rec = engine.lookup(r)?;
        if args.volumes {
            engine.remove_with_volumes(&rec, args.force)?;
        } else {
            engine.remove(&rec, args.force)?;
        }
        Ok(())
    })
}

pub fn rename(engine: &Engine, container: &str, new_name: &str) -> anyhow::Result<u8> {
    let rec = engine.lookup(container)?;
    engine.rename(&rec, new_name)?;
    Ok(0)
}

pub fn prune(engine: &Engine) -> anyhow::Result<u8> {
    let removed = engine.prune()?;
    if !removed.is_empty() {
        println!("Deleted Containers:");
        for id in &removed {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed containers: {}", removed.len());
    Ok(0)
}
