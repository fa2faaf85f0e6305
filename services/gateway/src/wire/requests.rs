//! Validation of form: every request read into what the use cases take, every bad field
//! reported at once as a field violation (INVALID_ARGUMENT); then, for StartTransfer, the
//! sites and zones the network file does not have (NOT_FOUND).

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use coldchain_network::{NetworkConfig, TemperatureClass};
use coldchain_proto::common::v1 as common;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::ServiceError;
use coldchain_runtime::idempotency::fingerprint_of;
use coldchain_runtime::proto_time::naive_date;
use coldchain_runtime::validate::Violations;
use coldchain_store::RequestFingerprint;
use prost::Message;

use super::{class_from_proto, state_from_proto};
use crate::domain::{
    self, Line, LineProblem, MergeCursor, SpaceQuery, TransferFilter, TransferSpec,
};

/// The bytes a page token of `method` is bound to: the method and the query's filters.
/// Without the method, the unfiltered queries of two list RPCs would encode alike (empty)
/// and a token of one would be taken by the other.
pub(crate) fn list_query(method: &str, filters: &[u8]) -> Vec<u8> {
    let mut query = Vec::with_capacity(method.len() + 1 + filters.len());
    query.extend_from_slice(method.as_bytes());
    query.push(0);
    query.extend_from_slice(filters);
    query
}

fn check_site_ids(v: &mut Violations, field: &str, ids: &[String]) {
    for (i, id) in ids.iter().enumerate() {
        v.id(&format!("{field}[{i}]"), id);
    }
}

fn check_unit(v: &mut Violations, field: &str, unit: &str) {
    if unit.is_empty() {
        v.add(field, "is required");
    } else if unit.len() > domain::MAX_UNIT_BYTES {
        v.add(
            field,
            format!("{unit:?} is longer than {} bytes", domain::MAX_UNIT_BYTES),
        );
    } else if unit.chars().any(|c| c.is_control() || c.is_whitespace()) {
        v.add(
            field,
            format!("{unit:?} must not contain spaces or control characters"),
        );
    }
}

fn check_date(v: &mut Violations, field: &str, date: Option<&common::Date>) -> Option<NaiveDate> {
    match date {
        None => {
            v.add(field, "is required");
            None
        }
        Some(d) => {
            let parsed = naive_date(d).ok();
            if parsed.is_none() {
                v.add(
                    field,
                    format!("{}-{:02}-{:02} is not a valid date", d.year, d.month, d.day),
                );
            }
            parsed
        }
    }
}

/// A class filter: `None` for UNSPECIFIED; an unknown value is a violation.
fn check_class(v: &mut Violations, value: i32) -> Option<TemperatureClass> {
    match class_from_proto(value) {
        Ok(class) => class,
        Err(_) => {
            v.add(
                "temperature_class",
                format!("{value} is not a temperature class"),
            );
            None
        }
    }
}

/// ListSites, read.
#[derive(Debug)]
pub struct SitesQuery {
    /// Only these sites (all when empty).
    pub site_ids: Vec<String>,
    /// The position of the page's first site among those selected.
    pub start: usize,
    /// The page size.
    pub size: usize,
    /// What the page tokens are bound to.
    pub query: Vec<u8>,
}

/// ListSites.
pub fn list_sites(req: &pb::ListSitesRequest) -> Result<SitesQuery, ServiceError> {
    let mut v = Violations::new();
    check_site_ids(&mut v, "site_ids", &req.site_ids);
    let size = v.page_size(req.page_size);
    let mut filter: Vec<&str> = req.site_ids.iter().map(String::as_str).collect();
    filter.sort_unstable();
    filter.dedup();
    let query = list_query("ListSites", filter.join(",").as_bytes());
    let start = match v.page_token(&query, &req.page_token) {
        None => 0,
        Some(raw) => match <[u8; 4]>::try_from(raw.as_slice()) {
            Ok(position) => u32::from_be_bytes(position) as usize,
            Err(_) => {
                v.add("page_token", "is not a token this query returned");
                0
            }
        },
    };
    v.finish()?;
    Ok(SitesQuery {
        site_ids: req.site_ids.clone(),
        start,
        size,
        query,
    })
}

/// FindStock, read.
#[derive(Debug)]
pub struct StockQuery {
    /// The sku.
    pub sku: String,
    /// Only zones of this class (any when `None`).
    pub class: Option<TemperatureClass>,
    /// Only zone rows with at least this available (0: with stock on hand).
    pub min_quantity: i64,
    /// Only these sites (all when empty).
    pub site_ids: Vec<String>,
}

/// FindStock.
pub fn find_stock(req: &pb::FindStockRequest) -> Result<StockQuery, ServiceError> {
    let mut v = Violations::new();
    v.id("sku", &req.sku);
    let class = check_class(&mut v, req.temperature_class);
    v.check(req.min_quantity >= 0, "min_quantity", || {
        format!("must not be negative, got {}", req.min_quantity)
    });
    check_site_ids(&mut v, "site_ids", &req.site_ids);
    v.finish()?;
    Ok(StockQuery {
        sku: req.sku.clone(),
        class,
        min_quantity: req.min_quantity,
        site_ids: req.site_ids.clone(),
    })
}

/// TraceLot, read.
#[derive(Debug, Clone)]
pub struct TraceQuery {
    /// The sku.
    pub sku: String,
    /// The lot.
    pub lot_id: String,
    /// Only these sites (all when empty).
    pub site_ids: Vec<String>,
}

/// TraceLot.
pub fn trace_lot(req: &pb::TraceLotRequest) -> Result<TraceQuery, ServiceError> {
    let mut v = Violations::new();
    v.id("sku", &req.sku);
    v.id("lot_id", &req.lot_id);
    check_site_ids(&mut v, "site_ids", &req.site_ids);
    v.finish()?;
    Ok(TraceQuery {
        sku: req.sku.clone(),
        lot_id: req.lot_id.clone(),
        site_ids: req.site_ids.clone(),
    })
}

/// ListExpiring, read.
#[derive(Debug, Clone)]
pub struct ExpiringQuery {
    /// The window in days, 0 to 3650.
    pub within_days: i32,
    /// Only these sites (all when empty).
    pub site_ids: Vec<String>,
    /// Only zones of these classes (all when empty).
    pub classes: Vec<TemperatureClass>,
    /// Most rows to answer.
    pub limit: usize,
}

/// ListExpiring.
pub fn list_expiring(req: &pb::NetworkListExpiringRequest) -> Result<ExpiringQuery, ServiceError> {
    let mut v = Violations::new();
    v.check((0..=3650).contains(&req.within_days), "within_days", || {
        format!("{} is outside 0..=3650 days", req.within_days)
    });
    check_site_ids(&mut v, "site_ids", &req.site_ids);
    let mut classes = Vec::new();
    for (i, value) in req.temperature_classes.iter().enumerate() {
        match class_from_proto(*value) {
            Ok(Some(class)) => classes.push(class),
            _ => v.add(
                format!("temperature_classes[{i}]"),
                format!("{value} is not a temperature class"),
            ),
        }
    }
    let limit = v.page_size(req.limit);
    v.finish()?;
    Ok(ExpiringQuery {
        within_days: req.within_days,
        site_ids: req.site_ids.clone(),
        classes,
        limit,
    })
}

/// FindSpace.
pub fn find_space(req: &pb::FindSpaceRequest) -> Result<SpaceQuery, ServiceError> {
    let mut v = Violations::new();
    let class = match class_from_proto(req.temperature_class) {
        Ok(Some(class)) => Some(class),
        Ok(None) => {
            v.add("temperature_class", "is required");
            None
        }
        Err(_) => {
            v.add(
                "temperature_class",
                format!("{} is not a temperature class", req.temperature_class),
            );
            None
        }
    };
    v.check(req.pallets > 0, "pallets", || {
        format!("must be positive, got {}", req.pallets)
    });
    let first = check_date(&mut v, "first_day", req.first_day.as_ref());
    let last = check_date(&mut v, "last_day", req.last_day.as_ref());
    if let (Some(first), Some(last)) = (first, last) {
        let days = domain::days_inclusive(first, last);
        if days < 1 {
            v.add("last_day", format!("{last} is before first_day {first}"));
        } else if days > domain::MAX_RANGE_DAYS {
            v.add(
                "last_day",
                format!(
                    "the range {first} to {last} has {days} days; at most {}",
                    domain::MAX_RANGE_DAYS
                ),
            );
        }
    }
    check_site_ids(&mut v, "site_ids", &req.site_ids);
    v.finish()?;
    match (class, first, last) {
        (Some(class), Some(first_day), Some(last_day)) => Ok(SpaceQuery {
            class,
            pallets: req.pallets,
            first_day,
            last_day,
            site_ids: req.site_ids.clone(),
        }),
        // Each is recorded as a violation when missing, so finish() refused already.
        _ => Err(crate::error::validated_field_missing()),
    }
}

/// ListAlarms, read.
#[derive(Debug)]
pub struct AlarmsQuery {
    /// Only these sites (all when empty).
    pub site_ids: Vec<String>,
    /// The filters, as every site's ListAlarms takes them.
    pub filter: tel::ListAlarmsRequest,
    /// The page size.
    pub size: usize,
    /// Where the merge stands.
    pub cursor: MergeCursor,
    /// What the page tokens are bound to.
    pub query: Vec<u8>,
}

/// ListAlarms.
pub fn list_alarms(req: &pb::ListAlarmsRequest) -> Result<AlarmsQuery, ServiceError> {
    let mut v = Violations::new();
    check_site_ids(&mut v, "site_ids", &req.site_ids);
    for (i, state) in req.states.iter().enumerate() {
        let known =
            tel::AlarmState::try_from(*state).is_ok_and(|s| s != tel::AlarmState::Unspecified);
        v.check(known, format!("states[{i}]"), || {
            format!("{state} is not an alarm state")
        });
    }
    for (i, kind) in req.kinds.iter().enumerate() {
        let known = tel::AlarmKind::try_from(*kind).is_ok_and(|k| k != tel::AlarmKind::Unspecified);
        v.check(known, format!("kinds[{i}]"), || {
            format!("{kind} is not an alarm kind")
        });
    }
    let size = v.page_size(req.page_size);
    let query = list_query(
        "ListAlarms",
        &pb::ListAlarmsRequest {
            page_size: 0,
            page_token: String::new(),
            ..req.clone()
        }
        .encode_to_vec(),
    );
    let cursor: MergeCursor = match v.page_token(&query, &req.page_token) {
        None => MergeCursor::default(),
        Some(raw) => match postcard::from_bytes(&raw) {
            Ok(cursor) => cursor,
            Err(_) => {
                v.add("page_token", "is not a token this query returned");
                MergeCursor::default()
            }
        },
    };
    v.finish()?;
    Ok(AlarmsQuery {
        site_ids: req.site_ids.clone(),
        filter: tel::ListAlarmsRequest {
            states: req.states.clone(),
            kinds: req.kinds.clone(),
            active_only: req.active_only,
            ..tel::ListAlarmsRequest::default()
        },
        size,
        cursor,
        query,
    })
}

/// WatchAlarms, read.
#[derive(Debug)]
pub struct WatchQuery {
    /// Only these sites (all when empty).
    pub site_ids: Vec<String>,
    /// Per site, the first sequence to send.
    pub from: BTreeMap<String, u64>,
}

/// WatchAlarms.
pub fn watch_alarms(req: pb::WatchAlarmsRequest) -> Result<WatchQuery, ServiceError> {
    let mut v = Violations::new();
    check_site_ids(&mut v, "site_ids", &req.site_ids);
    for site in req.from_sequences.keys() {
        v.id(&format!("from_sequences[{site:?}]"), site);
    }
    v.finish()?;
    Ok(WatchQuery {
        site_ids: req.site_ids,
        from: req.from_sequences.into_iter().collect(),
    })
}

/// StartTransfer: INVALID_ARGUMENT for malformed fields (all at once), then NOT_FOUND for
/// sites or zones the network does not have.
pub fn start_transfer(
    network: &NetworkConfig,
    req: &pb::StartTransferRequest,
) -> Result<(RequestFingerprint, TransferSpec), ServiceError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.optional_id("transfer_id", &req.transfer_id);
    v.actor(&req.actor);
    v.id("source_site_id", &req.source_site_id);
    v.id("destination_site_id", &req.destination_site_id);
    if !req.source_site_id.is_empty() && req.source_site_id == req.destination_site_id {
        v.add(
            "destination_site_id",
            format!(
                "{:?} is the source site; a transfer goes to another site",
                req.destination_site_id
            ),
        );
    }
    if req.lines.is_empty() || req.lines.len() > domain::MAX_LINES {
        v.add(
            "lines",
            format!(
                "must hold 1 to {} lines, got {}",
                domain::MAX_LINES,
                req.lines.len()
            ),
        );
    }
    let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for (i, line) in req.lines.iter().enumerate() {
        v.nested(&format!("lines[{i}]"), |v| {
            v.id("sku", &line.sku);
            v.id("lot_id", &line.lot_id);
            v.id("source_zone_id", &line.source_zone_id);
            v.id("destination_zone_id", &line.destination_zone_id);
            v.check(line.quantity > 0, "quantity", || {
                format!("must be positive, got {}", line.quantity)
            });
            check_unit(v, "unit", &line.unit);
        });
        if let Some(first) = seen.insert((&line.sku, &line.lot_id, &line.source_zone_id), i) {
            v.add(
                format!("lines[{i}]"),
                format!(
                    "repeats sku {:?} lot {:?} from zone {:?} of lines[{first}]; one line per sku, lot and source zone",
                    line.sku, line.lot_id, line.source_zone_id
                ),
            );
        }
    }
    v.optional_id("reefer_sensor_id", &req.reefer_sensor_id);
    if req.reefer_sensor_id.is_empty() {
        v.optional_id("reefer_container_id", &req.reefer_container_id);
    } else {
        v.id("reefer_container_id", &req.reefer_container_id);
    }
    let reefer_class = match class_from_proto(req.reefer_temperature_class) {
        Ok(class) => class,
        Err(_) => {
            v.add(
                "reefer_temperature_class",
                format!(
                    "{} is not a temperature class",
                    req.reefer_temperature_class
                ),
            );
            None
        }
    };
    if req.train_or_route.len() > domain::MAX_ROUTE_BYTES {
        v.add(
            "train_or_route",
            format!(
                "must be at most {} bytes, got {}",
                domain::MAX_ROUTE_BYTES,
                req.train_or_route.len()
            ),
        );
    } else {
        v.text("train_or_route", &req.train_or_route, false);
    }
    v.finish()?;

    let first_zone = req
        .lines
        .first()
        .map(|l| l.source_zone_id.as_str())
        .unwrap_or_default();
    let spec = TransferSpec {
        transfer_id: (!req.transfer_id.is_empty()).then(|| req.transfer_id.clone()),
        source_site_id: req.source_site_id.clone(),
        destination_site_id: req.destination_site_id.clone(),
        lines: req
            .lines
            .iter()
            .map(|l| Line {
                sku: l.sku.clone(),
                lot_id: l.lot_id.clone(),
                source_zone_id: l.source_zone_id.clone(),
                destination_zone_id: l.destination_zone_id.clone(),
                quantity: l.quantity,
                unit: l.unit.clone(),
                lot: None,
            })
            .collect(),
        reefer_sensor_id: req.reefer_sensor_id.clone(),
        reefer_container_id: req.reefer_container_id.clone(),
        reefer_class: reefer_class
            .or_else(|| domain::default_reefer_class(network, &req.source_site_id, first_zone))
            .unwrap_or(TemperatureClass::Chilled),
        train_or_route: req.train_or_route.clone(),
    };
    let mut v = Violations::new();
    let mut missing = Vec::new();
    for problem in domain::check_lines(network, &spec) {
        match problem {
            LineProblem::Invalid(field, description) => v.add(field, description),
            LineProblem::UnknownSite(field, id) => {
                missing.push(format!("{field}: site {id:?} not in the network"))
            }
            LineProblem::UnknownZone(field, site, zone) => {
                missing.push(format!("{field}: zone {zone:?} not found at site {site}"));
            }
        }
    }
    v.finish()?;
    if !missing.is_empty() {
        return Err(crate::error::not_in_network(&missing));
    }
    Ok((fingerprint_of(&req.request_id, req), spec))
}

/// ReceiveTransfer: the request's fingerprint and the transfer.
pub fn receive_transfer(
    req: &pb::ReceiveTransferRequest,
) -> Result<(RequestFingerprint, String), ServiceError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.id("transfer_id", &req.transfer_id);
    v.actor(&req.actor);
    v.finish()?;
    // The actor is part of the fingerprint (the whole request is): a request_id repeated
    // by another person is a different request, not a replay.
    Ok((
        fingerprint_of(&req.request_id, req),
        req.transfer_id.clone(),
    ))
}

/// GetTransfer: the transfer.
pub fn get_transfer(req: &pb::GetTransferRequest) -> Result<String, ServiceError> {
    let mut v = Violations::new();
    v.id("transfer_id", &req.transfer_id);
    v.finish()?;
    Ok(req.transfer_id.clone())
}

/// ListTransfers, read.
#[derive(Debug)]
pub struct TransfersQuery {
    /// The filters.
    pub filter: TransferFilter,
    /// The page size.
    pub size: usize,
    /// The position after which the page starts.
    pub after: Option<Vec<u8>>,
    /// What the page tokens are bound to.
    pub query: Vec<u8>,
}

/// ListTransfers.
pub fn list_transfers(req: &pb::ListTransfersRequest) -> Result<TransfersQuery, ServiceError> {
    let mut v = Violations::new();
    let mut states = Vec::new();
    for (i, state) in req.states.iter().enumerate() {
        match state_from_proto(*state) {
            Some(state) => states.push(state),
            None => v.add(
                format!("states[{i}]"),
                format!("{state} is not a transfer state"),
            ),
        }
    }
    v.optional_id("source_site_id", &req.source_site_id);
    v.optional_id("destination_site_id", &req.destination_site_id);
    let size = v.page_size(req.page_size);
    let query = list_query(
        "ListTransfers",
        &pb::ListTransfersRequest {
            page_size: 0,
            page_token: String::new(),
            ..req.clone()
        }
        .encode_to_vec(),
    );
    let after = v.page_token(&query, &req.page_token);
    v.finish()?;
    Ok(TransfersQuery {
        filter: TransferFilter {
            states,
            source_site_id: req.source_site_id.clone(),
            destination_site_id: req.destination_site_id.clone(),
        },
        size,
        after,
        query,
    })
}
