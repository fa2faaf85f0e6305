//! The quantity bound through the service: a movement or a position above
//! `MAX_QUANTITY` (10^12 base units) is refused, and every total the service reports over
//! positions at the bound is exact (never saturated at 2^63 − 1).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use coldchain_inventory::domain::MAX_QUANTITY;
use coldchain_proto::inventory::v1 as pb;
use common::*;
use tonic::Code;

fn jun30() -> coldchain_proto::common::v1::Date {
    date(2026, 6, 30)
}

#[tokio::test]
async fn movements_above_the_bound_are_refused_naming_the_field_and_bound() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let status = record(
        &mut c,
        "big",
        vec![receipt("SKU-A", "L1", CHILLED, MAX_QUANTITY + 1, jun30())],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["movements[0].quantity"]);
    assert!(
        status.message().contains(&MAX_QUANTITY.to_string()),
        "{}",
        status.message()
    );
    let count = pb::Movement {
        expected_version: Some(0),
        ..movement(
            pb::MovementKind::Count,
            "SKU-A",
            "L1",
            CHILLED,
            MAX_QUANTITY + 1,
        )
    };
    let status = record(&mut c, "big-count", vec![count]).await.unwrap_err();
    assert_eq!(fields(&status), ["movements[0].quantity"]);

    // A full position takes no more: the resulting balance is the precondition.
    record(
        &mut c,
        "full",
        vec![receipt("SKU-A", "L1", CHILLED, MAX_QUANTITY, jun30())],
    )
    .await
    .unwrap();
    let status = record(
        &mut c,
        "one-more",
        vec![receipt("SKU-A", "L1", CHILLED, 1, jun30())],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("largest balance"),
        "{}",
        status.message()
    );
    assert_eq!(
        level(&mut c, "SKU-A", "L1", CHILLED).await.on_hand,
        MAX_QUANTITY
    );
}

#[tokio::test]
async fn totals_of_positions_at_the_bound_are_exact() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let full = |zone: &str, lot: &str| receipt("SKU-A", lot, zone, MAX_QUANTITY, jun30());
    record(
        &mut c,
        "fill",
        vec![
            full(CHILLED, "L1"),
            full(FROZEN, "L1"),
            full(PHARMA, "L1"),
            full(CHILLED, "L2"),
        ],
    )
    .await
    .unwrap();
    let totals = stock(&mut c, "SKU-A", "", "")
        .await
        .unwrap()
        .totals
        .unwrap();
    assert_eq!(totals.on_hand, 4 * MAX_QUANTITY);
    assert_eq!(totals.available, 4 * MAX_QUANTITY);

    let hold = c
        .place_hold(pb::PlaceHoldRequest {
            request_id: "hold-all".into(),
            sku: "SKU-A".into(),
            reason: "qa".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hold.position_count, 4);
    assert_eq!(hold.held_quantities[0].quantity, 4 * MAX_QUANTITY);

    let page = c
        .list_stock(pb::ListStockRequest {
            sku: "SKU-A".into(),
            summarize_by_expiry: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let held: i64 = page.expiry_summary.iter().map(|row| row.held).sum();
    let on_hand: i64 = page.expiry_summary.iter().map(|row| row.on_hand).sum();
    assert_eq!((on_hand, held), (4 * MAX_QUANTITY, 4 * MAX_QUANTITY));

    // An allocation asking for more than there is learns the exact allocatable quantity
    // (none here: everything is held), and one within it succeeds once released.
    c.release_hold(pb::ReleaseHoldRequest {
        request_id: "release-all".into(),
        hold_id: hold.hold_id,
        reason: "passed".into(),
        actor: Default::default(),
    })
    .await
    .unwrap();
    let status = c
        .allocate_stock(pb::AllocateStockRequest {
            request_id: "alloc-max".into(),
            order_id: "O-1".into(),
            sku: "SKU-A".into(),
            quantity: i64::MAX,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status
            .message()
            .contains(&format!("only {} could", 4 * MAX_QUANTITY)),
        "{}",
        status.message()
    );
}
