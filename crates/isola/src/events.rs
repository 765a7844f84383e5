//! `isola events`: the engine's event log, printed as docker prints it (one
//! line an event, or JSON), past events with `--since`/`--until`, then
//! following until `--until` or until interrupted.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::Args;
use engine::events::{Event, EventFilter, EventLog, Query};

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Show events since this time (a duration like 10m, a Unix timestamp, or RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Stop at this time (same forms); without it, follow until interrupted.
    #[arg(long)]
    pub until: Option<String>,
    /// Filter: type, event, container, image, network, volume, label (key=value, repeatable).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// `json` (or `{{json .}}`): one JSON object a line; or a Go template
    /// over the event (`{{.Action}} {{.Actor.Attributes.name}}`).
    #[arg(long)]
    pub format: Option<String>,
}

/// How often a follower looks for new events: each look is one stat and
/// one read of a small file; 100 ms is below what a person at a terminal
/// notices. (Not inotify: the writers are other processes, the file
/// rotates, and a poll handles both with no extra dependency.)
const POLL: Duration = Duration::from_millis(100);

/// docker's line: `2026-12-02T17:00:00.000000000Z container start <id> (image=busybox, name=web)`.
pub fn line(ev: &Event) -> String {
    use chrono::TimeZone;
    let secs = ev.time_nano.div_euclid(1_000_000_000);
    let nanos = ev.time_nano.rem_euclid(1_000_000_000) as u32;
    let time = chrono::Local
        .timestamp_opt(secs, nanos)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_default();
    let mut out = format!("{time} {} {} {}", ev.kind.as_str(), ev.action, ev.actor.id);
    if !ev.actor.attributes.is_empty() {
        let attrs: Vec<String> = ev
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(" ({})", attrs.join(", ")));
    }
    out
}

pub fn run(root: &Path, args: EventsArgs) -> anyhow::Result<u8> {
    // docker's line by default; json, or a Go template over the event.
    let format = args.format.as_deref().map(crate::format::Format::parse);
    let now = SystemTime::now();
    let time = |v: &Option<String>, flag: &str| {
        v.as_deref()
            .map(|v| engine::events::parse_time(v, now))
            .transpose()
            .with_context(|| format!("--{flag}"))
    };
    let mut pairs = Vec::new();
    for f in &args.filter {
        match f.split_once('=') {
            Some((k, v)) => pairs.push((k, v)),
            None => bail!("bad format of filter (expected name=value): {f}"),
        }
    }
    let query = Query {
        since: time(&args.since, "since")?,
        until: time(&args.until, "until")?,
        filter: EventFilter::parse(pairs)?,
    };
    let engine = engine::Engine::open(root)?;
    let mut sub = EventLog::open(engine.root()).subscribe(query);
    let mut out = io::stdout().lock();
    loop {
        let last = sub.ended();
        for ev in sub.poll()? {
            let text = match &format {
                None | Some(crate::format::Format::Table) => line(&ev),
                Some(crate::format::Format::Json) => serde_json::to_string(&ev)?,
                Some(crate::format::Format::Template { template, .. }) => {
                    crate::format::render(template, &serde_json::to_value(&ev)?)?
                }
            };
            if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
                // The reader went away (`isola events | head`).
                return Ok(0);
            }
        }
        if last {
            return Ok(0);
        }
        std::thread::sleep(sub.remaining().map_or(POLL, |r| r.min(POLL)));
    }
}
