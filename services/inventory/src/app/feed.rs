//! The change feed of the site's ledger (WatchLedger): the network's one resumable feed
//! (`coldchain_runtime::feed`), tuned by [`crate::Options`]. Stored entries first, then
//! live ones; a caught-up marker and keep-alives carry the head; a stalled consumer or a
//! shutdown ends the stream naming the sequence to resume from.

use coldchain_runtime::ServiceError;
use coldchain_runtime::Shutdown;
use coldchain_runtime::feed::{FeedBatch, FeedOptions, FeedStream, ledger_feed};
use coldchain_store::Store;

use crate::Options;

/// Feeds of one store's ledger.
#[derive(Clone)]
pub struct LedgerFeed {
    store: Store,
    shutdown: Shutdown,
    options: FeedOptions,
}

impl LedgerFeed {
    /// Feeds of `store`'s ledger until `shutdown`, batched and paced by `options`.
    pub fn new(store: Store, shutdown: Shutdown, options: &Options) -> Self {
        Self {
            store,
            shutdown,
            options: FeedOptions {
                buffer: options.feed_buffer,
                batch: options.feed_batch,
                stall: options.feed_stall,
                keepalive: options.feed_keepalive,
                ..FeedOptions::default()
            },
        }
    }

    /// The ledger from sequence `from` (0 and 1: the beginning), each batch rendered as a
    /// message by `render`.
    pub fn watch<M, R>(&self, from: u64, render: R) -> FeedStream<M>
    where
        M: Send + 'static,
        R: Fn(FeedBatch) -> Result<M, ServiceError> + Send + Sync + 'static,
    {
        ledger_feed(
            self.store.clone(),
            from,
            self.shutdown.clone(),
            self.options.clone(),
            "from sequence",
            render,
        )
    }
}
