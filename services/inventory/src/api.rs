//! The gRPC face of the inventory service: thin handlers that validate the protobuf
//! request into domain values (every bad field at once), call [`crate::store`], and map
//! domain refusals to canonical codes (see [`service_error`]).
//!
//! Also here: the booking check-in of receipts that cite a booking, and the WatchLedger
//! pump (stored entries, then live ones, through a bounded channel).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use coldchain_proto::booking::v1 as booking;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as pb;
use coldchain_proto::inventory::v1::inventory_service_server::{
    InventoryService, InventoryServiceServer,
};
use coldchain_runtime::client::Channel;
use coldchain_runtime::client::{ClientOptions, lazy_channel, request, with_retry};
use coldchain_runtime::network::{NetworkConfig, ServiceKind, SiteConfig};
use coldchain_runtime::page_token;
use coldchain_runtime::validate::Violations;
use coldchain_runtime::{Code, ServiceError, Shutdown};
use coldchain_store::{RequestFingerprint, Store, WriteError, fingerprint};
use futures::{Stream, StreamExt};
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::Options;
use crate::domain::{
    self, DomainError, HoldScope, MAX_MOVEMENTS, MAX_ORIGIN_LEN, MAX_REASON_LEN, Movement,
    MovementKind, Reference, StatedLot, StockRefusal, Strategy,
};
use crate::store::{AllocateCommand, InventoryStore, PlaceHoldCommand, StockQuery, TxError};

/// The InventoryService implementation of one site.
pub struct InventoryApi {
    store: InventoryStore,
    site: Arc<SiteConfig>,
    network: Arc<NetworkConfig>,
    booking: Result<BookingServiceClient<Channel>, String>,
    booking_endpoint: String,
    client: ClientOptions,
    shutdown: Shutdown,
    options: Options,
}

impl InventoryApi {
    /// The service of `site` over `store`. The booking service of the site is reached at
    /// the site's booking endpoint (connected lazily, on the first receipt citing a
    /// booking).
    pub fn new(
        store: InventoryStore,
        site: SiteConfig,
        network: Arc<NetworkConfig>,
        client: ClientOptions,
        shutdown: Shutdown,
        options: Options,
    ) -> Self {
        let booking_endpoint = site
            .endpoint(ServiceKind::Booking)
            .or_else(|| network.endpoint(&site.id, ServiceKind::Booking))
            .unwrap_or_default();
        let booking = if booking_endpoint.is_empty() {
            Err(format!("site {} has no booking endpoint", site.id))
        } else {
            lazy_channel(&booking_endpoint, &client)
                .map(BookingServiceClient::new)
                .map_err(|e| e.message)
        };
        Self {
            store,
            site: Arc::new(site),
            network,
            booking,
            booking_endpoint,
            client,
            shutdown,
            options,
        }
    }

    async fn record(
        &self,
        req: pb::RecordMovementsRequest,
    ) -> Result<pb::RecordMovementsResponse, ServiceError> {
        let movements = self.parse_movements(&req)?;
        let request = tagged_fingerprint("RecordMovements", &req.request_id, &req);
        let bookings = bookings_of(&movements);
        if !bookings.is_empty() {
            // Check the batch would apply before checking anything in: a batch refused
            // for its own content must not leave a booking checked in. A request_id seen
            // before replays here without calling the booking service again.
            match self
                .store
                .record_movements(&request, &movements, true)
                .await
            {
                Ok(written) => return Ok(written.value),
                Err(WriteError::Rejected(TxError::DryRunPassed)) => {}
                Err(other) => return Err(other.into()),
            }
            for (booking_id, pallets, index) in &bookings {
                self.check_in(&req.request_id, booking_id, *pallets, *index)
                    .await?;
            }
        }
        Ok(self
            .store
            .record_movements(&request, &movements, false)
            .await?
            .value)
    }

    /// CheckIn with a request_id derived from ours and the booking, so a retried receipt
    /// checks in once.
    async fn check_in(
        &self,
        request_id: &str,
        booking_id: &str,
        pallets: Option<i32>,
        index: usize,
    ) -> Result<(), ServiceError> {
        let client = self.booking.as_ref().map_err(|problem| {
            ServiceError::unavailable(format!(
                "movements[{index}].booking_id {booking_id:?}: cannot check in: {problem}; nothing was recorded"
            ))
        })?;
        let message = booking::CheckInRequest {
            request_id: check_in_request_id(&self.site.id, request_id, booking_id),
            booking_id: booking_id.to_string(),
            pallets_arrived: pallets,
        };
        let options = &self.client;
        let result = with_retry(options, || {
            let mut client = client.clone();
            let message = message.clone();
            async move { client.check_in(request(message, options)).await }
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(status) => Err(booking_refusal(
                &status,
                booking_id,
                index,
                &self.booking_endpoint,
            )),
        }
    }

    fn parse_movements(
        &self,
        req: &pb::RecordMovementsRequest,
    ) -> Result<Vec<Movement>, ServiceError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        if req.movements.is_empty() || req.movements.len() > MAX_MOVEMENTS {
            v.add(
                "movements",
                format!(
                    "must hold 1 to {MAX_MOVEMENTS} movements, got {}",
                    req.movements.len()
                ),
            );
        }
        let mut movements = Vec::with_capacity(req.movements.len());
        for (index, raw) in req.movements.iter().enumerate() {
            let mut parsed = None;
            v.nested(&format!("movements[{index}]"), |v| {
                parsed = parse_movement(v, raw, &self.site.id);
            });
            if let Some(movement) = parsed {
                movements.push(movement);
            }
        }
        // One receipt per (transfer, sku, lot) and batch: a second line would be dropped
        // as already received.
        let mut transfers: HashMap<(&str, &str, &str), usize> = HashMap::new();
        let mut pallets: HashMap<&str, i32> = HashMap::new();
        for (index, m) in movements.iter().enumerate() {
            if m.kind == MovementKind::TransferIn
                && let Some(first) =
                    transfers.insert((&m.transfer_id, &m.sku, &m.lot.lot_id), index)
            {
                v.add(
                    format!("movements[{index}].transfer_id"),
                    format!(
                        "transfer {:?} receives sku {:?} lot {:?} already in movements[{first}]; one line per transfer, sku and lot",
                        m.transfer_id, m.sku, m.lot.lot_id
                    ),
                );
            }
            if !m.booking_id.is_empty() {
                let sum = pallets.entry(&m.booking_id).or_insert(0);
                match sum.checked_add(m.pallets) {
                    Some(total) => *sum = total,
                    None => v.add(
                        format!("movements[{index}].pallets"),
                        format!(
                            "the pallets of booking {:?} add up beyond {}",
                            m.booking_id,
                            i32::MAX
                        ),
                    ),
                }
            }
        }
        v.finish()?;
        for (index, m) in movements.iter().enumerate() {
            self.check_zone(&format!("movements[{index}].zone_id"), &m.zone_id)?;
            if m.kind.is_transfer() && self.network.site(&m.other_site_id).is_none() {
                return Err(ServiceError::not_found(format!(
                    "movements[{index}].other_site_id: site {:?} is not in the network",
                    m.other_site_id
                )));
            }
        }
        Ok(movements)
    }

    fn check_zone(&self, field: &str, zone_id: &str) -> Result<(), ServiceError> {
        if zone_id.is_empty() || self.site.zone(zone_id).is_some() {
            return Ok(());
        }
        Err(ServiceError::not_found(format!(
            "{field}: zone {zone_id:?} does not exist at site {}",
            self.site.id
        )))
    }

    fn get_stock_inner(
        &self,
        req: &pb::GetStockRequest,
    ) -> Result<pb::GetStockResponse, ServiceError> {
        let mut v = Violations::new();
        v.id("sku", &req.sku);
        v.optional_id("lot_id", &req.lot_id);
        v.optional_id("zone_id", &req.zone_id);
        v.finish()?;
        self.check_zone("zone_id", &req.zone_id)?;
        Ok(self.store.get_stock(&req.sku, &req.lot_id, &req.zone_id)?)
    }

    fn list_stock_inner(
        &self,
        req: &pb::ListStockRequest,
    ) -> Result<pb::ListStockResponse, ServiceError> {
        let mut v = Violations::new();
        v.optional_id("sku", &req.sku);
        v.optional_id("zone_id", &req.zone_id);
        v.optional_id("lot_id", &req.lot_id);
        v.check(
            req.lot_id.is_empty() || !req.sku.is_empty(),
            "lot_id",
            || {
                format!(
                    "lot {:?} requires sku (lot ids are unique per sku)",
                    req.lot_id
                )
            },
        );
        let expiring_before = parse_date(&mut v, "expiring_before", req.expiring_before.as_ref());
        let page_size = v.page_size(req.page_size);
        let query = StockQuery {
            sku: req.sku.clone(),
            zone_id: req.zone_id.clone(),
            lot_id: req.lot_id.clone(),
            expiring_before,
            include_empty: req.include_empty,
        };
        let query_bytes = format!(
            "list_stock/v1|{}|{}|{}|{}|{}",
            query.sku,
            query.zone_id,
            query.lot_id,
            expiring_before.map(|d| d.to_string()).unwrap_or_default(),
            query.include_empty
        );
        let after = v.page_token(query_bytes.as_bytes(), &req.page_token);
        v.finish()?;
        self.check_zone("zone_id", &req.zone_id)?;
        let summarize = req.summarize_by_expiry && after.is_none();
        let page = self
            .store
            .list_stock(&query, page_size, after.as_deref(), summarize)?;
        Ok(pb::ListStockResponse {
            levels: page.levels,
            next_page_token: page
                .next_key
                .map(|key| page_token::encode(query_bytes.as_bytes(), &key))
                .unwrap_or_default(),
            expiry_summary: page.summary,
            as_of: Some(crate::store::date_proto(page.today)),
        })
    }

    async fn allocate_inner(
        &self,
        req: pb::AllocateStockRequest,
    ) -> Result<pb::Allocation, ServiceError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("order_id", &req.order_id);
        v.id("sku", &req.sku);
        v.check(req.quantity > 0, "quantity", || {
            format!("must be positive, got {}", req.quantity)
        });
        if !req.unit.is_empty()
            && let Err(problem) = domain::check_unit(&req.unit)
        {
            v.add("unit", problem);
        }
        v.optional_id("zone_id", &req.zone_id);
        let strategy = Strategy::from_proto(req.strategy);
        v.check(strategy.is_some(), "strategy", || {
            format!("unknown allocation strategy {}", req.strategy)
        });
        v.finish()?;
        self.check_zone("zone_id", &req.zone_id)?;
        let command = AllocateCommand {
            request_id: req.request_id.clone(),
            order_id: req.order_id.clone(),
            sku: req.sku.clone(),
            quantity: req.quantity,
            unit: req.unit.clone(),
            zone_id: req.zone_id.clone(),
            strategy: strategy.unwrap_or(Strategy::Fefo),
        };
        let request = tagged_fingerprint("AllocateStock", &req.request_id, &req);
        Ok(self.store.allocate(&request, &command).await?.value)
    }

    async fn release_allocation_inner(
        &self,
        req: pb::ReleaseAllocationRequest,
    ) -> Result<pb::ReleaseAllocationResponse, ServiceError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("order_id", &req.order_id);
        v.optional_id("allocation_id", &req.allocation_id);
        v.finish()?;
        let request = tagged_fingerprint("ReleaseAllocation", &req.request_id, &req);
        Ok(self
            .store
            .release_allocation(&request, &req.order_id, &req.allocation_id)
            .await?
            .value)
    }

    async fn place_hold_inner(&self, req: pb::PlaceHoldRequest) -> Result<pb::Hold, ServiceError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.optional_id("zone_id", &req.zone_id);
        v.optional_id("sku", &req.sku);
        v.optional_id("lot_id", &req.lot_id);
        v.check(
            !(req.zone_id.is_empty() && req.sku.is_empty() && req.lot_id.is_empty()),
            "zone_id",
            || "at least one of zone_id, sku and lot_id is required (a hold needs a scope)".into(),
        );
        v.check(req.lot_id.is_empty() || !req.sku.is_empty(), "sku", || {
            format!(
                "is required with lot_id {:?} (lot ids are unique per sku)",
                req.lot_id
            )
        });
        check_text(&mut v, "reason", &req.reason, MAX_REASON_LEN, true);
        let reference = parse_reference(&mut v, "reference", req.reference.as_ref());
        v.finish()?;
        self.check_zone("zone_id", &req.zone_id)?;
        let command = PlaceHoldCommand {
            request_id: req.request_id.clone(),
            scope: HoldScope {
                zone_id: req.zone_id.clone(),
                sku: req.sku.clone(),
                lot_id: req.lot_id.clone(),
            },
            reason: req.reason.clone(),
            reference,
        };
        let request = tagged_fingerprint("PlaceHold", &req.request_id, &req);
        let hold = self.store.place_hold(&request, &command).await?.value;
        self.with_snapshot(hold)
    }

    async fn release_hold_inner(
        &self,
        req: pb::ReleaseHoldRequest,
    ) -> Result<pb::Hold, ServiceError> {
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("hold_id", &req.hold_id);
        check_text(&mut v, "reason", &req.reason, MAX_REASON_LEN, true);
        v.finish()?;
        let request = tagged_fingerprint("ReleaseHold", &req.request_id, &req);
        let hold = self
            .store
            .release_hold(&request, &req.hold_id, &req.reason)
            .await?
            .value;
        self.with_snapshot(hold)
    }

    /// Fills a hold's quantities in scope as of now (also on a replayed response).
    fn with_snapshot(&self, mut hold: pb::Hold) -> Result<pb::Hold, ServiceError> {
        let scope = HoldScope {
            zone_id: hold.zone_id.clone(),
            sku: hold.sku.clone(),
            lot_id: hold.lot_id.clone(),
        };
        let (quantities, positions) = self.store.hold_snapshot(&scope)?;
        hold.held_quantities = quantities;
        hold.position_count = positions;
        Ok(hold)
    }
}

/// The (booking, pallets arrived, first movement index) of every booking the batch cites,
/// in order of first citation; pallets 0 in total means "all booked pallets".
fn bookings_of(movements: &[Movement]) -> Vec<(String, Option<i32>, usize)> {
    let mut out: Vec<(String, Option<i32>, usize)> = Vec::new();
    for (index, m) in movements.iter().enumerate() {
        if m.booking_id.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(id, _, _)| *id == m.booking_id) {
            Some((_, pallets, _)) => {
                let sum = pallets.unwrap_or(0).saturating_add(m.pallets);
                *pallets = (sum > 0).then_some(sum);
            }
            None => out.push((
                m.booking_id.clone(),
                (m.pallets > 0).then_some(m.pallets),
                index,
            )),
        }
    }
    out
}

/// The CheckIn request_id of a receipt batch: deterministic in (site, request_id,
/// booking_id), 1 to 128 identifier characters.
pub fn check_in_request_id(site_id: &str, request_id: &str, booking_id: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [site_id, request_id, booking_id] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    format!("inventory-checkin:{hex}")
}

/// The booking service's answer to a failed CheckIn, as our error: a dependency that is
/// down or failing is UNAVAILABLE; a refusal keeps its code.
fn booking_refusal(
    status: &Status,
    booking_id: &str,
    index: usize,
    endpoint: &str,
) -> ServiceError {
    let field = format!("movements[{index}].booking_id");
    let refused = |code: Code| {
        ServiceError::new(
            code,
            format!(
                "{field}: the booking service refused to check in booking {booking_id:?}: {}; nothing was recorded",
                status.message()
            ),
        )
    };
    match status.code() {
        tonic::Code::NotFound => refused(Code::NotFound),
        tonic::Code::FailedPrecondition | tonic::Code::OutOfRange => {
            refused(Code::FailedPrecondition)
        }
        tonic::Code::AlreadyExists => refused(Code::FailedPrecondition),
        tonic::Code::Aborted => refused(Code::Aborted),
        tonic::Code::PermissionDenied => refused(Code::PermissionDenied),
        tonic::Code::Unauthenticated => refused(Code::Unauthenticated),
        tonic::Code::InvalidArgument => ServiceError::invalid(
            field.clone(),
            format!(
                "the booking service refused to check in booking {booking_id:?}: {}",
                status.message()
            ),
        ),
        _ => ServiceError::unavailable(format!(
            "{field}: cannot check in booking {booking_id:?}: the booking service at {endpoint} answered {:?}: {}; nothing was recorded, retry later",
            status.code(),
            status.message()
        )),
    }
}

fn tagged_fingerprint<M: Message>(
    method: &str,
    request_id: &str,
    message: &M,
) -> RequestFingerprint {
    let mut bytes = Vec::with_capacity(method.len() + 1 + message.encoded_len());
    bytes.extend_from_slice(method.as_bytes());
    bytes.push(0);
    message.encode(&mut bytes).unwrap_or_default();
    fingerprint(request_id, &bytes)
}

fn check_text(v: &mut Violations, field: &str, value: &str, max: usize, required: bool) {
    if let Err(problem) = domain::check_text(value, max, required) {
        v.add(field, problem);
    }
}

fn parse_date(
    v: &mut Violations,
    field: &str,
    date: Option<&common::Date>,
) -> Option<chrono::NaiveDate> {
    let date = date?;
    let parsed = domain::date_from_parts(date.year, date.month, date.day);
    if parsed.is_none() {
        v.add(
            field,
            format!(
                "{}-{}-{} is not a valid date (year 1 to 9999, month and day valid)",
                date.year, date.month, date.day
            ),
        );
    }
    parsed
}

fn parse_reference(
    v: &mut Violations,
    field: &str,
    reference: Option<&common::Reference>,
) -> Option<Reference> {
    let reference = reference?;
    if common::ReferenceKind::try_from(reference.kind).is_err()
        || reference.kind == common::ReferenceKind::Unspecified as i32
    {
        v.add(
            format!("{field}.kind"),
            format!("must be a reference kind, got {}", reference.kind),
        );
    }
    v.id(&format!("{field}.id"), &reference.id);
    Some(Reference {
        kind: reference.kind,
        id: reference.id.clone(),
    })
}

fn unset(v: &mut Violations, field: &str, is_set: bool, kind: MovementKind) {
    v.check(!is_set, field, || {
        format!("must be unset for a {} movement", kind.name())
    });
}

/// Validates one movement's form; `None` when its kind is unusable (the violations say why).
fn parse_movement(v: &mut Violations, m: &pb::Movement, this_site: &str) -> Option<Movement> {
    let kind = MovementKind::from_proto(m.kind);
    if kind.is_none() {
        v.add(
            "kind",
            if m.kind == 0 {
                "is required".to_string()
            } else {
                format!("unknown movement kind {}", m.kind)
            },
        );
    }
    v.id("sku", &m.sku);
    let lot = match &m.lot {
        None => {
            v.add("lot.lot_id", "is required");
            StatedLot::default()
        }
        Some(lot) => {
            v.id("lot.lot_id", &lot.lot_id);
            let expiry = parse_date(v, "lot.expiry", lot.expiry.as_ref());
            let production = parse_date(v, "lot.production", lot.production.as_ref());
            if let (Some(expiry), Some(production)) = (expiry, production) {
                v.check(production <= expiry, "lot.production", || {
                    format!("{production} is after the expiry {expiry}")
                });
            }
            check_text(v, "lot.origin", &lot.origin, MAX_ORIGIN_LEN, false);
            StatedLot {
                lot_id: lot.lot_id.clone(),
                expiry,
                production,
                origin: lot.origin.clone(),
            }
        }
    };
    v.id("zone_id", &m.zone_id);
    if let Err(problem) = domain::check_unit(&m.unit) {
        v.add("unit", problem);
    }
    let reference = parse_reference(v, "reference", m.reference.as_ref());
    let kind = kind?;
    check_text(
        v,
        "reason",
        &m.reason,
        MAX_REASON_LEN,
        kind == MovementKind::Adjustment,
    );
    let quantity_ok = match kind {
        MovementKind::Adjustment => m.quantity != 0,
        MovementKind::Count => m.quantity >= 0,
        _ => m.quantity > 0,
    };
    v.check(quantity_ok, "quantity", || match kind {
        MovementKind::Adjustment => {
            "must be a non-zero signed change for an adjustment, got 0".into()
        }
        MovementKind::Count => format!(
            "must be the counted quantity (0 or more), got {}",
            m.quantity
        ),
        _ => format!(
            "must be positive for a {} movement, got {}",
            kind.name(),
            m.quantity
        ),
    });
    if kind.is_transfer() {
        v.id("other_site_id", &m.other_site_id);
        v.check(m.other_site_id != this_site, "other_site_id", || {
            format!(
                "{:?} is this site; a transfer names the other site",
                m.other_site_id
            )
        });
        v.id("transfer_id", &m.transfer_id);
    } else {
        unset(v, "other_site_id", !m.other_site_id.is_empty(), kind);
        unset(v, "transfer_id", !m.transfer_id.is_empty(), kind);
    }
    if kind == MovementKind::Count {
        v.check(m.expected_version.is_some(), "expected_version", || {
            "is required for a count (0 for a position that never had stock)".into()
        });
    } else {
        unset(v, "expected_version", m.expected_version.is_some(), kind);
    }
    if kind == MovementKind::Receipt {
        v.optional_id("booking_id", &m.booking_id);
        if m.booking_id.is_empty() {
            v.check(m.pallets == 0, "pallets", || {
                format!(
                    "{} given without booking_id; pallets apply to receipts citing a booking",
                    m.pallets
                )
            });
        } else {
            v.check(m.pallets >= 0, "pallets", || {
                format!("must not be negative, got {}", m.pallets)
            });
        }
    } else {
        unset(v, "booking_id", !m.booking_id.is_empty(), kind);
        unset(v, "pallets", m.pallets != 0, kind);
    }
    if kind == MovementKind::Issue {
        v.optional_id("order_id", &m.order_id);
    } else {
        unset(v, "order_id", !m.order_id.is_empty(), kind);
    }
    Some(Movement {
        kind,
        sku: m.sku.clone(),
        lot,
        zone_id: m.zone_id.clone(),
        quantity: m.quantity,
        unit: m.unit.clone(),
        reason: m.reason.clone(),
        reference,
        other_site_id: m.other_site_id.clone(),
        transfer_id: m.transfer_id.clone(),
        expected_version: m.expected_version,
        booking_id: m.booking_id.clone(),
        pallets: m.pallets,
        order_id: m.order_id.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// Error mapping

/// The canonical error of a domain refusal; `at` is the movement index of a batch.
pub fn service_error(error: DomainError, at: Option<usize>) -> ServiceError {
    let prefix = at.map(|i| format!("movements[{i}]")).unwrap_or_default();
    let field = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    let message = if prefix.is_empty() {
        error.to_string()
    } else {
        format!("{prefix}: {error}")
    };
    match &error {
        DomainError::UnitMismatch { .. } => ServiceError::invalid(field("unit"), error.to_string()),
        DomainError::MissingExpiry { .. } => {
            ServiceError::invalid(field("lot.expiry"), error.to_string())
        }
        DomainError::UnknownSku { .. }
        | DomainError::UnknownLot { .. }
        | DomainError::UnknownPosition { .. }
        | DomainError::UnknownZone { .. }
        | DomainError::UnknownOrder { .. }
        | DomainError::UnknownAllocation { .. }
        | DomainError::UnknownHold { .. } => ServiceError::not_found(message),
        DomainError::LotConflict {
            sku,
            lot_id,
            conflict,
        } => ServiceError::failed_precondition(message).with_precondition(
            "LOT",
            format!("sku {sku:?} lot {lot_id:?}"),
            format!(
                "{} is {}, stated {}",
                conflict.attribute, conflict.stored, conflict.given
            ),
        ),
        DomainError::ExpiredLot {
            sku,
            lot_id,
            expiry,
            today,
        } => ServiceError::failed_precondition(message).with_precondition(
            "EXPIRY",
            format!("sku {sku:?} lot {lot_id:?}"),
            format!("expired on {expiry}, site date {today}"),
        ),
        DomainError::Stock {
            sku,
            lot_id,
            zone_id,
            refusal,
            ..
        } => {
            let kind = match refusal {
                StockRefusal::Held { .. } => "HOLD",
                StockRefusal::StaleVersion { .. } => "VERSION",
                _ => "STOCK",
            };
            ServiceError::failed_precondition(message).with_precondition(
                kind,
                DomainError::position_subject(sku, lot_id, zone_id),
                refusal.to_string(),
            )
        }
        DomainError::NotAllocatable {
            sku,
            requested,
            allocatable,
        } => ServiceError::failed_precondition(message).with_precondition(
            "STOCK",
            format!("sku {sku:?}"),
            format!("allocatable {allocatable}, requested {requested}"),
        ),
        DomainError::AllocationNotActive {
            allocation_id,
            state,
        } => ServiceError::failed_precondition(message).with_precondition(
            "STATE",
            format!("allocation {allocation_id:?}"),
            format!("is {state}"),
        ),
        DomainError::HoldReleased { hold_id } => ServiceError::failed_precondition(message)
            .with_precondition("STATE", format!("hold {hold_id:?}"), "is released"),
    }
}

impl From<TxError> for ServiceError {
    fn from(error: TxError) -> Self {
        match error {
            TxError::Domain(error) => service_error(error, None),
            TxError::Movement { index, error } => service_error(error, Some(index)),
            TxError::Store(error) => error.into(),
            TxError::DryRunPassed => ServiceError::internal("a dry run escaped its write"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The change feed

/// A `WatchLedgerResponse` whose entries are kept as the stored bytes: each stored ledger
/// value is an encoded `LedgerEntry`, and a repeated message field is a repeated
/// length-delimited field on the wire, so this encodes to exactly the bytes of the
/// equivalent `WatchLedgerResponse` without decoding and re-encoding every entry.
#[derive(Clone, PartialEq, Message)]
pub struct RawLedgerBatch {
    /// Encoded `LedgerEntry` messages, consecutive sequences.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub entries: Vec<Vec<u8>>,
    /// As `WatchLedgerResponse.head_sequence`.
    #[prost(uint64, tag = "2")]
    pub head_sequence: u64,
}

impl RawLedgerBatch {
    /// Decodes the entries (for in-process callers of the typed trait method).
    pub fn decode_entries(self) -> Result<pb::WatchLedgerResponse, Status> {
        let entries = self
            .entries
            .iter()
            .map(|bytes| pb::LedgerEntry::decode(bytes.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::internal(format!("corrupt ledger entry: {e}")))?;
        Ok(pb::WatchLedgerResponse {
            entries,
            head_sequence: self.head_sequence,
        })
    }
}

/// The stream of raw ledger batches.
pub type RawLedgerStream = Pin<Box<dyn Stream<Item = Result<RawLedgerBatch, Status>> + Send>>;

/// The stream type of the typed WatchLedger.
pub type LedgerStream = Pin<Box<dyn Stream<Item = Result<pb::WatchLedgerResponse, Status>> + Send>>;

/// Streams the ledger from `from` (0 and 1: the beginning) until the client goes away, the
/// consumer stalls, or `shutdown` fires.
///
/// A pump task reads durable entries in batches of up to `options.feed_batch` entries
/// (and about 1 MiB) and hands them to a channel of `options.feed_buffer` messages. When
/// the channel stays full for `options.feed_stall` the stream ends with RESOURCE_EXHAUSTED
/// naming the sequence to resume from (everything before it was queued for the consumer),
/// so a stuck consumer costs a bounded buffer and writers never wait for it. On shutdown
/// it ends with UNAVAILABLE, also naming the sequence to resume from.
pub fn raw_ledger_stream(
    store: Store,
    from: u64,
    shutdown: Shutdown,
    options: &Options,
) -> RawLedgerStream {
    let (tx, rx) = mpsc::channel(options.feed_buffer.max(1));
    let (end_tx, end_rx) = oneshot::channel::<Status>();
    tokio::spawn(pump(
        store,
        from.max(1),
        tx,
        end_tx,
        shutdown,
        options.clone(),
    ));
    let data = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok);
    let tail =
        futures::stream::once(end_rx).filter_map(|end| futures::future::ready(end.ok().map(Err)));
    Box::pin(data.chain(tail))
}

/// [`raw_ledger_stream`] with decoded entries.
pub fn ledger_stream(
    store: Store,
    from: u64,
    shutdown: Shutdown,
    options: &Options,
) -> LedgerStream {
    Box::pin(raw_ledger_stream(store, from, shutdown, options).map(|batch| batch?.decode_entries()))
}

/// Most bytes of entries in one message (well under the 4 MiB message limit).
const MAX_BATCH_BYTES: usize = 1 << 20;

async fn pump(
    store: Store,
    mut next: u64,
    tx: mpsc::Sender<RawLedgerBatch>,
    end: oneshot::Sender<Status>,
    shutdown: Shutdown,
    options: Options,
) {
    let mut head = store.subscribe_ledger();
    let mut caught_up = false;
    let stopping = shutdown.wait();
    tokio::pin!(stopping);
    let shutting_down = |next: u64| {
        Status::unavailable(format!("server shutting down, resume from sequence {next}"))
    };
    loop {
        if shutdown.is_triggered() {
            let _ = end.send(shutting_down(next));
            return;
        }
        head.borrow_and_update();
        let records = match store.ledger_from(next, options.feed_batch.max(1)) {
            Ok(records) => records,
            Err(error) => {
                let _ = end.send(ServiceError::from(error).into());
                return;
            }
        };
        if records.is_empty() {
            if !caught_up {
                // Tell the consumer where the head is as soon as it has everything.
                caught_up = true;
                let marker = RawLedgerBatch {
                    entries: Vec::new(),
                    head_sequence: store.durable_sequence(),
                };
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(marker) {
                    return;
                }
            }
            tokio::select! {
                biased;
                () = &mut stopping => {
                    let _ = end.send(shutting_down(next));
                    return;
                }
                () = tx.closed() => return,
                changed = head.changed() => {
                    if changed.is_err() {
                        let _ = end.send(Status::unavailable(format!("the ledger closed, resume from sequence {next}")));
                        return;
                    }
                }
                () = tokio::time::sleep(options.feed_keepalive) => {
                    // A keep-alive: lets an idle consumer see the head and detects dead ones.
                    let keepalive = RawLedgerBatch { entries: Vec::new(), head_sequence: store.durable_sequence() };
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(keepalive) {
                        return;
                    }
                }
            }
            continue;
        }
        let mut entries = Vec::with_capacity(records.len());
        let mut expected = next;
        let mut bytes = 0;
        for record in records {
            if record.sequence != expected {
                let _ = end.send(Status::internal(format!(
                    "ledger gap: expected sequence {expected}, found {}",
                    record.sequence
                )));
                return;
            }
            if bytes > MAX_BATCH_BYTES {
                break;
            }
            bytes += record.bytes.len();
            entries.push(record.bytes);
            expected += 1;
        }
        let message = RawLedgerBatch {
            entries,
            head_sequence: store.durable_sequence(),
        };
        let sent = match tx.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => return,
            Err(mpsc::error::TrySendError::Full(message)) => {
                tokio::select! {
                    biased;
                    () = &mut stopping => {
                        let _ = end.send(shutting_down(next));
                        return;
                    }
                    sent = tokio::time::timeout(options.feed_stall, tx.send(message)) => match sent {
                        Ok(Ok(())) => true,
                        Ok(Err(_)) => return,
                        Err(_) => false,
                    }
                }
            }
        };
        if !sent {
            let _ = end.send(Status::resource_exhausted(format!(
                "consumer too slow: {} messages queued for {} ms; resume from sequence {next}",
                options.feed_buffer,
                options.feed_stall.as_millis()
            )));
            return;
        }
        next = expected;
    }
}

// ---------------------------------------------------------------------------------------------
// The tonic service

fn record_request_id(request_id: &str) {
    tracing::Span::current().record("request_id", request_id);
}

#[tonic::async_trait]
impl InventoryService for InventoryApi {
    async fn record_movements(
        &self,
        request: Request<pb::RecordMovementsRequest>,
    ) -> Result<Response<pb::RecordMovementsResponse>, Status> {
        let request = request.into_inner();
        record_request_id(&request.request_id);
        Ok(Response::new(self.record(request).await?))
    }

    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::GetStockResponse>, Status> {
        Ok(Response::new(self.get_stock_inner(request.get_ref())?))
    }

    async fn list_stock(
        &self,
        request: Request<pb::ListStockRequest>,
    ) -> Result<Response<pb::ListStockResponse>, Status> {
        Ok(Response::new(self.list_stock_inner(request.get_ref())?))
    }

    async fn allocate_stock(
        &self,
        request: Request<pb::AllocateStockRequest>,
    ) -> Result<Response<pb::Allocation>, Status> {
        let request = request.into_inner();
        record_request_id(&request.request_id);
        Ok(Response::new(self.allocate_inner(request).await?))
    }

    async fn release_allocation(
        &self,
        request: Request<pb::ReleaseAllocationRequest>,
    ) -> Result<Response<pb::ReleaseAllocationResponse>, Status> {
        let request = request.into_inner();
        record_request_id(&request.request_id);
        Ok(Response::new(self.release_allocation_inner(request).await?))
    }

    async fn place_hold(
        &self,
        request: Request<pb::PlaceHoldRequest>,
    ) -> Result<Response<pb::Hold>, Status> {
        let request = request.into_inner();
        record_request_id(&request.request_id);
        Ok(Response::new(self.place_hold_inner(request).await?))
    }

    async fn release_hold(
        &self,
        request: Request<pb::ReleaseHoldRequest>,
    ) -> Result<Response<pb::Hold>, Status> {
        let request = request.into_inner();
        record_request_id(&request.request_id);
        Ok(Response::new(self.release_hold_inner(request).await?))
    }

    type WatchLedgerStream = LedgerStream;

    async fn watch_ledger(
        &self,
        request: Request<pb::WatchLedgerRequest>,
    ) -> Result<Response<Self::WatchLedgerStream>, Status> {
        // Served by [`InventoryRoutes`] without decoding; this typed path is for callers
        // of the trait.
        let from = request.get_ref().from_sequence;
        Ok(Response::new(ledger_stream(
            self.store.raw().clone(),
            from,
            self.shutdown.clone(),
            &self.options,
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

const WATCH_LEDGER_PATH: &str = "/coldchain.inventory.v1.InventoryService/WatchLedger";

struct Feed {
    store: Store,
    shutdown: Shutdown,
    options: Options,
    max_message_bytes: usize,
}

/// The inventory service's routes: the generated server for every unary RPC, and
/// WatchLedger served from the stored entry bytes (see [`RawLedgerBatch`]).
#[derive(Clone)]
pub struct InventoryRoutes {
    server: InventoryServiceServer<InventoryApi>,
    feed: Arc<Feed>,
}

impl InventoryRoutes {
    /// Routes for `api`, with the message size limit of the process.
    pub fn new(api: InventoryApi, max_message_bytes: usize) -> Self {
        let feed = Arc::new(Feed {
            store: api.store.raw().clone(),
            shutdown: api.shutdown.clone(),
            options: api.options.clone(),
            max_message_bytes,
        });
        let server = InventoryServiceServer::new(api)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        Self { server, feed }
    }
}

impl tonic::server::NamedService for InventoryRoutes {
    const NAME: &'static str = coldchain_proto::INVENTORY_SERVICE;
}

struct RawWatch(Arc<Feed>);

impl tonic::server::ServerStreamingService<pb::WatchLedgerRequest> for RawWatch {
    type Response = RawLedgerBatch;
    type ResponseStream = RawLedgerStream;
    type Future = futures::future::Ready<Result<Response<RawLedgerStream>, Status>>;

    fn call(&mut self, request: Request<pb::WatchLedgerRequest>) -> Self::Future {
        let feed = &self.0;
        futures::future::ready(Ok(Response::new(raw_ledger_stream(
            feed.store.clone(),
            request.get_ref().from_sequence,
            feed.shutdown.clone(),
            &feed.options,
        ))))
    }
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for InventoryRoutes {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != WATCH_LEDGER_PATH {
            return self.server.call(request);
        }
        let feed = self.feed.clone();
        Box::pin(async move {
            let limit = Some(feed.max_message_bytes);
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                RawLedgerBatch,
                pb::WatchLedgerRequest,
            >::default())
            .apply_max_message_size_config(limit, limit);
            Ok(grpc.server_streaming(RawWatch(feed), request).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A raw batch of encoded entries is byte-for-byte the WatchLedgerResponse of the
        /// same entries, so clients decode it with the generated type.
        #[test]
        fn raw_batches_are_wire_identical(
            entries in proptest::collection::vec((1u64..u64::MAX, "[a-z0-9-]{0,12}", -1000i64..1000, "[ -~]{0,40}"), 0..20),
            head in any::<u64>(),
        ) {
            let typed = pb::WatchLedgerResponse {
                entries: entries
                    .iter()
                    .map(|(sequence, sku, delta, reason)| pb::LedgerEntry {
                        sequence: *sequence,
                        sku: sku.clone(),
                        delta: *delta,
                        reason: reason.clone(),
                        lot: Some(pb::LotInfo { lot_id: sku.clone(), ..Default::default() }),
                        ..Default::default()
                    })
                    .collect(),
                head_sequence: head,
            };
            let raw = RawLedgerBatch {
                entries: typed.entries.iter().map(Message::encode_to_vec).collect(),
                head_sequence: head,
            };
            prop_assert_eq!(raw.encode_to_vec(), typed.encode_to_vec());
            prop_assert_eq!(raw.clone().decode_entries().unwrap(), typed.clone());
            prop_assert_eq!(pb::WatchLedgerResponse::decode(raw.encode_to_vec().as_slice()).unwrap(), typed);
        }
    }

    #[test]
    fn check_in_ids_are_deterministic_and_valid() {
        let a = check_in_request_id("cn-huaihua-park", &"r".repeat(128), "bk-1");
        assert_eq!(
            a,
            check_in_request_id("cn-huaihua-park", &"r".repeat(128), "bk-1")
        );
        assert_ne!(
            a,
            check_in_request_id("cn-huaihua-park", &"r".repeat(128), "bk-2")
        );
        assert_ne!(
            a,
            check_in_request_id("la-vientiane", &"r".repeat(128), "bk-1")
        );
        assert!(coldchain_runtime::validate::check_id(&a, 128).is_ok());
    }
}
