//! Who made each change: every ledger entry and hold names the call's principal and the
//! actor the request named. These servers run without authentication, so the principal is
//! "anonymous".
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use coldchain_proto::common::v1 as cv1;
use coldchain_proto::inventory::v1 as pb;
use common::*;
use prost::Message;
use tonic::Code;

fn by(principal: &str, actor: &str) -> Option<cv1::Author> {
    Some(cv1::Author {
        principal: principal.into(),
        actor: actor.into(),
    })
}

fn receive(request_id: &str, actor: &str) -> pb::RecordMovementsRequest {
    pb::RecordMovementsRequest {
        actor: actor.into(),
        ..batch(
            request_id,
            vec![receipt("SKU-A", "L-1", CHILLED, 10, date(2026, 6, 1))],
        )
    }
}

#[tokio::test]
async fn movements_name_the_principal_and_the_actor() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let entries = c
        .record_movements(receive("in-1", "j.doe"))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries[0].recorded_by, by("anonymous", "j.doe"));
    // Without an actor, the principal alone.
    let entries = record(&mut c, "out-1", vec![issue("SKU-A", "L-1", CHILLED, 2)])
        .await
        .unwrap();
    assert_eq!(entries[0].recorded_by, by("anonymous", ""));
    // WatchLedger sends the same.
    let fed = ledger(&mut c, 1).await;
    assert_eq!(fed[0].recorded_by, by("anonymous", "j.doe"));
    assert_eq!(fed[1].recorded_by, by("anonymous", ""));
}

#[tokio::test]
async fn a_replay_answers_the_first_calls_author_byte_for_byte() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let first = c
        .record_movements(receive("in-1", "j.doe"))
        .await
        .unwrap()
        .into_inner();
    let again = c
        .record_movements(receive("in-1", "j.doe"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.encode_to_vec(), again.encode_to_vec());
    assert_eq!(again.entries[0].recorded_by, by("anonymous", "j.doe"));
}

#[tokio::test]
async fn the_actor_is_part_of_the_request() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    c.record_movements(receive("in-1", "j.doe")).await.unwrap();
    let reused = c
        .record_movements(receive("in-1", "someone.else"))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(fields(&reused), ["request_id"]);
}

#[tokio::test]
async fn an_invalid_actor_is_refused_on_every_mutating_call() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let bad = "a\u{7}b".to_string();
    let refused = c.record_movements(receive("in-1", &bad)).await.unwrap_err();
    assert_eq!(fields(&refused), ["actor"]);
    let refused = c
        .allocate_stock(pb::AllocateStockRequest {
            actor: bad.clone(),
            ..allocate("a-1", "O-1", 1, pb::AllocationStrategy::Fefo)
        })
        .await
        .unwrap_err();
    assert!(fields(&refused).contains(&"actor".to_string()));
    let refused = c
        .release_allocation(pb::ReleaseAllocationRequest {
            request_id: "r-1".into(),
            order_id: "O-1".into(),
            actor: bad.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&refused), ["actor"]);
    let refused = c
        .place_hold(pb::PlaceHoldRequest {
            request_id: "h-1".into(),
            zone_id: CHILLED.into(),
            reason: "r".into(),
            actor: "x".repeat(129),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&refused), ["actor"]);
    let refused = c
        .release_hold(pb::ReleaseHoldRequest {
            request_id: "h-2".into(),
            hold_id: "hold-1".into(),
            reason: "r".into(),
            actor: bad,
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&refused), ["actor"]);
}

#[tokio::test]
async fn holds_and_allocations_name_who_placed_and_released_them() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    c.record_movements(receive("in-1", "")).await.unwrap();
    let placed = c
        .place_hold(pb::PlaceHoldRequest {
            request_id: "h-1".into(),
            zone_id: CHILLED.into(),
            reason: "excursion".into(),
            actor: "ops.a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.placed_by, by("anonymous", "ops.a"));
    assert_eq!(placed.released_by, None);
    let released = c
        .release_hold(pb::ReleaseHoldRequest {
            request_id: "h-2".into(),
            hold_id: placed.hold_id.clone(),
            reason: "cleared".into(),
            actor: "qa.b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.placed_by, by("anonymous", "ops.a"));
    assert_eq!(released.released_by, by("anonymous", "qa.b"));

    c.allocate_stock(pb::AllocateStockRequest {
        sku: "SKU-A".into(),
        actor: "picker".into(),
        ..allocate("a-1", "O-1", 3, pb::AllocationStrategy::Fefo)
    })
    .await
    .unwrap();
    c.release_allocation(pb::ReleaseAllocationRequest {
        request_id: "r-1".into(),
        order_id: "O-1".into(),
        actor: "planner".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let fed = ledger(&mut c, 1).await;
    let authors: Vec<_> = fed
        .iter()
        .map(|e| (e.kind, e.recorded_by.clone().unwrap().actor))
        .collect();
    assert_eq!(
        authors,
        [
            (pb::LedgerEntryKind::Receipt as i32, String::new()),
            (pb::LedgerEntryKind::HoldPlaced as i32, "ops.a".into()),
            (pb::LedgerEntryKind::HoldReleased as i32, "qa.b".into()),
            (pb::LedgerEntryKind::Allocate as i32, "picker".into()),
            (pb::LedgerEntryKind::Deallocate as i32, "planner".into()),
        ]
    );
}
