//! Act 3: the park receives Hunan produce and processed goods into its zones.

use coldchain_ops::call;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_runtime::network::TemperatureClass;
use coldchain_runtime::proto_time;

use crate::PARK;
use crate::day::{Day, plus_days, zone_of};
use crate::outcome::{DemoError, LotOutcome, step_err};

/// The lots the park received, and the zones the transfer takes some of them from.
pub(crate) struct ParkLots {
    pub(crate) lots: Vec<LotOutcome>,
    pub(crate) chilled: String,
    pub(crate) frozen: String,
}

/// The park's warehouse system records what its docks received.
pub(crate) async fn at_park(day: &Day<'_>) -> Result<ParkLots, DemoError> {
    let step = "park receipts";
    let run = day.run;
    let park_today = day.local_day(&day.park.site);
    let chilled = zone_of(&day.park.site, TemperatureClass::Chilled)?;
    let frozen = zone_of(&day.park.site, TemperatureClass::Frozen)?;
    let ambient = zone_of(&day.park.site, TemperatureClass::Ambient)?;
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
            "citrus-segments-frozen",
            format!("segments-{run}"),
            frozen.clone(),
            4_000,
            "kg",
            365,
            "park processing line 2 (Mayang navel)",
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
    Ok(ParkLots {
        lots,
        chilled,
        frozen,
    })
}
