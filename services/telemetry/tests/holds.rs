//! Holds through the telemetry service: an excursion's hold waits in the outbox for the
//! inventory service and is placed exactly once; a reefer's excursion holds its transfer's
//! lots at the destination. Real tonic servers on 127.0.0.1:0 with a manual clock, and
//! fake inventory and gateway services.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::time::Duration;

use coldchain_proto::common::v1::{ReferenceKind, TemperatureClass};
use coldchain_proto::telemetry::v1 as pb;
use coldchain_store::ManualClock;
use common::*;
use futures::StreamExt;

#[tokio::test]
async fn a_hold_waits_for_inventory_and_is_placed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let port = free_port();
    let network = network_with_inventory(&format!("http://127.0.0.1:{port}"));
    let server = Server::start(dir.path(), clock.clone(), network.clone(), fast_options()).await;
    let mut client = server.client.clone();
    client
        .register_sensor(zone_sensor(
            "reg",
            "s1",
            "chilled-a",
            Some(pb::SensorProfile {
                min_excursion_duration: Some(minutes(0)),
                ..Default::default()
            }),
        ))
        .await
        .unwrap();
    push(&mut client, "p-1", vec![reading("s1", T0 - MINUTE, 9.0)]).await;
    let alarm_id = alarms(&mut client, "s1").await[0].alarm_id.clone();

    // Inventory is down: the hold stays PENDING with the last error.
    let pending = eventually(Duration::from_secs(10), "the hold error", || {
        let mut client = client.clone();
        async move {
            let alarm = alarms(&mut client, "s1").await.remove(0);
            (!alarm.hold_last_error.is_empty()).then_some(alarm)
        }
    })
    .await;
    assert_eq!(pending.hold_status, pb::HoldStatus::Pending as i32);
    assert!(
        pending.hold_last_error.starts_with("unavailable"),
        "{}",
        pending.hold_last_error
    );

    // Restart telemetry while the hold is pending: the outbox is durable.
    server.stop().await;
    let server = Server::start(dir.path(), clock.clone(), network, fast_options()).await;
    let mut client = server.client.clone();

    // Inventory comes up: the hold is placed.
    let fake = FakeInventory::default();
    let inventory = fake.serve(port).await;
    let placed = eventually(Duration::from_secs(15), "the hold", || {
        let mut client = client.clone();
        async move {
            let alarm = alarms(&mut client, "s1").await.remove(0);
            (alarm.hold_status == pb::HoldStatus::Placed as i32).then_some(alarm)
        }
    })
    .await;
    assert_eq!(placed.hold_ids, ["hold-1"]);
    assert!(placed.hold_last_error.is_empty());
    let calls = fake.calls();
    assert!(!calls.is_empty());
    // Every call was the same request: one hold, whatever the retries.
    assert!(calls.iter().all(|c| c.request_id == calls[0].request_id));
    assert_eq!(calls[0].zone_id, "chilled-a");
    // The hold names why telemetry placed it (its principal is telemetry's credential).
    assert!(calls.iter().all(|c| c.actor == format!("alarm {alarm_id}")));
    let reference = calls[0].reference.clone().unwrap();
    assert_eq!(reference.kind, ReferenceKind::Alarm as i32);
    assert_eq!(reference.id, alarm_id);
    // The feed shows the raise first and the placement last.
    let mut watch = client
        .watch_alarms(pb::WatchAlarmsRequest { from_sequence: 1 })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        events.extend(message.events);
        if !events.is_empty() && events.len() as u64 >= message.head_sequence {
            break;
        }
    }
    assert_eq!(events[0].kind, pb::AlarmEventKind::Raised as i32);
    let last = events.last().unwrap();
    assert_eq!(last.kind, pb::AlarmEventKind::HoldChanged as i32);
    assert_eq!(
        last.alarm.as_ref().unwrap().hold_status,
        pb::HoldStatus::Placed as i32
    );
    // Nothing more is sent once placed.
    let before = fake.calls().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.calls().len(), before);
    inventory.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_reefer_excursion_holds_its_transfers_lots_at_the_destination() {
    use coldchain_proto::network::v1 as net;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let inventory_port = free_port();
    let gateway_port = free_port();
    let mut network =
        (*network_with_inventory(&format!("http://127.0.0.1:{inventory_port}"))).clone();
    network.gateway.endpoint = Some(format!("http://127.0.0.1:{gateway_port}"));
    let network = std::sync::Arc::new(network);
    let server = Server::start(dir.path(), clock.clone(), network, fast_options()).await;
    let mut client = server.client.clone();
    let line = |sku: &str, lot: &str| net::TransferLine {
        sku: sku.into(),
        lot_id: lot.into(),
        source_zone_id: "cool-a".into(),
        destination_zone_id: "cool-a".into(),
        quantity: 10,
        unit: "case".into(),
        lot: None,
    };
    let gateway = FakeGateway {
        transfer: std::sync::Arc::new(std::sync::Mutex::new(net::Transfer {
            transfer_id: "TR-1".into(),
            source_site_id: SITE.into(),
            destination_site_id: "la-vientiane".into(),
            lines: vec![
                line("BANANA", "B1"),
                line("BANANA", "B1"),
                line("MANGO", "M7"),
            ],
            state: net::TransferState::Requested as i32,
            ..Default::default()
        })),
    };
    let gateway_server = gateway.serve(gateway_port).await;
    let inventory = FakeInventory::default();
    let inventory_server = inventory.serve(inventory_port).await;

    // A reefer not bound to a transfer needs no hold; one bound to a transfer does.
    for (id, transfer) in [("loose", ""), ("reefer", "TR-1")] {
        client
            .register_sensor(pb::RegisterSensorRequest {
                request_id: format!("reg-{id}"),
                sensor_id: id.into(),
                binding: Some(pb::register_sensor_request::Binding::Reefer(
                    pb::ReeferBinding {
                        container_id: "MSCU7654321".into(),
                        train_or_route: "China-Laos express X8011".into(),
                        transfer_id: transfer.into(),
                        temperature_class: TemperatureClass::Cool as i32,
                    },
                )),
                profile: Some(pb::SensorProfile {
                    min_excursion_duration: Some(minutes(0)),
                    ..Default::default()
                }),
                description: String::new(),
                actor: Default::default(),
            })
            .await
            .unwrap();
        push(
            &mut client,
            &format!("p-{id}"),
            vec![reading(id, T0 - MINUTE, 18.0)],
        )
        .await;
    }
    let loose = alarms(&mut client, "loose").await.remove(0);
    assert_eq!(loose.hold_status, pb::HoldStatus::NotRequired as i32);
    assert_eq!(loose.reefer.as_ref().unwrap().container_id, "MSCU7654321");
    assert!(loose.zone_id.is_empty());

    // Not shipped yet: pending, and says so.
    let pending = eventually(Duration::from_secs(10), "the pending reason", || {
        let mut client = client.clone();
        async move {
            let alarm = alarms(&mut client, "reefer").await.remove(0);
            alarm
                .hold_last_error
                .contains("not shipped")
                .then_some(alarm)
        }
    })
    .await;
    assert_eq!(pending.hold_status, pb::HoldStatus::Pending as i32);
    assert!(inventory.calls().is_empty());

    // In transit: the distinct lots are held (at the destination).
    gateway.transfer.lock().unwrap().state = net::TransferState::InTransit as i32;
    let placed = eventually(Duration::from_secs(10), "the transfer holds", || {
        let mut client = client.clone();
        async move {
            let alarm = alarms(&mut client, "reefer").await.remove(0);
            (alarm.hold_status == pb::HoldStatus::Placed as i32).then_some(alarm)
        }
    })
    .await;
    assert_eq!(placed.hold_ids, ["hold-1", "hold-2"]);
    let mut lots: Vec<(String, String, String)> = inventory
        .calls()
        .into_iter()
        .map(|c| (c.sku, c.lot_id, c.zone_id))
        .collect();
    lots.dedup();
    assert_eq!(
        lots,
        [
            ("BANANA".to_string(), "B1".to_string(), String::new()),
            ("MANGO".to_string(), "M7".to_string(), String::new())
        ]
    );
    gateway_server.stop().await;
    inventory_server.stop().await;
    server.stop().await;
}
