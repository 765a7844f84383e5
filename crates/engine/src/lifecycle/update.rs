//! lifecycle::update: `isola update`: new limits for a container. A running
//! (or paused) container's cgroup gets them at once through its backend;
//! the record and the bundle keep them, so that inspect shows them and the
//! next start applies them. Part of the engine's lifecycle.

use super::{Engine, Error};
use crate::events;
use crate::state::Limits;
use crate::store::ContainerRecord;

/// What `update` changes; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsUpdate {
    /// Bytes.
    pub memory: Option<u64>,
    /// CFS quota in microseconds per [`crate::units::CPU_PERIOD_US`].
    pub cpu_quota: Option<u64>,
    /// `Some(None)` removes the limit (docker's 0 or -1).
    pub pids_limit: Option<Option<i64>>,
}

impl LimitsUpdate {
    pub fn is_empty(&self) -> bool {
        *self == LimitsUpdate::default()
    }

    fn apply(&self, old: &Limits) -> Limits {
        let mut new = old.clone();
        if let Some(m) = self.memory {
            new.memory = Some(m);
        }
        if let Some(q) = self.cpu_quota {
            new.cpu_quota = Some(q);
        }
        if let Some(p) = self.pids_limit {
            new.pids_limit = p;
        }
        new
    }
}

impl Engine {
    /// Gives the container the limits `change` makes of its current ones.
    pub fn update(
        &self,
        rec: &ContainerRecord,
        change: &LimitsUpdate,
    ) -> Result<ContainerRecord, Error> {
        let rec = self.refresh(rec.clone())?;
        let id = rec.config.id.clone();
        let new = change.apply(&rec.config.limits);
        if rec.state.status.is_active() {
            self.backend(&rec.config)?.update(&rec.config, &new)?;
        }
        crate::spec::update_bundle_limits(&rec.dir, &new)?;
        let config = self.store.update_config(&id, |c| c.limits = new)?;
        events::container(&self.root, &config, "update", &[]);
        Ok(ContainerRecord { config, ..rec })
    }
}
