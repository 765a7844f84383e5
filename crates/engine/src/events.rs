//! events: the engine's event log, docker's `events` (container, image,
//! network and volume lifecycle). It owns `<root>/events.jsonl`: one JSON
//! object a line in docker's event shape, appended by whichever process
//! does the action (the CLI, a container's monitor, the API service), and
//! rotated to `events.jsonl.1` past a size bound, so the log is durable
//! (events survive the service, unlike dockerd's in-memory ring) and
//! bounded. It reads the log back with docker's `since`/`until` and
//! filters, and follows it. It must never fail the action it records:
//! [`emit`] logs a failed append and goes on.
//!
//! Concurrency: each event is one `write(2)` of a whole line on a file
//! opened with `O_APPEND`, so lines from several processes never interleave
//! (the kernel serialises appends to a regular file). Readers take only
//! complete lines, so a line being written is read on the next poll.
//! Rotation is a rename under a lock file, done by the writer that pushed
//! the file past the bound; a writer that still holds the old file appends
//! to `events.jsonl.1`, where readers look too.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::filters::LabelFilter;

/// The log's file under the root.
pub const FILE: &str = "events.jsonl";
/// Past this size the log is rotated: about 10 000 events, twice what
/// docker's in-memory buffer (256 events) keeps, across two files.
pub const DEFAULT_MAX_SIZE: u64 = 2 * 1024 * 1024;
/// A line longer than this is not an event of ours (a container's labels
/// are bounded well below it); skipped, so a reader's memory stays bounded.
const MAX_LINE: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding an event")]
    Encode(#[source] serde_json::Error),
    #[error("invalid filter {key:?} for events (expected one of type, event, container, image, network, volume, label, scope, daemon)")]
    UnknownFilter { key: String },
    #[error("invalid value {value:?} for filter {key:?} (expected one of {expected})")]
    BadFilterValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("invalid time {value:?}: expected a duration (10m, 1h30m), a Unix timestamp (1700000000.5) or an RFC 3339 date (2006-01-02T15:04:05Z)")]
    BadTime { value: String },
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Container,
    Image,
    Network,
    Volume,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Container => "container",
            EventType::Image => "image",
            EventType::Network => "network",
            EventType::Volume => "volume",
        }
    }
}

/// The thing an event is about: its id and what docker attaches to it
/// (`name`, `image`, `exitCode`, `signal`, the container's labels ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

/// One event, as docker's `events.Message` (with its legacy `status`,
/// `id`, `from` for containers and images).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub kind: EventType,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Event {
    /// An event of now.
    pub fn new(
        kind: EventType,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) -> Event {
        let time_nano = now_nanos();
        let legacy = matches!(kind, EventType::Container | EventType::Image);
        Event {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: match kind {
                EventType::Container => attributes.get("image").cloned(),
                _ => None,
            },
            kind,
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes,
            },
            scope: "local".into(),
            time: time_nano.div_euclid(1_000_000_000),
            time_nano,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> EventError + 'a {
    move |source| EventError::Io {
        op,
        path: path.into(),
        source,
    }
}

/// The event log of one root.
#[derive(Debug, Clone)]
pub struct EventLog {
    path: PathBuf,
    max_size: u64,
}

impl EventLog {
    pub fn open(root: &Path) -> EventLog {
        EventLog::with_max_size(root, DEFAULT_MAX_SIZE)
    }

    pub fn with_max_size(root: &Path, max_size: u64) -> EventLog {
        EventLog {
            path: root.join(FILE),
            max_size,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotated(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        p.into()
    }

    /// Appends `event` as one line (one write), then rotates the log if
    /// this line took it past the bound.
    pub fn append(&self, event: &Event) -> Result<(), EventError> {
        let mut line = serde_json::to_vec(event).map_err(EventError::Encode)?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(io_err("opening", &self.path))?;
        // One write(2): `write_all` could split a short write into two
        // appends that another writer's line might come between.
        let n = f.write(&line).map_err(io_err("appending to", &self.path))?;
        if n != line.len() {
            return Err(io_err("appending to", &self.path)(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "short write",
            )));
        }
        let meta = f.metadata().map_err(io_err("reading", &self.path))?;
        if meta.len() > self.max_size {
            self.rotate(&meta)?;
        }
        Ok(())
    }

    /// Renames the full log to `.1` (replacing the older one), unless
    /// another writer rotated it first.
    fn rotate(&self, ours: &std::fs::Metadata) -> Result<(), EventError> {
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err("opening", &lock_path))?;
        lock.lock().map_err(io_err("locking", &lock_path))?;
        match std::fs::metadata(&self.path) {
            Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {
                std::fs::rename(&self.path, self.rotated())
                    .map_err(io_err("rotating", &self.path))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A reader of the events `query` asks for: the past ones it covers
    /// first, then (on later polls) new ones.
    pub fn subscribe(&self, query: Query) -> Subscription {
        Subscription {
            log: self.clone(),
            history: query.since.is_some() || query.until.is_some(),
            query,
            current: None,
            started: false,
        }
    }
}

/// Appends an event to the log under `root`; a failure is logged, never
/// returned: an event lost must not fail the container's stop.
pub fn emit(root: &Path, kind: EventType, action: &str, id: &str, attrs: BTreeMap<String, String>) {
    let event = Event::new(kind, action, id, attrs);
    if let Err(e) = EventLog::open(root).append(&event) {
        tracing::warn!(
            "recording the {} {action} event of {id}: {}",
            kind.as_str(),
            runtime::error_chain(&e)
        );
    }
}

/// The attributes of a container's events: its name, image and labels (as
/// docker merges them), and `extra`.
pub fn container_attributes(
    config: &crate::state::ContainerConfig,
    extra: &[(&str, String)],
) -> BTreeMap<String, String> {
    let mut attrs = config.labels.clone();
    attrs.insert("name".into(), config.name.clone());
    attrs.insert("image".into(), config.image.clone());
    for (k, v) in extra {
        attrs.insert((*k).into(), v.clone());
    }
    attrs
}

/// Records a container event.
pub fn container(
    root: &Path,
    config: &crate::state::ContainerConfig,
    action: &str,
    extra: &[(&str, String)],
) {
    emit(
        root,
        EventType::Container,
        action,
        &config.id,
        container_attributes(config, extra),
    );
}

/// Records an event of type `kind` with `attrs`.
pub fn simple(root: &Path, kind: EventType, action: &str, id: &str, attrs: &[(&str, String)]) {
    emit(
        root,
        kind,
        action,
        id,
        attrs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect(),
    );
}

/// A network event about container `container` (connect, disconnect).
pub fn network(root: &Path, network: &str, action: &str, container: &str) {
    let id = crate::networks::Networks::open(root)
        .and_then(|n| n.get(network))
        .map_or_else(|_| network.to_string(), |n| n.id);
    let mut attrs = vec![("name", network.to_string()), ("type", "bridge".into())];
    if !container.is_empty() {
        attrs.push(("container", container.to_string()));
    }
    simple(root, EventType::Network, action, &id, &attrs);
}

/// `rename`: the new name, and the old one as `oldName` (docker's).
pub fn renamed(root: &Path, config: &crate::state::ContainerConfig, new_name: &str) {
    let mut attrs = container_attributes(config, &[("oldName", config.name.clone())]);
    attrs.insert("name".into(), new_name.into());
    emit(root, EventType::Container, "rename", &config.id, attrs);
}

/// An exec event; docker's action names the command: `exec_start: sh -c x`.
pub fn exec(
    root: &Path,
    config: &crate::state::ContainerConfig,
    action: &str,
    args: &[String],
    extra: &[(&str, String)],
) {
    let action = format!("{action}: {}", args.join(" "));
    container(root, config, &action, extra);
}

/// Records `exec_start` for a process just started, and `exec_die` (with
/// its exit code) when its waiter returns.
pub(crate) fn track_exec(
    root: &Path,
    config: &crate::state::ContainerConfig,
    args: &[String],
    mut executed: crate::backend::ExecutedProcess,
) -> crate::backend::ExecutedProcess {
    exec(root, config, "exec_start", args, &[]);
    let wait = executed.wait;
    let (root, config, args) = (root.to_path_buf(), config.clone(), args.to_vec());
    executed.wait = Box::new(move || {
        let code = wait();
        if let Ok(c) = &code {
            exec(
                &root,
                &config,
                "exec_die",
                &args,
                &[("exitCode", c.to_string())],
            );
        }
        code
    });
    executed
}

/// `network connect`/`disconnect` of a container on each network it is on.
pub fn container_networks(root: &Path, config: &crate::state::ContainerConfig, action: &str) {
    let names = config.network.network().into_iter().chain(
        config
            .network_options
            .extra_networks
            .iter()
            .map(String::as_str),
    );
    for name in names {
        network(root, name, action, &config.id);
    }
}

/// What events a reader wants.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Unix nanoseconds: events at or after it (and the past ones are read).
    pub since: Option<i64>,
    /// Unix nanoseconds: events at or before it; the subscription ends there.
    pub until: Option<i64>,
    pub filter: EventFilter,
}

/// docker's event filters: values of one key OR, keys AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    by_key: BTreeMap<String, Vec<String>>,
}

const KEYS: &[&str] = &[
    "type",
    "event",
    "container",
    "image",
    "network",
    "volume",
    "label",
    "scope",
    "daemon",
];

/// The image name without its tag (`busybox:1` → `busybox`), as docker's
/// filter compares it too.
pub(crate) fn strip_tag(name: &str) -> &str {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = name.split_once('@').map_or(name, |(n, _)| n);
    match name[slash..].rfind(':') {
        Some(i) => &name[..slash + i],
        None => name,
    }
}

impl EventFilter {
    /// From `key=value` pairs (the CLI's `--filter`, the API's `filters`).
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<EventFilter, EventError> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            if !KEYS.contains(&k) {
                return Err(EventError::UnknownFilter { key: k.into() });
            }
            if k == "type" && !["container", "image", "network", "volume"].contains(&v) {
                // docker also has daemon, plugin, service ... types: none
                // of them happen here, so they match nothing but are valid.
                if !["daemon", "plugin", "service", "node", "secret", "config"].contains(&v) {
                    return Err(EventError::BadFilterValue {
                        key: k.into(),
                        value: v.into(),
                        expected: "container, image, network, volume, daemon, plugin, service, node, secret, config",
                    });
                }
            }
            by_key.entry(k.into()).or_default().push(v.into());
        }
        Ok(EventFilter { by_key })
    }

    fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        self.by_key
            .get(key)
            .is_none_or(|vals| vals.iter().any(|v| pred(v)))
    }

    /// Whether `ev` passes (docker's `events.Filter.Include`).
    pub fn matches(&self, ev: &Event) -> bool {
        let attr = |k: &str| ev.actor.attributes.get(k).map(String::as_str);
        // docker's FuzzyMatch: the id or the name begins with the value.
        let fuzzy = |kind: EventType, v: &str| {
            ev.kind == kind && (ev.actor.id.starts_with(v) || attr("name").is_some_and(|n| n == v))
        };
        let image_name = match ev.kind {
            EventType::Image => attr("name"),
            _ => attr("image"),
        };
        self.any("scope", |v| v == ev.scope)
            && self.any("type", |v| v == ev.kind.as_str())
            && self.any("event", |v| {
                // exec actions carry the command: `exec_start: sh -c ...`.
                v == ev.action || ev.action.split_once(':').is_some_and(|(a, _)| a == v)
            })
            && self.any("daemon", |_| false)
            && self.any("container", |v| {
                fuzzy(EventType::Container, v)
                    || attr("container").is_some_and(|c| c.starts_with(v))
            })
            && self.any("image", |v| {
                ev.actor.id == v
                    || strip_tag(&ev.actor.id) == v
                    || image_name.is_some_and(|n| n == v || strip_tag(n) == v)
            })
            && self.any("network", |v| fuzzy(EventType::Network, v))
            && self.any("volume", |v| fuzzy(EventType::Volume, v))
            && self.by_key.get("label").is_none_or(|ls| {
                ls.iter()
                    .all(|l| LabelFilter::parse(l).matches(&ev.actor.attributes))
            })
    }
}

/// A reader of the log: the past events its query covers, then new ones
/// as they are appended (each [`Subscription::poll`] returns what came).
#[derive(Debug)]
pub struct Subscription {
    log: EventLog,
    query: Query,
    history: bool,
    current: Option<Tail>,
    started: bool,
}

/// An open log file and what of it was read.
#[derive(Debug)]
struct Tail {
    file: File,
    dev: u64,
    ino: u64,
    /// A line not yet complete (being written).
    partial: Vec<u8>,
}

impl Tail {
    fn open(path: &Path) -> Result<Option<Tail>, EventError> {
        match File::open(path) {
            Ok(file) => {
                let meta = file.metadata().map_err(io_err("reading", path))?;
                Ok(Some(Tail {
                    file,
                    dev: meta.dev(),
                    ino: meta.ino(),
                    partial: Vec::new(),
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("opening", path)(e)),
        }
    }

    /// The complete lines appended since the last read.
    fn read_lines(&mut self, path: &Path, out: &mut Vec<Event>) -> Result<(), EventError> {
        let mut buf = Vec::new();
        self.file
            .read_to_end(&mut buf)
            .map_err(io_err("reading", path))?;
        self.partial.extend_from_slice(&buf);
        let end = match self.partial.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => {
                if self.partial.len() > MAX_LINE {
                    self.partial.clear();
                }
                return Ok(());
            }
        };
        for line in self.partial[..end].split(|&b| b == b'\n') {
            if line.is_empty() || line.len() > MAX_LINE {
                continue;
            }
            // A line that is not an event (a torn write after a crash) is
            // skipped rather than ending the stream.
            if let Ok(ev) = serde_json::from_slice::<Event>(line) {
                out.push(ev);
            }
        }
        self.partial.drain(..end);
        Ok(())
    }
}

impl Subscription {
    /// Events appended since the last poll (the first: the past ones the
    /// query covers), filtered and in log order.
    pub fn poll(&mut self) -> Result<Vec<Event>, EventError> {
        let mut raw = Vec::new();
        let path = self.log.path.clone();
        if !self.started {
            self.started = true;
            if self.history {
                let rotated = self.log.rotated();
                if let Some(mut old) = Tail::open(&rotated)? {
                    old.read_lines(&rotated, &mut raw)?;
                }
                self.current = Tail::open(&path)?;
            } else {
                // Only what comes from now on, as docker without --since.
                self.current = Tail::open(&path)?;
                if let Some(t) = self.current.as_mut() {
                    t.file
                        .seek(SeekFrom::End(0))
                        .map_err(io_err("reading", &path))?;
                }
            }
        }
        loop {
            if let Some(t) = self.current.as_mut() {
                t.read_lines(&path, &mut raw)?;
            }
            // Rotated (or created) since we opened it: the old file was
            // read to its end above; go on with the new one from its start.
            let now = match std::fs::metadata(&path) {
                Ok(m) => Some((m.dev(), m.ino())),
                Err(_) => None,
            };
            let same = match (&self.current, now) {
                (Some(t), Some(n)) => (t.dev, t.ino) == n,
                (None, None) => true,
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            if same {
                break;
            }
            self.current = Tail::open(&path)?;
        }
        let q = &self.query;
        raw.retain(|ev| {
            q.since.is_none_or(|s| ev.time_nano >= s)
                && q.until.is_none_or(|u| ev.time_nano <= u)
                && q.filter.matches(ev)
        });
        Ok(raw)
    }

    /// Whether the query's `until` has passed: after one more poll there
    /// is nothing more to read.
    pub fn ended(&self) -> bool {
        self.query.until.is_some_and(|u| now_nanos() > u)
    }

    /// How long until `until` (None: no end).
    pub fn remaining(&self) -> Option<Duration> {
        self.query
            .until
            .map(|u| Duration::from_nanos(u.saturating_sub(now_nanos()).max(0) as u64))
    }
}

/// Parses docker's `--since`/`--until` values into Unix nanoseconds: a Go
/// duration before `now` (`10m`, `1h30m`, `1.5h`), a Unix timestamp
/// (`1700000000`, `1700000000.123456789`), or an RFC 3339 time, also without
/// the zone (local time) or as a bare date.
pub fn parse_time(value: &str, now: SystemTime) -> Result<i64, EventError> {
    let bad = || EventError::BadTime {
        value: value.into(),
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let v = value.trim();
    if v.is_empty() {
        return Err(bad());
    }
    if let Some(d) = parse_go_duration(v) {
        return Ok(now - d.as_nanos() as i64);
    }
    if v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let nanos: i64 = match frac.is_empty() {
            true => 0,
            false => format!("{frac:0<9}").parse().map_err(|_| bad())?,
        };
        return Ok(secs * 1_000_000_000 + nanos);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return t.timestamp_nanos_opt().ok_or_else(bad);
    }
    let local = |naive: chrono::NaiveDateTime| {
        naive
            .and_local_timezone(chrono::Local)
            .earliest()
            .and_then(|t| t.timestamp_nanos_opt())
    };
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(v, fmt) {
            return local(n).ok_or_else(bad);
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return local(d.and_hms_opt(0, 0, 0).ok_or_else(bad)?).ok_or_else(bad);
    }
    Err(bad())
}

/// Go's `time.ParseDuration` (what docker's `--since 10m` is): decimal
/// numbers each with a unit (ns, us, µs, ms, s, m, h), at least one.
/// Written here because no well-kept crate parses Go's syntax (humantime's
/// `m` is minutes too, but it refuses `1.5h` and takes units Go refuses).
fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * scale;
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventType, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event::new(
            kind,
            action,
            id,
            attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn filter(pairs: &[(&str, &str)]) -> EventFilter {
        EventFilter::parse(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn an_event_serialises_as_dockers_message() {
        let e = ev(
            EventType::Container,
            "die",
            "abc",
            &[("name", "web"), ("image", "busybox"), ("exitCode", "3")],
        );
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "die");
        assert_eq!(v["Actor"]["ID"], "abc");
        assert_eq!(v["Actor"]["Attributes"]["exitCode"], "3");
        assert_eq!(v["status"], "die");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["from"], "busybox");
        assert_eq!(v["scope"], "local");
        assert_eq!(v["time"].as_i64().unwrap(), e.time_nano / 1_000_000_000);
        let n = ev(EventType::Network, "create", "n1", &[("name", "front")]);
        let v: serde_json::Value = serde_json::to_value(&n).unwrap();
        assert!(v.get("status").is_none() && v.get("from").is_none());
    }

    #[test]
    fn appended_events_read_back_in_order_and_only_new_ones_without_since() {
        let root = tempfile::tempdir().unwrap();
        let log = EventLog::open(root.path());
        let mut live = log.subscribe(Query::default());
        assert!(live.poll().unwrap().is_empty(), "no file yet");
        for a in ["create", "start", "die"] {
            log.append(&ev(EventType::Container, a, "c1", &[])).unwrap();
        }
        let mut past = log.subscribe(Query {
            since: Some(0),
            ..Default::default()
        });
        let actions: Vec<_> = past.poll().unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(actions, ["create", "start", "die"]);
        assert_eq!(
            live.poll().unwrap().len(),
            3,
            "the live reader sees them as they come"
        );
        // A subscription without since starts at the end.
        let mut late = log.subscribe(Query::default());
        assert!(late.poll().unwrap().is_empty());
        log.append(&ev(EventType::Container, "destroy", "c1", &[]))
            .unwrap();
        assert_eq!(late.poll().unwrap()[0].action, "destroy");
        assert_eq!(past.poll().unwrap()[0].action, "destroy");
    }

    #[test]
    fn since_and_until_bound_the_events() {
        let root = tempfile::tempdir().unwrap();
        let log = EventLog::open(root.path());
        let mut times = Vec::new();
        for a in ["create", "start", "die"] {
            let e = ev(EventType::Container, a, "c1", &[]);
            times.push(e.time_nano);
            log.append(&e).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let got = |since, until| -> Vec<String> {
            let mut s = log.subscribe(Query {
                since,
                until,
                ..Default::default()
            });
            s.poll().unwrap().into_iter().map(|e| e.action).collect()
        };
        assert_eq!(got(Some(times[1]), None), ["start", "die"]);
        assert_eq!(got(None, Some(times[1])), ["create", "start"]);
        assert_eq!(got(Some(times[1]), Some(times[1])), ["start"]);
    }

    #[test]
    fn filters_follow_dockers_rules() {
        let c = ev(
            EventType::Container,
            "die",
            "0123abcd",
            &[
                ("name", "web"),
                ("image", "busybox:1.36"),
                ("tier", "front"),
            ],
        );
        let i = ev(
            EventType::Image,
            "tag",
            "sha256:77",
            &[("name", "busybox:latest")],
        );
        let n = ev(
            EventType::Network,
            "connect",
            "ffee",
            &[("name", "front"), ("container", "0123abcd")],
        );
        let exec = ev(
            EventType::Container,
            "exec_start: sh -c true",
            "0123abcd",
            &[],
        );
        assert!(filter(&[]).matches(&c));
        assert!(filter(&[("type", "container")]).matches(&c));
        assert!(!filter(&[("type", "image")]).matches(&c));
        assert!(
            filter(&[("type", "image"), ("type", "container")]).matches(&c),
            "one key ORs"
        );
        assert!(filter(&[("event", "die")]).matches(&c));
        assert!(
            !filter(&[("event", "die"), ("type", "image")]).matches(&c),
            "keys AND"
        );
        assert!(filter(&[("event", "exec_start")]).matches(&exec));
        assert!(filter(&[("container", "web")]).matches(&c));
        assert!(filter(&[("container", "0123")]).matches(&c), "an id prefix");
        assert!(
            !filter(&[("container", "we")]).matches(&c),
            "a name is exact"
        );
        assert!(
            filter(&[("container", "0123")]).matches(&n),
            "its network events"
        );
        assert!(!filter(&[("container", "web")]).matches(&i));
        assert!(filter(&[("image", "busybox")]).matches(&c), "tag stripped");
        assert!(filter(&[("image", "busybox:1.36")]).matches(&c));
        assert!(filter(&[("image", "busybox")]).matches(&i));
        assert!(filter(&[("network", "front")]).matches(&n));
        assert!(!filter(&[("network", "front")]).matches(&c));
        assert!(filter(&[("label", "tier")]).matches(&c));
        assert!(filter(&[("label", "tier=front")]).matches(&c));
        assert!(!filter(&[("label", "tier=back")]).matches(&c));
        assert!(!filter(&[("daemon", "x")]).matches(&c));
        assert!(EventFilter::parse([("colour", "red")]).is_err());
        assert!(EventFilter::parse([("type", "cat")]).is_err());
    }

    #[test]
    fn the_log_rotates_at_its_bound_and_readers_see_both_files() {
        let root = tempfile::tempdir().unwrap();
        let log = EventLog::with_max_size(root.path(), 2000);
        let mut follower = log.subscribe(Query {
            since: Some(0),
            ..Default::default()
        });
        let mut followed = 0;
        for i in 0..40 {
            log.append(&ev(EventType::Container, "start", &format!("c{i:02}"), &[]))
                .unwrap();
            followed += follower.poll().unwrap().len();
        }
        assert_eq!(followed, 40, "a follower loses nothing across rotations");
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        assert!(size(log.path()) <= 2000 + 300);
        assert!(size(&log.rotated()) <= 2000 + 300);
        let mut all = log.subscribe(Query {
            since: Some(0),
            ..Default::default()
        });
        let ids: Vec<_> = all
            .poll()
            .unwrap()
            .into_iter()
            .map(|e| e.actor.id)
            .collect();
        assert!(ids.len() < 40, "older events are dropped: {}", ids.len());
        assert_eq!(ids.last().unwrap(), "c39");
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "in order across the two files");
    }

    #[test]
    fn concurrent_writers_never_tear_lines() {
        let root = tempfile::tempdir().unwrap();
        let log = EventLog::with_max_size(root.path(), 64 * 1024 * 1024);
        let long = "x".repeat(3000);
        std::thread::scope(|s| {
            for w in 0..4 {
                let log = log.clone();
                let long = long.clone();
                s.spawn(move || {
                    for i in 0..200 {
                        let e = ev(
                            EventType::Container,
                            "start",
                            &format!("w{w}-{i}"),
                            &[("pad", long.as_str())],
                        );
                        log.append(&e).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 800);
        for line in text.lines() {
            serde_json::from_str::<Event>(line).expect("a whole event a line");
        }
        let mut s = log.subscribe(Query {
            since: Some(0),
            ..Default::default()
        });
        let evs = s.poll().unwrap();
        for w in 0..4 {
            let mine: Vec<_> = evs
                .iter()
                .filter(|e| e.actor.id.starts_with(&format!("w{w}-")))
                .map(|e| e.actor.id.clone())
                .collect();
            let want: Vec<_> = (0..200).map(|i| format!("w{w}-{i}")).collect();
            assert_eq!(mine, want, "each writer's events in its order");
        }
    }

    #[test]
    fn a_line_being_written_is_read_once_complete() {
        let root = tempfile::tempdir().unwrap();
        let log = EventLog::open(root.path());
        log.append(&ev(EventType::Container, "create", "c1", &[]))
            .unwrap();
        let mut s = log.subscribe(Query {
            since: Some(0),
            ..Default::default()
        });
        assert_eq!(s.poll().unwrap().len(), 1);
        let line = serde_json::to_string(&ev(EventType::Container, "start", "c1", &[])).unwrap();
        let (a, b) = line.split_at(10);
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(a.as_bytes()).unwrap();
        assert!(s.poll().unwrap().is_empty());
        f.write_all(format!("{b}\n").as_bytes()).unwrap();
        assert_eq!(s.poll().unwrap()[0].action, "start");
    }

    #[test]
    fn times_parse_as_dockers_since_and_until() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let n = 1_700_000_000i64 * 1_000_000_000;
        assert_eq!(parse_time("10m", now).unwrap(), n - 600 * 1_000_000_000);
        assert_eq!(parse_time("1h30m", now).unwrap(), n - 5400 * 1_000_000_000);
        assert_eq!(parse_time("1.5h", now).unwrap(), n - 5400 * 1_000_000_000);
        assert_eq!(parse_time("1699999999", now).unwrap(), n - 1_000_000_000);
        assert_eq!(parse_time("1699999999.5", now).unwrap(), n - 500_000_000);
        assert_eq!(
            parse_time("1699999999.000000001", now).unwrap(),
            n - 999_999_999
        );
        assert_eq!(parse_time("2023-11-14T22:13:20Z", now).unwrap(), n);
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00", now).unwrap(),
            n + 500_000_000
        );
        assert!(parse_time("2023-11-14", now).is_ok());
        for bad in ["", "yesterday", "10x", "1.2.3", "m"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }
}
