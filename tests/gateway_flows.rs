//! Corridor transfers and recalls across real processes: `coldchain serve gateway` and two
//! `coldchain serve inventory` processes. The gateway is SIGKILLed between the saga's steps
//! (while the source, then the destination, is down), restarted on the same data, and
//! finishes every transfer on its own; the stock is conserved across the two sites —
//! the source loses each quantity once, the destination gains it once.
//!
//! Every server requires keys: the test calls the gateway as operations and each inventory
//! as its site's warehouse system; the gateway calls the inventories with its own key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::time::{Duration, Instant};

use coldchain_proto::common::v1 as cc;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_runtime::client::Channel;
use common::{Server, TestNetwork};

const PARK: &str = "cn-huaihua-park";
const VIENTIANE: &str = "la-vientiane";
const SKU: &str = "citrus-navel";

fn start(net: &TestNetwork, service: &str, site: Option<&str>) -> Server {
    tokio::task::block_in_place(|| Server::start(net, service, site))
}

fn kill(server: Server) {
    tokio::task::block_in_place(|| server.kill());
}

async fn inventory(server: &Server) -> InventoryServiceClient<Channel> {
    InventoryServiceClient::new(server.as_warehouse())
}

async fn gateway(server: &Server) -> NetworkServiceClient<Channel> {
    NetworkServiceClient::new(server.channel_as(common::OPERATIONS))
}

async fn on_hand(server: &Server) -> i64 {
    let mut client = inventory(server).await;
    client
        .get_stock(inv::GetStockRequest {
            sku: SKU.into(),
            ..inv::GetStockRequest::default()
        })
        .await
        .map(|r| r.into_inner().totals.map_or(0, |t| t.on_hand))
        .or_else(|s| {
            if s.code() == tonic::Code::NotFound {
                Ok(0)
            } else {
                Err(s)
            }
        })
        .expect("get stock")
}

/// The site's whole ledger, read with WatchLedger.
async fn ledger(server: &Server) -> Vec<inv::LedgerEntry> {
    let mut client = inventory(server).await;
    let mut stream = client
        .watch_ledger(inv::WatchLedgerRequest { from_sequence: 1 })
        .await
        .expect("watch ledger")
        .into_inner();
    let mut out = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the ledger answers")
            .expect("the ledger stream")
            .expect("a message");
        let head = message.head_sequence;
        out.extend(message.entries);
        if out.last().map_or(0, |e| e.sequence) >= head {
            return out;
        }
    }
}

/// The site's ledger entries of kind `kind`, per transfer id.
async fn transfer_entries(server: &Server, kind: inv::LedgerEntryKind) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = ledger(server)
        .await
        .into_iter()
        .filter(|e| e.kind == kind as i32)
        .map(|e| (e.transfer_id, e.delta))
        .collect();
    out.sort();
    out
}

/// The site's HOLD_PLACED entries citing `recall_id`.
async fn recall_holds(server: &Server, recall_id: &str) -> usize {
    ledger(server)
        .await
        .iter()
        .filter(|e| {
            e.kind == inv::LedgerEntryKind::HoldPlaced as i32
                && e.reference.as_ref().is_some_and(|r| {
                    r.kind == cc::ReferenceKind::Recall as i32 && r.id == recall_id
                })
        })
        .count()
}

fn transfer(request_id: &str, transfer_id: &str, quantity: i64) -> pb::StartTransferRequest {
    pb::StartTransferRequest {
        request_id: request_id.into(),
        transfer_id: transfer_id.into(),
        source_site_id: PARK.into(),
        destination_site_id: VIENTIANE.into(),
        lines: vec![pb::TransferLine {
            sku: SKU.into(),
            lot_id: "QY-2026-11".into(),
            source_zone_id: "chilled-a".into(),
            destination_zone_id: "chilled-a".into(),
            quantity,
            unit: "kg".into(),
            lot: None,
        }],
        train_or_route: "China-Laos express X8011".into(),
        ..pb::StartTransferRequest::default()
    }
}

fn state(t: &pb::Transfer) -> pb::TransferState {
    pb::TransferState::try_from(t.state).expect("a known state")
}

async fn wait_for(
    gateway_server: &Server,
    transfer_id: &str,
    wanted: pb::TransferState,
) -> pb::Transfer {
    let mut client = gateway(gateway_server).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = client
            .get_transfer(pb::GetTransferRequest {
                transfer_id: transfer_id.into(),
            })
            .await
            .expect("get transfer")
            .into_inner();
        if state(&t) == wanted {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{transfer_id} still {:?} ({:?})",
            state(&t),
            t.last_error
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_survive_sigkill_of_the_gateway_between_steps() {
    let net = TestNetwork::new();
    let park = start(&net, "inventory", Some(PARK));
    let vientiane = start(&net, "inventory", Some(VIENTIANE));
    let gw = start(&net, "gateway", None);

    inventory(&park)
        .await
        .record_movements(inv::RecordMovementsRequest {
            request_id: "receipt-citrus".into(),
            movements: vec![inv::Movement {
                kind: inv::MovementKind::Receipt as i32,
                sku: SKU.into(),
                lot: Some(inv::LotInfo {
                    lot_id: "QY-2026-11".into(),
                    expiry: Some(cc::Date {
                        year: 2099,
                        month: 3,
                        day: 31,
                    }),
                    production: None,
                    origin: "Qianyang, Hunan".into(),
                }),
                zone_id: "chilled-a".into(),
                quantity: 100,
                unit: "kg".into(),
                ..inv::Movement::default()
            }],
            actor: Default::default(),
        })
        .await
        .expect("receipt");

    // 1. The source is down: the transfer is recorded REQUESTED, then the gateway dies.
    kill(park);
    let requested = gateway(&gw)
        .await
        .start_transfer(transfer("start-a", "X8011-A", 25))
        .await
        .expect("recorded even with the source down")
        .into_inner();
    assert_eq!(
        state(&requested),
        pb::TransferState::Requested,
        "{requested:?}"
    );
    assert!(
        requested.last_error.starts_with("UNAVAILABLE"),
        "{}",
        requested.last_error
    );
    kill(gw);
    let park = start(&net, "inventory", Some(PARK));
    let gw = start(&net, "gateway", None);
    let shipped = wait_for(&gw, "X8011-A", pb::TransferState::InTransit).await;
    assert!(
        shipped.lines[0]
            .lot
            .as_ref()
            .is_some_and(|l| l.expiry.is_some())
    );
    assert_eq!(on_hand(&park).await, 75);

    // 2. A second transfer ships at once; the destination is down on arrival: both wait
    //    in RECEIVING when the gateway dies.
    let second = gateway(&gw)
        .await
        .start_transfer(transfer("start-b", "X8011-B", 40))
        .await
        .expect("started")
        .into_inner();
    assert_eq!(state(&second), pb::TransferState::InTransit, "{second:?}");
    assert_eq!(on_hand(&park).await, 35);
    kill(vientiane);
    for (request_id, transfer_id) in [("receive-a", "X8011-A"), ("receive-b", "X8011-B")] {
        let receiving = gateway(&gw)
            .await
            .receive_transfer(pb::ReceiveTransferRequest {
                request_id: request_id.into(),
                transfer_id: transfer_id.into(),
                actor: Default::default(),
            })
            .await
            .expect("arrival recorded")
            .into_inner();
        assert_eq!(
            state(&receiving),
            pb::TransferState::Receiving,
            "{receiving:?}"
        );
        assert!(!receiving.last_error.is_empty());
    }
    kill(gw);
    let vientiane = start(&net, "inventory", Some(VIENTIANE));
    let gw = start(&net, "gateway", None);
    wait_for(&gw, "X8011-A", pb::TransferState::Completed).await;
    wait_for(&gw, "X8011-B", pb::TransferState::Completed).await;

    // 3. Stock conserved: out once at the source, in once at the destination.
    assert_eq!(on_hand(&park).await, 35);
    assert_eq!(on_hand(&vientiane).await, 65);
    assert_eq!(
        transfer_entries(&park, inv::LedgerEntryKind::TransferOut).await,
        [("X8011-A".to_string(), -25), ("X8011-B".to_string(), -40)]
    );
    assert_eq!(
        transfer_entries(&vientiane, inv::LedgerEntryKind::TransferIn).await,
        [("X8011-A".to_string(), 25), ("X8011-B".to_string(), 40)]
    );
    let again = gateway(&gw)
        .await
        .receive_transfer(pb::ReceiveTransferRequest {
            request_id: "receive-a-again".into(),
            transfer_id: "X8011-A".into(),
            actor: Default::default(),
        })
        .await
        .expect_err("a completed transfer is not received twice");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    assert_eq!(on_hand(&vientiane).await, 65);
    let in_transit = gateway(&gw)
        .await
        .find_stock(pb::FindStockRequest {
            sku: SKU.into(),
            site_ids: vec![PARK.into(), VIENTIANE.into()],
            ..pb::FindStockRequest::default()
        })
        .await
        .expect("find stock")
        .into_inner();
    assert!(in_transit.in_transit.is_empty());
    assert!(in_transit.failures.is_empty());
    assert_eq!(in_transit.sites[1].zones[0].on_hand, 65);
}

/// A recall's hold at a site that is down waits; the gateway is SIGKILLed with it still to
/// place; restarted on its data, the gateway places it by itself once the site is back.
/// Each site holds the lot exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recall_survives_sigkill_of_the_gateway_and_holds_each_site_once() {
    let net = TestNetwork::new();
    let park = start(&net, "inventory", Some(PARK));
    let vientiane = start(&net, "inventory", Some(VIENTIANE));
    let gw = start(&net, "gateway", None);
    for (server, quantity) in [(&park, 100), (&vientiane, 25)] {
        inventory(server)
            .await
            .record_movements(inv::RecordMovementsRequest {
                request_id: format!("receipt-{quantity}"),
                movements: vec![inv::Movement {
                    kind: inv::MovementKind::Receipt as i32,
                    sku: SKU.into(),
                    lot: Some(common::lasting_lot("QY-RECALL")),
                    zone_id: "chilled-a".into(),
                    quantity,
                    unit: "kg".into(),
                    ..inv::Movement::default()
                }],
                actor: Default::default(),
            })
            .await
            .expect("receipt");
    }
    kill(vientiane);
    let recall = |request_id: &str| pb::RecallLotRequest {
        request_id: request_id.into(),
        recall_id: "R-KILL".into(),
        sku: SKU.into(),
        lot_ids: vec!["QY-RECALL".into()],
        all_lots: false,
        reason: "supplier notice 12".into(),
        actor: "QA".into(),
        include_derived: false,
    };
    let answer = gateway(&gw)
        .await
        .recall_lot(recall("recall-kill"))
        .await
        .expect("recorded with a site down")
        .into_inner();
    let state_at = |answer: &pb::RecallAnswer, site: &str| {
        answer
            .recall
            .as_ref()
            .unwrap()
            .holds
            .iter()
            .find(|h| h.site_id == site)
            .map(|h| pb::RecallHoldState::try_from(h.state).unwrap())
    };
    assert_eq!(state_at(&answer, PARK), Some(pb::RecallHoldState::Held));
    assert_eq!(
        state_at(&answer, VIENTIANE),
        Some(pb::RecallHoldState::Pending)
    );
    kill(gw);

    let vientiane = start(&net, "inventory", Some(VIENTIANE));
    let gw = start(&net, "gateway", None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = gateway(&gw)
            .await
            .get_recall(pb::GetRecallRequest {
                recall_id: "R-KILL".into(),
            })
            .await
            .expect("get recall")
            .into_inner();
        if state_at(&answer, VIENTIANE) == Some(pb::RecallHoldState::Held) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not held at Vientiane: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A retry of the call answers the same recall and places nothing again.
    gateway(&gw)
        .await
        .recall_lot(recall("recall-kill"))
        .await
        .expect("replay");
    assert_eq!(recall_holds(&park, "R-KILL").await, 1);
    assert_eq!(recall_holds(&vientiane, "R-KILL").await, 1);
}
