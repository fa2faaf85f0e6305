//! WatchAlarms: the site's alarm feed streamed to one consumer from a sequence, first
//! what is stored, then what is written while it watches. A consumer too slow to keep up
//! and a server shutting down both end the stream with the sequence to resume from; a
//! writer never waits for a consumer. (A shared resumable feed may later replace this.)

use tokio::sync::mpsc;

use super::TelemetryApp;
use crate::domain::StreamEnd;
use crate::store::{TelemetryError, TelemetryStore};

/// The bounded buffer of a WatchAlarms stream (messages).
pub const WATCH_BUFFER: usize = 256;
/// Stored events read per page.
pub const WATCH_PAGE: usize = 1_024;
/// An idle stream says how far the feed is this often.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// Decodes one stored event: (its sequence, its bytes).
pub type DecodeFn<V> = fn(u64, &[u8]) -> Result<V, StreamEnd>;
/// Makes one message of events (none for a keep-alive) and the durable head.
pub type MessageFn<V, M> = fn(Vec<V>, u64) -> M;

impl TelemetryApp {
    /// Streams the alarm feed from sequence `from` (0 and 1: the beginning); events are
    /// decoded by `decode` and sent in messages made by `message`.
    pub fn watch_alarms<V, M, E>(
        &self,
        from: u64,
        decode: DecodeFn<V>,
        message: MessageFn<V, M>,
    ) -> mpsc::Receiver<Result<M, E>>
    where
        V: Send + 'static,
        M: Send + 'static,
        E: From<StreamEnd> + From<TelemetryError> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(self.watch_buffer);
        let feed = Feed {
            store: self.store.clone(),
            shutdown: self.shutdown.clone(),
            decode,
            message,
            tx,
        };
        tokio::spawn(feed.run(from.max(1)));
        rx
    }
}

struct Feed<V, M, E> {
    store: TelemetryStore,
    shutdown: coldchain_runtime::Shutdown,
    decode: DecodeFn<V>,
    message: MessageFn<V, M>,
    tx: mpsc::Sender<Result<M, E>>,
}

impl<V, M, E> Feed<V, M, E>
where
    V: Send + 'static,
    M: Send + 'static,
    E: From<StreamEnd> + From<TelemetryError> + Send + 'static,
{
    /// Feeds the stream: stored events from `from`, then live ones. Ends with a resumable
    /// error when the consumer is too slow, or when the server shuts down.
    async fn run(self, mut from: u64) {
        let Feed {
            store,
            shutdown,
            decode,
            message,
            tx,
        } = self;
        let mut durable = store.subscribe_feed();
        loop {
            if shutdown.is_triggered() {
                let end = StreamEnd::ShuttingDown { resume_from: from };
                let _ = tx.send(Err(E::from(end))).await;
                return;
            }
            let records = match store.feed_from(from, WATCH_PAGE) {
                Ok(records) => records,
                Err(error) => {
                    let _ = tx.send(Err(E::from(TelemetryError::Store(error)))).await;
                    return;
                }
            };
            if !records.is_empty() {
                let mut events = Vec::with_capacity(records.len());
                for record in &records {
                    match decode(record.sequence, &record.bytes) {
                        Ok(event) => events.push(event),
                        Err(end) => {
                            let _ = tx.send(Err(E::from(end))).await;
                            return;
                        }
                    }
                }
                let next = records.last().map_or(from, |r| r.sequence + 1);
                match tx.try_send(Ok(message(events, store.feed_head()))) {
                    Ok(()) => from = next,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // Never buffer without bound: the consumer resumes where it left off.
                        let end = StreamEnd::ConsumerTooSlow { resume_from: from };
                        let _ = tx.send(Err(E::from(end))).await;
                        return;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
                continue;
            }
            tokio::select! {
                changed = durable.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep(KEEPALIVE) => {
                    let keepalive = message(Vec::new(), store.feed_head());
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(keepalive)) {
                        return;
                    }
                }
                () = tx.closed() => return,
                () = shutdown.wait() => {}
            }
        }
    }
}
