//! The one resumable feed of the network: a store's durable ledger streamed to one
//! consumer from a sequence number, first what is stored, then what is written while it
//! watches. Inventory's `WatchLedger` and telemetry's `WatchAlarms` are this feed with their
//! own rendering of a batch.
//!
//! The rules a consumer can rely on, the same for every feed:
//! - entries come in sequence order, each once, with no gap; every message carries the
//!   durable head so a consumer knows how far behind it is;
//! - when the consumer has everything, one message with no entries says so, and an idle
//!   stream sends such a keep-alive every `keepalive`;
//! - a consumer that leaves `buffer` messages unread for `stall` is cut off with
//!   `RESOURCE_EXHAUSTED`, and a server that shuts down ends the stream with `UNAVAILABLE`:
//!   both name the sequence to resume from, and everything before it was delivered to the
//!   stream. Writers never wait for a consumer.
//!
//! The numbers are one set for every feed of the network, the gateway's merged WatchAlarms
//! included: the configuration's `feed_buffer` (16 messages), `feed_stall` (10 s) and
//! `feed_keepalive` (15 s), see [`FeedOptions::from_config`].

use std::pin::Pin;
use std::time::Duration;

use coldchain_store::{LedgerRecord, Store};
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::error::ServiceError;
use crate::shutdown::Shutdown;

/// How a feed batches and how long it waits for its consumer.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// Messages queued for the consumer.
    pub buffer: usize,
    /// Most entries in one message.
    pub batch: usize,
    /// Most bytes of entries in one message (well under the 4 MiB message limit).
    pub batch_bytes: usize,
    /// How long a full queue is tolerated before the stream ends with RESOURCE_EXHAUSTED.
    pub stall: Duration,
    /// An idle stream sends an empty message this often.
    pub keepalive: Duration,
}

impl Default for FeedOptions {
    fn default() -> Self {
        Self::from_config(&Config::default())
    }
}

impl FeedOptions {
    /// The feed limits of a process's configuration, the same for every feed it serves:
    /// `feed_buffer` messages queued, `feed_stall` tolerated with a full queue,
    /// `feed_keepalive` between keep-alives.
    pub fn from_config(config: &Config) -> Self {
        Self {
            buffer: config.feed_buffer,
            batch: 1000,
            batch_bytes: 1 << 20,
            stall: config.feed_stall,
            keepalive: config.feed_keepalive,
        }
    }
}

/// One message's worth of the ledger: consecutive records (none for a keep-alive or the
/// caught-up marker) and the durable head when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedBatch {
    /// Consecutive stored entries.
    pub records: Vec<LedgerRecord>,
    /// The highest durable sequence.
    pub head_sequence: u64,
}

/// A feed's messages; the stream ends with its error, if any.
pub type FeedStream<M> = Pin<Box<dyn Stream<Item = Result<M, tonic::Status>> + Send>>;

/// Streams `store`'s ledger from `from` (0 and 1: the beginning) until the consumer goes
/// away, stalls, or `shutdown` fires. `render` turns a batch into the feed's message (an
/// error ends the stream with it). `resume` names the request field to resume with in the
/// closing error's message, e.g. `from_sequence`.
pub fn ledger_feed<M, R>(
    store: Store,
    from: u64,
    shutdown: Shutdown,
    options: FeedOptions,
    resume: &'static str,
    render: R,
) -> FeedStream<M>
where
    M: Send + 'static,
    R: Fn(FeedBatch) -> Result<M, ServiceError> + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel(options.buffer.max(1));
    let (end_tx, end_rx) = oneshot::channel::<ServiceError>();
    let pump = Pump {
        store,
        tx,
        shutdown,
        options,
        resume,
        render,
    };
    tokio::spawn(async move {
        if let Some(end) = pump.run(from.max(1)).await {
            let _ = end_tx.send(end);
        }
    });
    let data = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok);
    let tail = futures::stream::once(end_rx).filter_map(|end| {
        futures::future::ready(end.ok().map(|error| Err(tonic::Status::from(error))))
    });
    Box::pin(data.chain(tail))
}

struct Pump<M, R> {
    store: Store,
    tx: mpsc::Sender<M>,
    shutdown: Shutdown,
    options: FeedOptions,
    resume: &'static str,
    render: R,
}

/// What became of one message handed to the consumer's queue.
enum Sent {
    Queued,
    /// The consumer went away: the stream ends quietly.
    Gone,
    /// The stream ends with this error.
    End(ServiceError),
}

impl<M, R> Pump<M, R>
where
    M: Send + 'static,
    R: Fn(FeedBatch) -> Result<M, ServiceError> + Send + Sync + 'static,
{
    /// Feeds the queue from `next`; returns the error the stream ends with, `None` when
    /// the consumer went away.
    async fn run(self, mut next: u64) -> Option<ServiceError> {
        let mut head = self.store.subscribe_ledger();
        let mut caught_up = false;
        let stopping = self.shutdown.wait();
        tokio::pin!(stopping);
        loop {
            if self.shutdown.is_triggered() {
                return Some(self.shutting_down(next));
            }
            head.borrow_and_update();
            let records = match self.store.ledger_from(next, self.options.batch.max(1)) {
                Ok(records) => records,
                Err(error) => return Some(ServiceError::from(error)),
            };
            if records.is_empty() {
                // Tell the consumer where the head is as soon as it has everything.
                if !caught_up {
                    caught_up = true;
                    if self.offer_empty() {
                        return None;
                    }
                }
                tokio::select! {
                    biased;
                    () = &mut stopping => return Some(self.shutting_down(next)),
                    () = self.tx.closed() => return None,
                    changed = head.changed() => {
                        if changed.is_err() {
                            return Some(ServiceError::unavailable(format!(
                                "the ledger closed, resume {} {next}", self.resume
                            )));
                        }
                    }
                    () = tokio::time::sleep(self.options.keepalive) => {
                        // Lets an idle consumer see the head, and finds dead ones.
                        if self.offer_empty() {
                            return None;
                        }
                    }
                }
                continue;
            }
            let (batch, after) = match self.take_batch(next, records) {
                Ok(taken) => taken,
                Err(error) => return Some(error),
            };
            let message = match (self.render)(batch) {
                Ok(message) => message,
                Err(error) => return Some(error),
            };
            match self.send(message, &mut stopping, next).await {
                Sent::Queued => next = after,
                Sent::Gone => return None,
                Sent::End(error) => return Some(error),
            }
        }
    }

    /// The longest run of consecutive records from `next` within the byte budget, and the
    /// sequence after it.
    fn take_batch(
        &self,
        next: u64,
        records: Vec<LedgerRecord>,
    ) -> Result<(FeedBatch, u64), ServiceError> {
        let mut taken = Vec::with_capacity(records.len());
        let mut expected = next;
        let mut bytes = 0;
        for record in records {
            if record.sequence != expected {
                return Err(ServiceError::internal(format!(
                    "ledger gap: expected sequence {expected}, found {}",
                    record.sequence
                )));
            }
            if bytes > self.options.batch_bytes {
                break;
            }
            bytes += record.bytes.len();
            taken.push(record);
            expected += 1;
        }
        let batch = FeedBatch {
            records: taken,
            head_sequence: self.store.durable_sequence(),
        };
        Ok((batch, expected))
    }

    /// Queues a message without entries (caught up, keep-alive) if there is room: a full
    /// queue already gives the consumer something to read. True when the consumer is gone.
    fn offer_empty(&self) -> bool {
        let batch = FeedBatch {
            records: Vec::new(),
            head_sequence: self.store.durable_sequence(),
        };
        let Ok(message) = (self.render)(batch) else {
            return false;
        };
        matches!(
            self.tx.try_send(message),
            Err(mpsc::error::TrySendError::Closed(_))
        )
    }

    /// Queues `message`, waiting up to `stall` for room.
    async fn send(
        &self,
        message: M,
        stopping: &mut Pin<&mut (impl Future<Output = ()> + Send)>,
        next: u64,
    ) -> Sent {
        let message = match self.tx.try_send(message) {
            Ok(()) => return Sent::Queued,
            Err(mpsc::error::TrySendError::Closed(_)) => return Sent::Gone,
            Err(mpsc::error::TrySendError::Full(message)) => message,
        };
        tokio::select! {
            biased;
            () = stopping.as_mut() => Sent::End(self.shutting_down(next)),
            sent = tokio::time::timeout(self.options.stall, self.tx.send(message)) => match sent {
                Ok(Ok(())) => Sent::Queued,
                Ok(Err(_)) => Sent::Gone,
                Err(_) => Sent::End(ServiceError::new(
                    crate::error::Code::ResourceExhausted,
                    format!(
                        "consumer too slow: {} messages queued for {} ms; resume {} {next}",
                        self.options.buffer,
                        self.options.stall.as_millis(),
                        self.resume,
                    ),
                )),
            }
        }
    }

    fn shutting_down(&self, next: u64) -> ServiceError {
        ServiceError::unavailable(format!(
            "server shutting down, resume {} {next}",
            self.resume
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldchain_store::{Identity, StoreOptions};

    fn store(dir: &tempfile::TempDir) -> Store {
        let identity = Identity {
            site: "la-vientiane".into(),
            service: "inventory".into(),
        };
        Store::open(dir.path(), &identity, StoreOptions::default()).unwrap()
    }

    async fn append(store: &Store, text: &str) {
        let text = text.to_string();
        store
            .write::<(), String, _>(None, move |tx| {
                tx.append_ledger(|_| text.into_bytes());
                Ok(())
            })
            .await
            .unwrap();
    }

    /// (sequences, head) of a message.
    fn render(batch: FeedBatch) -> Result<(Vec<u64>, u64), ServiceError> {
        Ok((
            batch.records.iter().map(|r| r.sequence).collect(),
            batch.head_sequence,
        ))
    }

    fn options() -> FeedOptions {
        FeedOptions {
            buffer: 2,
            batch: 2,
            stall: Duration::from_millis(200),
            keepalive: Duration::from_secs(3600),
            ..FeedOptions::default()
        }
    }

    #[tokio::test]
    async fn stored_then_live_entries_in_order_each_once_with_a_caught_up_marker() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        for n in 0..3 {
            append(&store, &format!("e{n}")).await;
        }
        let mut feed = ledger_feed(
            store.clone(),
            2,
            Shutdown::new(),
            options(),
            "from_sequence",
            render,
        );
        assert_eq!(feed.next().await.unwrap().unwrap(), (vec![2, 3], 3));
        assert_eq!(feed.next().await.unwrap().unwrap(), (vec![], 3));
        append(&store, "e3").await;
        assert_eq!(feed.next().await.unwrap().unwrap(), (vec![4], 4));
    }

    #[tokio::test]
    async fn a_stalled_consumer_is_cut_off_naming_where_to_resume() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        for n in 0..20 {
            append(&store, &format!("e{n}")).await;
        }
        let mut feed = ledger_feed(
            store,
            1,
            Shutdown::new(),
            options(),
            "from_sequence",
            render,
        );
        // Nothing is read until the pump has filled the queue and waited out the stall.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut delivered = Vec::new();
        let mut messages = 0;
        let status = loop {
            match feed.next().await.unwrap() {
                Ok((sequences, _)) => {
                    messages += 1;
                    delivered.extend(sequences);
                }
                Err(status) => break status,
            }
        };
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        // Cut at the limit: exactly `buffer` messages were queued when it gave up, and the
        // message says which limit it was.
        assert_eq!(messages, options().buffer);
        assert!(
            status
                .message()
                .starts_with("consumer too slow: 2 messages queued for 200 ms;"),
            "{}",
            status.message()
        );
        let resume = delivered.last().unwrap() + 1;
        assert!(
            status
                .message()
                .ends_with(&format!("resume from_sequence {resume}")),
            "{}",
            status.message()
        );
        assert_eq!(delivered, (1..resume).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn shutdown_ends_the_stream_as_unavailable_naming_where_to_resume() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        append(&store, "e0").await;
        let shutdown = Shutdown::new();
        let mut feed = ledger_feed(
            store,
            0,
            shutdown.clone(),
            options(),
            "from sequence",
            render,
        );
        assert_eq!(feed.next().await.unwrap().unwrap(), (vec![1], 1));
        assert_eq!(feed.next().await.unwrap().unwrap(), (vec![], 1));
        shutdown.trigger();
        let status = feed.next().await.unwrap().unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().ends_with("resume from sequence 2"));
        assert!(feed.next().await.is_none());
    }
}
