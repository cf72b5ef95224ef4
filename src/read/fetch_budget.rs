//! The per-user budget of OFSC reads that a caller's requests cause (cache misses): one
//! request, or one user's many, cannot turn into unbounded work against the tenant.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

pub struct FetchBudget {
    /// `None`: no budget (`cache.fetches_per_minute = 0`).
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl FetchBudget {
    /// `per_minute` fetches refill a bucket of `burst`; a zero `per_minute` turns it off.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        FetchBudget {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// Takes one fetch from `user`'s budget, or says in how many seconds one is back.
    pub fn charge(&self, user: &str) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let key = user.to_lowercase();
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })?;
        // The map holds one entry per user who fetched; drop the ones refilled to full.
        if limiter.len() > 10_000 {
            limiter.retain_recent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_says_when_it_refills_and_is_per_user() {
        let b = FetchBudget::new(1, 3);
        for _ in 0..3 {
            assert_eq!(b.charge("tech1"), Ok(()));
        }
        let wait = b
            .charge("TECH1")
            .expect_err("the burst is spent, whatever the case");
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(b.charge("tech2"), Ok(()), "another user has their own");
    }

    #[test]
    fn zero_per_minute_is_no_budget() {
        let b = FetchBudget::new(0, 0);
        for _ in 0..1000 {
            assert_eq!(b.charge("tech1"), Ok(()));
        }
    }
}
