//! Following a server stream (`alarms --watch`, `ledger --follow`, the demo's ledger
//! follower): which failures resume it from its cursor, and how long to wait before that.

use std::time::Duration;

use coldchain_runtime::retry::Backoff;

/// Codes after which a stream is resumed from its cursor. Narrower than
/// [`coldchain_runtime::retry::is_transient`]: a stream that fails on the server's side
/// (`INTERNAL`, `DATA_LOSS`, …) is reported to the operator rather than reopened in a loop.
pub fn retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::ResourceExhausted
            | tonic::Code::Aborted
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
    )
}

/// The waits before reopening a stream: 200 ms doubling up to 5 s, without jitter (one
/// operator's stream), back to 200 ms once a message arrives.
#[derive(Debug)]
pub(crate) struct Reconnect {
    attempt: u32,
}

impl Reconnect {
    const BACKOFF: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

    pub(crate) fn new() -> Self {
        Self { attempt: 1 }
    }

    /// Says on stderr why the stream pauses and for how long (`message` of the wait in
    /// milliseconds), then waits before the next attempt.
    pub(crate) async fn pause(&mut self, message: impl FnOnce(u128) -> String) {
        let wait = self.next_wait();
        eprintln!("{}", message(wait.as_millis()));
        tokio::time::sleep(wait).await;
    }

    /// The wait before the next attempt (it grows for the one after).
    fn next_wait(&mut self) -> Duration {
        let wait = Self::BACKOFF.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        wait
    }

    /// A message arrived: the stream is healthy again.
    pub(crate) fn reset(&mut self) {
        self.attempt = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_waits_double_up_to_five_seconds_and_reset() {
        let mut reconnect = Reconnect::new();
        let waits: Vec<u128> = (0..7).map(|_| reconnect.next_wait().as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000]);
        reconnect.reset();
        assert_eq!(reconnect.next_wait(), Duration::from_millis(200));
    }
}
