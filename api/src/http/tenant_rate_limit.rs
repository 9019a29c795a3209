//! Per-tenant rate limiting (GCRA via `governor`): each tenant gets `per_second` requests a
//! second with bursts up to `burst`; past that, 429 with `Retry-After`. Checked right after
//! authentication and the scope check, so it costs nothing to unauthenticated or
//! insufficiently privileged traffic, and one tenant cannot use up another's share. Health and metrics endpoints are not limited.
//!
//! The key space is the set of tenants in valid tokens (signed by us), so it stays small.

use std::num::NonZeroU32;
use std::time::Duration;

use domain::TenantId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

pub struct TenantRateLimit {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl TenantRateLimit {
    /// `per_second == 0` turns limiting off.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    pub fn off() -> Self {
        Self::new(0, 0)
    }

    /// `Err(wait)`: the tenant is over its rate; it may retry after `wait`.
    pub fn check(&self, tenant: &TenantId) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&tenant.as_str().to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_over_its_burst_waits_and_others_do_not() {
        let limit = TenantRateLimit::new(1, 2);
        let (a, b) = (TenantId::parse("a").unwrap(), TenantId::parse("b").unwrap());
        assert!(limit.check(&a).is_ok());
        assert!(limit.check(&a).is_ok());
        let wait = limit.check(&a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limit.check(&b).is_ok());
        let off = TenantRateLimit::off();
        assert!((0..1000).all(|_| off.check(&a).is_ok()));
    }
}
