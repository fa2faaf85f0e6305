//! Lapses over gRPC: expired holds, no-shows, the closing of ended days, data of older
//! formats, and the background sweeper.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use coldchain_booking::BookingOptions;
use coldchain_proto::booking::v1 as pb;
use coldchain_runtime::network::TemperatureClass;
use common::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_holds_release_their_space_before_and_after_the_sweep() {
    let h = Harness::start_site(
        park_with(&[("tiny", TemperatureClass::Frozen, 10)]),
        quiet(),
    )
    .await;
    let mut c = h.client().await;
    let ttl = |mut r: pb::HoldSpaceRequest, seconds| {
        r.hold_ttl = Some(prost_types::Duration { seconds, nanos: 0 });
        r
    };
    let a = c
        .hold_space(ttl(
            hold_zone("a", "c1", "tiny", 10, "2026-12-02", "2026-12-02"),
            60,
        ))
        .await
        .unwrap()
        .into_inner();
    let b = c
        .hold_space(ttl(
            hold_zone("b", "c1", "pharma-a", 7, "2026-12-02", "2026-12-03"),
            120,
        ))
        .await
        .unwrap()
        .into_inner();
    let edge = c
        .hold_space(ttl(
            hold_zone("e", "c1", "pharma-a", 1, "2026-12-02", "2026-12-02"),
            60,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.expires_at, Some(ts("2026-12-01T02:01:00Z")));

    // At expires_at exactly the hold is still good.
    h.set_ms(ms("2026-12-01T02:01:00Z"));
    let confirmed = c
        .confirm_booking(confirm("ce", &edge.booking_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&confirmed), pb::BookingState::Confirmed);

    // One millisecond later it reads EXPIRED everywhere, before any sweep.
    h.set_ms(ms("2026-12-01T02:01:00.001Z"));
    let ledger_len = h.bookings.ledger(1, 1000).unwrap().len();
    let got = c
        .get_booking(pb::GetBookingRequest {
            booking_id: a.booking_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&got), pb::BookingState::Expired);
    assert_eq!(got.updated_at, a.expires_at);
    let expired = list_all(
        &mut c,
        pb::ListBookingsRequest {
            states: vec![pb::BookingState::Expired as i32],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        expired
            .iter()
            .map(|b| b.booking_id.as_str())
            .collect::<Vec<_>>(),
        [a.booking_id.as_str()]
    );
    let held = list_all(
        &mut c,
        pb::ListBookingsRequest {
            states: vec![pb::BookingState::Held as i32],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        held.iter()
            .map(|b| b.booking_id.as_str())
            .collect::<Vec<_>>(),
        [b.booking_id.as_str()]
    );
    assert_eq!(
        rows(&mut c, "tiny", "2026-12-02", "2026-12-02").await,
        vec![row("2026-12-02", 0, 0, 0, 10)]
    );
    assert_eq!(
        h.bookings.ledger(1, 1000).unwrap().len(),
        ledger_len,
        "nothing was swept yet"
    );

    let status = c
        .confirm_booking(confirm("ca", &a.booking_id))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("hold expired"),
        "{}",
        status.message()
    );
    let status = c
        .cancel_booking(cancel("xa", &a.booking_id))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("is EXPIRED"),
        "{}",
        status.message()
    );

    // A new hold gets the whole zone back: the hold's own write lapses the due booking.
    let d = c
        .hold_space(hold_zone("d", "c2", "tiny", 10, "2026-12-02", "2026-12-02"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&d), pb::BookingState::Held);
    let ledger = h.bookings.ledger(1, 1000).unwrap();
    let lapse = ledger
        .iter()
        .find(|e| e.booking.booking_id == a.booking_id && e.booking.state.name() == "EXPIRED");
    assert!(lapse.is_some(), "the hold's write stored the expiry");

    // The sweeper stores the other lapse; a second sweep finds nothing.
    h.set_ms(ms("2026-12-01T02:02:00.001Z"));
    assert_eq!(
        rows(&mut c, "pharma-a", "2026-12-02", "2026-12-03").await,
        vec![
            row("2026-12-02", 0, 1, 0, 599),
            row("2026-12-03", 0, 0, 0, 600)
        ]
    );
    assert_eq!(h.bookings.sweep_due().await.unwrap(), 1);
    assert_eq!(h.bookings.sweep_due().await.unwrap(), 0);
    let last = h.bookings.ledger(1, 1000).unwrap().pop().unwrap();
    assert_eq!(
        (last.booking.booking_id.as_str(), last.booking.state.name()),
        (b.booking_id.as_str(), "EXPIRED")
    );
    assert_eq!(
        rows(&mut c, "pharma-a", "2026-12-02", "2026-12-03").await,
        vec![
            row("2026-12-02", 0, 1, 0, 599),
            row("2026-12-03", 0, 0, 0, 600)
        ]
    );
    assert!(h.bookings.audit().await.unwrap().is_empty());
    assert_counters_match_bookings(&mut c, &h.site, "2026-12-01", "2026-12-05").await;

    // A hold never outlives the check-in deadline of its first day.
    let long = c
        .hold_space(ttl(
            hold_zone("long", "c3", "pharma-a", 1, "2026-12-01", "2026-12-01"),
            24 * 3600,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(long.expires_at, Some(ts("2026-12-01T22:00:00Z")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_bookings_not_checked_in_become_no_shows() {
    let options = BookingOptions {
        no_show_grace: Duration::from_secs(2 * 3600),
        ..quiet()
    };
    let h = Harness::start_site(park(), options).await;
    let mut c = h.client().await;
    let p = c
        .hold_space(hold_zone(
            "p",
            "c1",
            "pharma-a",
            4,
            "2026-12-01",
            "2026-12-03",
        ))
        .await
        .unwrap()
        .into_inner();
    let q = c
        .hold_space(hold_zone(
            "q",
            "c1",
            "pharma-a",
            4,
            "2026-12-01",
            "2026-12-03",
        ))
        .await
        .unwrap()
        .into_inner();
    let p = c
        .confirm_booking(confirm("cp", &p.booking_id))
        .await
        .unwrap()
        .into_inner();
    c.confirm_booking(confirm("cq", &q.booking_id))
        .await
        .unwrap();
    // End of 12-01 in Shanghai (16:00Z) + the 2 h grace given to the service.
    assert_eq!(p.check_in_deadline, Some(ts("2026-12-01T18:00:00Z")));

    h.set_ms(ms("2026-12-01T18:00:00Z"));
    c.check_in(check_in("iq", &q.booking_id, None))
        .await
        .expect("on the deadline it may still check in");

    h.set_ms(ms("2026-12-01T18:00:00.001Z"));
    let got = c
        .get_booking(pb::GetBookingRequest {
            booking_id: p.booking_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&got), pb::BookingState::NoShow);
    assert_eq!(got.updated_at, p.check_in_deadline);
    // Its space is free before any sweep (today is 12-02 in Shanghai now).
    assert_eq!(
        rows(&mut c, "pharma-a", "2026-12-02", "2026-12-03").await,
        vec![
            row("2026-12-02", 0, 0, 4, 596),
            row("2026-12-03", 0, 0, 4, 596)
        ]
    );
    let status = c
        .check_in(check_in("ip", &p.booking_id, None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("is NO_SHOW"),
        "{}",
        status.message()
    );
    let status = c
        .cancel_booking(cancel("xp", &p.booking_id))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("is NO_SHOW"),
        "{}",
        status.message()
    );

    assert_eq!(h.bookings.sweep_due().await.unwrap(), 1);
    let last = h.bookings.ledger(1, 1000).unwrap().pop().unwrap();
    assert_eq!(
        (last.booking.booking_id.as_str(), last.booking.state.name()),
        (p.booking_id.as_str(), "NO_SHOW")
    );
    assert_eq!(h.bookings.sweep_due().await.unwrap(), 0);
    assert!(h.bookings.audit().await.unwrap().is_empty());
    assert_counters_match_bookings(&mut c, &h.site, "2026-12-02", "2026-12-05").await;
}

/// A confirmed booking gets its due row only once its first day has ended (the day is
/// closed): this checks that closing, and a confirm or check-in after it, keep no-shows
/// exact, with restarts in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_shows_stay_exact_when_the_first_day_is_closed_before_the_deadline() {
    let options = BookingOptions {
        no_show_grace: Duration::from_secs(2 * 3600),
        ..quiet()
    };
    let h = Harness::start_site(park(), options).await;
    let mut c = h.client().await;
    let hold = |request: &str, pallets, last: &str| {
        let mut r = hold_zone(request, "c1", "pharma-a", pallets, "2026-12-01", last);
        r.hold_ttl = Some(prost_types::Duration {
            seconds: 24 * 3600,
            nanos: 0,
        });
        r
    };
    // `gone` is confirmed before its day ends and never arrives; `arrives` is checked in
    // after its day was closed, within the grace; `late` is held before the day ends and
    // confirmed after it was closed.
    let gone = c.hold_space(hold("g", 4, "2026-12-03")).await.unwrap();
    let gone = gone.into_inner().booking_id;
    c.confirm_booking(confirm("cg", &gone)).await.unwrap();
    let arrives = c.hold_space(hold("a", 4, "2026-12-01")).await.unwrap();
    let arrives = arrives.into_inner().booking_id;
    c.confirm_booking(confirm("ca", &arrives)).await.unwrap();
    let late = c.hold_space(hold("l", 4, "2026-12-03")).await.unwrap();
    let late = late.into_inner().booking_id;

    // 12-01 has ended in Shanghai (16:00Z); the deadline is 18:00Z. The sweep closes the
    // day and nothing lapses yet.
    h.set_ms(ms("2026-12-01T16:30:00Z"));
    assert_eq!(h.bookings.sweep_due().await.unwrap(), 0);
    let h = h.restart().await;
    let mut c = h.client().await;
    c.confirm_booking(confirm("cl", &late)).await.unwrap();
    c.check_in(check_in("ia", &arrives, None)).await.unwrap();
    let h = h.restart().await;
    let mut c = h.client().await;

    h.set_ms(ms("2026-12-01T18:00:00.001Z"));
    assert_eq!(
        rows(&mut c, "pharma-a", "2026-12-02", "2026-12-03").await,
        vec![
            row("2026-12-02", 0, 0, 0, 600),
            row("2026-12-03", 0, 0, 0, 600)
        ],
        "both no-shows' space is free before any sweep"
    );
    // A hold needing every position of those days lapses both inside its own write.
    c.hold_space(hold_zone(
        "all",
        "c2",
        "pharma-a",
        600,
        "2026-12-02",
        "2026-12-03",
    ))
    .await
    .expect("the no-shows' space is free for a hold");
    let states: BTreeMap<String, String> = h
        .bookings
        .ledger(1, 1000)
        .unwrap()
        .into_iter()
        .map(|e| (e.booking.booking_id, e.booking.state.name().to_string()))
        .collect();
    assert_eq!(states[&gone], "NO_SHOW");
    assert_eq!(states[&late], "NO_SHOW");
    assert_eq!(states[&arrives], "CHECKED_IN");
    assert_eq!(h.bookings.sweep_due().await.unwrap(), 0);
    assert!(h.bookings.audit().await.unwrap().is_empty());
    assert_counters_match_bookings(&mut c, &h.site, "2026-12-01", "2026-12-05").await;
}

/// Data written before format 4: every confirmed booking has its due row from the confirm
/// on, and there is no record of closed days. Such a booking still lapses exactly once,
/// although both its row and the closing of its day find it; a check-in leaves a row
/// behind that the sweep removes without lapsing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_bookings_of_format_3_with_their_due_rows_lapse_exactly_once() {
    // The tables as format 3 wrote them (services/booking/src/store.rs).
    const DUE: coldchain_store::Table<(i64, String), ()> = coldchain_store::Table::new("due");
    const CLOSED_DAYS: coldchain_store::Table<String, i32> =
        coldchain_store::Table::new("closed_days");
    let options = BookingOptions {
        no_show_grace: Duration::from_secs(2 * 3600),
        ..quiet()
    };
    let h = Harness::start_site(park(), options).await;
    let mut c = h.client().await;
    let mut confirmed = Vec::new();
    for (request, last) in [("p", "2026-12-03"), ("q", "2026-12-01")] {
        let held = c
            .hold_space(hold_zone(request, "c1", "pharma-a", 4, "2026-12-01", last))
            .await
            .unwrap()
            .into_inner();
        let booking = c
            .confirm_booking(confirm(&format!("c{request}"), &held.booking_id))
            .await
            .unwrap()
            .into_inner();
        confirmed.push(booking.booking_id);
    }
    let deadline = ms("2026-12-01T18:00:00Z");
    h.bookings
        .store()
        .write::<u64, coldchain_store::StoreError, _>(None, |tx| {
            for id in &confirmed {
                tx.put(&DUE, &(deadline, id.clone()), &())?;
            }
            tx.delete(&CLOSED_DAYS, &"first_open_day".to_string());
            Ok(0)
        })
        .await
        .unwrap();
    let h = h.restart().await;
    let mut c = h.client().await;
    let (gone, arrives) = (&confirmed[0], &confirmed[1]);
    c.check_in(check_in("iq", arrives, None)).await.unwrap();

    h.set_ms(deadline + 1);
    assert_eq!(
        rows(&mut c, "pharma-a", "2026-12-02", "2026-12-03").await,
        vec![
            row("2026-12-02", 0, 0, 0, 600),
            row("2026-12-03", 0, 0, 0, 600)
        ],
        "the no-show is taken out once"
    );
    assert_eq!(h.bookings.sweep_due().await.unwrap(), 1);
    assert_eq!(h.bookings.sweep_due().await.unwrap(), 0);
    let entries = h.bookings.ledger(1, 1000).unwrap();
    let lapses = entries
        .iter()
        .filter(|e| e.booking.booking_id == *gone && e.booking.state.name() == "NO_SHOW")
        .count();
    assert_eq!(lapses, 1);
    let last = entries
        .iter()
        .rev()
        .find(|e| e.booking.booking_id == *arrives)
        .unwrap();
    assert_eq!(last.booking.state.name(), "CHECKED_IN");
    assert!(h.bookings.audit().await.unwrap().is_empty());
    assert_counters_match_bookings(&mut c, &h.site, "2026-12-01", "2026-12-05").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sweeper_stores_lapses_on_its_own() {
    let options = BookingOptions {
        sweep_interval: Duration::from_millis(20),
        ..BookingOptions::default()
    };
    let h = Harness::start_site(park(), options).await;
    let mut c = h.client().await;
    let mut r = hold_zone("s", "c1", "pharma-a", 3, "2026-12-02", "2026-12-02");
    r.hold_ttl = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    let b = c.hold_space(r).await.unwrap().into_inner();
    h.advance(Duration::from_secs(2));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ledger = h.bookings.ledger(1, 100).unwrap();
        if ledger
            .iter()
            .any(|e| e.booking.booking_id == b.booking_id && e.booking.state.name() == "EXPIRED")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweeper never stored the expiry"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(h.bookings.audit().await.unwrap().is_empty());
}
