//! Reproducible fault injection: latency, 5xx, throttling, timeouts after apply, resets and
//! short token lifetimes, all drawn from one seeded generator.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `POST /__sim/faults` body. Every field is optional; zero means off.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FaultConfig {
    pub rate5xx: f64,
    pub rate429: f64,
    pub retry_after_secs: u64,
    pub timeout_after_apply: f64,
    pub reset: f64,
    pub latency_ms: u64,
    pub token_ttl_secs: u64,
    pub seed: u64,
    /// How long a "timeout after apply" holds the answer back (default 30 s).
    pub timeout_hold_ms: u64,
}

/// What to do before touching state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    Proceed,
    ServerError,
    Throttle { retry_after_secs: u64 },
}

/// What to do with the answer after state was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Answer,
    Hang(Duration),
    Reset,
}

#[derive(Debug)]
pub struct Faults {
    config: FaultConfig,
    rng: StdRng,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new(FaultConfig::default())
    }
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Faults { config, rng }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.config.latency_ms)
    }

    pub fn token_ttl_secs(&self) -> u64 {
        match self.config.token_ttl_secs {
            0 => 3600,
            n => n,
        }
    }

    fn roll(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.gen::<f64>() < rate
    }

    pub fn before(&mut self) -> Before {
        if self.roll(self.config.rate5xx) {
            return Before::ServerError;
        }
        if self.roll(self.config.rate429) {
            return Before::Throttle {
                retry_after_secs: self.config.retry_after_secs,
            };
        }
        Before::Proceed
    }

    pub fn after(&mut self) -> After {
        if self.roll(self.config.timeout_after_apply) {
            let hold = match self.config.timeout_hold_ms {
                0 => 30_000,
                n => n,
            };
            return After::Hang(Duration::from_millis(hold));
        }
        if self.roll(self.config.reset) {
            return After::Reset;
        }
        After::Answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(cfg: &FaultConfig) -> Vec<(Before, After)> {
        let mut f = Faults::new(cfg.clone());
        (0..200).map(|_| (f.before(), f.after())).collect()
    }

    #[test]
    fn same_seed_same_faults() {
        let cfg = FaultConfig {
            rate5xx: 0.2,
            rate429: 0.1,
            timeout_after_apply: 0.05,
            reset: 0.05,
            seed: 42,
            ..Default::default()
        };
        assert_eq!(draws(&cfg), draws(&cfg));
        let other = FaultConfig {
            seed: 43,
            ..cfg.clone()
        };
        assert_ne!(draws(&cfg), draws(&other));
    }

    #[test]
    fn zero_rates_never_fault() {
        assert!(draws(&FaultConfig::default())
            .iter()
            .all(|d| *d == (Before::Proceed, After::Answer)));
    }

    #[test]
    fn rates_are_roughly_honoured() {
        let cfg = FaultConfig {
            rate5xx: 0.2,
            seed: 7,
            ..Default::default()
        };
        let mut f = Faults::new(cfg);
        let n = (0..10_000)
            .filter(|_| f.before() == Before::ServerError)
            .count();
        assert!((1700..2300).contains(&n), "{n}");
    }
}
