//! Per-layer progress for `pull` and `load`: live bars on a terminal
//! (indicatif), plain `"<short id>: <status>"` lines otherwise, nothing when
//! quiet. Owns only presentation: it never decides what a status means.
//! Everything goes to stdout, as docker prints pull progress, unless the
//! caller asks for stderr (`run` pulling an image: stdout is the container's).
//!
//! ```no_run
//! use image::progress::{Mode, Progress};
//! let progress = Progress::new(Mode::detect(false));
//! progress.message("Using default tag: latest");
//! let layer = progress.layer("sha256:0123456789abcdef", Some(1024));
//! layer.inc(512);
//! layer.finish("Pull complete");
//! ```

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A live bar per layer (stdout is a terminal).
    Live,
    /// One line per finished layer (stdout is a file or pipe).
    Plain,
    /// Nothing (`-q`).
    Quiet,
}

/// Where progress is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stream {
    #[default]
    Stdout,
    Stderr,
}

impl Stream {
    fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }

    fn line(self, line: &str) {
        match self {
            Stream::Stdout => println!("{line}"),
            Stream::Stderr => eprintln!("{line}"),
        }
    }

    fn draw_target(self) -> ProgressDrawTarget {
        match self {
            Stream::Stdout => ProgressDrawTarget::stdout(),
            Stream::Stderr => ProgressDrawTarget::stderr(),
        }
    }
}

impl Mode {
    /// `Quiet` if asked, else `Live` on a terminal and `Plain` otherwise.
    pub fn detect(quiet: bool) -> Mode {
        Mode::detect_on(quiet, Stream::Stdout)
    }

    /// [`Mode::detect`] for progress written to `stream`.
    pub fn detect_on(quiet: bool, stream: Stream) -> Mode {
        if quiet {
            Mode::Quiet
        } else if stream.is_terminal() {
            Mode::Live
        } else {
            Mode::Plain
        }
    }
}

/// The first 12 hex digits of a digest, as docker shows layers.
pub fn short_id(id: &str) -> &str {
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

/// The display for one operation (one pull, one load).
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    stream: Stream,
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn new(mode: Mode) -> Progress {
        Progress::on(mode, Stream::Stdout)
    }

    /// Progress written to `stream`.
    pub fn on(mode: Mode, stream: Stream) -> Progress {
        let multi =
            (mode == Mode::Live).then(|| MultiProgress::with_draw_target(stream.draw_target()));
        Progress {
            mode,
            stream,
            multi,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A status line (`Using default tag: latest`, `Digest: ...`); shown
    /// above live bars, dropped when quiet.
    pub fn message(&self, line: &str) {
        match (&self.mode, &self.multi) {
            (Mode::Quiet, _) => {}
            (Mode::Live, Some(m)) => {
                // println only fails when the terminal is gone; nothing to do then.
                let _ = m.println(line);
            }
            _ => self.stream.line(line),
        }
    }

    /// A line for one layer that needs no bar (`Already exists`).
    pub fn layer_status(&self, id: &str, status: &str) {
        self.message(&format!("{}: {status}", short_id(id)));
    }

    /// Starts the display of one layer of `total` bytes (if known).
    pub fn layer(&self, id: &str, total: Option<u64>) -> LayerProgress {
        let bar = self.multi.as_ref().map(|m| {
            let template = if total.is_some() {
                "{prefix}: {msg} {decimal_bytes}/{decimal_total_bytes}"
            } else {
                "{prefix}: {msg} {decimal_bytes}"
            };
            let bar = ProgressBar::new(total.unwrap_or(0))
                .with_style(
                    ProgressStyle::with_template(template)
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                )
                .with_prefix(short_id(id).to_string())
                .with_message("Downloading");
            let bar = m.add(bar);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        LayerProgress {
            id: short_id(id).to_string(),
            mode: self.mode,
            stream: self.stream,
            bar,
        }
    }
}

/// The display of one layer. Dropping it unfinished leaves its bar where
/// it stopped (the operation failed; the error says why).
#[derive(Debug)]
pub struct LayerProgress {
    id: String,
    mode: Mode,
    stream: Stream,
    bar: Option<ProgressBar>,
}

impl LayerProgress {
    /// `n` more bytes arrived.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Changes the status word (`Downloading`, `Verifying`, `Extracting`).
    pub fn set_status(&self, status: &str) {
        if let Some(b) = &self.bar {
            b.set_message(status.to_string());
        }
    }

    /// Ends the layer with `status` (`Pull complete`, `Already exists`).
    pub fn finish(self, status: &str) {
        match (&self.mode, &self.bar) {
            (Mode::Live, Some(b)) => {
                b.set_style(
                    ProgressStyle::with_template("{prefix}: {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.finish_with_message(status.to_string());
            }
            (Mode::Plain, _) => self.stream.line(&format!("{}: {status}", self.id)),
            _ => {}
        }
    }
}

impl Drop for LayerProgress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_twelve_hex_digits() {
        assert_eq!(short_id("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
    }
}
