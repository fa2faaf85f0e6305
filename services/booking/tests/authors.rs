//! Who made each change of a booking: every transition records its author (the principal
//! the server authenticated, "anonymous" on these servers without authentication, and the
//! request's actor), the sweeper's lapses name "system", and bookings stored before authors
//! were kept show what their rows prove by "unknown".
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use coldchain_proto::booking::v1 as pb;
use coldchain_store::ManualClock;
use common::*;
use tonic::Code;

use pb::BookingState as S;

/// (state, principal, actor) of every change, oldest first.
fn changes(b: &pb::Booking) -> Vec<(S, String, String)> {
    b.changes
        .iter()
        .map(|c| {
            let by = c.changed_by.clone().unwrap_or_default();
            (S::try_from(c.state).unwrap(), by.principal, by.actor)
        })
        .collect()
}

fn by(state: S, principal: &str, actor: &str) -> (S, String, String) {
    (state, principal.to_string(), actor.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_records_who_made_it_in_the_answer_the_row_and_the_ledger() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let mut hold = hold_zone("a1", "cust-1", "frozen-a", 2, "2026-12-01", "2026-12-02");
    hold.actor = "Anna, badge 4471".into();
    let held = c.hold_space(hold).await.unwrap().into_inner();
    assert_eq!(
        changes(&held),
        [by(S::Held, "anonymous", "Anna, badge 4471")]
    );
    assert_eq!(held.changes[0].changed_at, held.created_at);

    let id = held.booking_id.clone();
    h.advance(Duration::from_secs(60));
    let mut request = confirm("a2", &id);
    request.actor = "Bo".into();
    c.confirm_booking(request).await.unwrap();
    let mut request = check_in("a3", &id, None);
    request.actor = "Chen".into();
    c.check_in(request).await.unwrap();
    let completed = c
        .complete_booking(complete("a4", &id))
        .await
        .unwrap()
        .into_inner();
    let expected = [
        by(S::Held, "anonymous", "Anna, badge 4471"),
        by(S::Confirmed, "anonymous", "Bo"),
        by(S::CheckedIn, "anonymous", "Chen"),
        by(S::Completed, "anonymous", ""),
    ];
    assert_eq!(changes(&completed), expected);
    assert_eq!(
        completed.changes[1].changed_at,
        Some(ts("2026-12-01T02:01:00Z"))
    );
    assert_eq!(
        completed.changes.last().unwrap().changed_at,
        completed.updated_at
    );

    // The stored row, as GetBooking and ListBookings read it.
    let got = c
        .get_booking(pb::GetBookingRequest {
            booking_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changes(&got), expected);

    // Each ledger entry carries the history up to its change.
    let ledger = h.bookings.ledger(1, 100).unwrap();
    let authors: Vec<_> = ledger
        .iter()
        .map(|e| {
            let last = e.booking.changes.last().unwrap();
            (last.state.name(), last.changed_by.actor.clone())
        })
        .collect();
    assert_eq!(
        authors,
        [
            ("HELD", "Anna, badge 4471".to_string()),
            ("CONFIRMED", "Bo".to_string()),
            ("CHECKED_IN", "Chen".to_string()),
            ("COMPLETED", String::new()),
        ]
    );
    assert_eq!(ledger[3].booking.changes.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_records_its_actor() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let held = c
        .hold_space(hold_zone(
            "c1",
            "cust-1",
            "frozen-a",
            1,
            "2026-12-01",
            "2026-12-01",
        ))
        .await
        .unwrap()
        .into_inner();
    let mut request = cancel("c2", &held.booking_id);
    request.actor = "Dana".into();
    let cancelled = c.cancel_booking(request).await.unwrap().into_inner();
    assert_eq!(
        changes(&cancelled),
        [
            by(S::Held, "anonymous", ""),
            by(S::Cancelled, "anonymous", "Dana")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapses_are_the_systems_changes_read_before_and_after_the_sweep() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let mut hold = hold_zone("l1", "cust-1", "frozen-a", 1, "2026-12-01", "2026-12-01");
    hold.hold_ttl = Some(prost_types::Duration {
        seconds: 60,
        nanos: 0,
    });
    let held = c.hold_space(hold).await.unwrap().into_inner();
    h.advance(Duration::from_secs(120));
    let expected = [by(S::Held, "anonymous", ""), by(S::Expired, "system", "")];
    let get = |c: &mut pb::booking_service_client::BookingServiceClient<_>| {
        let id = held.booking_id.clone();
        let mut c = c.clone();
        async move {
            c.get_booking(pb::GetBookingRequest { booking_id: id })
                .await
                .unwrap()
                .into_inner()
        }
    };
    // Lapsed but not swept: read as the system's change at expires_at.
    let unswept = get(&mut c).await;
    assert_eq!(changes(&unswept), expected);
    assert_eq!(unswept.changes[1].changed_at, held.expires_at);
    assert_eq!(h.bookings.sweep_due().await.unwrap(), 1);
    let swept = get(&mut c).await;
    assert_eq!(changes(&swept), expected);
    let ledger = h.bookings.ledger(1, 100).unwrap();
    let lapse = &ledger.last().unwrap().booking;
    assert_eq!(lapse.changes.last().unwrap().changed_by.principal, "system");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_actor_is_invalid_argument_naming_the_field() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let mut hold = hold_zone("v1", "cust-1", "frozen-a", 1, "2026-12-01", "2026-12-01");
    hold.actor = "a".repeat(129);
    let status = c.hold_space(hold).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["actor"]);
    let mut request = cancel("v2", "BK-1");
    request.actor = "line\nbreak".into();
    let status = c.cancel_booking(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["actor"]);
    for status in [
        c.confirm_booking(pb::ConfirmBookingRequest {
            actor: "\u{7}".into(),
            ..confirm("v3", "BK-1")
        })
        .await
        .unwrap_err(),
        c.check_in(pb::CheckInRequest {
            actor: "\u{7}".into(),
            ..check_in("v4", "BK-1", None)
        })
        .await
        .unwrap_err(),
        c.complete_booking(pb::CompleteBookingRequest {
            actor: "\u{7}".into(),
            ..complete("v5", "BK-1")
        })
        .await
        .unwrap_err(),
    ] {
        assert_eq!(bad_fields(&status), ["actor"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_is_part_of_the_request_a_retry_replays() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let mut hold = hold_zone("r1", "cust-1", "frozen-a", 1, "2026-12-01", "2026-12-01");
    hold.actor = "Anna".into();
    let first = c.hold_space(hold.clone()).await.unwrap().into_inner();
    let again = c.hold_space(hold.clone()).await.unwrap().into_inner();
    assert_eq!(again, first, "the same request replays the same answer");
    // The same request id naming another actor is another request: refused, so no answer
    // shows a change as made by someone who did not ask for it.
    hold.actor = "Bo".into();
    let status = c.hold_space(hold).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["request_id"]);
    assert_eq!(h.bookings.ledger(1, 100).unwrap().len(), 1);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The fixture of `network_ids.rs`: rows and ledger entries as every build before authors
/// stored them (the booking row's format did not change from that build to 16ef299).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_stored_before_authors_show_what_their_rows_prove_by_unknown() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-bk-sequence-ids");
    copy_dir(&fixture, dir.path());
    let clock = ManualClock::at(T0_MS + 60_000);
    let h = Harness::start_in(dir, clock, park(), quiet()).await;
    let mut c = h.client().await;
    let get = |id: &str| pb::GetBookingRequest {
        booking_id: id.to_string(),
    };

    let held = c
        .get_booking(get("BK-000000000001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changes(&held), [by(S::Held, "unknown", "")]);
    assert_eq!(held.changes[0].changed_at, held.created_at);
    let checked = c
        .get_booking(get("BK-000000000004"))
        .await
        .unwrap()
        .into_inner();
    // Its CONFIRMED step is not in the row: only what the row proves is shown.
    assert_eq!(
        changes(&checked),
        [by(S::Held, "unknown", ""), by(S::CheckedIn, "unknown", "")]
    );
    assert_eq!(checked.changes[1].changed_at, checked.updated_at);
    // Old ledger entries still decode, with no recorded changes.
    let ledger = h.bookings.ledger(1, 9).unwrap();
    assert_eq!(ledger.len(), 9);
    assert!(ledger.iter().all(|e| e.booking.changes.is_empty()));
    assert_eq!(
        ledger[0].booking.history()[0].changed_by.principal,
        "unknown"
    );

    // A change of an old booking keeps the proven history and adds the new change.
    let mut request = confirm("m1", "BK-000000000001");
    request.actor = "Eve".into();
    let confirmed = c.confirm_booking(request).await.unwrap().into_inner();
    assert_eq!(
        changes(&confirmed),
        [
            by(S::Held, "unknown", ""),
            by(S::Confirmed, "anonymous", "Eve")
        ]
    );
    let h = h.restart().await;
    let mut c = h.client().await;
    let again = c
        .get_booking(get("BK-000000000001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changes(&again), changes(&confirmed));
}
