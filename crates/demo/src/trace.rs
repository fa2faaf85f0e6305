//! The last act: QA traces the lot that rode through the excursion (gateway TraceLot), the
//! way a food-safety officer answers "where did it come from, where did it go, what did it
//! see", and exports it as an EPCIS 2.0 document for the buyer; then the segment lot, back
//! through the park's processing line to the orchard lot it was made from.

use coldchain_ops::call;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::trace_event::Event;
use serde::Serialize;

use crate::day::Day;
use crate::outcome::{DemoError, LotOutcome, TransferOutcome, step_err};

/// What the trace of the excursion's lot showed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TraceOutcome {
    pub sku: String,
    pub lot_id: String,
    /// Events in the lot's life, oldest first.
    pub events: usize,
    /// The sites its entries came from.
    pub sites: Vec<String>,
    /// Its ledger entries, `site: KIND`, oldest first.
    pub entries: Vec<String>,
    /// Where it is now: `site/zone: on hand (held)`.
    pub positions: Vec<String>,
    /// Each stay: `place: max °C, outside the limits for N s` (or `no sensor`).
    pub stays: Vec<String>,
    /// Alarms in its stays.
    pub alarms: usize,
    /// Events of the EPCIS 2.0 export.
    pub epcis_events: usize,
    /// Where the export breaks the rules of the EPCIS 2.0 JSON schema (none expected).
    pub epcis_problems: Vec<String>,
    /// Sites that did not answer.
    pub errors: Vec<String>,
    /// Its genealogy: `made from` / `made into` lines, nearest first.
    pub genealogy: Vec<String>,
    /// The TransformationEvents of the EPCIS export.
    pub epcis_transformations: usize,
}

/// Traces the transfer's first lot (the one the reefer's excursion held).
pub(crate) async fn excursion_lot(
    day: &Day<'_>,
    transfer: &TransferOutcome,
) -> Result<Option<TraceOutcome>, DemoError> {
    let step = "trace the excursion's lot";
    let Some(line) = transfer.lines.first() else {
        return Ok(None);
    };
    trace_lot(day, step, &line.sku, &line.lot_id)
        .await
        .map(Some)
}

/// Traces the segment lot the park made, back to the orchard lot.
pub(crate) async fn segments_lot(
    day: &Day<'_>,
    segments: &Option<LotOutcome>,
) -> Result<Option<TraceOutcome>, DemoError> {
    let step = "trace the segment lot";
    let Some(lot) = segments else {
        return Ok(None);
    };
    trace_lot(day, step, &lot.sku, &lot.lot_id).await.map(Some)
}

async fn trace_lot(
    day: &Day<'_>,
    step: &str,
    sku: &str,
    lot_id: &str,
) -> Result<TraceOutcome, DemoError> {
    let request = network::TraceLotRequest {
        sku: sku.to_string(),
        lot_id: lot_id.to_string(),
        site_ids: Vec::new(),
    };
    let trace = call!(day.gateway, trace_lot, request.clone()).map_err(step_err(step))?;
    let exported = call!(day.gateway, export_trace_epcis, request).map_err(step_err(step))?;
    let (epcis_events, epcis_transformations, epcis_problems) =
        match serde_json::from_str::<serde_json::Value>(&exported.json_ld) {
            Ok(document) => {
                let events = document["epcisBody"]["eventList"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let transformations = events
                    .iter()
                    .filter(|e| e["type"] == "TransformationEvent")
                    .count();
                (
                    events.len(),
                    transformations,
                    coldchain_epcis::problems(&document),
                )
            }
            Err(error) => (0, 0, vec![format!("not JSON: {error}")]),
        };
    let mut outcome = TraceOutcome {
        sku: trace.sku.clone(),
        lot_id: trace.lot_id.clone(),
        events: trace.events.len(),
        epcis_events,
        epcis_transformations,
        epcis_problems,
        genealogy: trace
            .genealogy
            .iter()
            .map(|link| {
                format!(
                    "{} {}/{} {} {} -> {}/{} {} {} at {} ({})",
                    if link.upstream {
                        "made from"
                    } else {
                        "made into"
                    },
                    link.input_sku,
                    link.input_lot_id,
                    link.input_quantity,
                    link.input_unit,
                    link.output_sku,
                    link.output_lot_id,
                    link.output_quantity,
                    link.output_unit,
                    link.site_id,
                    link.transformation_id
                )
            })
            .collect(),
        errors: trace
            .errors
            .iter()
            .map(|e| format!("{}: {}: {}", e.site_id, e.code, e.message))
            .collect(),
        ..TraceOutcome::default()
    };
    for event in &trace.events {
        match &event.event {
            Some(Event::Entry(entry)) => {
                if !outcome.sites.contains(&event.site_id) {
                    outcome.sites.push(event.site_id.clone());
                }
                outcome.entries.push(format!(
                    "{}: {}",
                    event.site_id,
                    coldchain_ops::format::ledger_kind_name(entry.kind)
                ));
            }
            Some(Event::Alarm(_)) => outcome.alarms += 1,
            _ => {}
        }
    }
    outcome.positions = trace
        .positions
        .iter()
        .map(|p| {
            format!(
                "{}/{}: {} {}{}",
                p.site_id,
                p.zone_id,
                p.on_hand,
                p.unit,
                if p.held { " (held)" } else { "" }
            )
        })
        .collect();
    outcome.stays = trace
        .stays
        .iter()
        .map(|s| {
            let place = if s.transfer_id.is_empty() {
                format!("{}/{}", s.site_id, s.zone_id)
            } else {
                format!("reefer of {}", s.transfer_id)
            };
            let seen = s.exposures.iter().filter(|e| e.reading_count > 0);
            let max = seen.clone().filter_map(|e| e.max_celsius).reduce(f64::max);
            let outside_s: i64 = seen
                .filter_map(|e| e.time_outside_limits.as_ref())
                .map(|d| d.seconds)
                .sum();
            match (max, s.exposures.is_empty()) {
                (Some(max), _) => {
                    format!("{place}: max {max:.1} °C, outside the limits for {outside_s} s")
                }
                (None, true) => format!("{place}: no sensor covered it (unknown)"),
                (None, false) => format!("{place}: no readings in its time"),
            }
        })
        .collect();
    Ok(outcome)
}
