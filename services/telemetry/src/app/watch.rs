//! WatchAlarms: the site's alarm feed (the store's ledger) streamed to one consumer from a
//! sequence, first what is stored, then what is written while it watches. It is the
//! network's one resumable feed (`coldchain_runtime::feed::ledger_feed`), tuned by
//! [`crate::TelemetryOptions`], and so its rules are the feed's:
//! - events come in sequence order, each once, with no gap; every message carries the
//!   durable head;
//! - when the consumer has everything, a message with no events (and the head) says so,
//!   and an idle stream sends such a keep-alive every `watch_keepalive`;
//! - a consumer that leaves `watch_buffer` messages unread for `watch_stall` is cut off
//!   with RESOURCE_EXHAUSTED, and a server shutting down ends the stream with UNAVAILABLE;
//!   both name `resume from_sequence N`, every event before N having been delivered to
//!   the stream. A writer never waits for a consumer;
//! - a stored event that cannot be decoded ends the stream with DATA_LOSS naming it.

use coldchain_runtime::ServiceError;
use coldchain_runtime::feed::{FeedBatch, FeedStream, ledger_feed};

use super::TelemetryApp;
use crate::domain::StreamEnd;

/// Most events in one WatchAlarms message.
pub const WATCH_BATCH: usize = 1_024;

/// Decodes one stored event: (its sequence, its bytes).
pub type DecodeFn<V> = fn(u64, &[u8]) -> Result<V, StreamEnd>;
/// Makes one message of events (none for a keep-alive) and the durable head.
pub type MessageFn<V, M> = fn(Vec<V>, u64) -> M;

impl TelemetryApp {
    /// Streams the alarm feed from sequence `from` (0 and 1: the beginning); events are
    /// decoded by `decode` and sent in messages made by `message`.
    pub fn watch_alarms<V, M>(
        &self,
        from: u64,
        decode: DecodeFn<V>,
        message: MessageFn<V, M>,
    ) -> FeedStream<M>
    where
        V: Send + 'static,
        M: Send + 'static,
    {
        let render = move |batch: FeedBatch| {
            let events = batch
                .records
                .iter()
                .map(|record| decode(record.sequence, &record.bytes))
                .collect::<Result<Vec<V>, StreamEnd>>()
                .map_err(ServiceError::from)?;
            Ok(message(events, batch.head_sequence))
        };
        ledger_feed(
            self.store.raw().clone(),
            from,
            self.shutdown.clone(),
            self.watch_feed.clone(),
            "from_sequence",
            render,
        )
    }
}
