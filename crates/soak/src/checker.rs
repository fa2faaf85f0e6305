//! The invariants of issue 25, checked by a pure function of the history and the observed
//! state: every violation is reported with the ids involved.
//!
//! 1. every acknowledged write is present (ledger by request id, bookings, readings);
//! 2. conservation: per sku and lot, stock at all sites plus quantity in transit equals
//!    receipts minus issues plus adjustments (write-offs are negative adjustments);
//! 3. every transfer is terminal, debited once at the source and credited once at the
//!    destination;
//! 4. per site, zone and day, live bookings never exceed capacity, and free space equals
//!    capacity minus them;
//! 5. every excursion alarm has its hold placed (and in the ledger), and the reconnecting
//!    WatchAlarms consumer received every site's alarm events exactly once, in order;
//! 6. no answer was INTERNAL or UNKNOWN, every call was answered, no process exited but by
//!    an injected fault.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::model::{
    AlarmEventSeen, BookingFate, BookingState, ClosedAs, EntryKind, History, Observed,
    TransferState,
};

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which invariant (1 to 6).
    pub invariant: u8,
    /// The ids involved (request, transfer, booking, alarm ids, sites, skus and lots).
    pub ids: Vec<String>,
    /// What is wrong.
    pub message: String,
}

fn violation(invariant: u8, ids: &[&str], message: String) -> Violation {
    Violation {
        invariant,
        ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        message,
    }
}

/// Checks every invariant; empty when all hold.
pub fn check(history: &History, observed: &Observed) -> Vec<Violation> {
    let mut out = Vec::new();
    acknowledged_writes_present(history, observed, &mut out);
    conservation(history, observed, &mut out);
    transfers(history, observed, &mut out);
    capacity(observed, &mut out);
    alarms(history, observed, &mut out);
    answers_and_exits(history, &mut out);
    out
}

fn acknowledged_writes_present(history: &History, observed: &Observed, out: &mut Vec<Violation>) {
    for write in &history.movements {
        let Some(site) = observed.sites.get(&write.site) else {
            out.push(violation(
                1,
                &[&write.site, &write.request_id],
                format!("site {} was not observed", write.site),
            ));
            continue;
        };
        let found: BTreeSet<u64> = site
            .ledger
            .iter()
            .filter(|e| e.request_id == write.request_id)
            .map(|e| e.sequence)
            .collect();
        let missing: Vec<String> = write
            .sequences
            .iter()
            .filter(|s| !found.contains(s))
            .map(u64::to_string)
            .collect();
        if !missing.is_empty() || write.sequences.len() != write.lines.len() {
            out.push(violation(
                1,
                &[&write.site, &write.request_id],
                format!(
                    "acknowledged movements {} at {}: ledger entries {} missing ({} of {} found)",
                    write.request_id,
                    write.site,
                    missing.join(", "),
                    found.len(),
                    write.lines.len()
                ),
            ));
        }
    }
    for ack in &history.bookings {
        let booking = observed
            .sites
            .get(&ack.site)
            .and_then(|s| s.bookings.iter().find(|b| b.booking_id == ack.booking_id));
        let Some(booking) = booking else {
            out.push(violation(
                1,
                &[&ack.site, &ack.booking_id, &ack.request_id],
                format!(
                    "acknowledged booking {} at {} is missing",
                    ack.booking_id, ack.site
                ),
            ));
            continue;
        };
        let consistent = match ack.fate {
            BookingFate::Held => true,
            BookingFate::Confirmed => matches!(
                booking.state,
                BookingState::Confirmed
                    | BookingState::CheckedIn
                    | BookingState::Closed(ClosedAs::Completed | ClosedAs::NoShow)
            ),
            BookingFate::Cancelled => booking.state == BookingState::Closed(ClosedAs::Cancelled),
        };
        if !consistent {
            out.push(violation(
                1,
                &[&ack.site, &ack.booking_id, &ack.request_id],
                format!(
                    "booking {} at {}: acknowledged as {:?} by {}, but it is {:?}",
                    ack.booking_id, ack.site, ack.fate, ack.request_id, booking.state
                ),
            ));
        }
    }
    let mut acked_readings: BTreeMap<(&str, &str), BTreeSet<i64>> = BTreeMap::new();
    for ack in &history.readings {
        acked_readings
            .entry((&ack.site, &ack.sensor))
            .or_default()
            .extend(ack.times_ms.iter().copied());
    }
    for ((site, sensor), times) in acked_readings {
        let stored = observed
            .sites
            .get(site)
            .and_then(|s| s.readings.get(sensor))
            .copied()
            .unwrap_or(0);
        let acked = i64::try_from(times.len()).unwrap_or(i64::MAX);
        if stored < acked {
            out.push(violation(
                1,
                &[site, sensor],
                format!(
                    "sensor {sensor} at {site}: {acked} readings acknowledged, {stored} stored"
                ),
            ));
        }
    }
}

fn conservation(history: &History, observed: &Observed, out: &mut Vec<Violation>) {
    // What the clients caused: acknowledged batches, and unanswered ones that the ledger
    // shows were applied (a lost answer is not a lost write).
    let mut expected: BTreeMap<(String, String), i64> = BTreeMap::new();
    let applied_unanswered = history.unanswered_movements.iter().filter(|w| {
        observed.sites.get(&w.site).is_some_and(|s| {
            s.ledger
                .iter()
                .any(|e| e.request_id == w.request_id && e.kind == EntryKind::Movement)
        })
    });
    for write in history.movements.iter().chain(applied_unanswered) {
        for line in &write.lines {
            *expected
                .entry((line.sku.clone(), line.lot.clone()))
                .or_default() += line.delta;
        }
    }
    let mut actual: BTreeMap<(String, String), i64> = BTreeMap::new();
    for site in observed.sites.values() {
        for row in &site.stock {
            *actual
                .entry((row.sku.clone(), row.lot.clone()))
                .or_default() += row.on_hand;
        }
    }
    for transfer in &observed.transfers {
        if matches!(
            transfer.state,
            TransferState::InTransit | TransferState::Receiving
        ) {
            for line in &transfer.lines {
                *actual
                    .entry((line.sku.clone(), line.lot.clone()))
                    .or_default() += line.quantity;
            }
        }
    }
    let keys: BTreeSet<&(String, String)> = expected.keys().chain(actual.keys()).collect();
    for key in keys {
        let want = expected.get(key).copied().unwrap_or(0);
        let have = actual.get(key).copied().unwrap_or(0);
        if want != have {
            out.push(violation(
                2,
                &[&key.0, &key.1],
                format!(
                    "sku {} lot {}: stock at the sites plus in transit is {have}, receipts - issues + adjustments is {want}",
                    key.0, key.1
                ),
            ));
        }
    }
}

fn transfers(history: &History, observed: &Observed, out: &mut Vec<Violation>) {
    let by_id: HashMap<&str, _> = observed
        .transfers
        .iter()
        .map(|t| (t.transfer_id.as_str(), t))
        .collect();
    for ack in &history.transfers {
        if !by_id.contains_key(ack.transfer_id.as_str()) {
            out.push(violation(
                1,
                &[&ack.transfer_id, &ack.request_id],
                format!(
                    "acknowledged transfer {} is unknown to the gateway",
                    ack.transfer_id
                ),
            ));
        }
    }
    for transfer in &observed.transfers {
        let id = transfer.transfer_id.as_str();
        let (out_wanted, in_wanted) = match transfer.state {
            TransferState::Completed => (1, 1),
            TransferState::Failed => (0, 0),
            TransferState::Requested | TransferState::InTransit | TransferState::Receiving => {
                out.push(violation(
                    3,
                    &[id],
                    format!(
                        "transfer {id} never reached a terminal state: {:?}",
                        transfer.state
                    ),
                ));
                continue;
            }
        };
        for line in &transfer.lines {
            let legs = |site: &str, kind: EntryKind| -> Vec<i64> {
                observed
                    .sites
                    .get(site)
                    .map(|s| {
                        s.ledger
                            .iter()
                            .filter(|e| {
                                e.kind == kind
                                    && e.transfer_id == id
                                    && e.sku == line.sku
                                    && e.lot == line.lot
                            })
                            .map(|e| e.delta)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let debits = legs(&transfer.source, EntryKind::TransferOut);
            let credits = legs(&transfer.destination, EntryKind::TransferIn);
            let debit_ok =
                debits.len() == out_wanted && debits.iter().all(|d| *d == -line.quantity);
            let credit_ok =
                credits.len() == in_wanted && credits.iter().all(|d| *d == line.quantity);
            if !debit_ok || !credit_ok {
                out.push(violation(
                    3,
                    &[id, &line.sku, &line.lot],
                    format!(
                        "transfer {id} ({:?}) line {} {} of {}: debited {:?} at {} (want {out_wanted} × -{}), credited {:?} at {} (want {in_wanted} × {})",
                        transfer.state,
                        line.sku,
                        line.lot,
                        line.quantity,
                        debits,
                        transfer.source,
                        line.quantity,
                        credits,
                        transfer.destination,
                        line.quantity
                    ),
                ));
            }
        }
    }
}

fn capacity(observed: &Observed, out: &mut Vec<Violation>) {
    for (site_id, site) in &observed.sites {
        let mut live: BTreeMap<(&str, chrono::NaiveDate), (i64, Vec<&str>)> = BTreeMap::new();
        for booking in site.bookings.iter().filter(|b| b.state.is_live()) {
            let mut day = booking.first_day;
            while day <= booking.last_day {
                let slot = live.entry((&booking.zone, day)).or_default();
                slot.0 += booking.pallets;
                slot.1.push(&booking.booking_id);
                let Some(next) = day.succ_opt() else { break };
                day = next;
            }
        }
        for ((zone, day), (pallets, ids)) in &live {
            let capacity = site.capacity.get(*zone).copied().unwrap_or(0);
            if *pallets > capacity {
                let mut all = vec![site_id.as_str(), zone];
                all.extend(ids.iter().copied());
                out.push(violation(
                    4,
                    &all,
                    format!(
                        "{site_id} zone {zone} on {day}: live bookings hold {pallets} pallets, capacity {capacity}"
                    ),
                ));
            }
        }
        for row in &site.availability {
            let booked = live.get(&(row.zone.as_str(), row.day)).map_or(0, |l| l.0);
            if row.occupied != booked || row.free != row.capacity - booked {
                out.push(violation(
                    4,
                    &[site_id, &row.zone],
                    format!(
                        "{site_id} zone {} on {}: availability says {} occupied and {} free of {}, the live bookings hold {booked}",
                        row.zone, row.day, row.occupied, row.free, row.capacity
                    ),
                ));
            }
        }
    }
}

fn alarms(history: &History, observed: &Observed, out: &mut Vec<Violation>) {
    let placed: BTreeSet<&str> = observed
        .sites
        .values()
        .flat_map(|s| s.ledger.iter())
        .filter(|e| e.kind == EntryKind::HoldPlaced)
        .map(|e| e.hold_id.as_str())
        .collect();
    for (site_id, site) in &observed.sites {
        for alarm in site.alarms.iter().filter(|a| a.excursion) {
            let id = alarm.alarm_id.as_str();
            if alarm.hold_status != "PLACED" || alarm.hold_ids.is_empty() {
                out.push(violation(
                    5,
                    &[site_id, id],
                    format!("alarm {id} at {site_id}: hold {}", alarm.hold_status),
                ));
            }
            for hold in &alarm.hold_ids {
                if !placed.contains(hold.as_str()) {
                    out.push(violation(
                        5,
                        &[site_id, id, hold],
                        format!(
                            "alarm {id} at {site_id} names hold {hold}, absent from the ledgers"
                        ),
                    ));
                }
            }
        }
        let received = history.watched.get(site_id).map_or(&[][..], Vec::as_slice);
        if let Some(problem) = compare_feeds(received, &site.alarm_events) {
            out.push(violation(
                5,
                &[site_id],
                format!("WatchAlarms consumer, {site_id}: {problem}"),
            ));
        }
    }
}

/// Where the consumer's events differ from the site's feed: `None` when it received each
/// event exactly once, in order.
fn compare_feeds(received: &[AlarmEventSeen], feed: &[AlarmEventSeen]) -> Option<String> {
    let mut seen = BTreeSet::new();
    for (i, event) in received.iter().enumerate() {
        if !seen.insert(event.sequence) {
            return Some(format!(
                "event {} (alarm {}) received twice",
                event.sequence, event.alarm_id
            ));
        }
        if i > 0 && received[i - 1].sequence > event.sequence {
            return Some(format!(
                "event {} received after {}",
                event.sequence,
                received[i - 1].sequence
            ));
        }
    }
    let missing: Vec<String> = feed
        .iter()
        .filter(|e| !seen.contains(&e.sequence))
        .map(|e| format!("{} (alarm {})", e.sequence, e.alarm_id))
        .collect();
    if !missing.is_empty() {
        return Some(format!("events never received: {}", missing.join(", ")));
    }
    for event in received {
        match feed.iter().find(|e| e.sequence == event.sequence) {
            None => {
                return Some(format!(
                    "event {} is not in the site's feed",
                    event.sequence
                ));
            }
            Some(e) if e.alarm_id != event.alarm_id => {
                return Some(format!(
                    "event {} names alarm {}, the site's feed {}",
                    event.sequence, event.alarm_id, e.alarm_id
                ));
            }
            Some(_) => {}
        }
    }
    None
}

fn answers_and_exits(history: &History, out: &mut Vec<Violation>) {
    for bad in &history.bad_answers {
        out.push(violation(
            6,
            &[&bad.call],
            format!("{}: {} {}", bad.call, bad.code, bad.message),
        ));
    }
    for exit in &history.unexpected_exits {
        out.push(violation(
            6,
            &[exit],
            format!("process exited on its own: {exit}"),
        ));
    }
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
