//! Failed-login throttling per username and per client address (sliding window, in memory).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginThrottle {
    window: Duration,
    max_per_user: usize,
    max_per_addr: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    pub fn new(window: Duration, max_per_user: usize, max_per_addr: usize) -> Self {
        LoginThrottle {
            window,
            max_per_user,
            max_per_addr,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: &str, addr: &str) -> [(String, bool); 2] {
        [
            (format!("u:{}", user.to_lowercase()), true),
            (format!("a:{addr}"), false),
        ]
    }

    /// `Err(seconds)` while either key is over its limit.
    pub fn check(&self, user: &str, addr: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = 0u64;
        for (key, is_user) in Self::keys(user, addr) {
            let Some(q) = map.get_mut(&key) else { continue };
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) > self.window)
            {
                q.pop_front();
            }
            let limit = if is_user {
                self.max_per_user
            } else {
                self.max_per_addr
            };
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
        for (key, _) in Self::keys(user, addr) {
            map.entry(key).or_default().push_back(Instant::now());
        }
    }

    pub fn record_success(&self, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("u:{}", user.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_address_limits_are_independent() {
        let t = LoginThrottle::new(Duration::from_secs(60), 3, 5);
        for _ in 0..3 {
            assert!(t.check("ana", "1.1.1.1").is_ok());
            t.record_failure("ana", "1.1.1.1");
        }
        assert!(
            t.check("ana", "2.2.2.2").is_err(),
            "per-user limit follows the user"
        );
        assert!(t.check("ben", "3.3.3.3").is_ok());
        t.record_failure("ben", "1.1.1.1");
        t.record_failure("cy", "1.1.1.1");
        assert!(t.check("dee", "1.1.1.1").is_err(), "per-address limit");
        let wait = t.check("ana", "9.9.9.9").unwrap_err();
        assert!((1..=60).contains(&wait));
    }
}
