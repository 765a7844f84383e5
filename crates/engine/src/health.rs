//! Health checks: docker's HEALTHCHECK (from the image) and `--health-*`
//! (from the user). While a container runs, its monitor starts a probe
//! every interval: a short-lived `isola` process (the hidden
//! [`PROBE_COMMAND`]) that runs the check with the engine's exec, in the
//! container's isolation, and records the result in the container's
//! state: `starting`, then `healthy`, or `unhealthy` after `retries`
//! failures in a row (failures in the start period do not count), the
//! last five results kept, a `health_status` event at each change. The
//! probe is a process of its own because exec forks, and the monitor has
//! threads by then.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::ContainerIo;
use crate::lifecycle::{Engine, Error, ExecOptions};
use crate::state::Status;

/// The hidden subcommand that runs one probe.
pub const PROBE_COMMAND: &str = "container-health-probe";
/// Results kept, newest last (docker's number).
const KEPT: usize = 5;
/// Output kept per result, bytes (docker's limit).
const OUTPUT_LIMIT: usize = 4096;

/// What to run and when (docker's Healthcheck; durations in nanoseconds,
/// 0 for docker's default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: u64,
    #[serde(default)]
    pub timeout: u64,
    #[serde(default)]
    pub start_period: u64,
    #[serde(default)]
    pub retries: u32,
}

fn ns_or(ns: u64, default_s: u64) -> Duration {
    if ns == 0 {
        Duration::from_secs(default_s)
    } else {
        Duration::from_nanos(ns)
    }
}

impl Healthcheck {
    pub fn interval(&self) -> Duration {
        ns_or(self.interval, 30)
    }

    pub fn timeout(&self) -> Duration {
        ns_or(self.timeout, 30)
    }

    pub fn start_period(&self) -> Duration {
        Duration::from_nanos(self.start_period)
    }

    pub fn retries(&self) -> u32 {
        if self.retries == 0 {
            3
        } else {
            self.retries
        }
    }

    /// The command to exec; `None` for `NONE` or an empty test.
    pub fn command(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
            }
            _ => None,
        }
    }

    /// The image config's `Healthcheck` (docker's JSON), if it has one that
    /// is not `NONE`.
    pub fn of_image(config: &Value) -> Option<Healthcheck> {
        let h: Healthcheck =
            serde_json::from_value(config["config"]["Healthcheck"].clone()).ok()?;
        h.command().map(|_| h)
    }

    /// `over` on top of the image's check: its test if it has one, its
    /// durations where it sets them (docker's merge).
    pub fn merged(image: Option<Healthcheck>, over: Healthcheck) -> Healthcheck {
        let base = image.unwrap_or_default();
        let or = |o: u64, b: u64| if o == 0 { b } else { o };
        Healthcheck {
            test: if over.test.is_empty() {
                base.test
            } else {
                over.test
            },
            interval: or(over.interval, base.interval),
            timeout: or(over.timeout, base.timeout),
            start_period: or(over.start_period, base.start_period),
            retries: or(over.retries.into(), base.retries.into()) as u32,
        }
    }
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub exit_code: i32,
    pub output: String,
}

/// docker's State.Health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthResult>,
}

impl Health {
    pub fn starting() -> Health {
        Health {
            status: "starting".into(),
            failing_streak: 0,
            log: Vec::new(),
        }
    }

    /// Records `result`; `counts` is false in the start period, where a
    /// failure does not count (a success still makes it healthy).
    fn record(&mut self, result: HealthResult, counts: bool, retries: u32) {
        if result.exit_code == 0 {
            self.failing_streak = 0;
            self.status = "healthy".into();
        } else if counts {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = "unhealthy".into();
            }
        }
        self.log.push(result);
        if self.log.len() > KEPT {
            self.log.remove(0);
        }
    }
}

fn devnull() -> std::io::Result<OwnedFd> {
    Ok(std::fs::File::open("/dev/null")?.into())
}

impl Engine {
    /// One health probe of container `id` (the hidden command's work):
    /// runs its check, records the result, reports a change of status.
    pub fn health_probe(&self, id: &str) -> Result<(), Error> {
        let rec = self.lookup(id)?;
        let Some(check) = rec.config.healthcheck.clone() else {
            return Ok(());
        };
        let Some(args) = check.command() else {
            return Ok(());
        };
        if rec.state.status != Status::Running {
            return Ok(());
        }
        let io_err = |source| Error::Io {
            op: "making a pipe for",
            path: "the health check".into(),
            source,
        };
        let (out_r, out_w) = nix::unistd::pipe().map_err(|e| io_err(e.into()))?;
        let err_w = out_w.try_clone().map_err(io_err)?;
        let start = Utc::now();
        let executed = self.exec(
            &rec,
            &ExecOptions {
                args,
                ..Default::default()
            },
            Some(ContainerIo::Pipes {
                stdin: devnull().map_err(io_err)?,
                stdout: out_w,
                stderr: err_w,
            }),
        );
        let (exit_code, output) = match executed {
            Err(e) => (-1, e.to_string()),
            Ok(p) => {
                let reader = std::thread::spawn(move || {
                    let mut out = Vec::new();
                    let _ = std::fs::File::from(out_r)
                        .take(OUTPUT_LIMIT as u64)
                        .read_to_end(&mut out);
                    String::from_utf8_lossy(&out).into_owned()
                });
                let (tx, rx) = std::sync::mpsc::channel();
                let wait = p.wait;
                std::thread::spawn(move || {
                    let _ = tx.send(wait());
                });
                match rx.recv_timeout(check.timeout()) {
                    Ok(Ok(code)) => (code, reader.join().unwrap_or_default()),
                    Ok(Err(e)) => (-1, e.to_string()),
                    Err(_) => {
                        if let Some(pid) = p.pid {
                            // SAFETY: a plain kill(2) of the probe's own child.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                        }
                        (
                            -1,
                            format!(
                                "Health check exceeded timeout ({}s)",
                                check.timeout().as_secs()
                            ),
                        )
                    }
                }
            }
        };
        let result = HealthResult {
            start,
            end: Utc::now(),
            exit_code,
            output,
        };
        let started_at = rec.state.started_at.unwrap_or(start);
        let counts = (start - started_at).to_std().unwrap_or_default() >= check.start_period();
        let mut before = String::new();
        let state = self.store().update_state(id, |s| {
            let h = s.health.get_or_insert_with(Health::starting);
            before = h.status.clone();
            h.record(result.clone(), counts, check.retries());
        })?;
        let now = state.health.map(|h| h.status).unwrap_or_default();
        if now != before {
            crate::events::container(
                self.root(),
                &rec.config,
                &format!("health_status: {now}"),
                &[],
            );
        }
        Ok(())
    }
}

/// The monitor's loop: a probe every interval until `stop` says the
/// container ended. `probe` starts one probe process.
pub fn run_checks(
    check: &Healthcheck,
    stop: &std::sync::mpsc::Receiver<()>,
    mut probe: impl FnMut() -> std::io::Result<std::process::Child>,
) {
    loop {
        match stop.recv_timeout(check.interval()) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let Ok(mut child) = probe() else { continue };
        // The probe bounds its check by the timeout; this bounds the probe.
        let deadline = Instant::now() + check.timeout() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}
