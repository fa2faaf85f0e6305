//! The use cases of the inventory service: the site's checks (zones, other sites), the
//! booking check-in of receipts around the write, the writes and reads of the store, and
//! the change feed. Takes and returns domain values; the protobuf bytes the store keeps
//! come from the [`Codecs`] it is given.

pub mod booking;
pub mod feed;
mod metrics;

use std::sync::Arc;

use coldchain_audit::Author;
use coldchain_runtime::client::ClientOptions;
use coldchain_runtime::idempotency::Refusals;
use coldchain_runtime::network::{NetworkConfig, SiteConfig};
use coldchain_runtime::{ServiceError, Shutdown};
use coldchain_store::{Idempotent, RequestFingerprint, WriteError};

use crate::Options;
use crate::domain::{
    AllocateCommand, Allocation, ExpiringQuery, Hold, HoldSnapshot, LedgerEntry, Movement,
    MovementKind, PlaceHoldCommand, RecordedAnswer, RecordedMovements, RecordedTransformation,
    ReleaseAllocationCommand, ReleaseHoldCommand, SkuStock, StockPage, StockQuery, StockRef,
};
use crate::store::{InventoryStore, ReplyCodec, TxError};

pub use crate::error::{CheckInFailure, SiteRefusal};
pub use booking::check_in_request_id;
pub use feed::LedgerFeed;

/// How the answers of the mutating calls are kept for idempotent replay (the bytes
/// earlier builds kept: see `wire::codec`).
#[derive(Clone)]
pub struct Codecs {
    /// RecordMovements.
    pub recorded: Arc<dyn ReplyCodec<RecordedAnswer>>,
    /// AllocateStock.
    pub allocation: Arc<dyn ReplyCodec<Allocation>>,
    /// ReleaseAllocation.
    pub released: Arc<dyn ReplyCodec<Vec<Allocation>>>,
    /// PlaceHold and ReleaseHold.
    pub hold: Arc<dyn ReplyCodec<Hold>>,
}

/// The inventory of one site.
pub struct InventoryApp {
    store: InventoryStore,
    site: Arc<SiteConfig>,
    network: Arc<NetworkConfig>,
    booking: booking::BookingCheckIn,
    codecs: Codecs,
    feed: LedgerFeed,
}

impl InventoryApp {
    /// The inventory of `site` over `store`.
    pub fn new(
        store: InventoryStore,
        site: SiteConfig,
        network: Arc<NetworkConfig>,
        client: ClientOptions,
        shutdown: Shutdown,
        options: &Options,
        codecs: Codecs,
    ) -> Self {
        let booking = booking::BookingCheckIn::new(&site, &network, client);
        let feed = LedgerFeed::new(store.raw().clone(), shutdown, options);
        Self {
            store,
            site: Arc::new(site),
            network,
            booking,
            codecs,
            feed,
        }
    }

    /// This site's id.
    pub fn site_id(&self) -> &str {
        &self.site.id
    }

    /// The change feed.
    pub fn feed(&self) -> &LedgerFeed {
        &self.feed
    }

    /// Records a batch of movements. A batch citing bookings is dry-run first (a batch
    /// refused for its own content must not leave a booking checked in), then each booking
    /// is checked in, then the batch is written. A request_id seen before replays without
    /// calling the booking service again.
    pub async fn record(
        &self,
        request: &RequestFingerprint,
        movements: &[Movement],
        author: &Author,
    ) -> Result<RecordedMovements, ServiceError> {
        for (index, m) in movements.iter().enumerate() {
            self.check_zone(&format!("movements[{index}].zone_id"), &m.zone_id)?;
            if m.kind == MovementKind::Relocation {
                self.check_zone(&format!("movements[{index}].to_zone_id"), &m.to_zone_id)?;
            }
            if m.kind.is_transfer() && self.network.site(&m.other_site_id).is_none() {
                return Err(SiteRefusal::UnknownSite {
                    field: format!("movements[{index}].other_site_id"),
                    site_id: m.other_site_id.clone(),
                }
                .into());
            }
        }
        let idempotent = Idempotent::new(request, &*self.codecs.recorded, &Refusals);
        let bookings = booking::bookings_of(movements);
        if !bookings.is_empty() {
            match self
                .store
                .record_movements(idempotent, movements, author, true)
                .await
            {
                Ok(written) => return self.answer(written.value, movements.len()),
                Err(WriteError::Rejected(TxError::DryRunPassed)) => {}
                Err(other) => return Err(other.into()),
            }
            for cited in &bookings {
                self.booking
                    .check_in(&self.site.id, &request.request_id, cited)
                    .await?;
            }
        }
        let written = self
            .store
            .record_movements(idempotent, movements, author, false)
            .await?;
        self.answer(written.value, movements.len())
    }

    /// RecordMovements' entries: as recorded, or read back from the ledger for a replay;
    /// the first `movements` are the movements' own, the rest the relocations' arrivals.
    fn answer(
        &self,
        answer: RecordedAnswer,
        movements: usize,
    ) -> Result<RecordedMovements, ServiceError> {
        let mut entries = self.store.recorded_entries(answer)?;
        let arrivals = entries.split_off(movements.min(entries.len()));
        Ok(RecordedMovements { entries, arrivals })
    }

    /// A transformation recorded at this site.
    pub fn transformation(
        &self,
        transformation_id: &str,
    ) -> Result<RecordedTransformation, ServiceError> {
        Ok(self.store.transformation(transformation_id)?)
    }

    /// The stock of one sku.
    pub fn get_stock(&self, at: &StockRef) -> Result<SkuStock, ServiceError> {
        self.check_zone("zone_id", &at.zone_id)?;
        Ok(self.store.get_stock(&at.sku, &at.lot_id, &at.zone_id)?)
    }

    /// One page of positions (with the expiry summary when `summarize`).
    pub fn list_stock(
        &self,
        query: &StockQuery,
        page_size: usize,
        after: Option<&[u8]>,
        summarize: bool,
    ) -> Result<StockPage, ServiceError> {
        self.check_zone("zone_id", &query.zone_id)?;
        Ok(self.store.list_stock(query, page_size, after, summarize)?)
    }

    /// One page of the positions whose lots expire within the window, FEFO.
    pub fn list_expiring(
        &self,
        query: &ExpiringQuery,
        page_size: usize,
        after: Option<&[u8]>,
    ) -> Result<StockPage, ServiceError> {
        self.check_zone("zone_id", &query.zone_id)?;
        Ok(self.store.expiring(query, page_size, after)?)
    }

    /// A page of the lot's entries (and of the holds that covered it) after `after`, and
    /// whether more follow.
    pub fn lot_entries(
        &self,
        sku: &str,
        lot_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<LedgerEntry>, bool), ServiceError> {
        Ok(self.store.lot_entries(sku, lot_id, after, limit)?)
    }

    /// Reserves stock for an order.
    pub async fn allocate(
        &self,
        request: &RequestFingerprint,
        command: &AllocateCommand,
        author: &Author,
    ) -> Result<Allocation, ServiceError> {
        self.check_zone("zone_id", &command.zone_id)?;
        let idempotent = Idempotent::new(request, &*self.codecs.allocation, &Refusals);
        Ok(self
            .store
            .allocate(idempotent, command, author)
            .await?
            .value)
    }

    /// Releases an order's allocations, or the one named.
    pub async fn release_allocation(
        &self,
        request: &RequestFingerprint,
        command: &ReleaseAllocationCommand,
        author: &Author,
    ) -> Result<Vec<Allocation>, ServiceError> {
        let idempotent = Idempotent::new(request, &*self.codecs.released, &Refusals);
        Ok(self
            .store
            .release_allocation(
                idempotent,
                &command.order_id,
                &command.allocation_id,
                author,
            )
            .await?
            .value)
    }

    /// Places a hold; answers it with the stock it covers now.
    pub async fn place_hold(
        &self,
        request: &RequestFingerprint,
        command: &PlaceHoldCommand,
        author: &Author,
    ) -> Result<(Hold, HoldSnapshot), ServiceError> {
        self.check_zone("zone_id", &command.scope.zone_id)?;
        let idempotent = Idempotent::new(request, &*self.codecs.hold, &Refusals);
        let hold = self
            .store
            .place_hold(idempotent, command, author)
            .await?
            .value;
        self.with_snapshot(hold)
    }

    /// Releases a hold; answers it with the stock it covers now.
    pub async fn release_hold(
        &self,
        request: &RequestFingerprint,
        command: &ReleaseHoldCommand,
        author: &Author,
    ) -> Result<(Hold, HoldSnapshot), ServiceError> {
        let idempotent = Idempotent::new(request, &*self.codecs.hold, &Refusals);
        let hold = self
            .store
            .release_hold(idempotent, &command.hold_id, &command.reason, author)
            .await?
            .value;
        self.with_snapshot(hold)
    }

    /// The stock in a hold's scope as of now (also for a replayed answer).
    fn with_snapshot(&self, hold: Hold) -> Result<(Hold, HoldSnapshot), ServiceError> {
        let snapshot = self.store.hold_snapshot(&hold.scope)?;
        Ok((hold, snapshot))
    }

    fn check_zone(&self, field: &str, zone_id: &str) -> Result<(), SiteRefusal> {
        if zone_id.is_empty() || self.site.zone(zone_id).is_some() {
            return Ok(());
        }
        Err(SiteRefusal::UnknownZone {
            field: field.to_string(),
            zone_id: zone_id.to_string(),
            site_id: self.site.id.clone(),
        })
    }
}
