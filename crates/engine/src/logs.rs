//! logs: reading a container's log the way `logs` asks (since, until, the
//! last lines, following until it stops), for the CLI and the API service
//! alike. The log's format is [`crate::monitor::log`]'s; this only selects
//! and follows. The caller renders each entry.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::lifecycle::{Engine, Error};
use crate::monitor::log::{self, LogEntry};
use crate::store::ContainerRecord;

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub since: Option<DateTime<Utc>>,
    /// With `follow`, following ends there.
    pub until: Option<DateTime<Utc>>,
    /// Only the last this many of the entries already written.
    pub tail: Option<usize>,
    /// Go on until the container stops.
    pub follow: bool,
}

impl Engine {
    /// Calls `emit` with each selected entry, in order; `emit` returning
    /// false (its reader went away) ends the reading.
    pub fn logs(
        &self,
        rec: &ContainerRecord,
        q: &LogQuery,
        emit: &mut dyn FnMut(&LogEntry) -> bool,
    ) -> Result<(), Error> {
        if rec.config.log_config.driver == crate::state::LOG_NONE {
            return Err(Error::LogsDisabled {
                id: rec.config.id.clone(),
            });
        }
        let path = rec.dir.join(log::LOG_FILE);
        let io = |source| Error::Io {
            op: "reading",
            path: path.clone(),
            source,
        };
        let before_until = |e: &LogEntry| q.until.is_none_or(|u| e.time <= u);
        let (entries, mut follower) = log::read_with_follower(&rec.dir).map_err(io)?;
        let entries: Vec<&LogEntry> = entries
            .iter()
            .filter(|e| q.since.is_none_or(|s| e.time >= s) && before_until(e))
            .collect();
        let skip = q.tail.map(|n| entries.len().saturating_sub(n)).unwrap_or(0);
        for e in &entries[skip..] {
            if !emit(e) {
                return Ok(());
            }
        }
        if !q.follow {
            return Ok(());
        }
        loop {
            let active = match self.store().read(&rec.config.id)? {
                Some(r) => self.refresh(r)?.state.status.is_active(),
                None => false,
            };
            let past_until = q.until.is_some_and(|u| Utc::now() > u);
            // After the state: the monitor logs the last output before it
            // records the exit, so this read has it all once inactive.
            for e in follower.poll().map_err(io)? {
                if !before_until(&e) || !emit(&e) {
                    return Ok(());
                }
            }
            if !active || past_until {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
