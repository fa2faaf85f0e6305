//! The gateway's transfer saga against the real site services, in-process on 127.0.0.1,
//! called through the generated client: stock moved and the reefer bound, replays,
//! refusals and concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod gateway_support;

use std::time::{Duration, Instant};

use coldchain_proto::common::v1 as cc;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use gateway_support::*;
use tonic::Code;

const SKU: &str = "kiwi-hongyang";

// ---------------------------------------------------------------------------------------
// Transfers

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_moves_stock_binds_the_reefer_and_shows_in_transit() {
    let net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY), (PARK, TELEMETRY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    receive(&net, PARK, "citrus-navel", "C1", "chilled-a", 50).await;
    let mut gateway = net.gateway().await;

    let mut request = start(
        "start-1",
        "X8011-0001",
        vec![
            line(SKU, "K1", "chilled-a", "chilled-a", 30),
            line("citrus-navel", "C1", "chilled-a", "chilled-a", 20),
        ],
    );
    request.reefer_sensor_id = "reefer-7".into();
    request.reefer_container_id = "MSKU1234565".into();
    let transfer = start_transfer(&mut gateway, request).await;
    assert_eq!(
        state(&transfer),
        pb::TransferState::InTransit,
        "{transfer:?}"
    );
    assert!(transfer.last_error.is_empty(), "{transfer:?}");
    assert!(transfer.shipped_at.is_some() && transfer.created_at.is_some());
    assert_eq!(
        transfer.reefer_temperature_class,
        cc::TemperatureClass::Chilled as i32,
        "the first line's zone class"
    );
    let lot = transfer.lines[0]
        .lot
        .clone()
        .expect("the lot's attributes, copied from the source");
    assert_eq!(lot.expiry, Some(date(2099, 12, 31)));
    assert_eq!(lot.origin, "Qianyang, Hunan");
    assert_eq!(on_hand(&net, PARK, SKU).await, 70);
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 0);

    // The reefer's sensor is registered at the source, bound to the transfer.
    let mut telemetry = net.telemetry(PARK).await;
    let sensors = telemetry
        .list_sensors(tel::ListSensorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sensors;
    let sensor = sensors
        .iter()
        .find(|s| s.sensor_id == "reefer-7")
        .expect("sensor registered");
    match &sensor.binding {
        Some(tel::sensor::Binding::Reefer(reefer)) => {
            assert_eq!(reefer.transfer_id, "X8011-0001");
            assert_eq!(reefer.container_id, "MSKU1234565");
            assert_eq!(reefer.train_or_route, "China-Laos express X8011");
        }
        other => panic!("not a reefer binding: {other:?}"),
    }

    // In transit: in FindStock, inbound at the destination.
    let found = gateway
        .find_stock(pb::FindStockRequest {
            sku: SKU.into(),
            site_ids: vec![PARK.into(), VIENTIANE.into()],
            ..pb::FindStockRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.in_transit.len(), 1);
    let travelling = &found.in_transit[0];
    assert_eq!(travelling.transfer_id, "X8011-0001");
    assert_eq!(travelling.quantity, 30);
    assert_eq!(travelling.state, pb::TransferState::InTransit as i32);
    assert_eq!(
        travelling.lot.as_ref().unwrap().expiry,
        Some(date(2099, 12, 31))
    );
    assert_eq!(found.sites[0].zones[0].on_hand, 70);
    assert_eq!(found.sites[1].inbound_in_transit, 30);
    assert_eq!(found.sites[0].inbound_in_transit, 0);

    let done = receive_transfer(&mut gateway, "receive-1", "X8011-0001")
        .await
        .unwrap();
    assert_eq!(state(&done), pb::TransferState::Completed, "{done:?}");
    assert!(done.received_at.is_some() && done.completed_at.is_some());
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 30);
    assert_eq!(on_hand(&net, VIENTIANE, "citrus-navel").await, 20);
    assert_eq!(on_hand(&net, PARK, SKU).await, 70);
    let mut vientiane = net.inventory(VIENTIANE).await;
    let levels = vientiane
        .get_stock(inv::GetStockRequest {
            sku: SKU.into(),
            ..inv::GetStockRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .levels;
    assert_eq!(
        levels[0].lot.as_ref().unwrap().expiry,
        Some(date(2099, 12, 31)),
        "the destination learned the lot"
    );

    let found = gateway
        .find_stock(pb::FindStockRequest {
            sku: SKU.into(),
            site_ids: vec![VIENTIANE.into()],
            ..pb::FindStockRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(found.in_transit.is_empty());
    assert_eq!(found.sites[0].zones[0].on_hand, 30);

    // A replay answers the same; a new receipt of a completed transfer is refused.
    let replay = receive_transfer(&mut gateway, "receive-1", "X8011-0001")
        .await
        .unwrap();
    assert_eq!(state(&replay), pb::TransferState::Completed);
    let again = receive_transfer(&mut gateway, "receive-2", "X8011-0001")
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 30);

    // One ledger entry per line at each end.
    assert_eq!(transfer_entries(&net, PARK, "X8011-0001").await.len(), 2);
    assert_eq!(
        transfer_entries(&net, VIENTIANE, "X8011-0001").await.len(),
        2
    );

    // Listing with filters.
    let list = |states: Vec<pb::TransferState>| pb::ListTransfersRequest {
        states: states.into_iter().map(|s| s as i32).collect(),
        source_site_id: PARK.into(),
        ..pb::ListTransfersRequest::default()
    };
    let completed = gateway
        .list_transfers(list(vec![pb::TransferState::Completed]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(completed.transfers.len(), 1);
    let travelling = gateway
        .list_transfers(list(vec![pb::TransferState::InTransit]))
        .await
        .unwrap()
        .into_inner();
    assert!(travelling.transfers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reefer_sensor_is_bound_once_the_sources_telemetry_answers() {
    let mut net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "frozen-a", 100).await;
    let mut gateway = net.gateway().await;
    let mut request = start(
        "start-reefer",
        "T-REEFER",
        vec![line(SKU, "K1", "frozen-a", "frozen-a", 10)],
    );
    request.reefer_sensor_id = "reefer-9".into();
    request.reefer_container_id = "MSKU0000001".into();
    request.reefer_temperature_class = cc::TemperatureClass::Frozen as i32;
    let t = start_transfer(&mut gateway, request).await;
    assert_eq!(
        state(&t),
        pb::TransferState::InTransit,
        "the goods left even if the sensor could not be bound yet"
    );
    assert!(
        t.last_error
            .starts_with("binding reefer sensor: UNAVAILABLE"),
        "{}",
        t.last_error
    );

    net.start_service(PARK, TELEMETRY).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = gateway
            .get_transfer(pb::GetTransferRequest {
                transfer_id: "T-REEFER".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if t.last_error.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still {}", t.last_error);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut telemetry = net.telemetry(PARK).await;
    let sensors = telemetry
        .list_sensors(tel::ListSensorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sensors;
    let sensor = sensors
        .iter()
        .find(|s| s.sensor_id == "reefer-9")
        .expect("registered by the drainer");
    match &sensor.binding {
        Some(tel::sensor::Binding::Reefer(reefer)) => {
            assert_eq!(reefer.transfer_id, "T-REEFER");
            assert_eq!(
                reefer.temperature_class,
                cc::TemperatureClass::Frozen as i32
            );
        }
        other => panic!("not a reefer binding: {other:?}"),
    }
    assert_eq!(on_hand(&net, PARK, SKU).await, 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_transfer_is_idempotent_and_ids_are_not_reused() {
    let net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    let mut gateway = net.gateway().await;
    let request = start(
        "start-idem",
        "T-IDEM",
        vec![line(SKU, "K1", "chilled-a", "chilled-a", 30)],
    );
    let first = start_transfer(&mut gateway, request.clone()).await;
    let replay = start_transfer(&mut gateway, request.clone()).await;
    assert_eq!(replay.transfer_id, first.transfer_id);
    assert_eq!(state(&replay), pb::TransferState::InTransit);
    assert_eq!(on_hand(&net, PARK, SKU).await, 70, "the stock left once");

    // The same request_id with another request.
    let mut other = request.clone();
    other.lines[0].quantity = 31;
    let reused = gateway.start_transfer(other.clone()).await.unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(fields(&reused), ["request_id"]);
    // Another request_id for the same transfer: the same transfer, nothing moves again.
    let mut same = request.clone();
    same.request_id = "start-idem-2".into();
    assert_eq!(
        start_transfer(&mut gateway, same).await.transfer_id,
        "T-IDEM"
    );
    // Another transfer under the same id.
    other.request_id = "start-idem-3".into();
    let taken = gateway.start_transfer(other).await.unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    assert_eq!(on_hand(&net, PARK, SKU).await, 70);
    assert_eq!(transfer_entries(&net, PARK, "T-IDEM").await.len(), 1);

    // The gateway names a transfer when the client does not; a replay keeps the name.
    let unnamed = start(
        "start-unnamed",
        "",
        vec![line(SKU, "K1", "chilled-a", "chilled-a", 5)],
    );
    let named = start_transfer(&mut gateway, unnamed.clone()).await;
    assert!(
        named.transfer_id.starts_with("tr-"),
        "{}",
        named.transfer_id
    );
    assert_eq!(
        start_transfer(&mut gateway, unnamed).await.transfer_id,
        named.transfer_id
    );
    assert_eq!(on_hand(&net, PARK, SKU).await, 65);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_transfer_fails_with_the_sources_code_and_moves_nothing() {
    let net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 10).await;
    let mut gateway = net.gateway().await;
    let request = start(
        "start-big",
        "T-BIG",
        vec![line(SKU, "K1", "chilled-a", "chilled-a", 11)],
    );
    let refused = gateway.start_transfer(request.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains(PARK), "{}", refused.message());
    let transfer = gateway
        .get_transfer(pb::GetTransferRequest {
            transfer_id: "T-BIG".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&transfer), pb::TransferState::Failed);
    assert!(
        transfer.last_error.starts_with("FAILED_PRECONDITION: "),
        "{}",
        transfer.last_error
    );
    let replay = gateway.start_transfer(request).await.unwrap_err();
    assert_eq!(replay.code(), Code::FailedPrecondition);
    assert_eq!(on_hand(&net, PARK, SKU).await, 10);
    let receive = receive_transfer(&mut gateway, "receive-big", "T-BIG")
        .await
        .unwrap_err();
    assert_eq!(receive.code(), Code::FailedPrecondition);

    // An unknown lot at the source: its NOT_FOUND.
    let unknown = gateway
        .start_transfer(start(
            "start-unknown",
            "T-UNKNOWN",
            vec![line(SKU, "NO-SUCH-LOT", "chilled-a", "chilled-a", 1)],
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_never_take_more_than_the_source_has() {
    let net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut gateway = net.gateway().await;
        tasks.push(tokio::spawn(async move {
            gateway
                .start_transfer(start(
                    &format!("race-{i}"),
                    &format!("T-RACE-{i}"),
                    vec![line(SKU, "K1", "chilled-a", "chilled-a", 30)],
                ))
                .await
        }));
    }
    let mut started = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(t) => {
                assert_eq!(state(&t.into_inner()), pb::TransferState::InTransit);
                started += 1;
            }
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(started, 3);
    assert_eq!(on_hand(&net, PARK, SKU).await, 10);
    let mut gateway = net.gateway().await;
    let found = gateway
        .find_stock(pb::FindStockRequest {
            sku: SKU.into(),
            site_ids: vec![PARK.into()],
            ..pb::FindStockRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.in_transit.iter().map(|t| t.quantity).sum::<i64>(), 90);
    let failed = gateway
        .list_transfers(pb::ListTransfersRequest {
            states: vec![pb::TransferState::Failed as i32],
            ..pb::ListTransfersRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(failed.transfers.len(), 7);
}
