//! RecallLot and ReleaseRecall across real services: a recall during a transfer holds the
//! lot at the source at once and the in-transit quantity on arrival; a recall that could
//! not reach a site finishes after a gateway restart, placing each hold exactly once; a
//! release lifts every hold; the recall shows in the lot's trace.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod gateway_support;

use std::time::{Duration, Instant};

use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use gateway_support::*;

const SKU: &str = "citrus-navel";
const LOT: &str = "QY-2026-11";

/// A network of the park and Vientiane only (a recall reaches every site of the network).
async fn two_sites(up: &[(&str, coldchain_runtime::network::ServiceKind)]) -> Net {
    Net::start_with(up, fast_gateway(), |network| {
        network.sites.retain(|s| s.id == PARK || s.id == VIENTIANE);
    })
    .await
}

fn recall_request(request_id: &str, recall_id: &str) -> pb::RecallLotRequest {
    pb::RecallLotRequest {
        request_id: request_id.into(),
        recall_id: recall_id.into(),
        sku: SKU.into(),
        lot_ids: vec![LOT.into()],
        all_lots: false,
        reason: "listeria in the packing line's swab, lab report QA-118".into(),
        actor: "QA officer Li".into(),
        include_derived: false,
    }
}

fn hold_states(answer: &pb::RecallAnswer) -> Vec<(String, pb::RecallHoldState)> {
    answer
        .recall
        .as_ref()
        .unwrap()
        .holds
        .iter()
        .map(|h| {
            (
                h.site_id.clone(),
                pb::RecallHoldState::try_from(h.state).unwrap(),
            )
        })
        .collect()
}

async fn held(net: &Net, site: &str) -> i64 {
    let stock = net
        .inventory(site)
        .await
        .get_stock(inv::GetStockRequest {
            sku: SKU.into(),
            lot_id: LOT.into(),
            zone_id: String::new(),
        })
        .await
        .expect("stock")
        .into_inner();
    stock.levels.iter().map(|l| l.held).sum()
}

/// The site's HOLD_PLACED entries citing the recall.
async fn recall_holds(net: &Net, site: &str, recall_id: &str) -> Vec<inv::LedgerEntry> {
    ledger_where(net, site, |e| {
        e.kind == inv::LedgerEntryKind::HoldPlaced as i32
            && e.reference.as_ref().is_some_and(|r| {
                r.kind == common::ReferenceKind::Recall as i32 && r.id == recall_id
            })
    })
    .await
}

async fn wait_for_hold(
    gateway: &mut Gateway,
    recall_id: &str,
    site: &str,
    wanted: pb::RecallHoldState,
) -> pb::RecallAnswer {
    let started = Instant::now();
    loop {
        let answer = gateway
            .get_recall(pb::GetRecallRequest {
                recall_id: recall_id.into(),
            })
            .await
            .expect("get recall")
            .into_inner();
        if hold_states(&answer).contains(&(site.to_string(), wanted)) {
            return answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{site} never reached {wanted:?}: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recall_during_a_transfer_holds_the_lot_now_and_the_in_transit_part_on_arrival() {
    let net = two_sites(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, LOT, "chilled-a", 100).await;
    let mut gateway = net.gateway().await;
    let shipped = start_transfer(
        &mut gateway,
        start(
            "start-recalled",
            "T-RECALLED",
            vec![line(SKU, LOT, "chilled-a", "chilled-a", 40)],
        ),
    )
    .await;
    assert_eq!(state(&shipped), pb::TransferState::InTransit);

    let answer = gateway
        .recall_lot(recall_request("recall-1", "R-LISTERIA"))
        .await
        .expect("recall")
        .into_inner();
    let recall = answer.recall.clone().unwrap();
    assert_eq!(recall.state, pb::RecallState::Active as i32);
    assert_eq!(recall.started_by.as_ref().unwrap().actor, "QA officer Li");
    assert_eq!(
        hold_states(&answer),
        vec![
            (PARK.to_string(), pb::RecallHoldState::Held),
            (VIENTIANE.to_string(), pb::RecallHoldState::AwaitingArrival),
        ]
    );
    // The park's 60 kg are held now; the 40 kg on the train are named in transit.
    assert_eq!(held(&net, PARK).await, 60);
    assert_eq!(answer.in_transit.len(), 1, "{answer:?}");
    assert_eq!(answer.in_transit[0].quantity, 40);
    assert_eq!(answer.in_transit[0].transfer_id, "T-RECALLED");

    // A replay answers the same recall; the same id for another lot is refused.
    let again = gateway
        .recall_lot(recall_request("recall-1", "R-LISTERIA"))
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(again.recall.unwrap().recall_id, "R-LISTERIA");
    let mut other = recall_request("recall-2", "R-LISTERIA");
    other.lot_ids = vec!["OTHER".into()];
    let taken = gateway.recall_lot(other).await.unwrap_err();
    assert_eq!(taken.code(), tonic::Code::AlreadyExists, "{taken:?}");

    // The goods arrive: Vientiane's 40 kg are held as soon as they are in.
    receive_transfer(&mut gateway, "arrive-recalled", "T-RECALLED")
        .await
        .unwrap();
    wait_for_hold(
        &mut gateway,
        "R-LISTERIA",
        VIENTIANE,
        pb::RecallHoldState::Held,
    )
    .await;
    assert_eq!(held(&net, VIENTIANE).await, 40);
    assert_eq!(recall_holds(&net, VIENTIANE, "R-LISTERIA").await.len(), 1);
    assert_eq!(recall_holds(&net, PARK, "R-LISTERIA").await.len(), 1);

    // The recall is in the lot's trace, with who asked for it.
    let traced = gateway
        .trace_lot(pb::TraceLotRequest {
            sku: SKU.into(),
            lot_id: LOT.into(),
            site_ids: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let recall_entries: Vec<_> = traced
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::trace_event::Event::Entry(entry))
                if entry
                    .reference
                    .as_ref()
                    .is_some_and(|r| r.id == "R-LISTERIA") =>
            {
                Some(e.site_id.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        recall_entries,
        vec![PARK.to_string(), VIENTIANE.to_string()]
    );

    // Released: every hold is lifted, and the stock can move again.
    let released = gateway
        .release_recall(pb::ReleaseRecallRequest {
            request_id: "release-1".into(),
            recall_id: "R-LISTERIA".into(),
            reason: "lab re-test negative, report QA-121".into(),
            actor: "QA officer Li".into(),
        })
        .await
        .expect("release")
        .into_inner();
    let recall = released.recall.unwrap();
    assert_eq!(recall.state, pb::RecallState::Released as i32, "{recall:?}");
    assert_eq!(held(&net, PARK).await, 0);
    assert_eq!(held(&net, VIENTIANE).await, 0);
    let listed = gateway
        .list_recalls(pb::ListRecallsRequest {
            active_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.recalls.is_empty(), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recall_that_could_not_reach_a_site_finishes_after_a_gateway_restart_exactly_once() {
    let mut net = two_sites(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, LOT, "chilled-a", 100).await;
    receive(&net, VIENTIANE, SKU, LOT, "chilled-a", 25).await;
    net.stop_service(VIENTIANE, INVENTORY).await;

    let mut gateway = net.gateway().await;
    let answer = gateway
        .recall_lot(recall_request("recall-restart", "R-RESTART"))
        .await
        .expect("recall")
        .into_inner();
    assert_eq!(
        hold_states(&answer),
        vec![
            (PARK.to_string(), pb::RecallHoldState::Held),
            (VIENTIANE.to_string(), pb::RecallHoldState::Pending),
        ]
    );
    let pending = &answer.recall.as_ref().unwrap().holds[1];
    assert!(pending.last_error.starts_with("UNAVAILABLE"), "{pending:?}");
    assert_eq!(
        answer
            .errors
            .iter()
            .map(|e| e.site_id.as_str())
            .collect::<Vec<_>>(),
        vec![VIENTIANE]
    );

    // The gateway stops with the hold still to place; Vientiane comes back; the gateway
    // restarts on its data and places it by itself.
    net.stop_gateway().await;
    net.start_service(VIENTIANE, INVENTORY).await;
    net.start_gateway().await;
    let mut gateway = net.gateway().await;
    wait_for_hold(
        &mut gateway,
        "R-RESTART",
        VIENTIANE,
        pb::RecallHoldState::Held,
    )
    .await;
    assert_eq!(held(&net, VIENTIANE).await, 25);
    // Exactly once at each site, whatever was retried.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recall_holds(&net, VIENTIANE, "R-RESTART").await.len(), 1);
    assert_eq!(recall_holds(&net, PARK, "R-RESTART").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_recalls_are_refused_and_change_nothing() {
    let net = two_sites(&[(PARK, INVENTORY)]).await;
    let mut gateway = net.gateway().await;
    let mut both = recall_request("bad-1", "");
    both.all_lots = true;
    both.reason = String::new();
    both.actor = "line\nbreak".into();
    let refused = gateway.recall_lot(both).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let mut fields = fields(&refused);
    fields.sort();
    assert_eq!(fields, vec!["actor", "lot_ids", "reason"]);

    let mut none = recall_request("bad-2", "");
    none.lot_ids.clear();
    assert_eq!(
        gateway.recall_lot(none).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    let unknown = gateway
        .release_recall(pb::ReleaseRecallRequest {
            request_id: "release-unknown".into(),
            recall_id: "R-NOPE".into(),
            reason: "x".into(),
            actor: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let listed = gateway
        .list_recalls(pb::ListRecallsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.recalls.is_empty());

    // Every lot of a sku no site has: the recall records, each site answers not present.
    let mut every = recall_request("every-1", "R-EVERY");
    every.lot_ids.clear();
    every.all_lots = true;
    every.sku = "durian-frozen".into();
    let answer = gateway.recall_lot(every).await.unwrap().into_inner();
    assert_eq!(
        hold_states(&answer)[0],
        (PARK.to_string(), pb::RecallHoldState::NotPresent)
    );
}
