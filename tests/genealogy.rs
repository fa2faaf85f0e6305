//! A lot's genealogy across real services (issue 28): oranges processed into frozen
//! segments at the park are traced both ways (from the orange lot to the segment lot and
//! the customer who received segments, and back); a recall of the orange lot with
//! include_derived holds the segments wherever they are, including at the end of a
//! transfer and on arrival of one still travelling; the EPCIS export has one
//! TransformationEvent with exactly the inputs and outputs; a relocation between zones moves
//! the lot's stay, and its exposure, to the other zone's sensors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod gateway_support;

use std::time::{Duration, Instant};

use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use gateway_support::*;

const ORANGE: &str = "citrus-navel";
const ORANGE_LOT: &str = "QY-2026-11";
const OTHER_ORANGE_LOT: &str = "QY-2026-12";
const SEGMENT: &str = "citrus-segments-frozen";
const SEGMENT_LOT: &str = "SEG-2026-11-A";
const SEGMENT_LOT_B: &str = "SEG-2026-11-B";

async fn two_sites() -> Net {
    // Telemetry too: a trace measures each stay's sensors.
    Net::start_with(
        &[
            (PARK, INVENTORY),
            (PARK, TELEMETRY),
            (VIENTIANE, INVENTORY),
            (VIENTIANE, TELEMETRY),
        ],
        fast_gateway(),
        |network| network.sites.retain(|s| s.id == PARK || s.id == VIENTIANE),
    )
    .await
}

/// The transformation recorded at the park, the same message on every line.
fn processing(id: &str) -> inv::Transformation {
    inv::Transformation {
        transformation_id: id.into(),
        work_order: "WO-77 freezing line 2".into(),
        input_mass_g: 80_000,
        output_mass_g: 60_000,
        waste_mass_g: 20_000,
        write_off: false,
    }
}

fn input(lot: &str, kg: i64, transformation: &inv::Transformation) -> inv::Movement {
    inv::Movement {
        kind: inv::MovementKind::TransformationInput as i32,
        sku: ORANGE.into(),
        lot: Some(inv::LotInfo {
            lot_id: lot.into(),
            ..Default::default()
        }),
        zone_id: "chilled-a".into(),
        quantity: kg,
        unit: "kg".into(),
        transformation: Some(transformation.clone()),
        ..inv::Movement::default()
    }
}

fn output(lot: &str, cases: i64, transformation: &inv::Transformation) -> inv::Movement {
    inv::Movement {
        kind: inv::MovementKind::TransformationOutput as i32,
        sku: SEGMENT.into(),
        lot: Some(inv::LotInfo {
            lot_id: lot.into(),
            // Frozen segments keep a year while the oranges keep weeks.
            expiry: Some(date(2099, 12, 31)),
            production: Some(date(2026, 11, 20)),
            origin: "Huaihua park, freezing line 2".into(),
        }),
        zone_id: "frozen-a".into(),
        quantity: cases,
        unit: "case".into(),
        transformation: Some(transformation.clone()),
        ..inv::Movement::default()
    }
}

async fn record(net: &Net, site: &str, request_id: &str, movements: Vec<inv::Movement>) {
    net.inventory(site)
        .await
        .record_movements(inv::RecordMovementsRequest {
            request_id: request_id.into(),
            movements,
            actor: "line supervisor".into(),
        })
        .await
        .expect("movements recorded");
}

/// 100 kg of one orange lot and 50 of another at the park; 60 kg of the first and 20 of
/// the second processed (PR-1) into 30 cases of segment lot A and 10 of lot B.
async fn process_oranges(net: &Net) {
    receive(net, PARK, ORANGE, ORANGE_LOT, "chilled-a", 100).await;
    receive(net, PARK, ORANGE, OTHER_ORANGE_LOT, "chilled-a", 50).await;
    let pr1 = processing("PR-1");
    record(
        net,
        PARK,
        "process-pr-1",
        vec![
            input(ORANGE_LOT, 60, &pr1),
            input(OTHER_ORANGE_LOT, 20, &pr1),
            output(SEGMENT_LOT, 30, &pr1),
            output(SEGMENT_LOT_B, 10, &pr1),
        ],
    )
    .await;
}

async fn trace(gateway: &mut Gateway, sku: &str, lot: &str) -> pb::TraceLotResponse {
    gateway
        .trace_lot(pb::TraceLotRequest {
            sku: sku.into(),
            lot_id: lot.into(),
            site_ids: Vec::new(),
        })
        .await
        .expect("trace")
        .into_inner()
}

/// (input lot, output lot, upstream, depth) of each link.
fn links(trace: &pb::TraceLotResponse) -> Vec<(String, String, bool, u32)> {
    let mut links: Vec<_> = trace
        .genealogy
        .iter()
        .map(|l| {
            (
                l.input_lot_id.clone(),
                l.output_lot_id.clone(),
                l.upstream,
                l.depth,
            )
        })
        .collect();
    links.sort();
    links
}

fn link(input: &str, output: &str, upstream: bool) -> (String, String, bool, u32) {
    (input.to_string(), output.to_string(), upstream, 1)
}

/// The lot's EPCIS export, parsed, after checking it against the schema's rules.
async fn epcis(gateway: &mut Gateway, sku: &str, lot_id: &str) -> serde_json::Value {
    let document = gateway
        .export_trace_epcis(pb::TraceLotRequest {
            sku: sku.into(),
            lot_id: lot_id.into(),
            site_ids: Vec::new(),
        })
        .await
        .expect("export")
        .into_inner();
    let json: serde_json::Value = serde_json::from_str(&document.json_ld).unwrap();
    assert_eq!(coldchain_epcis::problems(&json), Vec::<String>::new());
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trace_follows_a_transformation_both_ways() {
    let net = two_sites().await;
    process_oranges(&net).await;
    // 5 cases of segment lot A go out to a customer's order.
    record(
        &net,
        PARK,
        "issue-so-9001",
        vec![inv::Movement {
            kind: inv::MovementKind::Issue as i32,
            sku: SEGMENT.into(),
            lot: Some(inv::LotInfo {
                lot_id: SEGMENT_LOT.into(),
                ..Default::default()
            }),
            zone_id: "frozen-a".into(),
            quantity: 5,
            unit: "case".into(),
            order_id: "SO-9001 Changsha supermarket".into(),
            ..inv::Movement::default()
        }],
    )
    .await;
    let mut gateway = net.gateway().await;

    // Downstream from the orange lot: PR-1 with both its inputs and both its outputs.
    let from_orange = trace(&mut gateway, ORANGE, ORANGE_LOT).await;
    assert!(from_orange.errors.is_empty(), "{:?}", from_orange.errors);
    assert!(!from_orange.genealogy_truncated);
    assert_eq!(
        links(&from_orange),
        vec![
            link(ORANGE_LOT, SEGMENT_LOT, false),
            link(ORANGE_LOT, SEGMENT_LOT_B, false),
            link(OTHER_ORANGE_LOT, SEGMENT_LOT, false),
            link(OTHER_ORANGE_LOT, SEGMENT_LOT_B, false),
        ]
    );
    let first = from_orange
        .genealogy
        .iter()
        .find(|l| l.input_lot_id == ORANGE_LOT && l.output_lot_id == SEGMENT_LOT)
        .unwrap();
    assert_eq!(first.site_id, PARK);
    assert_eq!(first.transformation_id, "PR-1");
    assert_eq!(
        (first.input_quantity, first.input_unit.as_str()),
        (60, "kg")
    );
    assert_eq!(
        (first.output_quantity, first.output_unit.as_str()),
        (30, "case")
    );
    assert_eq!(first.output_sku, SEGMENT);
    // The orange lot's own events show its side of PR-1.
    assert!(from_orange.events.iter().any(|e| matches!(
        &e.event,
        Some(pb::trace_event::Event::Entry(entry))
            if entry.kind == inv::LedgerEntryKind::TransformationInput as i32 && entry.delta == -60
    )));
    // The lots made from it are traced: where segment lot A is and whom it went to. The
    // other orange lot (an input too) is not followed downstream.
    let related: Vec<(&str, &str)> = from_orange
        .related
        .iter()
        .map(|r| (r.sku.as_str(), r.lot_id.as_str()))
        .collect();
    assert_eq!(
        related,
        vec![(SEGMENT, SEGMENT_LOT), (SEGMENT, SEGMENT_LOT_B)]
    );
    let segments = &from_orange.related[0];
    assert!(segments.genealogy.is_empty() && segments.related.is_empty());
    assert_eq!(segments.positions.len(), 1);
    assert_eq!(
        (
            segments.positions[0].zone_id.as_str(),
            segments.positions[0].on_hand
        ),
        ("frozen-a", 25)
    );
    assert!(segments.events.iter().any(|e| matches!(
        &e.event,
        Some(pb::trace_event::Event::Entry(entry)) if entry.order_id == "SO-9001 Changsha supermarket"
    )));

    // Upstream from segment lot A: back to both orange lots, not to its sibling lot B.
    let from_segment = trace(&mut gateway, SEGMENT, SEGMENT_LOT).await;
    assert!(from_segment.errors.is_empty(), "{:?}", from_segment.errors);
    assert!(
        from_segment
            .genealogy
            .iter()
            .all(|l| l.upstream && l.depth == 1)
    );
    let inputs: std::collections::BTreeSet<_> = from_segment
        .genealogy
        .iter()
        .map(|l| l.input_lot_id.as_str())
        .collect();
    assert_eq!(inputs, [ORANGE_LOT, OTHER_ORANGE_LOT].into_iter().collect());
    let related: Vec<&str> = from_segment
        .related
        .iter()
        .map(|r| r.lot_id.as_str())
        .collect();
    assert_eq!(related, vec![ORANGE_LOT, OTHER_ORANGE_LOT]);
    let orchard = &from_segment.related[0];
    assert_eq!(
        orchard.positions[0].on_hand, 40,
        "100 kg less the 60 processed"
    );

    // A lot that was never processed has no genealogy.
    receive(&net, PARK, ORANGE, "UNTOUCHED", "chilled-a", 10).await;
    let plain = trace(&mut gateway, ORANGE, "UNTOUCHED").await;
    assert!(plain.genealogy.is_empty() && plain.related.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_epcis_export_has_a_transformation_event_with_exactly_its_inputs_and_outputs() {
    let net = two_sites().await;
    process_oranges(&net).await;
    let mut gateway = net.gateway().await;
    let json = epcis(&mut gateway, SEGMENT, SEGMENT_LOT).await;
    let made: Vec<&serde_json::Value> = json["epcisBody"]["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "TransformationEvent")
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    let classes = |field: &str| -> Vec<(String, i64)> {
        let mut list: Vec<_> = made[0][field]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| {
                (
                    q["epcClass"].as_str().unwrap().to_string(),
                    q["quantity"].as_i64().unwrap(),
                )
            })
            .collect();
        list.sort();
        list
    };
    let class = |sku: &str, lot: &str| match shipped().gtin14(sku) {
        Some(gtin) => format!("https://id.gs1.org/01/{gtin}/10/{lot}"),
        None => format!("urn:coldchain:class:{sku}:{lot}"),
    };
    let mut inputs = vec![
        (class(ORANGE, ORANGE_LOT), 60),
        (class(ORANGE, OTHER_ORANGE_LOT), 20),
    ];
    inputs.sort();
    let mut outputs = vec![
        (class(SEGMENT, SEGMENT_LOT), 30),
        (class(SEGMENT, SEGMENT_LOT_B), 10),
    ];
    outputs.sort();
    assert_eq!(classes("inputQuantityList"), inputs);
    assert_eq!(classes("outputQuantityList"), outputs);
    assert_eq!(
        made[0]["transformationID"],
        "urn:coldchain:transformation:cn-huaihua-park:PR-1"
    );
}

fn hold_states(answer: &pb::RecallAnswer) -> Vec<(String, String, String, pb::RecallHoldState)> {
    answer
        .recall
        .as_ref()
        .unwrap()
        .holds
        .iter()
        .map(|h| {
            (
                h.site_id.clone(),
                h.sku.clone(),
                h.lot_id.clone(),
                pb::RecallHoldState::try_from(h.state).unwrap(),
            )
        })
        .collect()
}

fn hold(
    site: &str,
    sku: &str,
    lot: &str,
    state: pb::RecallHoldState,
) -> (String, String, String, pb::RecallHoldState) {
    (site.into(), sku.into(), lot.into(), state)
}

/// Held quantity of a lot at a site.
async fn held(net: &Net, site: &str, sku: &str, lot: &str) -> i64 {
    let stock = net
        .inventory(site)
        .await
        .get_stock(inv::GetStockRequest {
            sku: sku.into(),
            lot_id: lot.into(),
            zone_id: String::new(),
        })
        .await;
    match stock {
        Ok(stock) => stock.into_inner().levels.iter().map(|l| l.held).sum(),
        Err(status) if status.code() == tonic::Code::NotFound => 0,
        Err(status) => panic!("stock: {status:?}"),
    }
}

/// A transfer of segment cases from the park's freezer to Vientiane's.
fn segment_transfer(
    request_id: &str,
    transfer_id: &str,
    lot: &str,
    cases: i64,
) -> pb::StartTransferRequest {
    let mut line = line(SEGMENT, lot, "frozen-a", "frozen-a", cases);
    line.unit = "case".into();
    let mut request = start(request_id, transfer_id, vec![line]);
    request.reefer_temperature_class = common::TemperatureClass::Frozen as i32;
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recall_with_include_derived_holds_the_outputs_everywhere() {
    let net = two_sites().await;
    process_oranges(&net).await;
    let mut gateway = net.gateway().await;
    // 10 cases of segment lot A reach Vientiane; 4 cases of lot B are still on the train.
    let arrived = start_transfer(
        &mut gateway,
        segment_transfer("start-seg-a", "T-SEG-A", SEGMENT_LOT, 10),
    )
    .await;
    assert_eq!(state(&arrived), pb::TransferState::InTransit, "{arrived:?}");
    receive_transfer(&mut gateway, "arrive-seg-a", "T-SEG-A")
        .await
        .unwrap();
    let travelling = start_transfer(
        &mut gateway,
        segment_transfer("start-seg-b", "T-SEG-B", SEGMENT_LOT_B, 4),
    )
    .await;
    assert_eq!(state(&travelling), pb::TransferState::InTransit);

    let answer = gateway
        .recall_lot(pb::RecallLotRequest {
            request_id: "recall-orchard".into(),
            recall_id: "R-ORCHARD".into(),
            sku: ORANGE.into(),
            lot_ids: vec![ORANGE_LOT.into()],
            all_lots: false,
            reason: "pesticide residue above the limit, lab report QA-204".into(),
            actor: "QA officer Li".into(),
            include_derived: true,
        })
        .await
        .expect("recall")
        .into_inner();
    let recall = answer.recall.clone().unwrap();
    assert!(recall.include_derived);
    assert!(
        recall
            .derived
            .iter()
            .any(|l| l.input_lot_id == ORANGE_LOT && l.output_lot_id == SEGMENT_LOT),
        "{:?}",
        recall.derived
    );
    use pb::RecallHoldState as S;
    assert_eq!(
        hold_states(&answer),
        vec![
            hold(PARK, ORANGE, ORANGE_LOT, S::Held),
            hold(PARK, SEGMENT, SEGMENT_LOT, S::Held),
            hold(PARK, SEGMENT, SEGMENT_LOT_B, S::Held),
            hold(VIENTIANE, ORANGE, ORANGE_LOT, S::NotPresent),
            hold(VIENTIANE, SEGMENT, SEGMENT_LOT, S::Held),
            hold(VIENTIANE, SEGMENT, SEGMENT_LOT_B, S::AwaitingArrival),
        ]
    );
    assert_eq!(held(&net, PARK, ORANGE, ORANGE_LOT).await, 40);
    assert_eq!(held(&net, PARK, SEGMENT, SEGMENT_LOT).await, 20);
    assert_eq!(held(&net, PARK, SEGMENT, SEGMENT_LOT_B).await, 6);
    assert_eq!(held(&net, VIENTIANE, SEGMENT, SEGMENT_LOT).await, 10);
    // The other orange lot, an input of the same processing, is not recalled.
    assert_eq!(held(&net, PARK, ORANGE, OTHER_ORANGE_LOT).await, 0);
    // The answer names each position's and each transfer's lot.
    assert!(
        answer.positions.iter().any(|p| p.site_id == VIENTIANE
            && p.sku == SEGMENT
            && p.lot_id == SEGMENT_LOT
            && p.held)
    );
    assert!(answer.in_transit.iter().any(|t| t.transfer_id == "T-SEG-B"
        && t.sku == SEGMENT
        && t.lot_id == SEGMENT_LOT_B
        && t.quantity == 4));

    // Lot B arrives at Vientiane: held on arrival.
    receive_transfer(&mut gateway, "arrive-seg-b", "T-SEG-B")
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let answer = gateway
            .get_recall(pb::GetRecallRequest {
                recall_id: "R-ORCHARD".into(),
            })
            .await
            .expect("get recall")
            .into_inner();
        if hold_states(&answer).contains(&hold(VIENTIANE, SEGMENT, SEGMENT_LOT_B, S::Held)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "lot B never held at Vientiane: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(held(&net, VIENTIANE, SEGMENT, SEGMENT_LOT_B).await, 4);

    // Releasing the recall releases every hold, the derived lots' too.
    let released = gateway
        .release_recall(pb::ReleaseRecallRequest {
            request_id: "release-orchard".into(),
            recall_id: "R-ORCHARD".into(),
            reason: "second lab clear".into(),
            actor: "QA officer Li".into(),
        })
        .await
        .expect("release")
        .into_inner();
    assert_eq!(
        released.recall.unwrap().state,
        pb::RecallState::Released as i32
    );
    for (site, sku, lot) in [
        (PARK, ORANGE, ORANGE_LOT),
        (PARK, SEGMENT, SEGMENT_LOT),
        (PARK, SEGMENT, SEGMENT_LOT_B),
        (VIENTIANE, SEGMENT, SEGMENT_LOT),
        (VIENTIANE, SEGMENT, SEGMENT_LOT_B),
    ] {
        assert_eq!(held(&net, site, sku, lot).await, 0, "{site} {sku} {lot}");
    }
}

/// Registers a sensor of a park zone.
async fn zone_sensor(net: &Net, sensor_id: &str, zone_id: &str) {
    net.telemetry(PARK)
        .await
        .register_sensor(coldchain_proto::telemetry::v1::RegisterSensorRequest {
            request_id: format!("register-{sensor_id}"),
            sensor_id: sensor_id.into(),
            binding: Some(
                coldchain_proto::telemetry::v1::register_sensor_request::Binding::ZoneId(
                    zone_id.into(),
                ),
            ),
            profile: None,
            description: format!("{zone_id} sensor"),
            actor: String::new(),
        })
        .await
        .expect("sensor registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exposure_follows_a_relocation_to_the_other_zones_sensors() {
    let net = two_sites().await;
    zone_sensor(&net, "park-frozen-a-1", "frozen-a").await;
    zone_sensor(&net, "park-chilled-a-1", "chilled-a").await;
    // Segments made frozen, then all 40 cases moved to the chilled room to thaw.
    let pr = processing("PR-THAW");
    receive(&net, PARK, ORANGE, ORANGE_LOT, "chilled-a", 100).await;
    record(
        &net,
        PARK,
        "freeze",
        vec![input(ORANGE_LOT, 50, &pr), output(SEGMENT_LOT, 40, &pr)],
    )
    .await;
    record(
        &net,
        PARK,
        "thaw",
        vec![inv::Movement {
            kind: inv::MovementKind::Relocation as i32,
            sku: SEGMENT.into(),
            lot: Some(inv::LotInfo {
                lot_id: SEGMENT_LOT.into(),
                ..Default::default()
            }),
            zone_id: "frozen-a".into(),
            to_zone_id: "chilled-a".into(),
            quantity: 40,
            unit: "case".into(),
            ..inv::Movement::default()
        }],
    )
    .await;
    let mut gateway = net.gateway().await;
    let traced = trace(&mut gateway, SEGMENT, SEGMENT_LOT).await;
    assert!(traced.errors.is_empty(), "{:?}", traced.errors);
    // A stay per zone, each measured by its own zone's sensor: the freezer's ends when the
    // chilled room's begins.
    let stays: Vec<(&str, Vec<&str>)> = traced
        .stays
        .iter()
        .map(|s| {
            (
                s.zone_id.as_str(),
                s.exposures.iter().map(|e| e.sensor_id.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        stays,
        vec![
            ("frozen-a", vec!["park-frozen-a-1"]),
            ("chilled-a", vec!["park-chilled-a-1"]),
        ]
    );
    assert_eq!(traced.stays[0].end_time, traced.stays[1].start_time);
    assert!(traced.stays[0].end_time.is_some() && traced.stays[1].end_time.is_none());
    let positions: Vec<(&str, i64)> = traced
        .positions
        .iter()
        .map(|p| (p.zone_id.as_str(), p.on_hand))
        .collect();
    assert_eq!(positions, vec![("chilled-a", 40)]);
    // The relocation is one EPCIS `storing` event from the freezer to the chilled room.
    let json = epcis(&mut gateway, SEGMENT, SEGMENT_LOT).await;
    let storing: Vec<&serde_json::Value> = json["epcisBody"]["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["bizStep"] == "storing")
        .collect();
    assert_eq!(storing.len(), 1, "{storing:?}");
    assert!(
        storing[0]["destinationList"][0]["destination"]
            .as_str()
            .unwrap()
            .ends_with("chilled-a"),
        "{storing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recall_names_the_sites_that_could_not_say_what_was_made_from_its_lots() {
    let mut net = two_sites().await;
    process_oranges(&net).await;
    net.stop_service(VIENTIANE, INVENTORY).await;
    let mut gateway = net.gateway().await;
    let answer = gateway
        .recall_lot(pb::RecallLotRequest {
            request_id: "recall-partial".into(),
            recall_id: "R-PARTIAL".into(),
            sku: ORANGE.into(),
            lot_ids: vec![ORANGE_LOT.into()],
            all_lots: false,
            reason: "pesticide residue".into(),
            actor: String::new(),
            include_derived: true,
        })
        .await
        .expect("recall")
        .into_inner();
    // What the park says is found and held there; Vientiane's holds wait for it to answer.
    use pb::RecallHoldState as S;
    let states = hold_states(&answer);
    assert!(
        states.contains(&hold(PARK, SEGMENT, SEGMENT_LOT, S::Held)),
        "{states:?}"
    );
    assert!(
        states.contains(&hold(VIENTIANE, SEGMENT, SEGMENT_LOT, S::Pending)),
        "{states:?}"
    );
    assert!(
        answer.errors.iter().any(|e| e.site_id == VIENTIANE
            && e.message
                .starts_with("finding the lots made from the recalled ones")),
        "{:?}",
        answer.errors
    );
}
