//! Reading the network's final state, after it settled: every site's whole ledger, stock,
//! bookings, availability, alarms, alarm feed and readings, and every transfer. A read
//! that fails is an error of the run (the network should be whole again by then).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use coldchain_proto::booking::v1 as booking;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::network::v1 as network;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_runtime::network::NetworkConfig;
use coldchain_runtime::proto_time;

use crate::call::request;
use crate::model::{
    AlarmEventSeen, BookingState, ClosedAs, DayAvailability, EntryKind, LedgerRow, Observed,
    ObservedAlarm, ObservedBooking, ObservedTransfer, SiteState, StockRow, TransferLine,
    TransferState,
};
use crate::workload::{SiteClients, Workload};

const PAGE: i32 = 500;
/// How long reading one feed to its head may take.
const FEED_WITHIN: Duration = Duration::from_secs(30);

fn failed(what: &str, site: &str, status: &tonic::Status) -> String {
    format!(
        "reading {what} at {site}: {:?} {}",
        status.code(),
        status.message()
    )
}

/// Reads the whole network.
pub async fn observe(
    workload: &Workload,
    network: &NetworkConfig,
    readings_to_ms: i64,
) -> Result<Observed, String> {
    let mut observed = Observed::default();
    for site in &workload.sites {
        let mut state = SiteState {
            ledger: ledger(site).await?,
            stock: stock(site).await?,
            bookings: bookings(site).await?,
            availability: availability(site, workload.booking_days).await?,
            alarms: alarms(site).await?,
            alarm_events: alarm_events(site).await?,
            ..SiteState::default()
        };
        if let Some(config) = network.site(&site.id) {
            for zone in &config.zones {
                state
                    .capacity
                    .insert(zone.id.clone(), i64::from(zone.capacity_pallets));
            }
        }
        let stored = readings(site, workload.readings_from_ms, readings_to_ms).await?;
        state.readings.insert(site.sensor.clone(), stored);
        observed.sites.insert(site.id.clone(), state);
    }
    observed.transfers = transfers(workload).await?;
    Ok(observed)
}

async fn ledger(site: &SiteClients) -> Result<Vec<LedgerRow>, String> {
    let mut client = site.inventory.clone();
    let stream = client
        .watch_ledger(inventory::WatchLedgerRequest { from_sequence: 1 })
        .await
        .map_err(|s| failed("the ledger", &site.id, &s))?;
    let mut stream = stream.into_inner();
    let mut rows = Vec::new();
    let read = async {
        loop {
            let Some(message) = stream
                .message()
                .await
                .map_err(|s| failed("the ledger", &site.id, &s))?
            else {
                return Err(format!("the ledger of {} ended early", site.id));
            };
            for e in message.entries {
                use inventory::LedgerEntryKind as K;
                let kind = match K::try_from(e.kind) {
                    Ok(K::Receipt | K::Issue | K::Adjustment | K::Count) => EntryKind::Movement,
                    Ok(K::TransferOut) => EntryKind::TransferOut,
                    Ok(K::TransferIn) => EntryKind::TransferIn,
                    Ok(K::HoldPlaced) => EntryKind::HoldPlaced,
                    _ => EntryKind::Other,
                };
                rows.push(LedgerRow {
                    sequence: e.sequence,
                    request_id: e.request_id,
                    kind,
                    sku: e.sku,
                    lot: e.lot.map(|l| l.lot_id).unwrap_or_default(),
                    delta: e.delta,
                    transfer_id: e.transfer_id,
                    hold_id: e.hold_id,
                });
            }
            let last = rows.last().map_or(0, |r: &LedgerRow| r.sequence);
            if last >= message.head_sequence {
                return Ok(());
            }
        }
    };
    tokio::time::timeout(FEED_WITHIN, read)
        .await
        .map_err(|_| format!("the ledger of {} not read within {FEED_WITHIN:?}", site.id))??;
    Ok(rows)
}

async fn stock(site: &SiteClients) -> Result<Vec<StockRow>, String> {
    let mut rows = Vec::new();
    let mut page_token = String::new();
    loop {
        let message = inventory::ListStockRequest {
            include_empty: true,
            page_size: PAGE,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let answer = site
            .inventory
            .clone()
            .list_stock(request(message))
            .await
            .map_err(|s| failed("the stock", &site.id, &s))?
            .into_inner();
        rows.extend(answer.levels.into_iter().map(|l| StockRow {
            sku: l.sku,
            lot: l.lot.map(|l| l.lot_id).unwrap_or_default(),
            zone: l.zone_id,
            on_hand: l.on_hand,
        }));
        if answer.next_page_token.is_empty() {
            return Ok(rows);
        }
        page_token = answer.next_page_token;
    }
}

fn date(d: Option<&coldchain_proto::common::v1::Date>) -> NaiveDate {
    d.and_then(|d| proto_time::naive_date(d).ok())
        .unwrap_or_default()
}

async fn bookings(site: &SiteClients) -> Result<Vec<ObservedBooking>, String> {
    let mut rows = Vec::new();
    let mut page_token = String::new();
    loop {
        let message = booking::ListBookingsRequest {
            page_size: PAGE,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let answer = site
            .booking_ops
            .clone()
            .list_bookings(request(message))
            .await
            .map_err(|s| failed("the bookings", &site.id, &s))?
            .into_inner();
        for b in answer.bookings {
            use booking::BookingState as S;
            let state = match S::try_from(b.state) {
                Ok(S::Held) => BookingState::Held,
                Ok(S::Confirmed) => BookingState::Confirmed,
                Ok(S::CheckedIn) => BookingState::CheckedIn,
                Ok(S::Completed) => BookingState::Closed(ClosedAs::Completed),
                Ok(S::Cancelled) => BookingState::Closed(ClosedAs::Cancelled),
                Ok(S::Expired) => BookingState::Closed(ClosedAs::Expired),
                Ok(S::NoShow) => BookingState::Closed(ClosedAs::NoShow),
                _ => return Err(format!("booking {} has state {}", b.booking_id, b.state)),
            };
            rows.push(ObservedBooking {
                first_day: date(b.first_day.as_ref()),
                last_day: date(b.last_day.as_ref()),
                booking_id: b.booking_id,
                zone: b.zone_id,
                pallets: i64::from(b.pallets),
                state,
            });
        }
        if answer.next_page_token.is_empty() {
            return Ok(rows);
        }
        page_token = answer.next_page_token;
    }
}

async fn availability(
    site: &SiteClients,
    days: (NaiveDate, NaiveDate),
) -> Result<Vec<DayAvailability>, String> {
    let message = booking::GetAvailabilityRequest {
        space: Some(booking::get_availability_request::Space::ZoneId(
            site.booking_zone.clone(),
        )),
        first_day: Some(proto_time::date(days.0)),
        last_day: Some(proto_time::date(days.1)),
    };
    let answer = site
        .booking_ops
        .clone()
        .get_availability(request(message))
        .await
        .map_err(|s| failed("the availability", &site.id, &s))?
        .into_inner();
    Ok(answer
        .days
        .into_iter()
        .map(|d| DayAvailability {
            day: date(d.date.as_ref()),
            zone: d.zone_id,
            capacity: i64::from(d.capacity),
            occupied: i64::from(d.held) + i64::from(d.confirmed) + i64::from(d.checked_in),
            free: i64::from(d.free),
        })
        .collect())
}

async fn alarms(site: &SiteClients) -> Result<Vec<ObservedAlarm>, String> {
    let mut rows = Vec::new();
    let mut page_token = String::new();
    loop {
        let message = telemetry::ListAlarmsRequest {
            page_size: PAGE,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let answer = site
            .telemetry_ops
            .clone()
            .list_alarms(request(message))
            .await
            .map_err(|s| failed("the alarms", &site.id, &s))?
            .into_inner();
        for a in answer.alarms {
            use telemetry::AlarmKind as K;
            use telemetry::HoldStatus as H;
            let excursion = matches!(K::try_from(a.kind), Ok(K::ExcursionHigh | K::ExcursionLow));
            let hold_status = match H::try_from(a.hold_status) {
                Ok(H::Placed) => "PLACED",
                Ok(H::Pending) => "PENDING",
                Ok(H::NotRequired) => "NOT_REQUIRED",
                _ => "UNSPECIFIED",
            };
            rows.push(ObservedAlarm {
                alarm_id: a.alarm_id,
                excursion,
                hold_status: hold_status.to_owned(),
                hold_ids: a.hold_ids,
            });
        }
        if answer.next_page_token.is_empty() {
            return Ok(rows);
        }
        page_token = answer.next_page_token;
    }
}

/// The site's alarm event feed from its first event to its head, read from the site.
pub async fn alarm_events(site: &SiteClients) -> Result<Vec<AlarmEventSeen>, String> {
    let mut client = site.telemetry_ops.clone();
    let stream = client
        .watch_alarms(telemetry::WatchAlarmsRequest { from_sequence: 1 })
        .await
        .map_err(|s| failed("the alarm feed", &site.id, &s))?;
    let mut stream = stream.into_inner();
    let mut events: Vec<AlarmEventSeen> = Vec::new();
    let read = async {
        loop {
            let Some(message) = stream
                .message()
                .await
                .map_err(|s| failed("the alarm feed", &site.id, &s))?
            else {
                return Err(format!("the alarm feed of {} ended early", site.id));
            };
            events.extend(message.events.into_iter().map(|e| AlarmEventSeen {
                sequence: e.sequence,
                alarm_id: e.alarm.map(|a| a.alarm_id).unwrap_or_default(),
            }));
            if events.last().map_or(0, |e| e.sequence) >= message.head_sequence {
                return Ok(());
            }
        }
    };
    tokio::time::timeout(FEED_WITHIN, read)
        .await
        .map_err(|_| {
            format!(
                "the alarm feed of {} not read within {FEED_WITHIN:?}",
                site.id
            )
        })??;
    Ok(events)
}

async fn readings(site: &SiteClients, from_ms: i64, to_ms: i64) -> Result<i64, String> {
    let span = (to_ms - from_ms).max(1);
    let message = telemetry::QueryReadingsRequest {
        sensor_id: site.sensor.clone(),
        start_time: Some(proto_time::timestamp(from_ms)),
        end_time: Some(proto_time::timestamp(to_ms)),
        bucket: Some(proto_time::duration_of_millis(span)),
    };
    let answer = site
        .telemetry_ops
        .clone()
        .query_readings(request(message))
        .await
        .map_err(|s| failed("the readings", &site.id, &s))?
        .into_inner();
    Ok(answer.buckets.iter().map(|b| b.count).sum())
}

/// Every transfer the gateway knows.
pub async fn transfers(workload: &Workload) -> Result<Vec<ObservedTransfer>, String> {
    let mut rows = Vec::new();
    let mut page_token = String::new();
    loop {
        let message = network::ListTransfersRequest {
            page_size: PAGE,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let answer = workload
            .gateway
            .clone()
            .list_transfers(request(message))
            .await
            .map_err(|s| failed("the transfers", "the gateway", &s))?
            .into_inner();
        for t in answer.transfers {
            use network::TransferState as S;
            let state = match S::try_from(t.state) {
                Ok(S::Requested) => TransferState::Requested,
                Ok(S::InTransit) => TransferState::InTransit,
                Ok(S::Receiving) => TransferState::Receiving,
                Ok(S::Completed) => TransferState::Completed,
                Ok(S::Failed) => TransferState::Failed,
                _ => return Err(format!("transfer {} has state {}", t.transfer_id, t.state)),
            };
            rows.push(ObservedTransfer {
                transfer_id: t.transfer_id,
                state,
                source: t.source_site_id,
                destination: t.destination_site_id,
                lines: t
                    .lines
                    .into_iter()
                    .map(|l| TransferLine {
                        sku: l.sku,
                        lot: l.lot_id,
                        quantity: l.quantity,
                    })
                    .collect(),
            });
        }
        if answer.next_page_token.is_empty() {
            return Ok(rows);
        }
        page_token = answer.next_page_token;
    }
}

/// Per site, the head of its alarm feed (for the watcher to catch up to).
pub async fn alarm_heads(workload: &Workload) -> Result<BTreeMap<String, u64>, String> {
    let mut heads = BTreeMap::new();
    for site in &workload.sites {
        let events = alarm_events(site).await?;
        heads.insert(site.id.clone(), events.last().map_or(0, |e| e.sequence));
    }
    Ok(heads)
}
