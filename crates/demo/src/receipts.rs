//! Act 3: the park receives Hunan produce and dried noodles into its zones; its processing
//! line makes frozen segments from part of the navel oranges (a transformation, so the
//! segment lot keeps its link to the orchard lot) and the kiwifruit goes to the ripening
//! room (a relocation).

use coldchain_ops::call;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_runtime::network::TemperatureClass;
use coldchain_runtime::proto_time;

use crate::PARK;
use crate::day::{Day, plus_days, zone_of};
use crate::outcome::{DemoError, LotOutcome, ProcessingOutcome, step_err};

/// The lots the park received or made, and the zones the transfer takes some of them from.
pub(crate) struct ParkLots {
    pub(crate) lots: Vec<LotOutcome>,
    pub(crate) chilled: String,
    pub(crate) frozen: String,
    pub(crate) processing: ProcessingOutcome,
}

/// The sku of the frozen segments the park makes.
pub(crate) const SEGMENTS: &str = "citrus-segments-frozen";
/// Kilograms of navel oranges the line takes, and of segments it makes.
const ORANGES_IN_KG: i64 = 5_000;
const SEGMENTS_OUT_KG: i64 = 4_000;
/// Kilograms of kiwifruit moved to the ripening room.
const KIWI_TO_RIPEN_KG: i64 = 600;

/// The park's warehouse system records what its docks received.
pub(crate) async fn at_park(day: &Day<'_>) -> Result<ParkLots, DemoError> {
    let step = "park receipts";
    let run = day.run;
    let park_today = day.local_day(&day.park.site);
    let chilled = zone_of(&day.park.site, TemperatureClass::Chilled)?;
    let frozen = zone_of(&day.park.site, TemperatureClass::Frozen)?;
    let ambient = zone_of(&day.park.site, TemperatureClass::Ambient)?;
    let cool = zone_of(&day.park.site, TemperatureClass::Cool)?;
    let lots = [
        (
            "citrus-navel-mayang",
            format!("mayang-navel-{run}"),
            chilled.clone(),
            12_000,
            "kg",
            40,
            "Mayang Miao Autonomous County, Huaihua, Hunan",
        ),
        (
            "kiwifruit-xiangxi",
            format!("xiangxi-kiwi-{run}"),
            chilled.clone(),
            6_000,
            "kg",
            60,
            "Fenghuang, Xiangxi, Hunan",
        ),
        (
            "rice-noodles-dried",
            format!("noodles-{run}"),
            ambient.clone(),
            800,
            "case",
            270,
            "park processing line 1",
        ),
    ];
    let movements: Vec<inventory::Movement> = lots
        .iter()
        .map(
            |(sku, lot, zone, qty, unit, shelf_days, origin)| inventory::Movement {
                kind: inventory::MovementKind::Receipt as i32,
                sku: sku.to_string(),
                lot: Some(inventory::LotInfo {
                    lot_id: lot.clone(),
                    expiry: Some(proto_time::date(plus_days(park_today, *shelf_days))),
                    production: Some(proto_time::date(
                        park_today.pred_opt().unwrap_or(park_today),
                    )),
                    origin: origin.to_string(),
                }),
                zone_id: zone.clone(),
                quantity: *qty,
                unit: unit.to_string(),
                reason: "inbound from Hunan growers and the park's processing lines".into(),
                reference: Some(common::Reference {
                    kind: common::ReferenceKind::Document as i32,
                    id: format!("grn-{run}"),
                }),
                ..Default::default()
            },
        )
        .collect();
    let request = inventory::RecordMovementsRequest {
        request_id: day.rid("park-receipts"),
        movements,
        actor: Default::default(),
    };
    let answer = call!(day.park.inventory, record_movements, request).map_err(step_err(step))?;
    day.recorded_at(PARK);
    let lots: Vec<LotOutcome> = lots
        .iter()
        .zip(
            answer
                .entries
                .iter()
                .map(|e| e.sequence)
                .chain(std::iter::repeat(0)),
        )
        .map(
            |((sku, lot, zone, qty, unit, shelf_days, origin), sequence)| LotOutcome {
                site_id: PARK.into(),
                sku: sku.to_string(),
                lot_id: lot.clone(),
                zone_id: zone.clone(),
                quantity: *qty,
                unit: unit.to_string(),
                expiry: plus_days(park_today, *shelf_days).to_string(),
                origin: origin.to_string(),
                sequence,
            },
        )
        .collect();
    day.progress.say(&format!(
        "the park received {} lots (ledger {}..{})",
        lots.len(),
        lots.first().map_or(0, |l| l.sequence),
        lots.last().map_or(0, |l| l.sequence)
    ));
    let (segments, processing) = process(day, &lots, &frozen, &cool).await?;
    let mut lots = lots;
    lots.push(segments);
    Ok(ParkLots {
        lots,
        chilled,
        frozen,
        processing,
    })
}

/// Processing line 2 makes frozen segments from part of the navel lot, and the kiwifruit
/// goes to the ripening room: one batch of the park's warehouse system.
async fn process(
    day: &Day<'_>,
    received: &[LotOutcome],
    frozen: &str,
    cool: &str,
) -> Result<(LotOutcome, ProcessingOutcome), DemoError> {
    let step = "park processing";
    let run = day.run;
    let park_today = day.local_day(&day.park.site);
    let (Some(oranges), Some(kiwi)) = (received.first(), received.get(1)) else {
        return Err(crate::outcome::failed(
            step,
            "the park received no produce".into(),
        ));
    };
    let transformation = inventory::Transformation {
        transformation_id: format!("line2-segments-{run}"),
        work_order: format!("WO-segments-{run}"),
        input_mass_g: ORANGES_IN_KG * 1000,
        output_mass_g: SEGMENTS_OUT_KG * 1000,
        waste_mass_g: (ORANGES_IN_KG - SEGMENTS_OUT_KG) * 1000,
        write_off: false,
    };
    let segments_lot = format!("segments-{run}");
    let segments_expiry = plus_days(park_today, 365);
    let movements = vec![
        inventory::Movement {
            kind: inventory::MovementKind::TransformationInput as i32,
            sku: oranges.sku.clone(),
            lot: Some(inventory::LotInfo {
                lot_id: oranges.lot_id.clone(),
                ..Default::default()
            }),
            zone_id: oranges.zone_id.clone(),
            quantity: ORANGES_IN_KG,
            unit: oranges.unit.clone(),
            transformation: Some(transformation.clone()),
            ..Default::default()
        },
        inventory::Movement {
            kind: inventory::MovementKind::TransformationOutput as i32,
            sku: SEGMENTS.into(),
            lot: Some(inventory::LotInfo {
                lot_id: segments_lot.clone(),
                expiry: Some(proto_time::date(segments_expiry)),
                production: Some(proto_time::date(park_today)),
                origin: format!("park processing line 2, from {}", oranges.lot_id),
            }),
            zone_id: frozen.to_string(),
            quantity: SEGMENTS_OUT_KG,
            unit: "kg".into(),
            transformation: Some(transformation.clone()),
            ..Default::default()
        },
        inventory::Movement {
            kind: inventory::MovementKind::Relocation as i32,
            sku: kiwi.sku.clone(),
            lot: Some(inventory::LotInfo {
                lot_id: kiwi.lot_id.clone(),
                ..Default::default()
            }),
            zone_id: kiwi.zone_id.clone(),
            to_zone_id: cool.to_string(),
            quantity: KIWI_TO_RIPEN_KG,
            unit: kiwi.unit.clone(),
            reason: "to the ripening room".into(),
            ..Default::default()
        },
    ];
    let request = inventory::RecordMovementsRequest {
        request_id: day.rid("park-processing"),
        movements,
        actor: "processing line 2 lead".into(),
    };
    let answer = call!(day.park.inventory, record_movements, request).map_err(step_err(step))?;
    day.recorded_at(PARK);
    let output_sequence = answer.entries.get(1).map_or(0, |e| e.sequence);
    let segments = LotOutcome {
        site_id: PARK.into(),
        sku: SEGMENTS.into(),
        lot_id: segments_lot,
        zone_id: frozen.to_string(),
        quantity: SEGMENTS_OUT_KG,
        unit: "kg".into(),
        expiry: segments_expiry.to_string(),
        origin: format!("park processing line 2, from {}", oranges.lot_id),
        sequence: output_sequence,
    };
    let relocated = answer.relocation_arrivals.first();
    let processing = ProcessingOutcome {
        transformation_id: transformation.transformation_id.clone(),
        input: format!("{}/{}: {ORANGES_IN_KG} kg", oranges.sku, oranges.lot_id),
        input_lot_id: oranges.lot_id.clone(),
        input_quantity: ORANGES_IN_KG,
        output: format!("{SEGMENTS}/{}: {SEGMENTS_OUT_KG} kg", segments.lot_id),
        yield_percent: (SEGMENTS_OUT_KG * 100) as f64 / ORANGES_IN_KG as f64,
        relocation: relocated
            .and_then(|arrival| arrival.relocation.as_ref())
            .map(|r| {
                format!(
                    "{}/{}: {KIWI_TO_RIPEN_KG} kg {} ({}) -> {} ({})",
                    kiwi.sku,
                    kiwi.lot_id,
                    r.from_zone_id,
                    coldchain_ops::format::class_name(r.from_class),
                    r.to_zone_id,
                    coldchain_ops::format::class_name(r.to_class)
                )
            })
            .unwrap_or_default(),
        sequences: answer
            .entries
            .iter()
            .chain(&answer.relocation_arrivals)
            .map(|e| e.sequence)
            .collect(),
    };
    day.progress.say(&format!(
        "processing line 2 made {} from {} ({}); {}",
        processing.output, processing.input, processing.transformation_id, processing.relocation
    ));
    Ok((segments, processing))
}
