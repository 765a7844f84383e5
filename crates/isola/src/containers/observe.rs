//! `logs`, `top` and `stats`: what a container printed, which processes it
//! runs, and what it uses.

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, Utc};
use engine::monitor::log::{self, LogEntry};
use engine::units::human_bytes;
use engine::Engine;

use super::list::print_table;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow the log until the container stops.
    #[arg(short, long)]
    pub follow: bool,
    /// Show only the last N lines ("all" for everything).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show lines since a time: RFC 3339, a unix timestamp, or a duration like 10m.
    #[arg(long)]
    pub since: Option<String>,
    /// Show lines up to a time: RFC 3339, a unix timestamp, or a duration
    /// like 10m (that long ago). With -f, following ends there.
    #[arg(long)]
    pub until: Option<String>,
    /// Prefix each line with its timestamp.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show the extra attributes each line was logged with (as docker's,
    /// a list before the line; isola's log has none, so it is empty).
    #[arg(long)]
    pub details: bool,
    pub container: String,
}

#[derive(Debug, clap::Args)]
pub struct TopArgs {
    pub container: String,
    /// Options for ps (default: -o pid,user,time,cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_options: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Print one sample and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// Show all containers (default: running ones).
    #[arg(short, long)]
    pub all: bool,
    /// Output format: table (default), json, or a Go template over docker's
    /// fields (Container, ID, Name, CPUPerc, MemUsage, MemPerc, PIDs, ...).
    #[arg(long, default_value = "table")]
    pub format: String,
    pub containers: Vec<String>,
}

/// `--since`: RFC 3339, unix seconds, or a Go-style duration (`90s`, `10m`, `1h30m`).
/// A `--since`/`--until` time (`flag` names which, for the error).
pub fn parse_time(flag: &str, value: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return DateTime::from_timestamp(secs.trunc() as i64, (secs.fract() * 1e9) as u32)
            .ok_or_else(|| anyhow::anyhow!("invalid {flag} {value:?}"));
    }
    let mut total = 0f64;
    let mut num = String::new();
    for c in value.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().map_err(|_| {
            anyhow::anyhow!(
                "invalid {flag} {value:?}: expected RFC 3339, unix seconds or a duration like 10m"
            )
        })?;
        total += n * match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            _ => bail!(
                "invalid {flag} {value:?}: expected RFC 3339, unix seconds or a duration like 10m"
            ),
        };
        num.clear();
    }
    if !num.is_empty() || total == 0.0 {
        bail!("invalid {flag} {value:?}: expected RFC 3339, unix seconds or a duration like 10m");
    }
    Ok(now - chrono::TimeDelta::milliseconds((total * 1000.0) as i64))
}

fn print_entry(e: &LogEntry, timestamps: bool, details: bool) -> std::io::Result<()> {
    // docker writes the (here empty) attributes and a space before the line.
    let line = if details {
        format!(" {}", e.log)
    } else {
        e.log.clone()
    };
    let text = if timestamps {
        format!("{} {line}", log::format_time(&e.time))
    } else {
        line
    };
    if e.stream == "stderr" {
        let mut err = std::io::stderr().lock();
        err.write_all(text.as_bytes())?;
        err.flush()
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

pub fn logs(engine: &Engine, args: LogsArgs) -> anyhow::Result<u8> {
    let rec = engine.lookup(&args.container)?;
    let since = args
        .since
        .as_deref()
        .map(|s| parse_time("--since", s, Utc::now()))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| parse_time("--until", s, Utc::now()))
        .transpose()?;
    let tail: Option<usize> = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| anyhow::anyhow!("invalid --tail {n:?}: expected a number or all"))?,
        ),
    };
    let query = engine::logs::LogQuery {
        since,
        until,
        tail,
        follow: args.follow,
    };
    let mut failed = None;
    engine.logs(
        &rec,
        &query,
        &mut |e| match print_entry(e, args.timestamps, args.details) {
            Ok(()) => true,
            Err(err) => {
                failed = Some(err);
                false
            }
        },
    )?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(0),
    }
}

pub fn top(engine: &Engine, args: TopArgs) -> anyhow::Result<u8> {
    let rec = engine.lookup(&args.container)?;
    let top = engine.top(&rec, &args.ps_options)?;
    let titles: Vec<&str> = top.titles.iter().map(String::as_str).collect();
    print_table(&titles, &top.processes);
    Ok(0)
}

pub fn stats(engine: &Engine, args: StatsArgs) -> anyhow::Result<u8> {
    let recs = if args.containers.is_empty() {
        engine
            .list()?
            .into_iter()
            .filter(|r| args.all || r.state.status.is_active())
            .collect::<Vec<_>>()
    } else {
        args.containers
            .iter()
            .map(|c| engine.lookup(c))
            .collect::<Result<Vec<_>, _>>()?
    };
    let interval = Duration::from_millis(if args.no_stream { 500 } else { 1000 });
    let sample = |recs: &[engine::store::ContainerRecord]| {
        recs.iter()
            .map(|r| engine.usage(r).ok())
            .collect::<Vec<_>>()
    };
    // A column for the VM worker when any container runs in a VM.
    let vm_rows = recs
        .iter()
        .any(|r| r.config.isolation == engine::isolation::Isolation::Vm);
    let mut before = sample(&recs);
    let mut t0 = std::time::Instant::now();
    loop {
        std::thread::sleep(interval);
        let after = sample(&recs);
        let elapsed = t0.elapsed().as_nanos() as f64;
        t0 = std::time::Instant::now();
        let rows: Vec<Vec<String>> = recs
            .iter()
            .zip(before.iter().zip(after.iter()))
            .map(|(r, (b, a))| {
                let id = engine::ids::short(&r.config.id).to_string();
                match (b, a) {
                    (Some(b), Some(a)) => {
                        let cpu = a.cpu_ns.saturating_sub(b.cpu_ns) as f64 / elapsed * 100.0;
                        let mem_pct = if a.memory_limit > 0 {
                            a.memory_bytes as f64 / a.memory_limit as f64 * 100.0
                        } else {
                            0.0
                        };
                        let mut row = vec![
                            id,
                            r.config.name.clone(),
                            format!("{cpu:.2}%"),
                            format!(
                                "{} / {}",
                                human_bytes(a.memory_bytes),
                                human_bytes(a.memory_limit)
                            ),
                            format!("{mem_pct:.2}%"),
                            a.pids.to_string(),
                        ];
                        if vm_rows {
                            // VM mode: the VM worker (QEMU) itself, as the host sees it.
                            row.push(match (a.host_cpu_ns, b.host_cpu_ns, a.host_memory_bytes) {
                                (Some(ac), Some(bc), Some(mem)) => format!(
                                    "{:.2}% / {}",
                                    ac.saturating_sub(bc) as f64 / elapsed * 100.0,
                                    human_bytes(mem)
                                ),
                                _ => "--".into(),
                            });
                        }
                        row
                    }
                    _ => {
                        let mut row = vec![
                            id,
                            r.config.name.clone(),
                            "--".into(),
                            "-- / --".into(),
                            "--".into(),
                            "--".into(),
                        ];
                        if vm_rows {
                            row.push("--".into());
                        }
                        row
                    }
                }
            })
            .collect();
        let format = crate::format::Format::parse(&args.format);
        if !matches!(format, crate::format::Format::Table) {
            // docker's fields, from the row's cells.
            let objects = rows.iter().map(|row| {
                serde_json::json!({
                    "Container": row[0], "ID": row[0], "Name": row[1],
                    "CPUPerc": row[2], "MemUsage": row[3], "MemPerc": row[4],
                    "PIDs": row[5], "NetIO": "--", "BlockIO": "--",
                    "VmWorker": row.get(6).cloned().unwrap_or_default(),
                })
            });
            match &format {
                crate::format::Format::Template { template, header } => {
                    let rows: Vec<serde_json::Value> = objects.collect();
                    print!(
                        "{}",
                        crate::format::template_rows(
                            template,
                            *header,
                            &[
                                ("Container", "CONTAINER"),
                                ("CPUPerc", "CPU %"),
                                ("MemUsage", "MEM USAGE / LIMIT"),
                                ("MemPerc", "MEM %"),
                                ("NetIO", "NET I/O"),
                                ("BlockIO", "BLOCK I/O"),
                                ("PIDs", "PIDS"),
                            ],
                            rows.iter()
                        )?
                    );
                }
                _ => objects.for_each(|o| println!("{o}")),
            }
            if args.no_stream {
                return Ok(0);
            }
            before = after;
            continue;
        }
        if !args.no_stream {
            print!("\x1b[2J\x1b[H");
        }
        let mut titles = vec![
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "PIDS",
        ];
        if vm_rows {
            titles.push("VM WORKER CPU % / RSS");
        }
        print_table(&titles, &rows);
        if args.no_stream {
            return Ok(0);
        }
        before = after;
    }
}
