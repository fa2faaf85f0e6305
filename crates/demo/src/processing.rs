//! Act 10 (with the trace): the park's freezing line processes part of the day's Mayang
//! navel oranges into a new lot of frozen citrus segments — one transformation, the orange
//! lot consumed and the segment lot produced with its own year-long expiry — and QA traces
//! the segment lot back to the orchard lot it was made from (TraceLot's genealogy).
//!
//! It runs after the day's stock figures, so those show the oranges as received and
//! transferred; the next run's figures show the kilograms processed here gone.

use coldchain_ops::call;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::network::v1 as network;
use coldchain_runtime::network::TemperatureClass;
use coldchain_runtime::proto_time;
use serde::Serialize;

use crate::PARK;
use crate::day::{Day, plus_days, zone_of};
use crate::outcome::{DemoError, step_err};

/// Kilograms of the day's orange lot the freezing line takes.
pub const ORANGES_PROCESSED_KG: i64 = 2_000;
/// Kilograms of segments it makes of them (peel, pith and pips are the rest).
pub const SEGMENTS_MADE_KG: i64 = 1_300;

/// What the processing did and what the trace of its output found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessingOutcome {
    pub site_id: String,
    pub transformation_id: String,
    pub work_order: String,
    /// `sku lot: quantity unit` consumed.
    pub input: String,
    /// `sku lot: quantity unit` produced.
    pub output: String,
    pub output_sku: String,
    pub output_lot_id: String,
    /// The lots the trace of the output found it was made from: `sku lot`.
    pub traced_back_to: Vec<String>,
    /// Sites that did not answer the trace.
    pub errors: Vec<String>,
}

/// The freezing line's transformation, then the trace of the segment lot back.
pub(crate) async fn oranges_into_segments(day: &Day<'_>) -> Result<ProcessingOutcome, DemoError> {
    let step = "process oranges into frozen segments";
    let run = day.run;
    let chilled = zone_of(&day.park.site, TemperatureClass::Chilled)?;
    let frozen = zone_of(&day.park.site, TemperatureClass::Frozen)?;
    let park_today = day.local_day(&day.park.site);
    let orange_lot = format!("mayang-navel-{run}");
    let segment_lot = format!("segments-line2-{run}");
    let transformation = inventory::Transformation {
        transformation_id: format!("freeze-{run}"),
        work_order: format!("WO line 2, run {run}"),
        input_mass_g: ORANGES_PROCESSED_KG * 1000,
        output_mass_g: SEGMENTS_MADE_KG * 1000,
        waste_mass_g: (ORANGES_PROCESSED_KG - SEGMENTS_MADE_KG) * 1000,
        write_off: false,
    };
    let consumed = inventory::Movement {
        kind: inventory::MovementKind::TransformationInput as i32,
        sku: "citrus-navel-mayang".into(),
        lot: Some(inventory::LotInfo {
            lot_id: orange_lot.clone(),
            ..Default::default()
        }),
        zone_id: chilled,
        quantity: ORANGES_PROCESSED_KG,
        unit: "kg".into(),
        reason: "peeled and segmented on freezing line 2".into(),
        transformation: Some(transformation.clone()),
        ..Default::default()
    };
    let produced = inventory::Movement {
        kind: inventory::MovementKind::TransformationOutput as i32,
        sku: "citrus-segments-frozen".into(),
        lot: Some(inventory::LotInfo {
            lot_id: segment_lot.clone(),
            // Frozen segments keep a year; the oranges they were made from keep weeks.
            expiry: Some(proto_time::date(plus_days(park_today, 365))),
            production: Some(proto_time::date(park_today)),
            origin: format!("park freezing line 2, from Mayang navel lot {orange_lot}"),
        }),
        zone_id: frozen,
        quantity: SEGMENTS_MADE_KG,
        unit: "kg".into(),
        reason: "blast-frozen segments off line 2".into(),
        transformation: Some(transformation.clone()),
        ..Default::default()
    };
    let request = inventory::RecordMovementsRequest {
        request_id: day.rid("park-processing"),
        movements: vec![consumed, produced],
        actor: "freezing line 2 supervisor".into(),
    };
    call!(day.park.inventory, record_movements, request).map_err(step_err(step))?;
    day.recorded_at(PARK);
    day.progress.say(&format!(
        "the park's freezing line made {SEGMENTS_MADE_KG} kg of segments of {ORANGES_PROCESSED_KG} kg of oranges"
    ));

    let step = "trace the segment lot back";
    let trace = call!(
        day.gateway,
        trace_lot,
        network::TraceLotRequest {
            sku: "citrus-segments-frozen".into(),
            lot_id: segment_lot.clone(),
            site_ids: Vec::new(),
        }
    )
    .map_err(step_err(step))?;
    let mut traced_back_to = Vec::new();
    for link in trace.genealogy.iter().filter(|l| l.upstream) {
        let lot = format!("{} {}", link.input_sku, link.input_lot_id);
        if !traced_back_to.contains(&lot) {
            traced_back_to.push(lot);
        }
    }
    Ok(ProcessingOutcome {
        site_id: PARK.into(),
        transformation_id: transformation.transformation_id,
        work_order: transformation.work_order,
        input: format!("citrus-navel-mayang {orange_lot}: {ORANGES_PROCESSED_KG} kg"),
        output: format!("citrus-segments-frozen {segment_lot}: {SEGMENTS_MADE_KG} kg"),
        output_sku: "citrus-segments-frozen".into(),
        output_lot_id: segment_lot,
        traced_back_to,
        errors: trace
            .errors
            .iter()
            .map(|e| format!("{}: {}: {}", e.site_id, e.code, e.message))
            .collect(),
    })
}
