//! log: the runtime's log in runc's formats. containerd's shim passes
//! `--log <file> --log-format json` and, when a command fails, reads the last
//! line with "level":"error" from that file to build its error message, so the
//! JSON lines carry exactly runc's keys: {"level","msg","time"}.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where log lines go: the --log file, or stderr.
pub struct RuncLog {
    out: Mutex<Box<dyn Write + Send>>,
    format: LogFormat,
    max: Level,
}

impl RuncLog {
    pub fn write_line(&self, level: &str, msg: &str) {
        let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        let line = match self.format {
            LogFormat::Json => {
                serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
            }
            LogFormat::Text => format!("time=\"{time}\" level={level} msg={msg:?}"),
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

/// A tracing layer that forwards events at or above `max` to a RuncLog.
struct LogLayer(std::sync::Arc<RuncLog>);

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() > self.0.max {
            return;
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let level = if level == "warn" {
            "warning".to_string()
        } else {
            level
        };
        self.0.write_line(&level, &m.0);
    }
}

/// Installs the global subscriber; returns the log so main can write the
/// final error line to it.
pub fn init(path: Option<&Path>, format: LogFormat, debug: bool) -> std::sync::Arc<RuncLog> {
    let out: Box<dyn Write + Send> =
        match path.and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok()) {
            Some(f) => Box::new(f) as Box<dyn Write + Send>,
            None => Box::new(std::io::stderr()),
        };
    let log = std::sync::Arc::new(RuncLog {
        out: Mutex::new(out),
        format,
        max: if debug { Level::DEBUG } else { Level::WARN },
    });
    let _ = tracing_subscriber::registry()
        .with(LogLayer(log.clone()))
        .try_init();
    log
}
