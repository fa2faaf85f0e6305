//! The gatekeeper every server puts in front of its handlers: authenticate, authorize,
//! rate-limit per credential.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::policy::is_open;
use super::{Credentials, Principal, Refusal, ServerScope, authorize};

/// Authentication, authorization and rate limiting for one server.
#[derive(Debug)]
pub struct Gatekeeper {
    credentials: std::sync::Arc<Credentials>,
    scope: ServerScope,
    limiter: RateLimiter,
}

impl Gatekeeper {
    /// A gatekeeper for the server `scope`, allowing `rate` calls per second and `burst` at
    /// once per credential.
    pub fn new(
        credentials: std::sync::Arc<Credentials>,
        scope: ServerScope,
        rate: usize,
        burst: usize,
    ) -> Self {
        Self {
            credentials,
            scope,
            limiter: RateLimiter::new(rate as f64, burst as f64),
        }
    }

    /// Checks one call: who, may they, and not too often.
    pub fn admit(
        &self,
        path: &str,
        authorization: Option<&http::HeaderValue>,
    ) -> Result<Option<Principal>, Refusal> {
        if is_open(path) {
            return Ok(None);
        }
        let principal = self.credentials.authenticate(authorization)?;
        authorize(&principal, &self.scope, path)?;
        self.limiter.take(&principal.id, Instant::now())?;
        Ok(Some(principal))
    }
}

/// A token bucket per credential, shared by every connection to one server (tower's
/// `RateLimit` counts per connection, so a client could multiply its rate by connecting
/// again).
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `id` at `now`, or says how long until one is there.
    pub fn take(&self, id: &str, now: Instant) -> Result<(), Refusal> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = match buckets.get_mut(id) {
            Some(bucket) => bucket,
            None => buckets.entry(id.to_owned()).or_insert(Bucket {
                tokens: self.burst,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate;
            Err(Refusal::RateLimited(Duration::from_secs_f64(wait)))
        }
    }
}
