//! Across processes: an excursion in a site zone places a hold in the site's real
//! inventory service, even though inventory was down when the excursion began.
//!
//! `coldchain serve telemetry` starts alone; a zone sensor reports an excursion; the
//! alarm's hold waits in the durable outbox (PENDING, with the inventory's error). Then
//! `coldchain serve inventory` starts for the same site, and within a bounded time the
//! alarm shows the hold PLACED, and the inventory's ledger and stock show the hold citing
//! the alarm.
//!
//! Both servers require keys: operations registers the sensor and reads alarms, the site's
//! sensor gateway pushes the readings, its warehouse system reads and writes stock, and the
//! telemetry service places the hold with its own key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coldchain_proto::common::v1::ReferenceKind;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::telemetry::v1 as pb;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use common::{Server, TestNetwork};
use futures::StreamExt;

const SITE: &str = "cn-huaihua-park";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: (ms.rem_euclid(1_000) * 1_000_000) as i32,
    }
}

async fn alarm_of(
    client: &mut TelemetryServiceClient<coldchain_runtime::client::Channel>,
    sensor: &str,
) -> pb::Alarm {
    let mut alarms = client
        .list_alarms(pb::ListAlarmsRequest {
            sensor_id: sensor.to_string(),
            ..Default::default()
        })
        .await
        .expect("list alarms")
        .into_inner()
        .alarms;
    assert_eq!(alarms.len(), 1, "one alarm per excursion: {alarms:?}");
    alarms.remove(0)
}

async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_excursion_holds_the_zone_once_inventory_comes_up() {
    let net = TestNetwork::new();
    let telemetry = Server::start(&net, "telemetry", Some(SITE));
    let keyring = net.keyring();
    let mut client =
        TelemetryServiceClient::new(keyring.channel(&telemetry.endpoint, common::OPERATIONS));
    let mut sensors =
        TelemetryServiceClient::new(keyring.channel(&telemetry.endpoint, &common::sensors(SITE)));

    // A chilled-zone sensor (0..4 °C) that alarms on the first out-of-range reading.
    client
        .register_sensor(pb::RegisterSensorRequest {
            request_id: "reg-proc-s1".into(),
            sensor_id: "proc-s1".into(),
            binding: Some(pb::register_sensor_request::Binding::ZoneId(
                "chilled-a".into(),
            )),
            profile: Some(pb::SensorProfile {
                min_excursion_duration: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            description: "cold room A, door side".into(),
            actor: Default::default(),
        })
        .await
        .expect("register sensor");
    let now = now_ms();
    let summary = sensors
        .push_readings(pb::PushReadingsRequest {
            request_id: "push-proc-1".into(),
            readings: (0..6)
                .map(|i| pb::Reading {
                    sensor_id: "proc-s1".into(),
                    time: Some(ts(now - 60_000 + i * 10_000)),
                    celsius: 9.5,
                    humidity_percent: None,
                    door_open: Some(true),
                })
                .collect(),
        })
        .await
        .expect("push readings")
        .into_inner();
    assert_eq!(summary.accepted, 6);

    // Inventory is down: the hold is pending, with the inventory's error.
    let alarm = alarm_of(&mut client, "proc-s1").await;
    assert_eq!(alarm.kind, pb::AlarmKind::ExcursionHigh as i32);
    assert_eq!(alarm.zone_id, "chilled-a");
    assert_eq!(alarm.hold_status, pb::HoldStatus::Pending as i32);
    let alarm_id = alarm.alarm_id.clone();
    let pending = wait_for(
        Duration::from_secs(15),
        "the hold error while inventory is down",
        || {
            let mut client = client.clone();
            async move {
                let alarm = alarm_of(&mut client, "proc-s1").await;
                (!alarm.hold_last_error.is_empty()).then_some(alarm)
            }
        },
    )
    .await;
    assert_eq!(pending.hold_status, pb::HoldStatus::Pending as i32);

    // Inventory comes up for the same site, and receives stock into the zone.
    let inventory = Server::start(&net, "inventory", Some(SITE));
    let mut stock =
        InventoryServiceClient::new(keyring.channel(&inventory.endpoint, &common::warehouse(SITE)));

    let placed = wait_for(Duration::from_secs(30), "the hold to be placed", || {
        let mut client = client.clone();
        async move {
            let alarm = alarm_of(&mut client, "proc-s1").await;
            (alarm.hold_status == pb::HoldStatus::Placed as i32).then_some(alarm)
        }
    })
    .await;
    assert_eq!(placed.alarm_id, alarm_id);
    assert_eq!(placed.hold_ids.len(), 1, "{placed:?}");
    let hold_id = placed.hold_ids[0].clone();

    // The inventory's ledger records the hold, citing the alarm.
    let mut feed = stock
        .watch_ledger(inv::WatchLedgerRequest { from_sequence: 1 })
        .await
        .expect("watch ledger")
        .into_inner();
    let entry = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = feed.next().await {
            let message = message.expect("ledger message");
            if let Some(entry) = message
                .entries
                .into_iter()
                .find(|e| e.kind == inv::LedgerEntryKind::HoldPlaced as i32)
            {
                return entry;
            }
        }
        panic!("ledger ended without a HOLD_PLACED entry");
    })
    .await
    .expect("HOLD_PLACED in the ledger in time");
    assert_eq!(entry.hold_id, hold_id);
    assert_eq!(entry.zone_id, "chilled-a");
    let reference = entry.reference.expect("the hold cites the alarm");
    assert_eq!(reference.kind, ReferenceKind::Alarm as i32);
    assert_eq!(reference.id, alarm_id);

    // Stock received into the zone is held (the hold covers stock arriving later).
    stock
        .record_movements(inv::RecordMovementsRequest {
            request_id: "receipt-proc-1".into(),
            movements: vec![inv::Movement {
                kind: inv::MovementKind::Receipt as i32,
                sku: "MILK-1L".into(),
                lot: Some(common::lasting_lot("L1")),
                zone_id: "chilled-a".into(),
                quantity: 40,
                unit: "each".into(),
                ..Default::default()
            }],
            actor: Default::default(),
        })
        .await
        .expect("receipt");
    let levels = stock
        .get_stock(inv::GetStockRequest {
            sku: "MILK-1L".into(),
            ..Default::default()
        })
        .await
        .expect("get stock")
        .into_inner();
    let totals = levels.totals.expect("totals");
    assert_eq!((totals.on_hand, totals.held, totals.available), (40, 40, 0));

    drop(inventory);
    drop(telemetry);
}
