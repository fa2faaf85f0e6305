//! An excursion of a reefer in transit holds the transfer's lots at the destination. When
//! the destination has never had the lot, its inventory refuses the hold (NOT_FOUND) and
//! remembers that refusal under the request id (README, Guarantees); the hold outbox then
//! tries again under a new id, and the hold is placed once the goods have arrived.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod gateway_support;

use std::time::{Duration, Instant};

use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use gateway_support::*;

const SKU: &str = "pitaya-red";

/// The alarms of `sensor` at the park.
async fn alarms_of(telemetry: &mut Telemetry, sensor: &str) -> Vec<tel::Alarm> {
    telemetry
        .list_alarms(tel::ListAlarmsRequest {
            sensor_id: sensor.into(),
            ..Default::default()
        })
        .await
        .expect("list alarms")
        .into_inner()
        .alarms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_refused_before_arrival_is_placed_once_the_lot_arrives() {
    let net = Net::start(&[(PARK, INVENTORY), (PARK, TELEMETRY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "P1", "chilled-a", 100).await;
    let mut gateway = net.gateway().await;
    let mut request = start(
        "start-transit",
        "T-TRANSIT",
        vec![line(SKU, "P1", "chilled-a", "chilled-a", 40)],
    );
    request.reefer_sensor_id = "reefer-t".into();
    request.reefer_container_id = "MSKU1234565".into();
    let shipped = start_transfer(&mut gateway, request).await;
    assert_eq!(state(&shipped), pb::TransferState::InTransit);

    // The reefer's excursions count at once (re-registered with the same binding).
    let mut park = net.telemetry(PARK).await;
    park.register_sensor(tel::RegisterSensorRequest {
        request_id: "register-reefer-t".into(),
        sensor_id: "reefer-t".into(),
        binding: Some(tel::register_sensor_request::Binding::Reefer(
            tel::ReeferBinding {
                container_id: "MSKU1234565".into(),
                train_or_route: String::new(),
                transfer_id: "T-TRANSIT".into(),
                temperature_class: common::TemperatureClass::Chilled as i32,
            },
        )),
        profile: Some(tel::SensorProfile {
            min_excursion_duration: Some(prost_types::Duration::default()),
            ..tel::SensorProfile::default()
        }),
        description: "reefer of T-TRANSIT".into(),
        actor: Default::default(),
    })
    .await
    .expect("sensor registered");
    push(&mut park, "reefer-t", "warm", now_secs() - 10, 11.0).await;

    // Vientiane has never had the lot: the hold waits, with the inventory's refusal.
    let started = Instant::now();
    let pending = loop {
        let alarms = alarms_of(&mut park, "reefer-t").await;
        if let Some(alarm) = alarms
            .iter()
            .find(|a| a.hold_last_error.contains("not_found"))
        {
            break alarm.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no refused hold: {alarms:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pending.hold_status, tel::HoldStatus::Pending as i32);

    // The goods arrive; the next attempt, under a new id, places the hold.
    let arrived = receive_transfer(&mut gateway, "arrive-transit", "T-TRANSIT")
        .await
        .unwrap();
    assert_eq!(state(&arrived), pb::TransferState::Completed);
    let started = Instant::now();
    let placed = loop {
        let alarms = alarms_of(&mut park, "reefer-t").await;
        if let Some(alarm) = alarms
            .iter()
            .find(|a| a.hold_status == tel::HoldStatus::Placed as i32)
        {
            break alarm.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the hold was not placed: {alarms:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(placed.hold_ids.len(), 1, "{placed:?}");

    // The arrived lot is held at Vientiane: none of it can be issued.
    let mut vientiane = net.inventory(VIENTIANE).await;
    let level = vientiane
        .get_stock(inv::GetStockRequest {
            sku: SKU.into(),
            lot_id: "P1".into(),
            zone_id: "chilled-a".into(),
        })
        .await
        .expect("stock")
        .into_inner();
    let held: i64 = level.levels.iter().map(|l| l.held).sum();
    assert_eq!(held, 40, "{level:?}");
}
