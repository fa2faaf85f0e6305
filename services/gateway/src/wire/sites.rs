//! The gateway's calls to the site services, as protobuf: the saga's requests (each
//! built only from the stored transfer, so every retry sends the same bytes under the same
//! request_id), the fan-out queries, and the sites' answers read back into domain values.

use std::time::Duration;

use chrono::NaiveDate;
use coldchain_network::{ServiceKind, SiteConfig, TemperatureClass};
use coldchain_proto::booking::v1 as book;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::proto_time::{self, date, duration, naive_date, timestamp};

use super::{class_to_proto, lot_from_proto, lot_to_proto};
use crate::domain::{self, DayFree, Level, Lot, TotalTooLarge, Transfer};

/// The TRANSFER_OUT batch of a transfer at its source: one movement per line.
pub fn transfer_out_request(t: &Transfer) -> inv::RecordMovementsRequest {
    inv::RecordMovementsRequest {
        request_id: domain::transfer_out_request_id(&t.transfer_id),
        movements: t
            .lines
            .iter()
            .map(|line| inv::Movement {
                kind: inv::MovementKind::TransferOut as i32,
                sku: line.sku.clone(),
                lot: Some(inv::LotInfo {
                    lot_id: line.lot_id.clone(),
                    ..inv::LotInfo::default()
                }),
                zone_id: line.source_zone_id.clone(),
                quantity: line.quantity,
                unit: line.unit.clone(),
                reason: format!(
                    "corridor transfer {} to {}",
                    t.transfer_id, t.destination_site_id
                ),
                other_site_id: t.destination_site_id.clone(),
                transfer_id: t.transfer_id.clone(),
                ..inv::Movement::default()
            })
            .collect(),
        actor: t.start_actor(),
    }
}

/// The TRANSFER_IN batch of a transfer at its destination: one movement per (sku, lot),
/// carrying the lot's attributes as the source stored them.
pub fn transfer_in_request(t: &Transfer) -> Result<inv::RecordMovementsRequest, TotalTooLarge> {
    Ok(inv::RecordMovementsRequest {
        request_id: domain::transfer_in_request_id(&t.transfer_id),
        movements: t
            .receipt_lines()?
            .into_iter()
            .map(|line| inv::Movement {
                kind: inv::MovementKind::TransferIn as i32,
                sku: line.sku,
                lot: Some(match &line.lot {
                    Some(lot) => lot_to_proto(lot),
                    None => inv::LotInfo {
                        lot_id: line.lot_id.clone(),
                        ..inv::LotInfo::default()
                    },
                }),
                zone_id: line.zone_id,
                quantity: line.quantity,
                unit: line.unit,
                reason: format!(
                    "corridor transfer {} from {}",
                    t.transfer_id, t.source_site_id
                ),
                other_site_id: t.source_site_id.clone(),
                transfer_id: t.transfer_id.clone(),
                ..inv::Movement::default()
            })
            .collect(),
        actor: t.arrival_actor(),
    })
}

/// The registration of a transfer's reefer sensor at the source's telemetry service.
pub fn sensor_request(t: &Transfer) -> tel::RegisterSensorRequest {
    tel::RegisterSensorRequest {
        request_id: domain::sensor_request_id(&t.transfer_id),
        sensor_id: t.reefer_sensor_id.clone(),
        binding: Some(tel::register_sensor_request::Binding::Reefer(
            tel::ReeferBinding {
                container_id: t.reefer_container_id.clone(),
                train_or_route: t.train_or_route.clone(),
                transfer_id: t.transfer_id.clone(),
                temperature_class: class_to_proto(t.reefer_class) as i32,
            },
        )),
        profile: None,
        description: format!(
            "reefer {} of corridor transfer {}",
            t.reefer_container_id, t.transfer_id
        ),
        actor: t.start_actor(),
    }
}

/// The lots the source's ledger entries report, one per line of `t`.
pub fn shipped_lots(t: &Transfer, answer: &inv::RecordMovementsResponse) -> Vec<Lot> {
    answer
        .entries
        .iter()
        .zip(&t.lines)
        .map(|(entry, line)| lot_from_proto(entry.lot.as_ref(), &line.lot_id))
        .collect()
}

/// The latest instant a site recorded its ledger entries at (an instant outside the
/// Timestamp range is left out).
pub fn recorded_ms(answer: &inv::RecordMovementsResponse) -> Option<i64> {
    answer
        .entries
        .iter()
        .filter_map(|e| e.recorded_at.as_ref())
        .filter_map(proto_time::millis)
        .max()
}

/// FindStock's question to one site.
pub fn stock_request(sku: &str) -> inv::GetStockRequest {
    inv::GetStockRequest {
        sku: sku.to_string(),
        ..inv::GetStockRequest::default()
    }
}

/// A site's positions of the sku, and the sku's unit there.
pub fn levels(stock: &inv::GetStockResponse) -> (String, Vec<Level>) {
    let levels = stock
        .levels
        .iter()
        .map(|l| Level {
            lot_id: l
                .lot
                .as_ref()
                .map(|lot| lot.lot_id.clone())
                .unwrap_or_default(),
            zone_id: l.zone_id.clone(),
            expiry: l
                .lot
                .as_ref()
                .and_then(|lot| lot.expiry.as_ref())
                .and_then(|d| naive_date(d).ok()),
            on_hand: l.on_hand,
            allocated: l.allocated,
            held: l.held,
            available: l.available,
        })
        .collect();
    (stock.unit.clone(), levels)
}

/// FindSpace's question to one site.
pub fn availability_request(
    class: TemperatureClass,
    first: NaiveDate,
    last: NaiveDate,
) -> book::GetAvailabilityRequest {
    book::GetAvailabilityRequest {
        space: Some(book::get_availability_request::Space::TemperatureClass(
            class_to_proto(class) as i32,
        )),
        first_day: Some(date(first)),
        last_day: Some(date(last)),
    }
}

/// A site's free space per zone and day.
pub fn days_free(availability: &book::GetAvailabilityResponse) -> Vec<DayFree> {
    availability
        .days
        .iter()
        .map(|d| DayFree {
            zone_id: d.zone_id.clone(),
            capacity: d.capacity,
            free: d.free,
        })
        .collect()
}

/// ListAlarms' question to one site: the filters, one page from `token`.
pub fn alarms_request(
    filter: &tel::ListAlarmsRequest,
    token: String,
    page_size: usize,
) -> tel::ListAlarmsRequest {
    let page_size = page_size.min(coldchain_runtime::validate::MAX_PAGE_SIZE);
    tel::ListAlarmsRequest {
        page_size: i32::try_from(page_size).unwrap_or(1000),
        page_token: token,
        ..filter.clone()
    }
}

/// Where an alarm sorts in the merged list.
pub fn alarm_key(site_id: &str, alarm: &tel::Alarm) -> domain::AlarmKey {
    domain::AlarmKey {
        started_at: alarm
            .started_at
            .as_ref()
            .map_or((0, 0), |t| (t.seconds, t.nanos)),
        site_id: site_id.to_string(),
        alarm_id: alarm.alarm_id.clone(),
    }
}

/// The health of one site service, as ListSites shows it.
#[derive(Debug, Clone)]
pub struct EndpointProbe {
    /// Which service.
    pub kind: ServiceKind,
    /// Its address.
    pub endpoint: String,
    /// SERVING, NOT_SERVING or UNREACHABLE.
    pub health: pb::EndpointHealth,
    /// The round trip, when it answered.
    pub latency: Option<Duration>,
    /// Why not SERVING.
    pub error: String,
}

/// One site of ListSites, with its services' health checked at `checked_ms`.
pub fn site(site: &SiteConfig, probes: Vec<EndpointProbe>, checked_ms: i64) -> pb::Site {
    let checked_at = timestamp(checked_ms);
    pb::Site {
        site_id: site.id.clone(),
        name: site.name.clone(),
        time_zone: site.time_zone.name().to_string(),
        reached_by: site.reached_by.clone(),
        zones: site
            .zones
            .iter()
            .map(|z| pb::Zone {
                zone_id: z.id.clone(),
                name: format!("{} zone {}", z.class.as_str().to_lowercase(), z.id),
                temperature_class: class_to_proto(z.class) as i32,
                min_celsius: z.min_celsius,
                max_celsius: z.max_celsius,
                capacity_pallets: i32::try_from(z.capacity_pallets).unwrap_or(i32::MAX),
            })
            .collect(),
        endpoints: probes
            .into_iter()
            .map(|probe| pb::ServiceEndpoint {
                service: match probe.kind {
                    ServiceKind::Inventory => pb::ServiceKind::Inventory,
                    ServiceKind::Telemetry => pb::ServiceKind::Telemetry,
                    _ => pb::ServiceKind::Booking,
                } as i32,
                endpoint: probe.endpoint,
                health: probe.health as i32,
                latency: probe.latency.map(duration),
                checked_at: Some(checked_at),
                error: probe.error,
            })
            .collect(),
    }
}
