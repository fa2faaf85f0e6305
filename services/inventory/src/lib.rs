#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
//! The inventory service of one site (`coldchain.inventory.v1.InventoryService`): stock per
//! (sku, lot, zone), lots with expiry, FEFO/FIFO allocation, quarantine holds, an
//! idempotent atomic movement API and a resumable change feed.
//!
//! One shape, data flowing one way: [`api`] (tonic handlers of a few lines, and the route
//! that streams WatchLedger from stored bytes) → [`wire`] (protobuf ⇄ domain, validation of
//! form, the protobuf bytes the store keeps) → [`app`] (the use cases: site checks, the
//! booking check-in, the change feed) → [`store`] (tables and write closures on
//! `coldchain_store`) → [`domain`] (the rules, pure). [`error`] is the one place a refusal
//! becomes a gRPC status.
//!
//! Choices where the contract left room:
//! - a later movement stating lot attributes that differ from the stored lot is
//!   FAILED_PRECONDITION (as inventory.proto says), for every kind;
//! - an unknown zone is NOT_FOUND everywhere (movements, GetStock, ListStock, AllocateStock,
//!   PlaceHold); an unknown `other_site_id` is NOT_FOUND, this site's own id
//!   INVALID_ARGUMENT;
//! - ISSUE/TRANSFER_OUT need an existing position (NOT_FOUND otherwise); ADJUSTMENT and
//!   COUNT need an existing sku and lot but may open a new position of the lot; only
//!   RECEIPT and TRANSFER_IN create skus and lots, and both refuse expired lots;
//! - a held position refuses every ISSUE and TRANSFER_OUT, also one citing an order that
//!   has stock allocated there;
//! - two TRANSFER_IN lines of the same (transfer_id, sku, lot_id) in one batch are
//!   INVALID_ARGUMENT (the second would silently be a no-op);
//! - CheckIn's request_id is derived from (site, request_id, booking_id), one CheckIn per
//!   booking and batch with the batch's pallets of that booking summed; the batch is
//!   dry-run under the writer lock first, so a batch refused for its own content never
//!   checks a booking in;
//! - expired stock can still be issued, adjusted or transferred out (written off, sent
//!   back); it only cannot be received or allocated;
//! - quantities are bounded by [`domain::MAX_QUANTITY`] (10^12 base units): a receipt,
//!   issue or transfer moving more, or a count stating more, is INVALID_ARGUMENT on
//!   `quantity`; a movement leaving a position above it is FAILED_PRECONDITION (an
//!   adjustment is judged by its resulting balance). Totals are summed exactly, and one that
//!   does not fit its 64-bit field is FAILED_PRECONDITION, never a saturated figure.
//!
//! Every ledger entry is stored as an encoded `LedgerEntry` (see [`wire::codec`]), so
//! WatchLedger sends the stored bytes as they are (see [`api::RawLedgerBatch`]).

pub mod api;
pub mod app;
pub mod domain;
pub mod error;
pub mod store;
pub mod wire;

use std::sync::Arc;

use std::time::Duration;

use coldchain_runtime::Shutdown;
use coldchain_runtime::feed::FeedOptions;
use coldchain_runtime::host::{
    ServiceContext, StartError, spawn_idempotency_sweeper, store_failure, store_probe,
};
use coldchain_runtime::observe::sampler;
use coldchain_runtime::server::ServiceSpec;

/// Tuning of one inventory instance (the defaults suit production; tests shrink them). The
/// feed's limits are the network's one set (`coldchain_runtime::feed::FeedOptions`), taken
/// from the configuration by [`service`].
#[derive(Debug, Clone)]
pub struct Options {
    /// WatchLedger: messages queued per consumer.
    pub feed_buffer: usize,
    /// WatchLedger: most entries per message.
    pub feed_batch: usize,
    /// WatchLedger: how long a full queue is tolerated before the stream ends with
    /// RESOURCE_EXHAUSTED.
    pub feed_stall: Duration,
    /// WatchLedger: an idle stream sends an empty keep-alive this often.
    pub feed_keepalive: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self::from_feed(&FeedOptions::default())
    }
}

impl Options {
    /// The options of a feed with these limits.
    pub fn from_feed(feed: &FeedOptions) -> Self {
        Self {
            feed_buffer: feed.buffer,
            feed_batch: feed.batch,
            feed_stall: feed.stall,
            feed_keepalive: feed.keepalive,
        }
    }
}

/// Builds the inventory server of `ctx`'s site, its feed limited by the configuration.
pub fn service(ctx: &ServiceContext) -> Result<ServiceSpec, StartError> {
    service_with(
        ctx,
        Options::from_feed(&FeedOptions::from_config(&ctx.config)),
    )
}

/// Keeps the lot index up with the durable ledger in the background, from a catch-up at
/// start (a store of an earlier build: ListLotEntries answers UNAVAILABLE until it is done)
/// to the service's shutdown.
fn spawn_lot_index(
    store: coldchain_store::Store,
    readiness: store::lot_index::Readiness,
    readers: store::lot_index::EntryReaders,
    label: String,
    shutdown: Shutdown,
) {
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let caught_up = |read: u64| {
            if read > 0 {
                tracing::info!(
                    service = %label,
                    entries = read,
                    seconds = started.elapsed().as_secs_f64(),
                    "the lot index caught up with the ledger"
                );
            }
        };
        let following = store::lot_index::follow(store, readiness, readers, shutdown, caught_up);
        if let Err(error) = following.await {
            // Reads stay right (the ranges not sealed are read whole), only slower.
            tracing::error!(service = %label, %error, "the lot index stopped following the ledger until a restart");
        }
    });
}

/// [`service`] with explicit options.
pub fn service_with(ctx: &ServiceContext, options: Options) -> Result<ServiceSpec, StartError> {
    let store = ctx.open_store()?;
    spawn_idempotency_sweeper(store.clone(), ctx.shutdown.clone());
    let codecs = app::Codecs {
        recorded: Arc::new(wire::codec::RecordedCodec),
        allocation: Arc::new(wire::codec::AllocationCodec),
        released: Arc::new(wire::codec::ReleasedCodec),
        hold: Arc::new(wire::codec::HoldCodec),
    };
    let inventory = store::InventoryStore::new(
        store.clone(),
        ctx.site.time_zone,
        store::ZoneClasses::new(
            ctx.site
                .zones
                .iter()
                .map(|zone| (zone.id.clone(), zone.class)),
        ),
        Arc::new(wire::codec::EntryCodec),
        wire::codec::entry_place,
    )?;
    spawn_lot_index(
        store.clone(),
        inventory.lot_index_readiness(),
        inventory.lot_index_readers(),
        ctx.label(),
        ctx.shutdown.clone(),
    );
    let app = app::InventoryApp::new(
        inventory,
        ctx.site.clone(),
        ctx.network.clone(),
        ctx.client.clone(),
        ctx.shutdown.clone(),
        &options,
        codecs,
    );
    let app = Arc::new(app);
    let sampled = app.clone();
    sampler::spawn(
        ctx.metric_labels(),
        ctx.config.metrics_sample_interval,
        ctx.shutdown.clone(),
        sampler::blocking(move || sampled.sample()),
    );
    let routes = api::InventoryRoutes::new(app, ctx.config.max_message_bytes);
    let closing = store.clone();
    Ok(ServiceSpec {
        label: ctx.label(),
        service_name: coldchain_proto::INVENTORY_SERVICE,
        routes: tonic::service::Routes::new(routes),
        fatal: store_failure(store.clone()),
        probe: store_probe(store),
        on_stopped: Box::new(move || closing.close()),
    })
}
