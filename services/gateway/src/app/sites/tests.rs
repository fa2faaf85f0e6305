//! Deadlines, and the runtime's code names and transient codes as the gateway uses them.
use std::time::Duration;

use coldchain_runtime::retry::{code_name, describe, is_transient};

use super::*;

#[test]
fn refusals_and_transient_failures_are_told_apart() {
    for code in [
        tonic::Code::InvalidArgument,
        tonic::Code::NotFound,
        tonic::Code::FailedPrecondition,
        tonic::Code::AlreadyExists,
        tonic::Code::PermissionDenied,
        tonic::Code::Unauthenticated,
        tonic::Code::OutOfRange,
    ] {
        assert!(!is_transient(code), "{code:?}");
    }
    for code in [
        tonic::Code::Unavailable,
        tonic::Code::DeadlineExceeded,
        tonic::Code::ResourceExhausted,
        tonic::Code::Aborted,
        tonic::Code::Internal,
    ] {
        assert!(is_transient(code), "{code:?}");
    }
}

#[test]
fn fan_out_deadline_leaves_room_within_the_clients() {
    let configured = Duration::from_millis(1500);
    assert_eq!(fan_out_deadline(configured, None), configured);
    assert_eq!(
        fan_out_deadline(configured, Some(Duration::from_secs(10))),
        configured
    );
    assert_eq!(
        fan_out_deadline(configured, Some(Duration::from_millis(500))),
        Duration::from_millis(400)
    );
}

#[test]
fn code_names_are_the_canonical_ones() {
    assert_eq!(
        code_name(tonic::Code::DeadlineExceeded),
        "DEADLINE_EXCEEDED"
    );
    assert_eq!(
        describe(&tonic::Status::unavailable("down")),
        "UNAVAILABLE: down"
    );
}

proptest::proptest! {
    /// Moved from the domain with the gateway's own backoff: the runtime's `Backoff` keeps
    /// the same formula (doubling capped, equal jitter).
    #[test]
    fn backoff_grows_and_is_capped(attempt in 0u32..100, unit in 0.0f64..=1.0) {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let backoff = coldchain_runtime::retry::Backoff::new(initial, max);
        let b = backoff.delay(attempt);
        proptest::prop_assert!(b <= max);
        proptest::prop_assert!(b >= initial.min(max));
        proptest::prop_assert!(backoff.delay(attempt + 1) >= b);
        let j = backoff.jittered(attempt, unit);
        proptest::prop_assert!(j >= b / 2 && j <= b);
    }
}
