//! The document of a lot's trace, and the checker's rules, each with a test that fails
//! when it breaks.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use chrono::{TimeZone, Utc};
use coldchain_network::NetworkConfig;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::trace_event::Event;
use coldchain_proto::telemetry::v1 as telemetry;
use serde_json::{Value, json};

use super::*;

const SHIPPED: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/network.toml"
));
const PARK: &str = "cn-huaihua-park";
const VTE: &str = "la-vientiane";

fn ts(ms: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

fn entry(
    site: &str,
    sequence: u64,
    at: i64,
    kind: inventory::LedgerEntryKind,
    delta: i64,
) -> network::TraceEvent {
    network::TraceEvent {
        at: ts(at),
        site_id: site.into(),
        event: Some(Event::Entry(inventory::LedgerEntry {
            sequence,
            recorded_at: ts(at),
            kind: kind as i32,
            sku: "citrus-navel-mayang".into(),
            zone_id: "chilled-a".into(),
            unit: "kg".into(),
            delta,
            ..Default::default()
        })),
    }
}

fn with(
    mut event: network::TraceEvent,
    f: impl FnOnce(&mut inventory::LedgerEntry),
) -> network::TraceEvent {
    if let Some(Event::Entry(entry)) = &mut event.event {
        f(entry);
    }
    event
}

/// A lot received at the park, 40 kg shipped to Vientiane on the X8011, 30 kg issued to an
/// order, recalled at the park and released; a cold room that warmed and a reefer leg.
fn trace(sku: &str) -> network::TraceLotResponse {
    use inventory::LedgerEntryKind as K;
    const T0: i64 = 1_796_000_000_000;
    let events = vec![
        entry(PARK, 1, T0, K::Receipt, 100),
        with(entry(PARK, 2, T0 + 1_000, K::TransferOut, -40), |e| {
            e.transfer_id = "T-X8011".into();
            e.other_site_id = VTE.into();
        }),
        network::TraceEvent {
            at: ts(T0 + 1_000),
            site_id: PARK.into(),
            event: Some(Event::TransferStep(network::TransferStep {
                transfer_id: "T-X8011".into(),
                state: network::TransferState::InTransit as i32,
                train_or_route: "China-Laos express X8011".into(),
                reefer_container_id: "MSKU1234565".into(),
                source_site_id: PARK.into(),
                destination_site_id: VTE.into(),
                quantity: 40,
                sku: "citrus-navel-mayang".into(),
                lot_id: "mayang navel/11".into(),
            })),
        },
        with(entry(VTE, 7, T0 + 90_000, K::TransferIn, 40), |e| {
            e.transfer_id = "T-X8011".into();
            e.other_site_id = PARK.into();
        }),
        with(entry(PARK, 3, T0 + 100_000, K::Issue, -30), |e| {
            e.order_id = "SO 7781/A".into();
        }),
        with(entry(PARK, 4, T0 + 200_000, K::HoldPlaced, 0), |e| {
            e.reference = Some(common::Reference {
                kind: common::ReferenceKind::Recall as i32,
                id: "R-1".into(),
            });
        }),
        entry(PARK, 5, T0 + 300_000, K::HoldReleased, 0),
        entry(PARK, 6, T0 + 300_001, K::Allocate, 0),
    ];
    let exposure = |sensor: &str, max: f64, outside_s: i64| telemetry::Exposure {
        sensor_id: sensor.into(),
        reading_count: 4,
        min_celsius: Some(2.5),
        max_celsius: Some(max),
        mean_celsius: Some(3.4),
        mkt_celsius: Some(3.9),
        limit_min_celsius: 0.0,
        limit_max_celsius: 4.0,
        time_outside_limits: Some(prost_types::Duration {
            seconds: outside_s,
            nanos: 0,
        }),
        ..Default::default()
    };
    network::TraceLotResponse {
        sku: sku.into(),
        lot_id: "mayang navel/11".into(),
        events,
        stays: vec![
            network::LotStay {
                site_id: PARK.into(),
                zone_id: "chilled-a".into(),
                start_time: ts(T0),
                exposures: vec![exposure("park-1", 9.5, 120)],
                ..Default::default()
            },
            network::LotStay {
                site_id: PARK.into(),
                transfer_id: "T-X8011".into(),
                start_time: ts(T0 + 1_000),
                end_time: ts(T0 + 90_000),
                exposures: vec![exposure("reefer-1", 3.9, 0)],
                ..Default::default()
            },
            network::LotStay {
                site_id: VTE.into(),
                zone_id: "chilled-a".into(),
                start_time: ts(T0 + 90_000),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

fn shipped() -> NetworkConfig {
    NetworkConfig::parse(SHIPPED).unwrap()
}

fn doc(sku: &str) -> Value {
    document(
        &trace(sku),
        &shipped(),
        Utc.timestamp_opt(1_797_000_000, 0).single().unwrap(),
    )
}

fn events(doc: &Value) -> &Vec<Value> {
    doc["epcisBody"]["eventList"].as_array().unwrap()
}

#[test]
fn the_document_of_a_traced_lot_meets_the_schema_rules() {
    let doc = doc("citrus-navel-mayang");
    assert_eq!(problems(&doc), Vec::<String>::new());
    assert_eq!(doc["type"], "EPCISDocument");
    assert_eq!(doc["schemaVersion"], "2.0");
    let steps: Vec<(&str, &str)> = events(&doc)
        .iter()
        .map(|e| {
            (
                e["bizStep"].as_str().unwrap(),
                e["disposition"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    // Receipt, transfer out, transfer in and the reefer leg's sensors (at the leg's end),
    // issue, recall, release, and the park room's sensors (at the document's time: the lot
    // is still there); allocations are not EPCIS events.
    assert_eq!(
        steps,
        vec![
            ("receiving", "in_progress"),
            ("shipping", "in_transit"),
            ("receiving", "in_progress"),
            ("sensor_reporting", "-"),
            ("shipping", "in_transit"),
            ("holding", "recalled"),
            ("inspecting", "sellable_accessible"),
            ("sensor_reporting", "-"),
        ]
    );
    assert_eq!(events(&doc)[0]["action"], "ADD");
}

#[test]
fn identifiers_are_gs1_digital_links_when_the_network_file_gives_them() {
    let doc = doc("citrus-navel-mayang");
    let receipt = &events(&doc)[0];
    assert_eq!(
        receipt["quantityList"],
        json!([{
            "epcClass": "https://id.gs1.org/01/09521234000013/10/mayang%20navel%2F11",
            "quantity": 100,
            "uom": "KGM",
        }])
    );
    assert_eq!(
        receipt["readPoint"]["id"],
        "https://id.gs1.org/414/9521234000013/254/chilled-a"
    );
    assert_eq!(
        receipt["bizLocation"]["id"],
        "https://id.gs1.org/414/9521234000013"
    );
    assert_eq!(receipt["eventTimeZoneOffset"], "+08:00");
    let arrival = &events(&doc)[2];
    assert_eq!(arrival["eventTimeZoneOffset"], "+07:00");

    // A sku without a GTIN is named by a private URN.
    let other = document(
        &trace("durian-frozen"),
        &shipped(),
        Utc.timestamp_opt(1_797_000_000, 0).single().unwrap(),
    );
    assert_eq!(problems(&other), Vec::<String>::new());
    assert_eq!(
        events(&other)[0]["quantityList"][0]["epcClass"],
        "urn:coldchain:class:durian-frozen:mayang%20navel%2F11"
    );
}

#[test]
fn transfers_go_to_and_come_from_the_container_and_the_train() {
    let doc = doc("citrus-navel-mayang");
    let out = &events(&doc)[1];
    assert_eq!(
        out["sourceList"][0]["source"],
        "https://id.gs1.org/414/9521234000013"
    );
    let destinations: Vec<&str> = out["destinationList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        destinations,
        vec![
            "urn:coldchain:container:MSKU1234565",
            "urn:coldchain:conveyance:China-Laos%20express%20X8011",
            "https://id.gs1.org/414/9521234000020",
        ]
    );
    let arrival = &events(&doc)[2];
    assert_eq!(
        arrival["sourceList"][1]["source"],
        "urn:coldchain:container:MSKU1234565"
    );
    let issue = &events(&doc)[4];
    assert_eq!(
        issue["bizTransactionList"][0]["bizTransaction"],
        "urn:coldchain:order:cn-huaihua-park:SO%207781%2FA"
    );
}

#[test]
fn each_stay_reports_what_its_sensors_saw_and_flags_an_excursion() {
    let doc = doc("citrus-navel-mayang");
    let sensor_events: Vec<&Value> = events(&doc)
        .iter()
        .filter(|e| e["bizStep"] == "sensor_reporting")
        .collect();
    // Vientiane's room had no sensor: no event claims it was fine.
    assert_eq!(sensor_events.len(), 2);
    let reefer = sensor_events[0];
    assert_eq!(
        reefer["readPoint"]["id"],
        "urn:coldchain:container:MSKU1234565"
    );
    let report = &reefer["sensorElementList"][0]["sensorReport"][0];
    assert_eq!(report["type"], "Temperature");
    assert_eq!(report["uom"], "CEL");
    assert_eq!(report["maxValue"], 3.9);
    assert!(report.get("exception").is_none());
    let room = sensor_events[1];
    let report = &room["sensorElementList"][0]["sensorReport"][0];
    assert_eq!(report["maxValue"], 9.5);
    assert_eq!(report["exception"], "ALARM_CONDITION");
    assert_eq!(
        room["sensorElementList"][0]["sensorMetadata"]["endTime"],
        "2026-12-11T14:40:00.000Z"
    );
}

#[test]
fn the_checker_names_each_broken_rule() {
    let good = doc("citrus-navel-mayang");
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut doc = good.clone();
        f(&mut doc);
        problems(&doc)
    };
    let first = "document.epcisBody.eventList[0]";
    type Mutation<'a> = &'a dyn Fn(&mut Value);
    let cases: Vec<(Mutation, String)> = vec![
        (
            &|d| {
                d["epcisBody"]["eventList"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("action");
            },
            format!("{first}: missing required action"),
        ),
        (
            &|d| d["epcisBody"]["eventList"][0]["eventTimeZoneOffset"] = json!("+8:00"),
            format!("{first}.eventTimeZoneOffset: \"+8:00\" is not ±hh:mm"),
        ),
        (
            &|d| d["epcisBody"]["eventList"][0]["eventTime"] = json!("2026-12-09 16:00"),
            format!("{first}.eventTime: \"2026-12-09 16:00\" is not an instant with an offset"),
        ),
        (
            &|d| d["epcisBody"]["eventList"][0]["bizStep"] = json!("unloading_trucks"),
            format!("{first}.bizStep: \"unloading_trucks\" is not a CBV business step"),
        ),
        (
            &|d| d["epcisBody"]["eventList"][0]["quantityList"][0]["uom"] = json!("kg"),
            format!("{first}.quantityList[0].uom: \"kg\" is not a UN/ECE Rec. 20 code"),
        ),
        (
            &|d| d["epcisBody"]["eventList"][0]["quantityList"][0]["epcClass"] = json!("lot 7"),
            format!("{first}.quantityList[0].epcClass: \"lot 7\" is not a URI"),
        ),
        (
            &|d| d["schemaVersion"] = json!("1.2"),
            "document.schemaVersion: \"1.2\" is not 2.x".to_string(),
        ),
        (
            &|d| {
                d.as_object_mut().unwrap().remove("creationDate");
            },
            "document: missing required creationDate".to_string(),
        ),
    ];
    for (mutate, expected) in cases {
        assert_eq!(broken(mutate), vec![expected]);
    }
}

/// A link of a transformation at the park: `input` (kg of oranges) into `output` (cases).
fn link(
    transformation: &str,
    input: (&str, &str, i64),
    output: (&str, &str, i64),
) -> network::LotLink {
    network::LotLink {
        site_id: PARK.into(),
        transformation_id: transformation.into(),
        at: ts(1_796_000_500_000),
        input_sku: input.0.into(),
        input_lot_id: input.1.into(),
        input_quantity: input.2,
        input_unit: "kg".into(),
        output_sku: output.0.into(),
        output_lot_id: output.1.into(),
        output_quantity: output.2,
        output_unit: "case".into(),
        upstream: false,
        depth: 1,
    }
}

/// The trace with a genealogy: two orange lots made into segments and juice (a link per
/// input × output), then the segment lot packed into a gift box.
fn processed() -> network::TraceLotResponse {
    let orange = ("citrus-navel-mayang", "mayang navel/11", 500);
    let other_orange = ("citrus-navel-mayang", "O-2", 120);
    let segments = ("citrus-segments-frozen", "SEG-1", 40);
    let juice = ("citrus-juice", "J-1", 90);
    let mut t = trace("citrus-navel-mayang");
    t.genealogy = vec![
        link("PR-1", orange, segments),
        link("PR-1", orange, juice),
        link("PR-1", other_orange, segments),
        link("PR-1", other_orange, juice),
        link(
            "PACK-7",
            ("citrus-segments-frozen", "SEG-1", 40),
            ("gift-box", "GB-1", 20),
        ),
    ];
    t
}

fn transformation_events(doc: &Value) -> Vec<&Value> {
    events(doc)
        .iter()
        .filter(|e| e["type"] == "TransformationEvent")
        .collect()
}

#[test]
fn a_transformation_event_lists_exactly_its_inputs_and_outputs() {
    let doc = document(
        &processed(),
        &shipped(),
        Utc.timestamp_opt(1_797_000_000, 0).single().unwrap(),
    );
    assert_eq!(problems(&doc), Vec::<String>::new());
    let made = transformation_events(&doc);
    assert_eq!(made.len(), 2, "one event per transformation");
    let processing = made[0];
    assert_eq!(
        processing["transformationID"],
        "urn:coldchain:transformation:cn-huaihua-park:PR-1"
    );
    assert_eq!(processing["bizStep"], "creating_class_instance");
    assert!(processing.get("action").is_none());
    assert_eq!(
        processing["inputQuantityList"],
        json!([
            {
                "epcClass": "https://id.gs1.org/01/09521234000013/10/mayang%20navel%2F11",
                "quantity": 500,
                "uom": "KGM",
            },
            {
                "epcClass": "https://id.gs1.org/01/09521234000013/10/O-2",
                "quantity": 120,
                "uom": "KGM",
            },
        ])
    );
    // Cases are counted, not measured: no uom.
    assert_eq!(
        processing["outputQuantityList"],
        json!([
            {"epcClass": "https://id.gs1.org/01/09521234000037/10/SEG-1", "quantity": 40},
            {"epcClass": "urn:coldchain:class:citrus-juice:J-1", "quantity": 90},
        ])
    );
    assert_eq!(
        processing["bizLocation"]["id"],
        "https://id.gs1.org/414/9521234000013"
    );
    assert_eq!(processing["eventTimeZoneOffset"], "+08:00");
    let packing = made[1];
    assert_eq!(packing["inputQuantityList"].as_array().unwrap().len(), 1);
    assert_eq!(
        packing["outputQuantityList"][0]["epcClass"],
        "urn:coldchain:class:gift-box:GB-1"
    );
}

#[test]
fn related_lots_add_their_own_events_once_and_a_relocation_is_storing_between_zones() {
    use inventory::LedgerEntryKind as K;
    let mut t = processed();
    let mut segment = trace("citrus-segments-frozen");
    segment.lot_id = "SEG-1".into();
    segment.stays.clear();
    segment.events = vec![
        // The same ledger entry as the traced lot's receipt (sequence 1 at the park) shows once.
        entry(PARK, 1, 1_796_000_000_000, K::Receipt, 100),
        with(
            entry(PARK, 40, 1_796_000_600_000, K::RelocationIn, 40),
            |e| {
                e.sku = "citrus-segments-frozen".into();
                e.zone_id = "chilled-b".into();
                e.relocation = Some(inventory::Relocation {
                    from_zone_id: "frozen-a".into(),
                    to_zone_id: "chilled-b".into(),
                    from_class: common::TemperatureClass::Frozen as i32,
                    to_class: common::TemperatureClass::Chilled as i32,
                });
            },
        ),
        entry(PARK, 39, 1_796_000_600_000, K::RelocationOut, -40),
    ];
    t.related = vec![segment];
    let doc = document(
        &t,
        &shipped(),
        Utc.timestamp_opt(1_797_000_000, 0).single().unwrap(),
    );
    assert_eq!(problems(&doc), Vec::<String>::new());
    let storing: Vec<&Value> = events(&doc)
        .iter()
        .filter(|e| e["bizStep"] == "storing")
        .collect();
    assert_eq!(storing.len(), 1, "one event per relocation");
    assert_eq!(
        storing[0]["sourceList"][0]["source"],
        "https://id.gs1.org/414/9521234000013/254/frozen-a"
    );
    assert_eq!(
        storing[0]["destinationList"][0]["destination"],
        "https://id.gs1.org/414/9521234000013/254/chilled-b"
    );
    assert_eq!(
        storing[0]["quantityList"][0]["epcClass"],
        "https://id.gs1.org/01/09521234000037/10/SEG-1"
    );
    let receipts = events(&doc)
        .iter()
        .filter(|e| e["eventID"] == "urn:coldchain:event:cn-huaihua-park:ledger:1")
        .count();
    assert_eq!(receipts, 1);
}

#[test]
fn the_checker_knows_a_transformation_event() {
    let good = document(
        &processed(),
        &shipped(),
        Utc.timestamp_opt(1_797_000_000, 0).single().unwrap(),
    );
    let at = events(&good)
        .iter()
        .position(|e| e["type"] == "TransformationEvent")
        .unwrap();
    let path = format!("document.epcisBody.eventList[{at}]");
    let broken = |f: &dyn Fn(&mut Map<String, Value>)| {
        let mut doc = good.clone();
        f(doc["epcisBody"]["eventList"][at].as_object_mut().unwrap());
        problems(&doc)
    };
    type Mutation<'a> = &'a dyn Fn(&mut Map<String, Value>);
    let cases: Vec<(Mutation, String)> = vec![
        (
            &|e| {
                e.insert("inputQuantityList".into(), json!([]));
            },
            format!("{path}.inputQuantityList: must not be empty"),
        ),
        (
            &|e| {
                e.remove("outputQuantityList");
            },
            format!("{path}: missing required outputQuantityList"),
        ),
        (
            &|e| {
                e.remove("transformationID");
            },
            format!("{path}: missing required transformationID"),
        ),
        (
            &|e| {
                e.insert("transformationID".into(), json!("PR 1"));
            },
            format!("{path}.transformationID: \"PR 1\" is not a URI"),
        ),
        (
            &|e| {
                e.insert("action".into(), json!("ADD"));
            },
            format!("{path}.action: a TransformationEvent has no action"),
        ),
        (
            &|e| {
                e.insert(
                    "outputQuantityList".into(),
                    json!([{"epcClass": "seg 1", "quantity": 4}]),
                );
            },
            format!("{path}.outputQuantityList[0].epcClass: \"seg 1\" is not a URI"),
        ),
    ];
    for (mutate, expected) in cases {
        assert_eq!(broken(mutate), vec![expected]);
    }
}
