//! The gateway's transfer saga recovering, against the real site services in-process on
//! 127.0.0.1: a transfer interrupted by a gateway restart, requested while its source is
//! down, or cut by a crash between the source's record and the gateway's, finishes once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod gateway_support;

use std::time::Duration;

use coldchain_proto::network::v1 as pb;
use coldchain_runtime::idempotency::{Idempotent, Refusals, fingerprint_of};
use coldchain_runtime::network::TemperatureClass;
use gateway_support::*;
use tonic::Code;

const SKU: &str = "kiwi-hongyang";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_interrupted_by_a_gateway_restart_completes_exactly_once() {
    // The destination's inventory is down when the goods arrive.
    let mut net = Net::start(&[(PARK, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    let mut gateway = net.gateway().await;
    let t = start_transfer(
        &mut gateway,
        start(
            "start-r",
            "T-RESTART",
            vec![line(SKU, "K1", "chilled-a", "chilled-a", 40)],
        ),
    )
    .await;
    assert_eq!(state(&t), pb::TransferState::InTransit);
    let receiving = receive_transfer(&mut gateway, "receive-r", "T-RESTART")
        .await
        .unwrap();
    assert_eq!(state(&receiving), pb::TransferState::Receiving);
    assert!(
        receiving.last_error.starts_with("UNAVAILABLE"),
        "{}",
        receiving.last_error
    );

    // The gateway stops between the steps; the destination comes up; a new gateway on the
    // same data finishes the transfer on its own.
    net.stop_gateway().await;
    net.start_service(VIENTIANE, INVENTORY).await;
    net.start_gateway().await;
    let mut gateway = net.gateway().await;
    let done = wait_for_state(
        &mut gateway,
        "T-RESTART",
        pb::TransferState::Completed,
        Duration::from_secs(10),
    )
    .await;
    assert!(done.last_error.is_empty());
    assert_eq!(on_hand(&net, PARK, SKU).await, 60);
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 40);

    // Repeats change nothing.
    assert_eq!(
        state(
            &receive_transfer(&mut gateway, "receive-r", "T-RESTART")
                .await
                .unwrap()
        ),
        pb::TransferState::Completed
    );
    let again = receive_transfer(&mut gateway, "receive-r2", "T-RESTART")
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(
        on_hand(&net, VIENTIANE, SKU).await,
        40,
        "received exactly once"
    );
    assert_eq!(transfer_entries(&net, PARK, "T-RESTART").await.len(), 1);
    assert_eq!(
        transfer_entries(&net, VIENTIANE, "T-RESTART").await.len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_requested_while_the_source_is_down_ships_after_a_restart() {
    let mut net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    net.stop_service(PARK, INVENTORY).await;
    let mut gateway = net.gateway().await;
    let t = start_transfer(
        &mut gateway,
        start(
            "start-s",
            "T-SOURCE",
            vec![line(SKU, "K1", "chilled-a", "chilled-a", 25)],
        ),
    )
    .await;
    assert_eq!(state(&t), pb::TransferState::Requested, "{t:?}");
    assert!(t.last_error.starts_with("UNAVAILABLE"), "{}", t.last_error);
    let refused = receive_transfer(&mut gateway, "receive-s0", "T-SOURCE")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "not shipped yet");

    net.stop_gateway().await;
    net.start_service(PARK, INVENTORY).await;
    net.start_gateway().await;
    let mut gateway = net.gateway().await;
    wait_for_state(
        &mut gateway,
        "T-SOURCE",
        pb::TransferState::InTransit,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(on_hand(&net, PARK, SKU).await, 75);
    let done = receive_transfer(&mut gateway, "receive-s", "T-SOURCE")
        .await
        .unwrap();
    assert_eq!(state(&done), pb::TransferState::Completed);
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 25);
    assert_eq!(transfer_entries(&net, PARK, "T-SOURCE").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_after_the_source_recorded_but_before_the_gateway_did_ships_once() {
    let mut net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    net.stop_gateway().await;

    // What a gateway that crashed right after the source's answer leaves behind: the
    // transfer REQUESTED in its store, the TRANSFER_OUT recorded at the source.
    {
        let transfers = stopped_gateway_store(&net).await;
        let spec = coldchain_gateway::domain::TransferSpec {
            transfer_id: Some("T-CRASH".into()),
            source_site_id: PARK.into(),
            destination_site_id: VIENTIANE.into(),
            lines: vec![coldchain_gateway::domain::Line {
                sku: SKU.into(),
                lot_id: "K1".into(),
                source_zone_id: "chilled-a".into(),
                destination_zone_id: "chilled-a".into(),
                quantity: 35,
                unit: "kg".into(),
                lot: None,
            }],
            reefer_sensor_id: String::new(),
            reefer_container_id: String::new(),
            reefer_class: TemperatureClass::Chilled,
            train_or_route: String::new(),
        };
        transfers
            .create(
                Idempotent::new(
                    &fingerprint_of("crash-start", &String::from("crash")),
                    &coldchain_gateway::wire::TransferRefCodec,
                    &Refusals,
                ),
                spec,
                coldchain_gateway::domain::Author::new("ops", "crash test"),
            )
            .await
            .expect("recorded");
        let transfer = transfers.get("T-CRASH").unwrap().unwrap();
        let mut park = net.inventory(PARK).await;
        park.record_movements(coldchain_gateway::wire::transfer_out_request(&transfer))
            .await
            .expect("the source recorded the transfer out");
        transfers.raw().close();
    }
    assert_eq!(on_hand(&net, PARK, SKU).await, 65);

    net.start_gateway().await;
    let mut gateway = net.gateway().await;
    let shipped = wait_for_state(
        &mut gateway,
        "T-CRASH",
        pb::TransferState::InTransit,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        shipped.lines[0].lot.as_ref().unwrap().expiry,
        Some(date(2099, 12, 31))
    );
    assert_eq!(
        on_hand(&net, PARK, SKU).await,
        65,
        "the retry replayed; the stock left once"
    );
    assert_eq!(transfer_entries(&net, PARK, "T-CRASH").await.len(), 1);
    receive_transfer(&mut gateway, "receive-crash", "T-CRASH")
        .await
        .unwrap();
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 35);
}
