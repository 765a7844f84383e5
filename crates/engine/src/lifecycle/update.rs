//! lifecycle::update: `isola update`: new limits and restart policy for a
//! container. A running (or paused) container's cgroup gets the limits at
//! once through its backend; the record and the bundle keep them, so that
//! inspect shows them and the next start applies them. The restart policy
//! is the record's, which the monitor reads when the container exits. The
//! checks are docker's (`daemon/update.go`, `verifyContainerResources`).
//! Part of the engine's lifecycle.

use serde_json::json;

use super::{Engine, Error};
use crate::events;
use crate::state::Limits;
use crate::store::ContainerRecord;
use crate::units::RestartPolicy;

/// What `update` changes; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsUpdate {
    /// Bytes.
    pub memory: Option<u64>,
    /// Memory plus swap, bytes; -1 is unlimited swap.
    pub memory_swap: Option<i64>,
    /// CFS quota in microseconds per [`crate::units::CPU_PERIOD_US`]
    /// (`--cpus`, docker's NanoCpus).
    pub cpu_quota: Option<u64>,
    /// docker's CpuQuota (`--cpu-quota`) in microseconds per the period;
    /// -1 removes the limit.
    pub cfs_quota: Option<i64>,
    /// docker's CpuPeriod (`--cpu-period`), microseconds.
    pub cfs_period: Option<u64>,
    pub cpu_shares: Option<u64>,
    /// `Some(None)` removes the limit (docker's 0 or -1).
    pub pids_limit: Option<Option<i64>>,
    pub restart: Option<RestartPolicy>,
}

/// An update docker refuses too, in docker's words where it has them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpdateError {
    #[error("Conflicting options: Nano CPUs (--cpus) and CPU Quota/Period (--cpu-quota, --cpu-period) cannot both be set")]
    CpusAndQuota,
    #[error("Conflicting options: CPU Quota/Period cannot be updated as Nano CPUs (--cpus) has already been set for container {id}")]
    QuotaAfterCpus { id: String },
    #[error("Conflicting options: Nano CPUs cannot be updated as CPU Quota/Period has already been set for container {id}")]
    CpusAfterQuota { id: String },
    #[error("invalid --cpu-period {period}: CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")]
    CpuPeriod { period: u64 },
    #[error("invalid --cpu-quota {quota}: CPU cfs quota can not be less than 1ms (i.e. 1000)")]
    CpuQuota { quota: i64 },
    #[error("invalid --memory-swap {swap}: Minimum memoryswap limit should be larger than memory limit ({memory})")]
    SwapBelowMemory { swap: i64, memory: u64 },
    #[error(
        "invalid --memory-swap: You should always set the Memory limit when using Memoryswap limit"
    )]
    SwapWithoutMemory,
    #[error("invalid --memory-reservation {reservation}: Minimum memory limit can not be less than memory reservation limit ({memory})")]
    ReservationAboveMemory { reservation: u64, memory: u64 },
    #[error("invalid --memory {memory}: Memory limit should be smaller than already set memoryswap limit ({swap}), update the memoryswap at the same time")]
    MemoryAboveSwap { memory: u64, swap: i64 },
    #[error("Restart policy cannot be updated because AutoRemove is enabled for container {id}")]
    RestartWithAutoRemove { id: String },
}

impl LimitsUpdate {
    pub fn is_empty(&self) -> bool {
        *self == LimitsUpdate::default()
    }

    /// The container's limits after the change, checked as docker does.
    fn apply(&self, id: &str, old: &Limits) -> Result<Limits, UpdateError> {
        let mut new = old.clone();
        let quota_given = self.cfs_quota.is_some() || self.cfs_period.is_some();
        if self.cpu_quota.is_some() && quota_given {
            return Err(UpdateError::CpusAndQuota);
        }
        let had_cpus = old.cpu_quota.is_some() && old.cpu_period.is_none();
        let had_quota = old.cpu_period.is_some();
        if let Some(q) = self.cpu_quota {
            if had_quota {
                return Err(UpdateError::CpusAfterQuota { id: id.into() });
            }
            new.cpu_quota = Some(q);
        }
        if quota_given {
            if had_cpus {
                return Err(UpdateError::QuotaAfterCpus { id: id.into() });
            }
            if let Some(p) = self.cfs_period {
                if !(1000..=1_000_000).contains(&p) {
                    return Err(UpdateError::CpuPeriod { period: p });
                }
                new.cpu_period = Some(p);
            }
            new.cpu_period = Some(new.period_us());
            match self.cfs_quota {
                Some(q) if q < 0 => new.cpu_quota = None,
                Some(q) if q < 1000 => return Err(UpdateError::CpuQuota { quota: q }),
                Some(q) => new.cpu_quota = Some(q as u64),
                None => {}
            }
        }
        if let Some(s) = self.cpu_shares {
            new.cpu_shares = Some(s);
        }
        if let Some(m) = self.memory {
            new.memory = Some(m);
        }
        if let Some(s) = self.memory_swap {
            new.memory_swap = Some(s);
        }
        if let Some(p) = self.pids_limit {
            new.pids_limit = p;
        }
        check_swap(&new, self.memory_swap.is_some())?;
        Ok(new)
    }
}

/// docker's rules for memory and swap together: swap needs a memory limit
/// and is not below it (-1: unlimited). `swap_given`: the swap is what was
/// just set (else the memory is, and the error says so).
pub(crate) fn check_swap(limits: &Limits, swap_given: bool) -> Result<(), UpdateError> {
    if let (Some(m), Some(r)) = (limits.memory, limits.memory_reservation) {
        if r > m {
            return Err(UpdateError::ReservationAboveMemory {
                reservation: r,
                memory: m,
            });
        }
    }
    match (limits.memory, limits.memory_swap) {
        (None, Some(s)) if s != -1 => Err(UpdateError::SwapWithoutMemory),
        (Some(m), Some(s)) if s != -1 && (s as u64) < m => Err(if swap_given {
            UpdateError::SwapBelowMemory { swap: s, memory: m }
        } else {
            UpdateError::MemoryAboveSwap { memory: m, swap: s }
        }),
        _ => Ok(()),
    }
}

/// The OCI resources that take a running container from its limits to
/// `new`: every limit `new` has, and "unlimited" for each it dropped
/// (leaving a field out would leave the old value in the cgroup).
fn update_resources(
    old: &Limits,
    new: &Limits,
) -> Result<oci_spec::runtime::LinuxResources, Error> {
    let mut r = crate::spec::limit_resources(new);
    if old.pids_limit.is_some() && new.pids_limit.is_none() {
        r["pids"] = json!({ "limit": -1 });
    }
    if old.cpu_quota.is_some() && new.cpu_quota.is_none() {
        r["cpu"]["quota"] = json!(-1);
        r["cpu"]["period"] = json!(new.period_us());
    }
    serde_json::from_value(r).map_err(|e| Error::Spec(crate::spec::SpecError::Invalid(e)))
}

impl Engine {
    /// Gives the container the limits and restart policy `change` makes of
    /// its current ones.
    pub fn update(
        &self,
        rec: &ContainerRecord,
        change: &LimitsUpdate,
    ) -> Result<ContainerRecord, Error> {
        let rec = self.refresh(rec.clone())?;
        let id = rec.config.id.clone();
        let old = &rec.config.limits;
        let new = change.apply(&id, old)?;
        if change.restart.is_some_and(|r| r != RestartPolicy::No) && rec.config.auto_remove {
            return Err(UpdateError::RestartWithAutoRemove { id }.into());
        }
        if rec.state.status.is_active() && new != *old {
            let resources = update_resources(old, &new)?;
            self.backend(&rec.config)?.update(&rec.config, &resources)?;
        }
        if new != *old {
            crate::spec::update_bundle_limits(&rec.dir, &new)?;
        }
        let config = self.store.update_config(&id, |c| {
            c.limits = new;
            if let Some(r) = change.restart {
                c.restart_policy = r;
            }
        })?;
        events::container(&self.root, &config, "update", &[]);
        Ok(ContainerRecord { config, ..rec })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_checked_as_docker_checks_them() {
        let cpus = Limits {
            cpu_quota: Some(50_000),
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            ..Default::default()
        };
        let up = |u: LimitsUpdate| u.apply("c", &cpus);
        assert_eq!(
            up(LimitsUpdate {
                cfs_quota: Some(20_000),
                ..Default::default()
            }),
            Err(UpdateError::QuotaAfterCpus { id: "c".into() })
        );
        assert_eq!(
            up(LimitsUpdate {
                memory: Some(256 << 20),
                ..Default::default()
            }),
            Err(UpdateError::MemoryAboveSwap {
                memory: 256 << 20,
                swap: 128 << 20
            })
        );
        let raised = up(LimitsUpdate {
            memory: Some(256 << 20),
            memory_swap: Some(-1),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(raised.memory_swap, Some(-1));
        let quota = LimitsUpdate {
            cfs_quota: Some(30_000),
            cfs_period: Some(50_000),
            ..Default::default()
        }
        .apply("c", &Limits::default())
        .unwrap();
        assert_eq!(
            (quota.cpu_quota, quota.cpu_period),
            (Some(30_000), Some(50_000))
        );
        assert_eq!(quota.cpus(), Some(0.6));
        assert_eq!(
            LimitsUpdate {
                cfs_period: Some(10),
                ..Default::default()
            }
            .apply("c", &Limits::default()),
            Err(UpdateError::CpuPeriod { period: 10 })
        );
    }

    #[test]
    fn a_dropped_limit_is_written_as_unlimited() {
        let old = Limits {
            pids_limit: Some(40),
            ..Default::default()
        };
        let r = update_resources(&old, &Limits::default()).unwrap();
        assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(-1));
    }
}
