//! Failed-login throttling (sliding window, in memory), shaped after OWASP's guidance on
//! credential stuffing versus lockout: a user is throttled per client address, so a
//! stranger's wrong passwords lock out that stranger's address, not the owner's phone;
//! each address has its own ceiling across users; and each user has a global ceiling far
//! above the per-address one, which bounds a slow guess spread over many addresses.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginThrottle {
    window: Duration,
    /// Failures of one user from one address.
    max_per_pair: usize,
    /// Failures from one address, whatever the user.
    max_per_addr: usize,
    /// Failures of one user from every address together.
    max_per_user: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    pub fn new(
        window: Duration,
        max_per_pair: usize,
        max_per_addr: usize,
        max_per_user: usize,
    ) -> Self {
        LoginThrottle {
            window,
            max_per_pair,
            max_per_addr,
            max_per_user,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn pair_key(user: &str, addr: &str) -> String {
        format!("p:{}\u{0}{addr}", user.to_lowercase())
    }

    fn keys(&self, user: &str, addr: &str) -> [(String, usize); 3] {
        [
            (Self::pair_key(user, addr), self.max_per_pair),
            (format!("a:{addr}"), self.max_per_addr),
            (format!("u:{}", user.to_lowercase()), self.max_per_user),
        ]
    }

    /// `Err(seconds)` while either key is over its limit.
    pub fn check(&self, user: &str, addr: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = 0u64;
        for (key, limit) in self.keys(user, addr) {
            let Some(q) = map.get_mut(&key) else { continue };
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) > self.window)
            {
                q.pop_front();
            }
            if q.len() >= limit {
                if let Some(oldest) = q.front() {
                    let left = self.window.saturating_sub(now.duration_since(*oldest));
                    wait = wait.max(left.as_secs().max(1));
                }
            }
        }
        if wait > 0 {
            Err(wait)
        } else {
            Ok(())
        }
    }

    pub fn record_failure(&self, user: &str, addr: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for (key, _) in self.keys(user, addr) {
            map.entry(key).or_default().push_back(Instant::now());
        }
    }

    /// The owner got in from this address: its failures there are forgiven (the global
    /// count stays, so success cannot be used to reset a distributed guess).
    pub fn record_success(&self, user: &str, addr: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&Self::pair_key(user, addr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stranger_locks_out_only_their_own_address() {
        let t = LoginThrottle::new(Duration::from_secs(60), 3, 50, 20);
        for _ in 0..3 {
            assert!(t.check("ana", "6.6.6.6").is_ok());
            t.record_failure("ana", "6.6.6.6");
        }
        assert!(t.check("ana", "6.6.6.6").is_err(), "that pair is throttled");
        assert!(
            t.check("ana", "10.0.0.7").is_ok(),
            "the owner's own address is not locked out by a stranger"
        );
        let wait = t.check("ana", "6.6.6.6").unwrap_err();
        assert!((1..=60).contains(&wait));
    }

    #[test]
    fn addresses_and_the_users_global_ceiling_still_bound_guessing() {
        let t = LoginThrottle::new(Duration::from_secs(60), 3, 5, 8);
        for user in ["ben", "cy", "dee", "eve", "fay"] {
            t.record_failure(user, "1.1.1.1");
        }
        assert!(t.check("gus", "1.1.1.1").is_err(), "per-address limit");
        // A slow guess spread over many addresses stops at the user's global ceiling.
        for i in 0..8 {
            assert!(t.check("ana", &format!("2.2.2.{i}")).is_ok());
            t.record_failure("ana", &format!("2.2.2.{i}"));
        }
        assert!(
            t.check("ana", "9.9.9.9").is_err(),
            "global per-user ceiling"
        );
        t.record_success("ana", "2.2.2.0");
        assert!(
            t.check("ana", "9.9.9.9").is_err(),
            "a success does not reset it"
        );
    }
}
