//! The human narrative of an outcome, a paragraph an act.

use coldchain_ops::format::{self, thousands};
use coldchain_runtime::proto_time;

use crate::outcome::DemoOutcome;
use crate::{PARK, VIENTIANE};

/// The human narrative of an outcome.
pub fn narrative(o: &DemoOutcome) -> Vec<String> {
    let mut out = Vec::new();
    for paragraph in [
        network,
        park_lots,
        transfer,
        reefer,
        arrival,
        bookings,
        ledger_and_alarms,
        trace,
        warnings,
    ] {
        paragraph(o, &mut out);
    }
    out
}

/// The title, and 1: the network.
fn network(o: &DemoOutcome, out: &mut Vec<String>) {
    out.push(format!(
        "A day on the Huaihua cold-chain network (run {}, {:.1} s)",
        o.run_id,
        o.elapsed_ms as f64 / 1000.0
    ));
    out.push(String::new());
    out.push(format!(
        "1. The gateway ({}) sees {} sites, {} of {} services serving.",
        o.gateway, o.sites, o.services_serving, o.services_total
    ));
}

/// 2: the park's receipts.
fn park_lots(o: &DemoOutcome, out: &mut Vec<String>) {
    let park_lots: Vec<String> = o
        .received_lots
        .iter()
        .filter(|l| l.site_id == PARK)
        .map(|l| {
            format!(
                "{} {} {} (lot {}, {}, use by {})",
                thousands(l.quantity),
                l.unit,
                l.sku,
                l.lot_id,
                l.zone_id,
                l.expiry
            )
        })
        .collect();
    out.push(format!(
        "2. The park received {} lots from Hunan growers and its processing lines:",
        park_lots.len()
    ));
    for lot in park_lots {
        out.push(format!("     {lot}"));
    }
    let p = &o.processing;
    if !p.transformation_id.is_empty() {
        out.push(format!(
            "   Processing line 2 made {} from {} ({}, yield {:.0}%); {}.",
            p.output, p.input, p.transformation_id, p.yield_percent, p.relocation
        ));
    }
}

/// 3: the transfer and its lots' stock at both ends.
fn transfer(o: &DemoOutcome, out: &mut Vec<String>) {
    let t = &o.transfer;
    out.push(format!(
        "3. {} left {} for {} with transfer {} ({} at start, {} now), reefer {} with sensor {}:",
        t.train_or_route,
        t.source_site_id,
        t.destination_site_id,
        t.transfer_id,
        t.state_after_start,
        t.state,
        t.reefer_container_id,
        t.reefer_sensor_id
    ));
    for l in &t.lines {
        out.push(format!(
            "     {} {} {} lot {}: {} -> {}; now {} at the park, {} at Vientiane ({} held)",
            thousands(l.quantity),
            l.unit,
            l.sku,
            l.lot_id,
            l.source_zone_id,
            l.destination_zone_id,
            thousands(l.source_on_hand),
            thousands(l.destination_on_hand),
            thousands(l.destination_held)
        ));
    }
}

/// 4: the reefer's readings and the excursion's alarm.
fn reefer(o: &DemoOutcome, out: &mut Vec<String>) {
    let r = &o.readings;
    out.push(format!(
        "4. The reefer sent {} readings to {} telemetry, {} live and {} from its logger on arrival ({} accepted, {} duplicates, {} rejected), {:.1} to {:.1} °C.",
        r.sent, r.site_id, r.streamed_live, r.uploaded_on_arrival, r.accepted, r.duplicates, r.rejected, r.min_celsius, r.max_celsius
    ));
    match &o.alarm {
        Some(a) => {
            out.push(format!(
                "   A door opened at the border: alarm {} {} peaked at {:.1} °C over the {:.1} °C limit for {}, {:.1} °C·min.",
                a.alarm_id,
                a.kind,
                a.peak_celsius,
                a.limit_celsius,
                format::duration_short(
                    a.duration_ms.map(proto_time::duration_of_millis).as_ref()
                ),
                a.degree_minutes
            ));
            out.push(format!(
                "   Hold {}{}{}; QA ({}) acknowledged it: {}.",
                a.hold_status,
                if a.hold_ids.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", a.hold_ids.join(", "))
                },
                a.hold_placed_after_ms
                    .map(|ms| format!(" {:.1} s after the upload", ms as f64 / 1000.0))
                    .unwrap_or_default(),
                a.acknowledged_by,
                a.state
            ));
        }
        None => out.push("   No excursion alarm was raised.".into()),
    }
}

/// 5: the arrival and the stock across the network.
fn arrival(o: &DemoOutcome, out: &mut Vec<String>) {
    out.push(format!(
        "5. The train arrived: transfer {}. Network-wide {}: {} kg at the park, {} kg at Vientiane ({} held), {} kg in transit.",
        o.transfer_state,
        o.stock.sku,
        thousands(o.stock.park_on_hand),
        thousands(o.stock.vientiane_on_hand),
        thousands(o.stock.vientiane_held),
        thousands(o.stock.in_transit)
    ));
}

/// 6: the bookings, and the bananas they brought in.
fn bookings(o: &DemoOutcome, out: &mut Vec<String>) {
    out.push(format!(
        "6. Bookings: {} held, {} confirmed, {} checked in, {} cancelled:",
        o.bookings_held, o.bookings_confirmed, o.bookings_checked_in, o.bookings_cancelled
    ));
    for b in &o.bookings {
        out.push(format!(
            "     {} — {} at {} / {} ({}), {} pallets {} .. {}: {}",
            b.role,
            b.booking_id,
            b.site_id,
            b.zone_id,
            b.temperature_class,
            b.pallets,
            b.first_day,
            b.last_day,
            b.states.join(" -> ")
        ));
    }
    if let Some(bananas) = o.received_lots.iter().find(|l| l.site_id == VIENTIANE) {
        out.push(format!(
            "   Vientiane received {} {} {} into {} under the forwarder's booking.",
            thousands(bananas.quantity),
            bananas.unit,
            bananas.sku,
            bananas.zone_id
        ));
    }
}

/// 7 and 8: the ledger follower and the active alarms.
fn ledger_and_alarms(o: &DemoOutcome, out: &mut Vec<String>) {
    let l = &o.ledger;
    out.push(format!(
        "7. Vientiane's warehouse system read {} ledger entries: caught up at {}, then {} live ({} about this run: {} TRANSFER_IN, {} RECEIPT, {} HOLD_PLACED), up to sequence {}.",
        l.entries_read,
        l.head_at_start,
        l.entries_seen,
        l.run_entries,
        l.transfer_in_entries,
        l.receipt_entries,
        l.hold_entries,
        l.last_sequence
    ));
    out.push(format!(
        "8. Active alarms across the network: {}.",
        o.active_alarms
    ));
}

/// 9: the excursion's lot, traced.
fn trace(o: &DemoOutcome, out: &mut Vec<String>) {
    let Some(t) = &o.trace else { return };
    out.push(format!(
        "9. QA traces lot {} of {} across the network: {} events at {} ({}); now {}.",
        t.lot_id,
        t.sku,
        t.events,
        t.sites.join(" and "),
        t.entries.join(", "),
        if t.positions.is_empty() {
            "nothing on hand".to_string()
        } else {
            t.positions.join(", ")
        }
    ));
    for stay in &t.stays {
        out.push(format!("   - {stay}"));
    }
    out.push(format!(
        "   {} alarm(s) in its stays; the EPCIS 2.0 export has {} events (coldchain trace {} {} --format epcis).",
        t.alarms, t.epcis_events, t.sku, t.lot_id
    ));
    for error in &t.errors {
        out.push(format!("   (partial: {error})"));
    }
    let Some(s) = &o.segments_trace else { return };
    out.push(format!(
        "   The segment lot {} that rode the same train, traced back: {}; now {}.",
        s.lot_id,
        if s.genealogy.is_empty() {
            "no transformation found".to_string()
        } else {
            s.genealogy.join("; ")
        },
        if s.positions.is_empty() {
            "nothing on hand".to_string()
        } else {
            s.positions.join(", ")
        }
    ));
    out.push(format!(
        "   Its EPCIS export has {} TransformationEvent(s) among {} events.",
        s.epcis_transformations, s.epcis_events
    ));
    for error in &s.errors {
        out.push(format!("   (partial: {error})"));
    }
}

/// What did not go as planned.
fn warnings(o: &DemoOutcome, out: &mut Vec<String>) {
    if !o.warnings.is_empty() {
        out.push(String::new());
        out.push("Warnings:".into());
        for w in &o.warnings {
            out.push(format!("  - {w}"));
        }
    }
}
