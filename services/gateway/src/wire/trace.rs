//! TraceLot's shapes: the sites' ledger entries read as the trace's [`LotEntry`], and the
//! trace's parts rendered as `coldchain.network.v1` messages. The sites' own messages
//! (ledger entries, stock levels, alarms, exposures) are passed on as they came.

use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::proto_time::{millis, timestamp};

use super::state_to_proto;
use crate::domain::genealogy::{
    self, Direction, Link, Side, TransformationEntry, TransformationFacts,
};
use crate::domain::trace::{self, LotEntry, LotEntryKind, Stay, Step};
use crate::domain::{Transfer, TransferState};

/// A site's ledger entry of the lot, as the trace reads it.
pub fn lot_entry(site_id: &str, entry: &inv::LedgerEntry) -> LotEntry {
    use inv::LedgerEntryKind as K;
    let moves_stock = matches!(
        K::try_from(entry.kind),
        Ok(K::Receipt
            | K::Issue
            | K::Adjustment
            | K::TransferOut
            | K::TransferIn
            | K::Count
            | K::TransformationInput
            | K::TransformationOutput
            // Each end of a relocation moves the stock of its own zone: the lot leaves one
            // stay and starts another, measured by the other zone's sensors.
            | K::RelocationOut
            | K::RelocationIn)
    );
    LotEntry {
        site_id: site_id.to_string(),
        sequence: entry.sequence,
        recorded_ms: entry.recorded_at.as_ref().and_then(millis).unwrap_or(0),
        kind: if moves_stock {
            LotEntryKind::Movement
        } else {
            LotEntryKind::Other
        },
        zone_id: entry.zone_id.clone(),
        balance_after: entry.balance_after,
        transfer_id: entry.transfer_id.clone(),
    }
}

/// A ledger entry as an event of the trace.
pub fn entry_event(site_id: &str, entry: inv::LedgerEntry) -> pb::TraceEvent {
    pb::TraceEvent {
        at: entry.recorded_at,
        site_id: site_id.to_string(),
        event: Some(pb::trace_event::Event::Entry(entry)),
    }
}

/// An alarm as an event of the trace, at its start.
pub fn alarm_event(alarm: tel::Alarm) -> pb::TraceEvent {
    pb::TraceEvent {
        at: alarm.started_at,
        site_id: alarm.site_id.clone(),
        event: Some(pb::trace_event::Event::Alarm(alarm)),
    }
}

/// A transfer's part in the trace of (sku, lot), in the state of `state`.
fn transfer_step(
    transfer: &Transfer,
    state: TransferState,
    sku: &str,
    lot_id: &str,
) -> pb::TransferStep {
    pb::TransferStep {
        transfer_id: transfer.transfer_id.clone(),
        state: state_to_proto(state) as i32,
        train_or_route: transfer.train_or_route.clone(),
        reefer_container_id: transfer.reefer_container_id.clone(),
        source_site_id: transfer.source_site_id.clone(),
        destination_site_id: transfer.destination_site_id.clone(),
        quantity: trace::carried(transfer, sku, lot_id),
        sku: sku.to_string(),
        lot_id: lot_id.to_string(),
    }
}

/// A transfer's steps as events: at the source until it travels, at the destination
/// from its arrival.
pub fn step_events(transfer: &Transfer, sku: &str, lot_id: &str) -> Vec<pb::TraceEvent> {
    trace::steps(transfer)
        .into_iter()
        .map(|Step { state, at_ms }| {
            let site_id = match state {
                TransferState::Receiving | TransferState::Completed => {
                    &transfer.destination_site_id
                }
                _ => &transfer.source_site_id,
            };
            pb::TraceEvent {
                at: Some(timestamp(at_ms)),
                site_id: site_id.clone(),
                event: Some(pb::trace_event::Event::TransferStep(transfer_step(
                    transfer, state, sku, lot_id,
                ))),
            }
        })
        .collect()
}

/// What a travelling transfer carries of the lot.
pub fn in_transit(transfer: &Transfer, sku: &str, lot_id: &str) -> pb::TransferStep {
    transfer_step(transfer, transfer.state, sku, lot_id)
}

/// An issue of a recalled lot, as a shipment the recall answers.
pub fn shipment(site_id: &str, lot_id: &str, entry: &inv::LedgerEntry) -> pb::RecalledShipment {
    pb::RecalledShipment {
        site_id: site_id.to_string(),
        lot_id: lot_id.to_string(),
        order_id: entry.order_id.clone(),
        quantity: entry.delta.saturating_neg(),
        unit: entry.unit.clone(),
        issued_at: entry.recorded_at,
        sku: entry.sku.clone(),
    }
}

/// A position of the lot with stock on hand.
pub fn position(site_id: &str, level: &inv::StockLevel) -> pb::LotPosition {
    pb::LotPosition {
        site_id: site_id.to_string(),
        zone_id: level.zone_id.clone(),
        on_hand: level.on_hand,
        allocated: level.allocated,
        held: level.held > 0,
        unit: level.unit.clone(),
        sku: level.sku.clone(),
        lot_id: level
            .lot
            .as_ref()
            .map(|lot| lot.lot_id.clone())
            .unwrap_or_default(),
    }
}

/// A stay with the exposures the sensors that covered it gave.
pub fn stay(stay: &Stay, exposures: Vec<tel::Exposure>) -> pb::LotStay {
    pb::LotStay {
        site_id: stay.site_id.clone(),
        zone_id: stay.zone_id.clone(),
        transfer_id: stay.transfer_id.clone(),
        start_time: Some(timestamp(stay.start_ms)),
        end_time: stay.end_ms.map(timestamp),
        exposures,
    }
}

/// Events oldest first; at one instant, by site, then ledger sequence (the order the site
/// recorded them in), transfer steps and alarms after the entries of their instant.
pub fn sort_events(events: &mut [pb::TraceEvent]) {
    events.sort_by_key(|event| {
        let at = event.at.as_ref().and_then(millis).unwrap_or(i64::MIN);
        let (rank, sequence) = match &event.event {
            Some(pb::trace_event::Event::Entry(entry)) => (0, entry.sequence),
            Some(pb::trace_event::Event::TransferStep(step)) => (1, step.state as u64),
            Some(pb::trace_event::Event::Alarm(_)) | None => (2, 0),
        };
        (at, event.site_id.clone(), rank, sequence)
    });
}

/// The transformation a lot's ledger entry names, if it is a side of one.
pub fn transformation_entry(
    site_id: &str,
    entry: &inv::LedgerEntry,
) -> Option<TransformationEntry> {
    use inv::LedgerEntryKind as K;
    let side = match K::try_from(entry.kind) {
        Ok(K::TransformationInput) => Side::Input,
        Ok(K::TransformationOutput) => Side::Output,
        _ => return None,
    };
    let transformation_id = entry.transformation.as_ref()?.transformation_id.clone();
    Some(TransformationEntry {
        site_id: site_id.to_string(),
        side,
        transformation_id,
    })
}

/// The transformations a trace's ledger entries name.
pub fn transformation_entries(trace: &pb::TraceLotResponse) -> Vec<TransformationEntry> {
    trace
        .events
        .iter()
        .filter_map(|event| match &event.event {
            Some(pb::trace_event::Event::Entry(entry)) => {
                transformation_entry(&event.site_id, entry)
            }
            _ => None,
        })
        .collect()
}

/// A site's record of a transformation, summed per lot and side.
pub fn transformation_facts(
    site_id: &str,
    transformation_id: &str,
    record: &inv::TransformationRecord,
) -> TransformationFacts {
    let side = |side: Side, entries: &[inv::LedgerEntry]| {
        entries
            .iter()
            .map(move |entry| {
                (
                    side,
                    entry.sku.clone(),
                    entry
                        .lot
                        .as_ref()
                        .map(|lot| lot.lot_id.clone())
                        .unwrap_or_default(),
                    entry.delta,
                    entry.unit.clone(),
                    entry.recorded_at.as_ref().and_then(millis).unwrap_or(0),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut entries = side(Side::Input, &record.inputs);
    entries.extend(side(Side::Output, &record.outputs));
    genealogy::transformation_facts(site_id, transformation_id, entries)
}

/// A link of the genealogy as the contract shows it.
pub fn link(link: &Link) -> pb::LotLink {
    pb::LotLink {
        site_id: link.site_id.clone(),
        transformation_id: link.transformation_id.clone(),
        at: Some(timestamp(link.at_ms)),
        input_sku: link.input.sku.clone(),
        input_lot_id: link.input.lot_id.clone(),
        input_quantity: link.input.quantity,
        input_unit: link.input.unit.clone(),
        output_sku: link.output.sku.clone(),
        output_lot_id: link.output.lot_id.clone(),
        output_quantity: link.output.quantity,
        output_unit: link.output.unit.clone(),
        upstream: link.direction == Direction::Upstream,
        depth: link.depth,
    }
}
