//! lifecycle::signals: signalling a container and what follows from it:
//! `kill`, `stop` (TERM, then KILL), `restart`, `pause`, `unpause`, and waiting for
//! a container to stop. Part of the engine's lifecycle; the backend
//! delivers the signals.

use std::time::{Duration, Instant};

use super::{Engine, Error, POLL};
use crate::backend::Backend;
use crate::events;
use crate::state::Status;
use crate::store::ContainerRecord;

/// How long a SIGKILL waits for the container to be recorded stopped.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Engine {
    /// Sends a signal to the container's main process.
    pub fn kill(&self, rec: &ContainerRecord, signal: i32) -> Result<(), Error> {
        if !matches!(rec.state.status, Status::Running | Status::Paused) {
            return Err(Error::NotRunning {
                id: rec.config.id.clone(),
            });
        }
        self.backend(&rec.config)?
            .kill(&rec.config.id, signal, false)?;
        events::container(
            &self.root,
            &rec.config,
            "kill",
            &[("signal", signal.to_string())],
        );
        // As docker's: a SIGKILL returns once the container has stopped (a
        // VM's exit takes the guest's word and its power-off), so that what
        // a script reads next is `exited` with 137, not `running`.
        if signal == libc::SIGKILL {
            self.wait_inactive(&rec.config.id, Some(KILL_WAIT))?;
        }
        Ok(())
    }

    /// Waits until the container is no longer active, up to `timeout`
    /// (`None`: no limit). Returns the final record, or `None` if it is gone.
    pub fn wait_inactive(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<ContainerRecord>, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let rec = match self.store.read(id)? {
                Some(r) => self.refresh(r)?,
                None => return Ok(None),
            };
            if !rec.state.status.is_active() {
                return Ok(Some(rec));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Some(rec));
            }
            std::thread::sleep(POLL);
        }
    }

    /// `stop`: SIGTERM, then SIGKILL after `timeout`; the restart policy
    /// does not bring it back.
    /// `stop`: the container's stop signal (SIGTERM unless it or its image
    /// says otherwise), then SIGKILL after `timeout` (the container's stop
    /// timeout, 10 s unless set, when None).
    pub fn stop(
        &self,
        rec: &ContainerRecord,
        timeout: Option<Duration>,
    ) -> Result<ContainerRecord, Error> {
        let timeout = timeout.unwrap_or_else(|| rec.config.stop_wait());
        let id = rec.config.id.clone();
        let state = self.store.update_state(&id, |s| s.stopped_by_user = true)?;
        if !state.status.is_active() {
            return Ok(ContainerRecord {
                state,
                ..rec.clone()
            });
        }
        let backend = self.backend(&rec.config)?;
        if state.status == Status::Running {
            let signal = rec.config.stop_signal_number();
            let _ = backend.kill(&id, signal, false);
            events::container(
                &self.root,
                &rec.config,
                "kill",
                &[("signal", signal.to_string())],
            );
            if let Some(r) = self.wait_inactive(&id, Some(timeout))? {
                if !r.state.status.is_active() {
                    events::container(&self.root, &rec.config, "stop", &[]);
                    return Ok(r);
                }
            }
        }
        let r = self.kill_and_wait(&*backend, rec)?;
        events::container(&self.root, &rec.config, "stop", &[]);
        Ok(r)
    }

    /// `restart`: [`Engine::stop`], then `start`, the caller's way of
    /// starting (the CLI's and the API's differ), then docker's `restart`
    /// event, which moby's containerRestart logs after the start.
    pub fn restart<T, E: From<Error>>(
        &self,
        rec: &ContainerRecord,
        timeout: Option<Duration>,
        start: impl FnOnce(&ContainerRecord) -> Result<T, E>,
    ) -> Result<T, E> {
        let rec = self.stop(rec, timeout)?;
        let started = start(&rec)?;
        events::container(&self.root, &rec.config, "restart", &[]);
        Ok(started)
    }

    pub(super) fn kill_and_wait(
        &self,
        backend: &dyn Backend,
        rec: &ContainerRecord,
    ) -> Result<ContainerRecord, Error> {
        let id = &rec.config.id;
        let _ = backend.kill(id, libc::SIGKILL, true);
        events::container(&self.root, &rec.config, "kill", &[("signal", "9".into())]);
        let limit = Duration::from_secs(10);
        match self.wait_inactive(id, Some(limit))? {
            Some(r) if r.state.status.is_active() => {
                // The init may have been reparented to a dead monitor's heir:
                // signal it directly as a last resort.
                if let Some(p) = r.state.init.filter(|p| p.is_alive()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p.pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                match self.wait_inactive(id, Some(limit))? {
                    Some(r) if r.state.status.is_active() => Err(Error::KillTimeout {
                        id: id.clone(),
                        seconds: 2 * limit.as_secs(),
                    }),
                    Some(r) => Ok(r),
                    None => Ok(rec.clone()),
                }
            }
            Some(r) => Ok(r),
            None => Ok(rec.clone()),
        }
    }

    pub fn pause(&self, rec: &ContainerRecord) -> Result<(), Error> {
        self.require_running(rec)?;
        self.backend(&rec.config)?.pause(&rec.config.id)?;
        self.store.update_state(&rec.config.id, |s| {
            if s.status == Status::Running {
                s.status = Status::Paused
            }
        })?;
        events::container(&self.root, &rec.config, "pause", &[]);
        Ok(())
    }

    pub fn unpause(&self, rec: &ContainerRecord) -> Result<(), Error> {
        if rec.state.status != Status::Paused {
            return Err(Error::NotPaused {
                id: rec.config.id.clone(),
            });
        }
        self.backend(&rec.config)?.resume(&rec.config.id)?;
        self.store.update_state(&rec.config.id, |s| {
            if s.status == Status::Paused {
                s.status = Status::Running
            }
        })?;
        events::container(&self.root, &rec.config, "unpause", &[]);
        Ok(())
    }
}
