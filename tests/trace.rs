//! TraceLot across real services: a lot received at the park, split across a transfer to
//! Vientiane (in a reefer with its own sensor) and an issue to a customer's order, traced
//! with every step, where it is now, and the temperatures each stay saw; and partially
//! when a site does not answer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod gateway_support;

use std::time::{Duration, Instant};

use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::proto_time::{millis, timestamp};
use gateway_support::*;

const SKU: &str = "citrus-navel";
const LOT: &str = "QY-2026-11";
const ZONE_SENSOR: &str = "park-chilled-a-1";
const REEFER: &str = "reefer-x8011";

/// Registers a sensor of the park's chilled-a whose excursions count at once.
async fn register_zone_sensor(telemetry: &mut Telemetry) {
    telemetry
        .register_sensor(tel::RegisterSensorRequest {
            request_id: format!("register-{ZONE_SENSOR}"),
            sensor_id: ZONE_SENSOR.into(),
            binding: Some(tel::register_sensor_request::Binding::ZoneId(
                "chilled-a".into(),
            )),
            profile: Some(tel::SensorProfile {
                min_excursion_duration: Some(prost_types::Duration::default()),
                ..tel::SensorProfile::default()
            }),
            description: "chilled-a, door side".into(),
            actor: String::new(),
        })
        .await
        .expect("zone sensor registered");
}

/// Records `movements` at a site; the entries.
async fn record(
    net: &Net,
    site: &str,
    request_id: &str,
    movements: Vec<inv::Movement>,
) -> Vec<inv::LedgerEntry> {
    net.inventory(site)
        .await
        .record_movements(inv::RecordMovementsRequest {
            request_id: request_id.into(),
            movements,
            actor: "QA desk".into(),
        })
        .await
        .expect("movements recorded")
        .into_inner()
        .entries
}

fn receipt(lot: &str, quantity: i64) -> inv::Movement {
    inv::Movement {
        kind: inv::MovementKind::Receipt as i32,
        sku: SKU.into(),
        lot: Some(inv::LotInfo {
            lot_id: lot.into(),
            expiry: Some(date(2099, 12, 31)),
            production: Some(date(2026, 11, 2)),
            origin: "Qianyang orchard 7, Hunan".into(),
        }),
        zone_id: "chilled-a".into(),
        quantity,
        unit: "kg".into(),
        ..inv::Movement::default()
    }
}

/// Pushes readings of `sensor` at `start_ms` + 100 ms × i.
async fn push_series(telemetry: &mut Telemetry, sensor: &str, start_ms: i64, celsius: &[f64]) {
    let readings = celsius
        .iter()
        .enumerate()
        .map(|(i, &celsius)| tel::Reading {
            sensor_id: sensor.into(),
            time: Some(timestamp(start_ms + 100 * (i as i64 + 1))),
            celsius,
            humidity_percent: None,
            door_open: None,
        })
        .collect();
    telemetry
        .push_readings(tel::PushReadingsRequest {
            request_id: format!("series-{sensor}-{start_ms}"),
            readings,
        })
        .await
        .expect("readings pushed");
}

fn entry_kinds(trace: &pb::TraceLotResponse) -> Vec<(String, inv::LedgerEntryKind, i64)> {
    trace
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::trace_event::Event::Entry(entry)) => Some((
                e.site_id.clone(),
                inv::LedgerEntryKind::try_from(entry.kind).unwrap(),
                entry.delta,
            )),
            _ => None,
        })
        .collect()
}

async fn trace(gateway: &mut Gateway, sites: &[&str]) -> pb::TraceLotResponse {
    gateway
        .trace_lot(pb::TraceLotRequest {
            sku: SKU.into(),
            lot_id: LOT.into(),
            site_ids: sites.iter().map(|s| s.to_string()).collect(),
        })
        .await
        .expect("trace")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lot_split_across_a_transfer_and_an_issue_is_traced_with_its_exposures() {
    // The park and Vientiane only: the trace asks every site of the network.
    let mut net = Net::start_with(
        &[
            (PARK, INVENTORY),
            (PARK, TELEMETRY),
            (VIENTIANE, INVENTORY),
            (VIENTIANE, TELEMETRY),
        ],
        fast_gateway(),
        |network| network.sites.retain(|s| s.id == PARK || s.id == VIENTIANE),
    )
    .await;
    let mut park = net.telemetry(PARK).await;
    register_zone_sensor(&mut park).await;

    // 100 kg of the lot and 50 kg of another arrive at the park.
    let received = record(
        &net,
        PARK,
        "receive",
        vec![receipt(LOT, 100), receipt("OTHER", 50)],
    )
    .await;
    let received_ms = millis(received[0].recorded_at.as_ref().unwrap()).unwrap();

    // 40 kg leave on the X8011 in a reefer with its own sensor, which sees 6 °C on the way.
    let mut gateway = net.gateway().await;
    let mut request = start(
        "start-x8011",
        "T-X8011",
        vec![line(SKU, LOT, "chilled-a", "chilled-a", 40)],
    );
    request.reefer_sensor_id = REEFER.into();
    request.reefer_container_id = "MSKU1234565".into();
    request.train_or_route = "China-Laos express X8011".into();
    let shipped = start_transfer(&mut gateway, request).await;
    assert_eq!(state(&shipped), pb::TransferState::InTransit);
    let shipped_ms = millis(shipped.shipped_at.as_ref().unwrap()).unwrap();
    let started = Instant::now();
    while park
        .list_sensors(tel::ListSensorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sensors
        .iter()
        .all(|s| s.sensor_id != REEFER)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the reefer sensor was not bound"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    push_series(&mut park, REEFER, shipped_ms, &[5.0, 6.0, 5.0]).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let arrived = receive_transfer(&mut gateway, "arrive-x8011", "T-X8011")
        .await
        .unwrap();
    assert_eq!(state(&arrived), pb::TransferState::Completed);

    // 30 kg go out to a customer's order.
    let mut issue = receipt(LOT, 30);
    issue.kind = inv::MovementKind::Issue as i32;
    issue.lot = Some(inv::LotInfo {
        lot_id: LOT.into(),
        ..Default::default()
    });
    issue.order_id = "SO-7781".into();
    record(&net, PARK, "issue-so-7781", vec![issue]).await;

    // The park's cold room warmed once while the lot was in it (its logger uploads late):
    // the excursion holds what is left in the room.
    push_series(&mut park, ZONE_SENSOR, received_ms, &[3.0, 9.5, 3.0, 2.5]).await;
    let started = Instant::now();
    loop {
        let alarms = park
            .list_alarms(tel::ListAlarmsRequest {
                sensor_id: ZONE_SENSOR.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .alarms;
        if alarms
            .iter()
            .any(|a| a.hold_status == tel::HoldStatus::Placed as i32)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no hold: {alarms:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let traced = trace(&mut gateway, &[]).await;
    assert!(traced.errors.is_empty(), "{:?}", traced.errors);
    assert!(!traced.truncated);

    // Every entry of the lot, at both sites, in the order it happened; none of the other lot.
    use inv::LedgerEntryKind as K;
    assert_eq!(
        entry_kinds(&traced),
        vec![
            (PARK.to_string(), K::Receipt, 100),
            (PARK.to_string(), K::TransferOut, -40),
            (VIENTIANE.to_string(), K::TransferIn, 40),
            (PARK.to_string(), K::Issue, -30),
            (PARK.to_string(), K::HoldPlaced, 0),
        ]
    );
    let issue_entry = traced
        .events
        .iter()
        .find_map(|e| match &e.event {
            Some(pb::trace_event::Event::Entry(entry)) if entry.kind == K::Issue as i32 => {
                Some(entry.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(issue_entry.order_id, "SO-7781");

    // The transfer's steps, with its train, container and the lot's quantity on it.
    let steps: Vec<_> = traced
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::trace_event::Event::TransferStep(step)) => Some((
                e.site_id.clone(),
                pb::TransferState::try_from(step.state).unwrap(),
                step.quantity,
                step.train_or_route.clone(),
                step.reefer_container_id.clone(),
            )),
            _ => None,
        })
        .collect();
    let states: Vec<_> = steps.iter().map(|s| (s.0.as_str(), s.1)).collect();
    assert_eq!(states.first(), Some(&(PARK, pb::TransferState::Requested)));
    assert!(
        states.contains(&(PARK, pb::TransferState::InTransit)),
        "{states:?}"
    );
    assert_eq!(
        states.last(),
        Some(&(VIENTIANE, pb::TransferState::Completed))
    );
    assert!(
        steps
            .iter()
            .all(|s| s.2 == 40 && s.3 == "China-Laos express X8011" && s.4 == "MSKU1234565")
    );

    // Events never go back in time.
    let times: Vec<i64> = traced
        .events
        .iter()
        .map(|e| millis(e.at.as_ref().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // Where it is now: 30 kg at the park, 40 kg at Vientiane; nothing in transit.
    let mut positions: Vec<_> = traced
        .positions
        .iter()
        .map(|p| {
            (
                p.site_id.as_str(),
                p.zone_id.as_str(),
                p.on_hand,
                p.unit.as_str(),
            )
        })
        .collect();
    positions.sort();
    assert_eq!(
        positions,
        vec![
            (PARK, "chilled-a", 30, "kg"),
            (VIENTIANE, "chilled-a", 40, "kg")
        ]
    );
    // The room's hold covers what is left at the park, not what left on the train.
    let held: Vec<_> = traced
        .positions
        .iter()
        .map(|p| (p.site_id.as_str(), p.held))
        .collect();
    assert!(
        held.contains(&(PARK, true)) && held.contains(&(VIENTIANE, false)),
        "{held:?}"
    );
    assert!(traced.in_transit.is_empty(), "{:?}", traced.in_transit);

    // Its stays: the park's cold room (still there), the reefer leg, Vientiane's cold room.
    let stay_of = |site: &str, zone: &str, transfer: &str| {
        traced
            .stays
            .iter()
            .find(|s| s.site_id == site && s.zone_id == zone && s.transfer_id == transfer)
            .unwrap_or_else(|| panic!("no stay {site}/{zone}/{transfer}: {:?}", traced.stays))
            .clone()
    };
    let room = stay_of(PARK, "chilled-a", "");
    assert_eq!(millis(room.start_time.as_ref().unwrap()), Some(received_ms));
    assert!(room.end_time.is_none());
    assert_eq!(room.exposures.len(), 1, "{room:?}");
    let seen = &room.exposures[0];
    assert_eq!(seen.sensor_id, ZONE_SENSOR);
    assert_eq!(seen.reading_count, 4);
    assert_eq!(seen.max_celsius, Some(9.5));
    assert_eq!(seen.min_celsius, Some(2.5));
    assert!(
        seen.time_outside_limits
            .as_ref()
            .is_some_and(|d| d.seconds > 0 || d.nanos > 0),
        "{seen:?}"
    );

    let leg = stay_of(PARK, "", "T-X8011");
    assert_eq!(millis(leg.start_time.as_ref().unwrap()), Some(shipped_ms));
    assert!(leg.end_time.is_some());
    assert_eq!(leg.exposures.len(), 1, "{leg:?}");
    assert_eq!(leg.exposures[0].sensor_id, REEFER);
    assert_eq!(leg.exposures[0].max_celsius, Some(6.0));

    let there = stay_of(VIENTIANE, "chilled-a", "");
    assert_eq!(
        there.start_time, leg.end_time,
        "the lot enters the room as it leaves the reefer"
    );
    assert!(
        there.exposures.is_empty(),
        "no sensor covers it: unknown, not safe"
    );

    // The cold room's excursion is in the trace.
    let alarms: Vec<_> = traced
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::trace_event::Event::Alarm(alarm)) => Some(alarm.clone()),
            _ => None,
        })
        .collect();
    assert!(
        alarms
            .iter()
            .any(|a| a.sensor_id == ZONE_SENSOR && a.kind == tel::AlarmKind::ExcursionHigh as i32),
        "{alarms:?}"
    );

    // The same trace as an EPCIS 2.0 document: it meets the schema's rules, and names the
    // receipt, the transfer out and in, the issue and the stays the sensors covered.
    let exported = gateway
        .export_trace_epcis(pb::TraceLotRequest {
            sku: SKU.into(),
            lot_id: LOT.into(),
            site_ids: Vec::new(),
        })
        .await
        .expect("export")
        .into_inner();
    assert!(exported.errors.is_empty());
    let document: serde_json::Value = serde_json::from_str(&exported.json_ld).unwrap();
    assert_eq!(coldchain_epcis::problems(&document), Vec::<String>::new());
    let steps: Vec<&str> = document["epcisBody"]["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["bizStep"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps.iter().filter(|s| **s == "sensor_reporting").count(),
        2,
        "the park's room and the reefer leg: {steps:?}"
    );
    for step in ["receiving", "shipping"] {
        assert_eq!(steps.iter().filter(|s| **s == step).count(), 2, "{steps:?}");
    }

    // Only the park asked: Vientiane's entries are not there, the transfer still is.
    let park_only = trace(&mut gateway, &[PARK]).await;
    assert!(
        entry_kinds(&park_only)
            .iter()
            .all(|(site, _, _)| site == PARK)
    );
    assert!(park_only.stays.iter().any(|s| s.transfer_id == "T-X8011"));

    // Vientiane's inventory goes down: the trace is partial and says so.
    net.stop_service(VIENTIANE, INVENTORY).await;
    let partial = trace(&mut gateway, &[]).await;
    assert_eq!(
        partial
            .errors
            .iter()
            .map(|e| e.site_id.as_str())
            .collect::<Vec<_>>(),
        vec![VIENTIANE]
    );
    assert_eq!(entry_kinds(&partial).len(), 4);
    assert!(partial.positions.iter().all(|p| p.site_id == PARK));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lot_no_site_knows_has_an_empty_trace_and_bad_requests_are_refused() {
    let net = Net::start(&[(PARK, INVENTORY), (PARK, TELEMETRY)]).await;
    let mut gateway = net.gateway().await;
    let traced = trace(&mut gateway, &[PARK]).await;
    assert!(traced.events.is_empty() && traced.positions.is_empty() && traced.stays.is_empty());
    assert!(traced.errors.is_empty(), "{:?}", traced.errors);

    let refused = gateway
        .trace_lot(pb::TraceLotRequest {
            sku: String::new(),
            lot_id: "bad\nlot".into(),
            site_ids: vec!["atlantis".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let mut fields = fields(&refused);
    fields.sort();
    assert_eq!(fields, vec!["lot_id", "sku"]);

    let unknown_site = gateway
        .trace_lot(pb::TraceLotRequest {
            sku: SKU.into(),
            lot_id: LOT.into(),
            site_ids: vec!["atlantis".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(
        unknown_site.code(),
        tonic::Code::NotFound,
        "{unknown_site:?}"
    );
}
