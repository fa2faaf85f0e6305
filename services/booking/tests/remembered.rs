//! Which answers are remembered under a request_id (README, Guarantees): a request that
//! executed keeps its outcome, a booking or a refusal, even once the space or the state
//! would allow it; a retry across a restart answers it too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use coldchain_runtime::network::TemperatureClass;
use common::*;
use tonic::{Code, Status};

fn same_status(a: &Status, b: &Status) {
    assert_eq!(
        (a.code(), a.message(), a.details()),
        (b.code(), b.message(), b.details())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_refused_for_want_of_room_stays_refused_once_room_is_freed() {
    let h = Harness::start_site(
        park_with(&[("tiny", TemperatureClass::Frozen, 10)]),
        quiet(),
    )
    .await;
    let mut c = h.client().await;
    let taken = c
        .hold_space(hold_zone(
            "a",
            "cust-1",
            "tiny",
            8,
            "2026-12-02",
            "2026-12-03",
        ))
        .await
        .unwrap()
        .into_inner();
    let late = hold_zone("b", "cust-2", "tiny", 5, "2026-12-02", "2026-12-02");
    let refused = c.hold_space(late.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);

    c.cancel_booking(cancel("cancel-a", &taken.booking_id))
        .await
        .unwrap();
    // Room now, but the request under this id was refused: so it stays, and holds nothing.
    same_status(&refused, &c.hold_space(late.clone()).await.unwrap_err());
    let h = h.restart().await;
    let mut c = h.client().await;
    same_status(&refused, &c.hold_space(late).await.unwrap_err());
    let rows = rows(&mut c, "tiny", "2026-12-02", "2026-12-02").await;
    assert_eq!(rows[0].1, 0, "nothing held: {rows:?}");

    // A transition refused for the booking's state keeps its answer as well.
    let confirm_cancelled = confirm("confirm-a", &taken.booking_id);
    let wrong_state = c
        .confirm_booking(confirm_cancelled.clone())
        .await
        .unwrap_err();
    assert_eq!(wrong_state.code(), Code::FailedPrecondition);
    same_status(
        &wrong_state,
        &c.confirm_booking(confirm_cancelled).await.unwrap_err(),
    );
}
