//! The login rate limit: a pure rule, with no clock and no I/O (the handler passes the time).
//!
//! Failed logins are counted per client address and per key id, in a fixed window that
//! starts at a subject's first failure. After [`LoginLimit::max_failures`] failures in
//! [`LoginLimit::window`], the subject is refused (HTTP 429 with `Retry-After`) until the
//! window ends: a guesser gets a handful of tries per window, whatever the rate it sends at.
//! A successful login resets its address and its key id. The table is bounded: past
//! [`MAX_SUBJECTS`] entries the expired ones go, then the oldest windows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How many subjects the table keeps at most.
pub const MAX_SUBJECTS: usize = 10_000;

/// Who failed: the client's address, or the key id that was tried.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Address(IpAddr),
    KeyId(String),
}

/// How many failures a window allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimit {
    /// Failures allowed in a window; the next attempt is refused.
    pub max_failures: u32,
    /// The length of a window, from a subject's first failure.
    pub window: Duration,
}

impl Default for LoginLimit {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    started: Instant,
    failures: u32,
}

/// The failures of every subject.
#[derive(Debug)]
pub struct LoginThrottle {
    limit: LoginLimit,
    records: HashMap<Subject, Record>,
}

impl LoginThrottle {
    pub fn new(limit: LoginLimit) -> Self {
        Self {
            limit,
            records: HashMap::new(),
        }
    }

    /// `Err(retry_after)` when any of `subjects` has used up its window at `now`: how long
    /// until that window ends (at least a second). Checked before the key is.
    pub fn check(&self, subjects: &[Subject], now: Instant) -> Result<(), Duration> {
        let mut wait = None::<Duration>;
        for subject in subjects {
            let Some(record) = self.records.get(subject) else {
                continue;
            };
            let ends = record.started + self.limit.window;
            if record.failures >= self.limit.max_failures && now < ends {
                let left = (ends - now).max(Duration::from_secs(1));
                wait = Some(wait.map_or(left, |w| w.max(left)));
            }
        }
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failed login of each of `subjects` at `now`.
    pub fn failed(&mut self, subjects: &[Subject], now: Instant) {
        for subject in subjects {
            let window = self.limit.window;
            let record = self.records.entry(subject.clone()).or_insert(Record {
                started: now,
                failures: 0,
            });
            if now >= record.started + window {
                *record = Record {
                    started: now,
                    failures: 0,
                };
            }
            record.failures = record.failures.saturating_add(1);
        }
        self.bound(now);
    }

    /// A successful login: its subjects start afresh.
    pub fn succeeded(&mut self, subjects: &[Subject]) {
        for subject in subjects {
            self.records.remove(subject);
        }
    }

    /// How many subjects are tracked.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no subject is tracked.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn bound(&mut self, now: Instant) {
        if self.records.len() <= MAX_SUBJECTS {
            return;
        }
        let window = self.limit.window;
        self.records.retain(|_, r| now < r.started + window);
        while self.records.len() > MAX_SUBJECTS {
            let oldest = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.started)
                .map(|(s, _)| s.clone());
            match oldest {
                Some(subject) => {
                    self.records.remove(&subject);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const MIN: Duration = Duration::from_secs(60);

    fn limit() -> LoginLimit {
        LoginLimit {
            max_failures: 3,
            window: 10 * MIN,
        }
    }

    fn addr(last: u8) -> Subject {
        Subject::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn refused_after_max_failures_until_the_window_ends() {
        let t0 = Instant::now();
        let mut throttle = LoginThrottle::new(limit());
        let who = [addr(1)];
        for i in 0..3 {
            assert_eq!(throttle.check(&who, t0 + i * MIN), Ok(()), "failure {i}");
            throttle.failed(&who, t0 + i * MIN);
        }
        // The window started at the first failure: 10 min, of which 3 have gone.
        assert_eq!(throttle.check(&who, t0 + 3 * MIN), Err(7 * MIN));
        assert_eq!(
            throttle.check(&who, t0 + 10 * MIN - Duration::from_millis(1)),
            Err(Duration::from_secs(1))
        );
        assert_eq!(
            throttle.check(&who, t0 + 10 * MIN),
            Ok(()),
            "the window ended"
        );
        // A failure after the window starts a new one.
        throttle.failed(&who, t0 + 10 * MIN);
        assert_eq!(throttle.check(&who, t0 + 10 * MIN), Ok(()));
    }

    #[test]
    fn failures_spread_over_windows_are_not_refused() {
        let t0 = Instant::now();
        let mut throttle = LoginThrottle::new(limit());
        let who = [addr(1)];
        for i in 0..10 {
            let now = t0 + i * 6 * MIN;
            assert_eq!(throttle.check(&who, now), Ok(()), "failure {i}");
            throttle.failed(&who, now);
        }
    }

    #[test]
    fn a_success_resets_its_subjects_only() {
        let t0 = Instant::now();
        let mut throttle = LoginThrottle::new(limit());
        let both = [addr(1), Subject::KeyId("operations".into())];
        for _ in 0..2 {
            throttle.failed(&both, t0);
        }
        throttle.failed(&[addr(2)], t0);
        throttle.failed(&[addr(2)], t0);
        throttle.succeeded(&both);
        throttle.failed(&both, t0);
        throttle.failed(&both, t0);
        assert_eq!(throttle.check(&both, t0), Ok(()), "counted afresh: 2 of 3");
        throttle.failed(&[addr(2)], t0);
        assert!(
            throttle.check(&[addr(2)], t0).is_err(),
            "another address kept its count"
        );
    }

    #[test]
    fn a_key_id_is_refused_from_every_address() {
        let t0 = Instant::now();
        let mut throttle = LoginThrottle::new(limit());
        let key = Subject::KeyId("wms-la-vientiane".into());
        for i in 0..3 {
            throttle.failed(&[addr(i), key.clone()], t0);
        }
        assert_eq!(throttle.check(&[addr(9), key.clone()], t0), Err(10 * MIN));
        assert_eq!(
            throttle.check(&[addr(9)], t0),
            Ok(()),
            "that address alone is not"
        );
        // The longest wait of the subjects is the answer.
        for _ in 0..3 {
            throttle.failed(&[addr(9)], t0 + 5 * MIN);
        }
        assert_eq!(throttle.check(&[addr(9), key], t0 + 5 * MIN), Err(10 * MIN));
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut throttle = LoginThrottle::new(limit());
        for i in 0..(MAX_SUBJECTS + 50) {
            throttle.failed(
                &[Subject::KeyId(format!("k{i}"))],
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(throttle.len(), MAX_SUBJECTS);
        // The oldest went first.
        throttle.failed(&[Subject::KeyId("k0".into())], t0 + MIN);
        assert_eq!(throttle.len(), MAX_SUBJECTS);
        // Expired windows go before live ones.
        throttle.failed(&[addr(1)], t0 + 20 * MIN);
        assert_eq!(throttle.len(), 1);
    }
}
