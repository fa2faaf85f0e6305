//! Requests → domain values: validation of form, every bad field at once as field
//! violations (INVALID_ARGUMENT). What depends on the site (zones, other sites) or on
//! stored state is checked later, by the use cases.

use std::collections::HashMap;

use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as pb;
use coldchain_runtime::idempotency::tagged_fingerprint;
use coldchain_runtime::proto_time;
use coldchain_runtime::validate::Violations;
use coldchain_runtime::{ServiceError, page_token};
use coldchain_store::RequestFingerprint;

use super::convert;
use crate::domain::{
    self, AllocateCommand, ExpiringQuery, MAX_EXPIRING_DAYS, MAX_MOVEMENTS, MAX_ORIGIN_LEN,
    MAX_QUANTITY, MAX_REASON_LEN, Movement, MovementKind, PlaceHoldCommand, Reference,
    ReleaseAllocationCommand, ReleaseHoldCommand, StatedLot, StockQuery, StockRef, Strategy,
};

/// A mutating request: its fingerprint (tagged with the method, the scheme stored answers
/// are keyed by) and what it asks for.
#[derive(Debug, Clone)]
pub struct Call<C> {
    /// The request's id and digest.
    pub request: RequestFingerprint,
    /// What it asks for.
    pub command: C,
}

/// A ListStock request: the filters, the page and the query the page token is bound to.
#[derive(Debug, Clone)]
pub struct ListStock {
    /// The filters.
    pub query: StockQuery,
    /// The page size.
    pub page_size: usize,
    /// The relative key to continue after.
    pub after: Option<Vec<u8>>,
    /// Whether to compute the expiry summary (first page only).
    pub summarize: bool,
    /// The query a page token is bound to.
    pub query_bytes: Vec<u8>,
}

/// ListExpiring, validated.
pub struct ListExpiring {
    /// The filters.
    pub query: ExpiringQuery,
    /// The page size.
    pub page_size: usize,
    /// The relative key to continue after.
    pub after: Option<Vec<u8>>,
    /// The query a page token is bound to.
    pub query_bytes: Vec<u8>,
}

/// ListLotEntries, validated.
pub struct ListLotEntries {
    /// The sku.
    pub sku: String,
    /// The lot.
    pub lot_id: String,
    /// The page size.
    pub page_size: usize,
    /// The sequence to continue after (0: from the start).
    pub after: u64,
    /// The query a page token is bound to.
    pub query_bytes: Vec<u8>,
}

/// GetTransformation: the transformation's id.
pub fn get_transformation(req: &pb::GetTransformationRequest) -> Result<String, ServiceError> {
    let mut v = Violations::new();
    v.id("transformation_id", &req.transformation_id);
    v.finish()?;
    Ok(req.transformation_id.clone())
}

/// ListLotEntries.
pub fn list_lot_entries(req: &pb::ListLotEntriesRequest) -> Result<ListLotEntries, ServiceError> {
    let mut v = Violations::new();
    v.id("sku", &req.sku);
    v.id("lot_id", &req.lot_id);
    let page_size = v.page_size(req.page_size);
    let query_bytes = format!("list_lot_entries/v1|{}|{}", req.sku, req.lot_id).into_bytes();
    let after = v.page_token(&query_bytes, &req.page_token);
    let after = match after.as_deref().map(<[u8; 8]>::try_from) {
        None => 0,
        Some(Ok(bytes)) => u64::from_be_bytes(bytes),
        Some(Err(_)) => {
            v.add("page_token", "is not a token of this list");
            0
        }
    };
    v.finish()?;
    Ok(ListLotEntries {
        sku: req.sku.clone(),
        lot_id: req.lot_id.clone(),
        page_size,
        after,
        query_bytes,
    })
}

/// ListExpiring.
pub fn list_expiring(req: &pb::ListExpiringRequest) -> Result<ListExpiring, ServiceError> {
    let mut v = Violations::new();
    v.optional_id("zone_id", &req.zone_id);
    let within_days = u32::try_from(req.within_days)
        .ok()
        .filter(|days| *days <= MAX_EXPIRING_DAYS);
    v.check(within_days.is_some(), "within_days", || {
        format!(
            "{} is outside 0..={MAX_EXPIRING_DAYS} days",
            req.within_days
        )
    });
    let page_size = v.page_size(req.page_size);
    let query = ExpiringQuery {
        within_days: within_days.unwrap_or(0),
        zone_id: req.zone_id.clone(),
    };
    let query_bytes =
        format!("list_expiring/v1|{}|{}", query.within_days, query.zone_id).into_bytes();
    let after = v.page_token(&query_bytes, &req.page_token);
    v.finish()?;
    Ok(ListExpiring {
        query,
        page_size,
        after,
        query_bytes,
    })
}

/// RecordMovements.
pub fn record_movements(
    req: &pb::RecordMovementsRequest,
    this_site: &str,
) -> Result<Call<Vec<Movement>>, ServiceError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.actor(&req.actor);
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
            parsed = movement(v, raw, this_site);
        });
        if let Some(movement) = parsed {
            movements.push(movement);
        }
    }
    // One receipt per (transfer, sku, lot) and batch: a second line would be dropped as
    // already received.
    let mut transfers: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut pallets: HashMap<&str, i32> = HashMap::new();
    for (index, m) in movements.iter().enumerate() {
        if m.kind == MovementKind::TransferIn
            && let Some(first) = transfers.insert((&m.transfer_id, &m.sku, &m.lot.lot_id), index)
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
    for (index, field, problem) in domain::transformation_problems(&movements) {
        v.add(format!("movements[{index}].{field}"), problem);
    }
    v.finish()?;
    Ok(Call {
        request: tagged_fingerprint("RecordMovements", &req.request_id, req),
        command: movements,
    })
}

/// GetStock.
pub fn get_stock(req: &pb::GetStockRequest) -> Result<StockRef, ServiceError> {
    let mut v = Violations::new();
    v.id("sku", &req.sku);
    v.optional_id("lot_id", &req.lot_id);
    v.optional_id("zone_id", &req.zone_id);
    v.finish()?;
    Ok(StockRef {
        sku: req.sku.clone(),
        lot_id: req.lot_id.clone(),
        zone_id: req.zone_id.clone(),
    })
}

/// ListStock.
pub fn list_stock(req: &pb::ListStockRequest) -> Result<ListStock, ServiceError> {
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
    let expiring_before = date(&mut v, "expiring_before", req.expiring_before.as_ref());
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
    )
    .into_bytes();
    let after = v.page_token(&query_bytes, &req.page_token);
    v.finish()?;
    Ok(ListStock {
        summarize: req.summarize_by_expiry && after.is_none(),
        query,
        page_size,
        after,
        query_bytes,
    })
}

/// The page token that continues after `key`, empty on the last page.
pub fn next_page_token(query_bytes: &[u8], key: Option<&[u8]>) -> String {
    key.map(|key| page_token::encode(query_bytes, key))
        .unwrap_or_default()
}

/// AllocateStock.
pub fn allocate_stock(
    req: &pb::AllocateStockRequest,
) -> Result<Call<AllocateCommand>, ServiceError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.actor(&req.actor);
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
    let strategy = convert::strategy(req.strategy);
    v.check(strategy.is_some(), "strategy", || {
        format!("unknown allocation strategy {}", req.strategy)
    });
    v.finish()?;
    Ok(Call {
        request: tagged_fingerprint("AllocateStock", &req.request_id, req),
        command: AllocateCommand {
            request_id: req.request_id.clone(),
            order_id: req.order_id.clone(),
            sku: req.sku.clone(),
            quantity: req.quantity,
            unit: req.unit.clone(),
            zone_id: req.zone_id.clone(),
            strategy: strategy.unwrap_or(Strategy::Fefo),
        },
    })
}

/// ReleaseAllocation.
pub fn release_allocation(
    req: &pb::ReleaseAllocationRequest,
) -> Result<Call<ReleaseAllocationCommand>, ServiceError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.actor(&req.actor);
    v.id("order_id", &req.order_id);
    v.optional_id("allocation_id", &req.allocation_id);
    v.finish()?;
    Ok(Call {
        request: tagged_fingerprint("ReleaseAllocation", &req.request_id, req),
        command: ReleaseAllocationCommand {
            order_id: req.order_id.clone(),
            allocation_id: req.allocation_id.clone(),
        },
    })
}

/// PlaceHold.
pub fn place_hold(req: &pb::PlaceHoldRequest) -> Result<Call<PlaceHoldCommand>, ServiceError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.actor(&req.actor);
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
    text(&mut v, "reason", &req.reason, MAX_REASON_LEN, true);
    let reference = reference(&mut v, "reference", req.reference.as_ref());
    v.finish()?;
    Ok(Call {
        request: tagged_fingerprint("PlaceHold", &req.request_id, req),
        command: PlaceHoldCommand {
            request_id: req.request_id.clone(),
            scope: domain::HoldScope {
                zone_id: req.zone_id.clone(),
                sku: req.sku.clone(),
                lot_id: req.lot_id.clone(),
            },
            reason: req.reason.clone(),
            reference,
            allow_relocation: req.allow_relocation,
        },
    })
}

/// ReleaseHold.
pub fn release_hold(
    req: &pb::ReleaseHoldRequest,
) -> Result<Call<ReleaseHoldCommand>, ServiceError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.actor(&req.actor);
    v.id("hold_id", &req.hold_id);
    text(&mut v, "reason", &req.reason, MAX_REASON_LEN, true);
    v.finish()?;
    Ok(Call {
        request: tagged_fingerprint("ReleaseHold", &req.request_id, req),
        command: ReleaseHoldCommand {
            hold_id: req.hold_id.clone(),
            reason: req.reason.clone(),
        },
    })
}

fn text(v: &mut Violations, field: &str, value: &str, max: usize, required: bool) {
    if let Err(problem) = domain::check_text(value, max, required) {
        v.add(field, problem);
    }
}

fn date(v: &mut Violations, field: &str, date: Option<&common::Date>) -> Option<chrono::NaiveDate> {
    match proto_time::naive_date(date?) {
        Ok(date) => Some(date),
        Err(problem) => {
            v.add(field, problem);
            None
        }
    }
}

fn reference(
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

/// The problem with a movement's quantity for its kind, if any. Receipts, issues and
/// transfers move at most [`MAX_QUANTITY`]; a count states at most that balance. An
/// adjustment's bound is its resulting balance (refused by the rules, FAILED_PRECONDITION).
fn quantity_problem(kind: MovementKind, quantity: i64) -> Option<String> {
    match kind {
        MovementKind::Adjustment if quantity == 0 => {
            Some("must be a non-zero signed change for an adjustment, got 0".into())
        }
        MovementKind::Adjustment => None,
        MovementKind::Count if quantity < 0 => Some(format!(
            "must be the counted quantity (0 or more), got {quantity}"
        )),
        MovementKind::Count if quantity > MAX_QUANTITY => Some(format!(
            "must be at most {MAX_QUANTITY} (the largest balance of one position), got {quantity}"
        )),
        MovementKind::Count => None,
        _ if quantity <= 0 => Some(format!(
            "must be positive for a {} movement, got {quantity}",
            kind.name()
        )),
        _ if quantity > MAX_QUANTITY => Some(format!(
            "must be at most {MAX_QUANTITY} (the largest quantity of one movement), got {quantity}"
        )),
        _ => None,
    }
}

/// Validates one movement's form; `None` when its kind is unusable (the violations say why).
fn movement(v: &mut Violations, m: &pb::Movement, this_site: &str) -> Option<Movement> {
    let kind = convert::movement_kind(m.kind);
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
            let expiry = date(v, "lot.expiry", lot.expiry.as_ref());
            let production = date(v, "lot.production", lot.production.as_ref());
            if let (Some(expiry), Some(production)) = (expiry, production) {
                v.check(production <= expiry, "lot.production", || {
                    format!("{production} is after the expiry {expiry}")
                });
            }
            text(v, "lot.origin", &lot.origin, MAX_ORIGIN_LEN, false);
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
    let reference = reference(v, "reference", m.reference.as_ref());
    let kind = kind?;
    text(
        v,
        "reason",
        &m.reason,
        MAX_REASON_LEN,
        kind == MovementKind::Adjustment,
    );
    if let Some(problem) = quantity_problem(kind, m.quantity) {
        v.add("quantity", problem);
    }
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
    let transformation = match (&m.transformation, kind.is_transformation()) {
        (Some(stated), true) => {
            v.id(
                "transformation.transformation_id",
                &stated.transformation_id,
            );
            let spec = convert::transformation(stated);
            for (field, problem) in spec.problems() {
                v.add(format!("transformation.{field}"), problem);
            }
            Some(spec)
        }
        (None, true) => {
            v.add(
                "transformation",
                format!("is required for a {} movement", kind.name()),
            );
            None
        }
        (stated, false) => {
            unset(v, "transformation", stated.is_some(), kind);
            None
        }
    };
    if kind == MovementKind::Relocation {
        v.id("to_zone_id", &m.to_zone_id);
        v.check(m.to_zone_id != m.zone_id, "to_zone_id", || {
            format!(
                "{:?} is zone_id; a relocation moves stock to another zone",
                m.to_zone_id
            )
        });
    } else {
        unset(v, "to_zone_id", !m.to_zone_id.is_empty(), kind);
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
        transformation,
        to_zone_id: m.to_zone_id.clone(),
    })
}
