//! Which answers are remembered under a request_id (README, Guarantees): a request that
//! executed keeps its outcome, answer or refusal; one refused before it executed does not.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use coldchain_proto::inventory::v1 as pb;
use common::*;
use tonic::{Code, Status};

fn transfer_out(quantity: i64) -> pb::Movement {
    pb::Movement {
        other_site_id: "la-vientiane".into(),
        transfer_id: "T-7".into(),
        ..movement(
            pb::MovementKind::TransferOut,
            "KIWI",
            "L-1",
            CHILLED,
            quantity,
        )
    }
}

fn same_status(a: &Status, b: &Status) {
    assert_eq!(
        (a.code(), a.message(), a.details()),
        (b.code(), b.message(), b.details())
    );
}

#[tokio::test]
async fn a_refused_transfer_out_stays_refused_after_stock_arrives() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let expiry = date(2026, 6, 30);
    record(
        &mut c,
        "in-3",
        vec![receipt("KIWI", "L-1", CHILLED, 3, expiry)],
    )
    .await
    .unwrap();
    let refused = record(&mut c, "out-5", vec![transfer_out(5)])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("available 3"), "{refused:?}");

    record(
        &mut c,
        "in-10",
        vec![receipt("KIWI", "L-1", CHILLED, 10, expiry)],
    )
    .await
    .unwrap();
    // The very same request, which would pass now: the first answer, nothing debited.
    let again = record(&mut c, "out-5", vec![transfer_out(5)])
        .await
        .unwrap_err();
    same_status(&refused, &again);
    assert_eq!(level(&mut c, "KIWI", "L-1", CHILLED).await.on_hand, 13);
    assert_eq!(ledger(&mut c, 1).await.len(), 2);
    // The id stays that request's: a different request under it is refused as reuse.
    let reused = record(&mut c, "out-5", vec![transfer_out(4)])
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(fields(&reused), ["request_id"]);

    // Allocations and holds follow the same rule.
    let allocate = pb::AllocateStockRequest {
        request_id: "alloc-20".into(),
        order_id: "O-1".into(),
        sku: "KIWI".into(),
        quantity: 20,
        ..Default::default()
    };
    let short = c.allocate_stock(allocate.clone()).await.unwrap_err();
    assert_eq!(short.code(), Code::FailedPrecondition);
    record(
        &mut c,
        "in-more",
        vec![receipt("KIWI", "L-1", CHILLED, 50, expiry)],
    )
    .await
    .unwrap();
    same_status(&short, &c.allocate_stock(allocate).await.unwrap_err());
    assert_eq!(level(&mut c, "KIWI", "L-1", CHILLED).await.allocated, 0);
}

#[tokio::test]
async fn an_unknown_thing_is_remembered_as_not_found() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let release = pb::ReleaseHoldRequest {
        request_id: "rel-1".into(),
        hold_id: "H-404".into(),
        reason: "checked".into(),
        actor: Default::default(),
    };
    let first = c.release_hold(release.clone()).await.unwrap_err();
    assert_eq!(first.code(), Code::NotFound);
    same_status(&first, &c.release_hold(release).await.unwrap_err());
}

#[tokio::test]
async fn a_request_refused_before_it_executed_can_be_corrected_under_its_id() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    // Malformed: no quantity. Refused by form, before anything executed.
    let malformed = record(
        &mut c,
        "fix-me",
        vec![receipt("KIWI", "L-1", CHILLED, 0, date(2026, 6, 30))],
    )
    .await
    .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    // Corrected under the same id: executes.
    let entries = record(
        &mut c,
        "fix-me",
        vec![receipt("KIWI", "L-1", CHILLED, 4, date(2026, 6, 30))],
    )
    .await
    .unwrap();
    assert_eq!(entries[0].delta, 4);
}
