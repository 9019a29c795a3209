//! `LongPollSlots`: how many long-polls may wait at once, per tenant and in all, so that one
//! tenant's waiting requests (each re-reading its device every second) cannot hold the
//! connection pool everyone shares.
//!
//! A slot is taken only when a request would really wait (its device has not reached the
//! version yet) and is given back when the wait ends, however it ends (answer, timeout,
//! cancelled request): [`LongPollSlot`] releases it on drop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::TenantId;

/// The bounds. `api` reads them from `LONG_POLL_MAX_PER_TENANT` and `LONG_POLL_MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongPollLimits {
    /// Long-polls one tenant may have waiting at once.
    pub per_tenant: usize,
    /// Long-polls this process may have waiting at once, all tenants together.
    pub total: usize,
}

impl Default for LongPollLimits {
    fn default() -> Self {
        Self {
            per_tenant: 100,
            total: 500,
        }
    }
}

/// Which bound a refused long-poll ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LongPollLimitReached {
    #[error("this tenant already has {0} long-polls waiting")]
    Tenant(usize),
    #[error("the service already has {0} long-polls waiting")]
    Total(usize),
}

impl LongPollLimitReached {
    /// The bound's name, as a metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tenant(_) => "tenant",
            Self::Total(_) => "total",
        }
    }
}

pub struct LongPollSlots {
    limits: LongPollLimits,
    /// Waiting long-polls: per tenant (tenants with none are removed, so the map holds at
    /// most `total` entries) and in all. One mutex for both: the critical sections are a
    /// few integer operations, far shorter than the reads they guard.
    waiting: Arc<Mutex<Waiting>>,
}

#[derive(Default)]
struct Waiting {
    per_tenant: HashMap<TenantId, usize>,
    total: usize,
}

/// One waiting long-poll; its slot is free again when this is dropped.
pub struct LongPollSlot {
    tenant: TenantId,
    waiting: Arc<Mutex<Waiting>>,
}

impl LongPollSlots {
    pub fn new(limits: LongPollLimits) -> Self {
        Self {
            limits,
            waiting: Arc::default(),
        }
    }

    /// A slot for one more waiting long-poll of `tenant`, unless a bound is reached.
    pub fn try_take(&self, tenant: &TenantId) -> Result<LongPollSlot, LongPollLimitReached> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let of_tenant = waiting.per_tenant.get(tenant).copied().unwrap_or(0);
        let refused = if of_tenant >= self.limits.per_tenant {
            Some(LongPollLimitReached::Tenant(self.limits.per_tenant))
        } else if waiting.total >= self.limits.total {
            Some(LongPollLimitReached::Total(self.limits.total))
        } else {
            None
        };
        if let Some(limit) = refused {
            metrics::counter!("long_polls_refused_total", "limit" => limit.name()).increment(1);
            return Err(limit);
        }
        waiting.per_tenant.insert(tenant.clone(), of_tenant + 1);
        waiting.total += 1;
        metrics::gauge!("long_polls_waiting").set(waiting.total as f64);
        Ok(LongPollSlot {
            tenant: tenant.clone(),
            waiting: self.waiting.clone(),
        })
    }
}

impl Drop for LongPollSlot {
    fn drop(&mut self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = waiting.per_tenant.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                waiting.per_tenant.remove(&self.tenant);
            }
        }
        waiting.total -= 1;
        metrics::gauge!("long_polls_waiting").set(waiting.total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    #[test]
    fn each_bound_refuses_once_reached_and_a_dropped_slot_is_free_again() {
        let slots = LongPollSlots::new(LongPollLimits {
            per_tenant: 2,
            total: 3,
        });
        let (a, b, c) = (tenant("a"), tenant("b"), tenant("c"));
        let a1 = slots.try_take(&a).unwrap();
        let _a2 = slots.try_take(&a).unwrap();
        assert_eq!(
            slots.try_take(&a).err(),
            Some(LongPollLimitReached::Tenant(2))
        );
        let _b1 = slots.try_take(&b).unwrap();
        assert_eq!(
            slots.try_take(&c).err(),
            Some(LongPollLimitReached::Total(3))
        );
        drop(a1);
        let _c1 = slots.try_take(&c).unwrap();
        assert_eq!(
            slots.try_take(&a).err(),
            Some(LongPollLimitReached::Total(3))
        );
    }
}
