//! The one retry policy of the network: which gRPC outcomes are worth repeating, how long
//! to wait before the next attempt, and how a caller's deadline is read. The client
//! connector, the transfer saga and the hold outbox all retry through this module.
//!
//! Retrying is safe because every mutating call in this network carries a `request_id`.

use std::time::Duration;

use rand::Rng;

/// The canonical upper-case name of a gRPC code (`FAILED_PRECONDITION`), as statuses are
/// shown to people: `SiteError.code`, a transfer's `last_error`, a pending hold's error.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// "CODE: message", the way a failed call is recorded for people to read (the code as
/// [`reported_code`] gives it: a call that got no answer reads UNAVAILABLE).
pub fn describe(status: &tonic::Status) -> String {
    format!("{}: {}", code_name(reported_code(status)), status.message())
}

/// The code a failed call to another service is reported with (a site's failure in a
/// gateway answer, a dropped alarm feed): UNAVAILABLE when the call got no answer at all,
/// its own code otherwise. A call without an answer is one whose connection broke under it
/// (the service was killed, the network dropped): tonic makes that status itself, with the
/// transport's error as its source, and calls it UNKNOWN or INTERNAL; a server's own
/// answers carry no source. Such a call met an unreachable dependency, which every answer
/// of this network reports as UNAVAILABLE. Deadlines (DEADLINE_EXCEEDED, and CANCELLED for
/// the channel's own timer) keep their code.
pub fn reported_code(status: &tonic::Status) -> tonic::Code {
    let unanswered = std::error::Error::source(status).is_some()
        && matches!(status.code(), tonic::Code::Unknown | tonic::Code::Internal);
    if unanswered {
        tonic::Code::Unavailable
    } else {
        status.code()
    }
}

/// True when a status means the call may have to be repeated later: the service could not
/// be reached, was overloaded, timed out, lost a race, or failed on its side (its store
/// unreadable included: `DATA_LOSS` clears when an operator restores it, and background
/// work such as a transfer must wait for that rather than give up). False when the service
/// answered with a definite refusal (bad request, unknown thing, rule broken, not
/// allowed): the call did nothing and repeating it will not help.
pub fn is_transient(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Unavailable
            | DeadlineExceeded
            | ResourceExhausted
            | Aborted
            | Internal
            | Unknown
            | Cancelled
            | DataLoss
            | Unimplemented
    )
}

/// Exponential backoff: `initial` before the first retry, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// `initial` doubling up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The backoff before retry number `attempt` (1-based), without jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// [`Backoff::delay`] with "equal jitter" drawn from `unit` in [0, 1]: half the delay
    /// fixed, half random, so retries of many callers spread out and none comes sooner than
    /// half the delay.
    pub fn jittered(&self, attempt: u32, unit: f64) -> Duration {
        let half = self.delay(attempt) / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// [`Backoff::jittered`] with a random `unit`.
    pub fn next(&self, attempt: u32) -> Duration {
        self.jittered(attempt, rand::thread_rng().r#gen::<f64>())
    }
}

/// Runs `call` until it succeeds, fails with anything but `UNAVAILABLE`, or `attempts`
/// (1 = no retry) run out, waiting `backoff` between attempts. The last status is returned.
///
/// Only `UNAVAILABLE` is repeated here, within one call of a request handler: the request
/// was not delivered. Other transient codes are left to the caller, which knows whether its
/// own deadline leaves room (background work retries them through [`is_transient`]).
pub async fn with_retry<T, F, Fut>(
    attempts: u32,
    backoff: Backoff,
    mut call: F,
) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(status) if status.code() == tonic::Code::Unavailable && attempt < attempts => {
                let wait = backoff.next(attempt);
                tracing::debug!(
                    attempt,
                    ?wait,
                    message = status.message(),
                    "unavailable; retrying"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A `grpc-timeout` header value (an integer of at most 8 digits and a unit of H M S m u
/// n, as the gRPC HTTP/2 protocol defines it) as a duration; `None` when malformed.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 || !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The deadline the client of an incoming call set (`grpc-timeout`), if any.
pub fn client_deadline(headers: &http::HeaderMap) -> Option<Duration> {
    parse_grpc_timeout(headers.get("grpc-timeout")?.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: Backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));

    #[test]
    fn a_call_without_an_answer_is_reported_unavailable_and_answers_keep_their_code() {
        let broken = tonic::Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "connection closed before message completed",
        )));
        assert_eq!(broken.code(), tonic::Code::Unknown, "what tonic calls it");
        assert_eq!(reported_code(&broken), tonic::Code::Unavailable);
        // What a transfer's last_error or a pending hold's error shows for it.
        assert!(
            describe(&broken).starts_with("UNAVAILABLE: "),
            "{}",
            describe(&broken)
        );
        for answered in [
            tonic::Status::unknown("the server said so"),
            tonic::Status::internal("the server failed"),
            tonic::Status::not_found("no such site"),
            tonic::Status::deadline_exceeded("too late"),
        ] {
            assert_eq!(reported_code(&answered), answered.code(), "{answered:?}");
        }
    }

    #[tokio::test]
    async fn unavailable_is_retried_until_success() {
        let calls = AtomicU32::new(0);
        let result = with_retry(4, FAST, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(tonic::Status::unavailable("down"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried_and_attempts_are_bounded() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retry(4, FAST, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(tonic::Status::failed_precondition("no"))
        })
        .await;
        assert_eq!(result.unwrap_err().code(), tonic::Code::FailedPrecondition);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let result: Result<(), _> = with_retry(4, FAST, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(tonic::Status::unavailable("down"))
        })
        .await;
        assert_eq!(result.unwrap_err().code(), tonic::Code::Unavailable);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn code_names_are_the_canonical_ones() {
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(
            code_name(tonic::Code::FailedPrecondition),
            "FAILED_PRECONDITION"
        );
        assert_eq!(code_name(tonic::Code::DataLoss), "DATA_LOSS");
        assert_eq!(
            code_name(tonic::Code::DeadlineExceeded),
            "DEADLINE_EXCEEDED"
        );
        assert_eq!(
            describe(&tonic::Status::unavailable("down")),
            "UNAVAILABLE: down"
        );
        assert_eq!(code_name(tonic::Code::Unauthenticated), "UNAUTHENTICATED");
    }

    #[test]
    fn refusals_are_not_transient_and_failures_are() {
        for code in [
            tonic::Code::InvalidArgument,
            tonic::Code::NotFound,
            tonic::Code::AlreadyExists,
            tonic::Code::FailedPrecondition,
            tonic::Code::OutOfRange,
            tonic::Code::PermissionDenied,
            tonic::Code::Unauthenticated,
        ] {
            assert!(!is_transient(code), "{code:?}");
        }
        for code in [
            tonic::Code::Unavailable,
            tonic::Code::DeadlineExceeded,
            tonic::Code::ResourceExhausted,
            tonic::Code::Aborted,
            tonic::Code::DataLoss,
            tonic::Code::Internal,
        ] {
            assert!(is_transient(code), "{code:?}");
        }
    }

    #[test]
    fn grpc_timeout_values_are_parsed() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout("12Q"), None);
        assert_eq!(parse_grpc_timeout("+5S"), None);
        assert_eq!(parse_grpc_timeout("999999999S"), None);
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", http::HeaderValue::from_static("5S"));
        assert_eq!(client_deadline(&headers), Some(Duration::from_secs(5)));
        assert_eq!(client_deadline(&http::HeaderMap::new()), None);
    }

    proptest! {
        #[test]
        fn backoff_grows_and_is_capped(attempt in 0u32..100, unit in 0.0f64..=1.0) {
            let backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
            let delay = backoff.delay(attempt);
            prop_assert!(delay <= backoff.max);
            prop_assert!(delay >= backoff.initial.min(backoff.max));
            prop_assert!(delay >= backoff.delay(attempt.saturating_sub(1)));
            let jittered = backoff.jittered(attempt, unit);
            prop_assert!(jittered >= delay / 2 && jittered <= delay);
        }

        #[test]
        fn any_header_value_parses_without_panic(value in ".{0,12}") {
            let _ = parse_grpc_timeout(&value);
        }
    }
}
