//! The booking service over gRPC: real tonic servers on 127.0.0.1:0 in this process, called
//! through the generated client, on temporary data directories with a manual clock. The
//! life of a booking, capacity and zone choice, transitions, bad requests, retries and
//! listing; lapses are in `lapses.rs`, races and restarts in `concurrency.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use coldchain_proto::booking::v1 as pb;
use coldchain_proto::common::v1 as common_pb;
use coldchain_runtime::network::TemperatureClass;
use common::*;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_goes_through_its_life_and_the_counters_follow() {
    let h = Harness::start().await;
    let mut c = h.client().await;

    let held = c
        .hold_space(hold_zone(
            "h1",
            "cust-1",
            "pharma-a",
            5,
            "2026-12-02",
            "2026-12-04",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(held.booking_id.starts_with("BK-"), "{}", held.booking_id);
    assert_eq!(state(&held), pb::BookingState::Held);
    assert_eq!(held.site_id, "cn-huaihua-park");
    assert_eq!(held.zone_id, "pharma-a");
    assert_eq!(
        held.temperature_class,
        common_pb::TemperatureClass::Pharma as i32
    );
    assert_eq!((held.pallets, held.pallets_arrived), (5, 0));
    assert_eq!(held.created_at, Some(ts("2026-12-01T02:00:00Z")));
    assert_eq!(
        held.expires_at,
        Some(ts("2026-12-01T02:15:00Z")),
        "default ttl 15 min"
    );
    assert_eq!(held.check_in_deadline, None, "unset while HELD");
    assert_eq!(
        rows(&mut c, "pharma-a", "2026-12-01", "2026-12-05").await,
        vec![
            row("2026-12-01", 0, 0, 0, 600),
            row("2026-12-02", 5, 0, 0, 595),
            row("2026-12-03", 5, 0, 0, 595),
            row("2026-12-04", 5, 0, 0, 595),
            row("2026-12-05", 0, 0, 0, 600),
        ]
    );

    let confirmed = c
        .confirm_booking(confirm("c1", &held.booking_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&confirmed), pb::BookingState::Confirmed);
    // The end of 2026-12-02 in Asia/Shanghai (16:00Z) plus the 6 h grace.
    assert_eq!(
        confirmed.check_in_deadline,
        Some(ts("2026-12-02T22:00:00Z"))
    );
    assert_eq!(
        rows(&mut c, "pharma-a", "2026-12-02", "2026-12-02").await,
        vec![row("2026-12-02", 0, 5, 0, 595)]
    );

    h.set_ms(ms("2026-12-02T03:00:00Z"));
    let checked = c
        .check_in(check_in("i1", &held.booking_id, Some(3)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&checked), pb::BookingState::CheckedIn);
    assert_eq!(checked.pallets_arrived, 3);
    assert_eq!(checked.updated_at, Some(ts("2026-12-02T03:00:00Z")));
    // The booked pallets stay counted, not only those that arrived.
    assert_eq!(
        rows(&mut c, "pharma-a", "2026-12-02", "2026-12-04").await,
        vec![
            row("2026-12-02", 0, 0, 5, 595),
            row("2026-12-03", 0, 0, 5, 595),
            row("2026-12-04", 0, 0, 5, 595),
        ]
    );

    // Completed on 2026-12-03 (site-local): 12-04 is freed, 12-02 and 12-03 were used.
    h.set_ms(ms("2026-12-03T02:00:00Z"));
    let completed = c
        .complete_booking(complete("d1", &held.booking_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&completed), pb::BookingState::Completed);
    assert_eq!(
        rows(&mut c, "pharma-a", "2026-12-02", "2026-12-05").await,
        vec![
            row("2026-12-02", 0, 0, 5, 595),
            row("2026-12-03", 0, 0, 5, 595),
            row("2026-12-04", 0, 0, 0, 600),
            row("2026-12-05", 0, 0, 0, 600),
        ]
    );
    let got = c
        .get_booking(pb::GetBookingRequest {
            booking_id: held.booking_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, completed);

    // One ledger entry per state change, each with the booking after it.
    let ledger = h.bookings.ledger(1, 100).unwrap();
    let states: Vec<_> = ledger.iter().map(|e| e.booking.state.name()).collect();
    assert_eq!(states, ["HELD", "CONFIRMED", "CHECKED_IN", "COMPLETED"]);
    assert_eq!(
        ledger.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(
        ledger
            .iter()
            .all(|e| e.booking.booking_id == held.booking_id)
    );
    assert!(h.bookings.audit().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_day_is_inclusive_and_the_day_after_is_free() {
    let h = Harness::start_site(
        park_with(&[("tiny", TemperatureClass::Frozen, 10)]),
        quiet(),
    )
    .await;
    let mut c = h.client().await;

    // A one-day booking: first_day == last_day occupies exactly that day.
    let one = c
        .hold_space(hold_zone(
            "one",
            "cust-1",
            "tiny",
            10,
            "2026-12-05",
            "2026-12-05",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.first_day, one.last_day);
    assert_eq!(
        rows(&mut c, "tiny", "2026-12-04", "2026-12-06").await,
        vec![
            row("2026-12-04", 0, 0, 0, 10),
            row("2026-12-05", 10, 0, 0, 0),
            row("2026-12-06", 0, 0, 0, 10),
        ]
    );
    // The day after last_day is free; the day itself is not.
    c.hold_space(hold_zone(
        "after",
        "cust-2",
        "tiny",
        10,
        "2026-12-06",
        "2026-12-06",
    ))
    .await
    .expect("the day after last_day is free");
    c.hold_space(hold_zone(
        "before",
        "cust-2",
        "tiny",
        10,
        "2026-12-04",
        "2026-12-04",
    ))
    .await
    .expect("the day before first_day is free");
    let status = c
        .hold_space(hold_zone(
            "on",
            "cust-2",
            "tiny",
            1,
            "2026-12-05",
            "2026-12-05",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    // A two-day booking occupies two days.
    c.hold_space(hold_zone(
        "two",
        "cust-3",
        "tiny",
        4,
        "2026-12-10",
        "2026-12-11",
    ))
    .await
    .unwrap();
    assert_eq!(
        rows(&mut c, "tiny", "2026-12-09", "2026-12-12").await,
        vec![
            row("2026-12-09", 0, 0, 0, 10),
            row("2026-12-10", 4, 0, 0, 6),
            row("2026-12-11", 4, 0, 0, 6),
            row("2026-12-12", 0, 0, 0, 10),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_room_lists_every_short_day_and_by_how_much() {
    let h = Harness::start_site(
        park_with(&[("tiny", TemperatureClass::Frozen, 10)]),
        quiet(),
    )
    .await;
    let mut c = h.client().await;
    c.hold_space(hold_zone(
        "a",
        "cust-1",
        "tiny",
        8,
        "2026-12-02",
        "2026-12-02",
    ))
    .await
    .unwrap();
    c.hold_space(hold_zone(
        "b",
        "cust-1",
        "tiny",
        6,
        "2026-12-04",
        "2026-12-04",
    ))
    .await
    .unwrap();
    let before = rows(&mut c, "tiny", "2026-12-01", "2026-12-04").await;
    let sequence = h.bookings.store().durable_sequence();

    let status = c
        .hold_space(hold_zone(
            "c",
            "cust-2",
            "tiny",
            5,
            "2026-12-01",
            "2026-12-04",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("2026-12-02 short by 3 (2 free)"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("2026-12-04 short by 1 (4 free)"),
        "{}",
        status.message()
    );
    assert!(
        !status.message().contains("2026-12-01"),
        "{}",
        status.message()
    );
    let failure = status
        .get_details_precondition_failure()
        .expect("precondition details");
    let details: Vec<_> = failure
        .violations
        .iter()
        .map(|v| {
            (
                v.r#type.as_str(),
                v.subject.as_str(),
                v.description.as_str(),
            )
        })
        .collect();
    assert_eq!(
        details,
        [
            (
                "CAPACITY",
                "zone tiny on 2026-12-02",
                "needs 5 pallets, 2 free: short by 3"
            ),
            (
                "CAPACITY",
                "zone tiny on 2026-12-04",
                "needs 5 pallets, 4 free: short by 1"
            ),
        ]
    );
    // A refused hold changes nothing.
    assert_eq!(
        rows(&mut c, "tiny", "2026-12-01", "2026-12-04").await,
        before
    );
    assert_eq!(h.bookings.store().durable_sequence(), sequence);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_hold_picks_the_tightest_zone_or_reports_the_closest() {
    let mut site = park_with(&[("frozen-b", TemperatureClass::Frozen, 20)]);
    site.zones
        .iter_mut()
        .find(|z| z.id == "frozen-a")
        .unwrap()
        .capacity_pallets = 10;
    let h = Harness::start_site(site, quiet()).await;
    let mut c = h.client().await;
    let frozen = common_pb::TemperatureClass::Frozen;

    // 4 pallets: frozen-a leaves 6, frozen-b 16 → frozen-a (tightest fit).
    let a = c
        .hold_space(hold_class("a", "c1", frozen, 4, "2026-12-02", "2026-12-03"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.zone_id, "frozen-a");
    assert_eq!(a.temperature_class, frozen as i32);
    // 7 pallets on 12-02: frozen-a has 6 free → frozen-b.
    let b = c
        .hold_space(hold_class("b", "c1", frozen, 7, "2026-12-02", "2026-12-02"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.zone_id, "frozen-b");
    // 15 pallets on 12-02..12-03: frozen-a is short 9 + 9, frozen-b only 2 on 12-02 →
    // the answer describes frozen-b.
    let status = c
        .hold_space(hold_class(
            "c",
            "c1",
            frozen,
            15,
            "2026-12-02",
            "2026-12-03",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let failure = status.get_details_precondition_failure().expect("details");
    assert_eq!(failure.violations.len(), 1);
    assert_eq!(failure.violations[0].subject, "zone frozen-b on 2026-12-02");
    assert!(
        status.message().contains("zone frozen-b"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("short by 2"),
        "{}",
        status.message()
    );
    // More than any zone of the class holds: INVALID_ARGUMENT.
    let status = c
        .hold_space(hold_class(
            "d",
            "c1",
            frozen,
            21,
            "2026-12-02",
            "2026-12-02",
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["pallets"]);
    // GetAvailability by class: one row per day and zone, by date then zone_id.
    let days = c
        .get_availability(pb::GetAvailabilityRequest {
            space: Some(pb::get_availability_request::Space::TemperatureClass(
                frozen as i32,
            )),
            first_day: Some(date("2026-12-02")),
            last_day: Some(date("2026-12-03")),
        })
        .await
        .unwrap()
        .into_inner()
        .days;
    let seen: Vec<_> = days
        .iter()
        .map(|r| {
            (
                r.date.as_ref().unwrap().day,
                r.zone_id.as_str(),
                r.capacity,
                r.held,
                r.free,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (2, "frozen-a", 10, 4, 6),
            (2, "frozen-b", 20, 7, 13),
            (3, "frozen-a", 10, 4, 6),
            (3, "frozen-b", 20, 0, 20),
        ]
    );
    assert!(days.iter().all(|r| r.temperature_class == frozen as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_without_the_class_has_no_space_of_it() {
    let site = network().site("la-vientiane").unwrap().clone();
    let h = Harness::start_site(site, quiet()).await;
    let mut c = h.client().await;
    let pharma = common_pb::TemperatureClass::Pharma;
    let status = c
        .hold_space(hold_class("p", "c1", pharma, 1, "2026-12-02", "2026-12-02"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("PHARMA"), "{}", status.message());
    let days = c
        .get_availability(pb::GetAvailabilityRequest {
            space: Some(pb::get_availability_request::Space::TemperatureClass(
                pharma as i32,
            )),
            first_day: Some(date("2026-12-02")),
            last_day: Some(date("2026-12-03")),
        })
        .await
        .unwrap()
        .into_inner()
        .days;
    assert!(days.is_empty());
    let status = c
        .get_availability(availability_zone("pharma-a", "2026-12-02", "2026-12-02"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("pharma-a"));
}

/// A booking made by the list test: id, customer, zone, first day, last day, state.
type Made = (String, String, String, String, String, pb::BookingState);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Confirm,
    Cancel,
    CheckIn,
    Complete,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_and_every_refused_one() {
    use pb::BookingState as S;
    let h = Harness::start().await;
    let mut c = h.client().await;
    let n = AtomicUsize::new(0);
    let next = || format!("t{}", n.fetch_add(1, Ordering::SeqCst));

    // An EXPIRED and a NO_SHOW booking: a 1-minute hold, and a confirmed booking of today
    // whose check-in deadline (end of 12-01 + 6 h = 2026-12-01T22:00Z) passes.
    let mut expiring = hold_zone(&next(), "c1", "pharma-a", 2, "2026-12-01", "2026-12-01");
    expiring.hold_ttl = Some(prost_types::Duration {
        seconds: 60,
        nanos: 0,
    });
    let expired = c
        .hold_space(expiring)
        .await
        .unwrap()
        .into_inner()
        .booking_id;
    let no_show = c
        .hold_space(hold_zone(
            &next(),
            "c1",
            "pharma-a",
            2,
            "2026-12-01",
            "2026-12-01",
        ))
        .await
        .unwrap()
        .into_inner()
        .booking_id;
    c.confirm_booking(confirm(&next(), &no_show)).await.unwrap();
    h.set_ms(ms("2026-12-01T22:00:00.001Z"));

    // A fresh booking in each other state.
    async fn make(
        c: &mut pb::booking_service_client::BookingServiceClient<tonic::transport::Channel>,
        next: &dyn Fn() -> String,
        target: pb::BookingState,
    ) -> String {
        let id = c
            .hold_space(hold_zone(
                &next(),
                "c1",
                "pharma-a",
                3,
                "2026-12-03",
                "2026-12-04",
            ))
            .await
            .unwrap()
            .into_inner()
            .booking_id;
        if target == pb::BookingState::Cancelled {
            c.cancel_booking(cancel(&next(), &id)).await.unwrap();
            return id;
        }
        let path = [S::Confirmed, S::CheckedIn, S::Completed];
        for step in path.iter().take_while(|s| **s as i32 <= target as i32) {
            match step {
                S::Confirmed => drop(c.confirm_booking(confirm(&next(), &id)).await.unwrap()),
                S::CheckedIn => drop(c.check_in(check_in(&next(), &id, None)).await.unwrap()),
                S::Completed => drop(c.complete_booking(complete(&next(), &id)).await.unwrap()),
                _ => unreachable!(),
            }
        }
        id
    }

    let expected = |op: Op, from: S| -> Option<S> {
        match (op, from) {
            (Op::Confirm, S::Held) => Some(S::Confirmed),
            (Op::Cancel, S::Held | S::Confirmed) => Some(S::Cancelled),
            (Op::CheckIn, S::Confirmed) => Some(S::CheckedIn),
            (Op::Complete, S::CheckedIn) => Some(S::Completed),
            _ => None,
        }
    };
    let name = |s: S| {
        s.as_str_name()
            .trim_start_matches("BOOKING_STATE_")
            .to_string()
    };
    let all = [
        S::Held,
        S::Confirmed,
        S::CheckedIn,
        S::Completed,
        S::Cancelled,
        S::Expired,
        S::NoShow,
    ];
    let mut checked = 0;
    for from in all {
        for op in [Op::Confirm, Op::Cancel, Op::CheckIn, Op::Complete] {
            let id = match from {
                S::Expired => expired.clone(),
                S::NoShow => no_show.clone(),
                other => make(&mut c, &next, other).await,
            };
            let current = c
                .get_booking(pb::GetBookingRequest {
                    booking_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(state(&current), from, "setup of {from:?}");
            let result = match op {
                Op::Confirm => c.confirm_booking(confirm(&next(), &id)).await,
                Op::Cancel => c.cancel_booking(cancel(&next(), &id)).await,
                Op::CheckIn => c.check_in(check_in(&next(), &id, None)).await,
                Op::Complete => c.complete_booking(complete(&next(), &id)).await,
            };
            match (expected(op, from), result) {
                (Some(to), Ok(after)) => {
                    assert_eq!(state(after.get_ref()), to, "{op:?} from {from:?}")
                }
                (None, Err(status)) => {
                    assert_eq!(
                        status.code(),
                        Code::FailedPrecondition,
                        "{op:?} from {from:?}: {status:?}"
                    );
                    if op == Op::Confirm && from == S::Expired {
                        assert!(
                            status.message().contains("hold expired"),
                            "{}",
                            status.message()
                        );
                    } else {
                        let named = format!("is {}", name(from));
                        assert!(
                            status.message().contains(&named),
                            "{op:?} from {from:?}: {}",
                            status.message()
                        );
                    }
                    let failure = status.get_details_precondition_failure().expect("details");
                    assert_eq!(failure.violations[0].r#type, "STATE");
                    // Refused: nothing changed.
                    let after = c
                        .get_booking(pb::GetBookingRequest {
                            booking_id: id.clone(),
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    assert_eq!(after, current);
                }
                (want, got) => panic!("{op:?} from {from:?}: want {want:?}, got {got:?}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 28);

    // Every transition of an unknown booking is NOT_FOUND.
    for op in [Op::Confirm, Op::Cancel, Op::CheckIn, Op::Complete] {
        let id = "BK-999999999999";
        let status = match op {
            Op::Confirm => c.confirm_booking(confirm(&next(), id)).await.unwrap_err(),
            Op::Cancel => c.cancel_booking(cancel(&next(), id)).await.unwrap_err(),
            Op::CheckIn => c.check_in(check_in(&next(), id, None)).await.unwrap_err(),
            Op::Complete => c.complete_booking(complete(&next(), id)).await.unwrap_err(),
        };
        assert_eq!(status.code(), Code::NotFound, "{op:?}");
        assert!(status.message().contains(id));
    }
    let status = c
        .get_booking(pb::GetBookingRequest {
            booking_id: "BK-999999999999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // Check-in with more pallets than booked is refused and changes nothing.
    let id = make(&mut c, &next, S::Confirmed).await;
    let status = c
        .check_in(check_in(&next(), &id, Some(4)))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["pallets_arrived"]);
    assert!(
        status.message().contains("booked 3"),
        "{}",
        status.message()
    );
    assert!(h.bookings.audit().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_invalid_argument_naming_every_field_and_change_nothing() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let good = || hold_zone("v", "cust-1", "pharma-a", 2, "2026-12-02", "2026-12-03");
    let d = |y, m, d| {
        Some(common_pb::Date {
            year: y,
            month: m,
            day: d,
        })
    };
    let dur = |seconds, nanos| Some(prost_types::Duration { seconds, nanos });
    type Case = (
        &'static str,
        Box<dyn Fn(&mut pb::HoldSpaceRequest)>,
        &'static [&'static str],
    );
    let cases: Vec<Case> = vec![
        (
            "no request_id",
            Box::new(|r| r.request_id.clear()),
            &["request_id"],
        ),
        (
            "no customer",
            Box::new(|r| r.customer_id.clear()),
            &["customer_id"],
        ),
        (
            "bad customer",
            Box::new(|r| r.customer_id = "bad\u{1}id".into()),
            &["customer_id"],
        ),
        ("no space", Box::new(|r| r.space = None), &["space"]),
        (
            "unspecified class",
            Box::new(|r| r.space = Some(pb::hold_space_request::Space::TemperatureClass(0))),
            &["temperature_class"],
        ),
        (
            "unknown class",
            Box::new(|r| r.space = Some(pb::hold_space_request::Space::TemperatureClass(99))),
            &["temperature_class"],
        ),
        (
            "bad zone id",
            Box::new(|r| r.space = Some(pb::hold_space_request::Space::ZoneId("a\tzone".into()))),
            &["zone_id"],
        ),
        (
            "empty zone id",
            Box::new(|r| r.space = Some(pb::hold_space_request::Space::ZoneId(String::new()))),
            &["zone_id"],
        ),
        ("zero pallets", Box::new(|r| r.pallets = 0), &["pallets"]),
        (
            "negative pallets",
            Box::new(|r| r.pallets = -3),
            &["pallets"],
        ),
        (
            "more than the zone",
            Box::new(|r| r.pallets = 601),
            &["pallets"],
        ),
        (
            "no first_day",
            Box::new(|r| r.first_day = None),
            &["first_day"],
        ),
        (
            "no last_day",
            Box::new(|r| r.last_day = None),
            &["last_day"],
        ),
        (
            "30 february",
            Box::new(move |r| r.first_day = d(2026, 2, 30)),
            &["first_day"],
        ),
        (
            "month 13",
            Box::new(move |r| r.last_day = d(2026, 13, 1)),
            &["last_day"],
        ),
        (
            "year 0",
            Box::new(move |r| r.first_day = d(0, 1, 1)),
            &["first_day"],
        ),
        (
            "partial date",
            Box::new(move |r| r.first_day = d(2026, 12, 0)),
            &["first_day"],
        ),
        (
            "reversed",
            Box::new(move |r| {
                r.first_day = d(2026, 12, 5);
                r.last_day = d(2026, 12, 4)
            }),
            &["last_day"],
        ),
        (
            "367 days",
            Box::new(move |r| {
                r.first_day = d(2026, 12, 2);
                r.last_day = d(2027, 12, 3)
            }),
            &["last_day"],
        ),
        (
            "in the past",
            Box::new(move |r| r.first_day = d(2026, 11, 30)),
            &["first_day"],
        ),
        (
            "zero ttl",
            Box::new(move |r| r.hold_ttl = dur(0, 0)),
            &["hold_ttl"],
        ),
        (
            "negative ttl",
            Box::new(move |r| r.hold_ttl = dur(-5, 0)),
            &["hold_ttl"],
        ),
        (
            "ttl over 24 h",
            Box::new(move |r| r.hold_ttl = dur(24 * 3600, 1_000_000)),
            &["hold_ttl"],
        ),
        (
            "huge ttl",
            Box::new(move |r| r.hold_ttl = dur(i64::MAX, 0)),
            &["hold_ttl"],
        ),
        (
            "malformed ttl",
            Box::new(move |r| r.hold_ttl = dur(1, 1_000_000_000)),
            &["hold_ttl"],
        ),
        (
            "mixed-sign ttl",
            Box::new(move |r| r.hold_ttl = dur(5, -1)),
            &["hold_ttl"],
        ),
        (
            "long reference",
            Box::new(|r| r.customer_reference = "x".repeat(129)),
            &["customer_reference"],
        ),
        (
            "control in reference",
            Box::new(|r| r.customer_reference = "po\n1".into()),
            &["customer_reference"],
        ),
        (
            "everything",
            Box::new(|r| {
                r.request_id.clear();
                r.customer_id.clear();
                r.pallets = 0;
                r.first_day = None;
                r.hold_ttl = Some(prost_types::Duration {
                    seconds: -1,
                    nanos: 0,
                })
            }),
            &[
                "request_id",
                "customer_id",
                "pallets",
                "first_day",
                "hold_ttl",
            ],
        ),
    ];
    for (name, mutate, fields) in cases {
        let mut r = good();
        r.request_id = format!("v-{name}").replace(' ', "-");
        mutate(&mut r);
        let status = c.hold_space(r).await.expect_err(name);
        assert_eq!(bad_fields(&status), *fields, "{name}: {}", status.message());
        assert!(
            status
                .message()
                .chars()
                .next()
                .is_some_and(|ch| !ch.is_uppercase()),
            "{name}: lowercase message"
        );
    }
    // The good request is good; a ttl exactly 24 h and a 128-byte reference are fine.
    let mut edge = good();
    edge.request_id = "edge".into();
    edge.hold_ttl = dur(24 * 3600, 0);
    edge.customer_reference = "r".repeat(128);
    c.hold_space(edge)
        .await
        .expect("24 h and 128 bytes are allowed");
    let sequence = h.bookings.store().durable_sequence();
    assert_eq!(sequence, 1);

    let status = c
        .hold_space(hold_zone(
            "nz",
            "c",
            "no-such-zone",
            1,
            "2026-12-02",
            "2026-12-02",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("no-such-zone"));

    // GetAvailability.
    let mut r = availability_zone("pharma-a", "2026-12-02", "2026-12-02");
    r.space = None;
    assert_eq!(
        bad_fields(&c.get_availability(r).await.unwrap_err()),
        ["space"]
    );
    let mut r = availability_zone("pharma-a", "2026-12-02", "2026-12-02");
    r.space = Some(pb::get_availability_request::Space::TemperatureClass(0));
    assert_eq!(
        bad_fields(&c.get_availability(r).await.unwrap_err()),
        ["temperature_class"]
    );
    let r = availability_zone("pharma-a", "2026-12-02", "2027-12-03");
    assert_eq!(
        bad_fields(&c.get_availability(r).await.unwrap_err()),
        ["last_day"]
    );
    let r = availability_zone("pharma-a", "2026-11-01", "2026-11-30");
    let status = c.get_availability(r).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["last_day"]);
    assert!(
        status.message().contains("entirely in the past"),
        "{}",
        status.message()
    );
    c.get_availability(availability_zone("pharma-a", "2026-11-01", "2026-12-01"))
        .await
        .expect("partly past is fine");
    let status = c
        .get_availability(availability_zone("nope", "2026-12-02", "2026-12-02"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // Transitions.
    let mut r = confirm("x", "BK-1");
    r.request_id.clear();
    assert_eq!(
        bad_fields(&c.confirm_booking(r).await.unwrap_err()),
        ["request_id"]
    );
    assert_eq!(
        bad_fields(&c.confirm_booking(confirm("x", "")).await.unwrap_err()),
        ["booking_id"]
    );
    let mut r = cancel("x", "BK-1");
    r.reason = "  ".into();
    assert_eq!(
        bad_fields(&c.cancel_booking(r.clone()).await.unwrap_err()),
        ["reason"]
    );
    r.reason = "é".repeat(257);
    assert_eq!(
        bad_fields(&c.cancel_booking(r.clone()).await.unwrap_err()),
        ["reason"],
        "513 bytes"
    );
    r.reason = "é".repeat(256);
    assert_eq!(
        c.cancel_booking(r).await.unwrap_err().code(),
        Code::NotFound,
        "512 bytes are fine"
    );
    assert_eq!(
        bad_fields(
            &c.check_in(check_in("x", "BK-1", Some(0)))
                .await
                .unwrap_err()
        ),
        ["pallets_arrived"]
    );
    assert_eq!(
        bad_fields(
            &c.complete_booking(complete("x", "bad\u{7}id"))
                .await
                .unwrap_err()
        ),
        ["booking_id"]
    );
    assert_eq!(
        bad_fields(
            &c.get_booking(pb::GetBookingRequest {
                booking_id: String::new()
            })
            .await
            .unwrap_err()
        ),
        ["booking_id"]
    );

    // ListBookings.
    let list = |f: &dyn Fn(&mut pb::ListBookingsRequest)| {
        let mut r = pb::ListBookingsRequest::default();
        f(&mut r);
        r
    };
    let cases: Vec<(pb::ListBookingsRequest, &[&str])> = vec![
        (list(&|r| r.page_size = -1), &["page_size"]),
        (list(&|r| r.states = vec![0]), &["states[0]"]),
        (list(&|r| r.states = vec![1, 42]), &["states[1]"]),
        (
            list(&|r| {
                r.first_day = d(2026, 12, 5);
                r.last_day = d(2026, 12, 4)
            }),
            &["last_day"],
        ),
        (list(&|r| r.first_day = d(2026, 2, 31)), &["first_day"]),
        (list(&|r| r.page_token = "zz".into()), &["page_token"]),
        (
            list(&|r| r.customer_id = "bad\u{7}id".into()),
            &["customer_id"],
        ),
        (list(&|r| r.zone_id = "bad\nzone".into()), &["zone_id"]),
    ];
    for (request, fields) in cases {
        let status = c.list_bookings(request.clone()).await.unwrap_err();
        assert_eq!(bad_fields(&status), fields, "{request:?}");
    }
    // Nothing of it changed anything.
    assert_eq!(h.bookings.store().durable_sequence(), sequence);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_replay_the_first_answer_and_a_reused_request_id_is_refused() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let request = hold_zone("same", "c1", "pharma-a", 6, "2026-12-02", "2026-12-02");
    let first = c.hold_space(request.clone()).await.unwrap().into_inner();
    let again = c.hold_space(request.clone()).await.unwrap().into_inner();
    assert_eq!(first, again);
    assert_eq!(
        rows(&mut c, "pharma-a", "2026-12-02", "2026-12-02").await,
        vec![row("2026-12-02", 6, 0, 0, 594)]
    );
    assert_eq!(h.bookings.ledger(1, 100).unwrap().len(), 1);

    let mut different = request.clone();
    different.pallets = 7;
    let status = c.hold_space(different).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["request_id"]);
    assert!(
        status.message().contains("req-same"),
        "{}",
        status.message()
    );

    let confirmed = c
        .confirm_booking(confirm("c", &first.booking_id))
        .await
        .unwrap()
        .into_inner();
    c.cancel_booking(cancel("x", &first.booking_id))
        .await
        .unwrap();
    // The retry of the confirmation answers what it answered then, and does nothing.
    let replay = c
        .confirm_booking(confirm("c", &first.booking_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay, confirmed);
    let now = c
        .get_booking(pb::GetBookingRequest {
            booking_id: first.booking_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&now), pb::BookingState::Cancelled);
    // Cancelling under another id is a refused transition.
    assert_eq!(
        c.cancel_booking(cancel("x2", &first.booking_id))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    // 40 h later (first_day now in the past, the request_id still remembered: 48 h) the
    // original hold retry still replays.
    h.advance(Duration::from_secs(40 * 3600));
    assert_eq!(c.hold_space(request).await.unwrap().into_inner(), first);
    assert_eq!(h.bookings.ledger(1, 100).unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_bookings_filters_and_pages_in_a_stable_order() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    // (id, customer, zone, first, last, state)
    let mut made: Vec<Made> = Vec::new();
    let days = ["2026-12-02", "2026-12-03", "2026-12-05", "2026-12-08"];
    for i in 0..24usize {
        let customer = if i % 3 == 0 { "alice" } else { "bob" };
        let zone = if i % 2 == 0 { "pharma-a" } else { "chilled-a" };
        let first = days[i % 4];
        let last = days[(i % 4 + i % 2).min(3)];
        let b = c
            .hold_space(hold_zone(&format!("l{i}"), customer, zone, 1, first, last))
            .await
            .unwrap()
            .into_inner();
        let mut st = pb::BookingState::Held;
        if i % 4 == 1 {
            c.confirm_booking(confirm(&format!("lc{i}"), &b.booking_id))
                .await
                .unwrap();
            st = pb::BookingState::Confirmed;
        } else if i % 5 == 2 {
            c.cancel_booking(cancel(&format!("lx{i}"), &b.booking_id))
                .await
                .unwrap();
            st = pb::BookingState::Cancelled;
        }
        made.push((
            b.booking_id,
            customer.into(),
            zone.into(),
            first.into(),
            last.into(),
            st,
        ));
    }
    let ids = |bs: &[pb::Booking]| bs.iter().map(|b| b.booking_id.clone()).collect::<Vec<_>>();
    let expect = |f: &dyn Fn(&Made) -> bool| {
        let mut v: Vec<_> = made
            .iter()
            .filter(|m| f(m))
            .map(|m| (m.3.clone(), m.0.clone()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    };

    // Every booking, 5 per page, ordered by first_day then booking_id, each once.
    let mut pages = 0;
    let mut request = pb::ListBookingsRequest {
        page_size: 5,
        ..Default::default()
    };
    let mut all = Vec::new();
    loop {
        let page = c.list_bookings(request.clone()).await.unwrap().into_inner();
        assert!(page.bookings.len() <= 5);
        pages += 1;
        all.extend(page.bookings);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(ids(&all), expect(&|_| true));
    assert_eq!(pages, 5);
    assert_eq!(
        all.iter()
            .map(|b| b.booking_id.clone())
            .collect::<BTreeSet<_>>()
            .len(),
        24
    );

    let by = |f: &dyn Fn(&mut pb::ListBookingsRequest)| {
        let mut r = pb::ListBookingsRequest {
            page_size: 3,
            ..Default::default()
        };
        f(&mut r);
        r
    };
    let alice = list_all(&mut c, by(&|r| r.customer_id = "alice".into())).await;
    assert_eq!(ids(&alice), expect(&|m| m.1 == "alice"));
    let chilled = list_all(&mut c, by(&|r| r.zone_id = "chilled-a".into())).await;
    assert_eq!(ids(&chilled), expect(&|m| m.2 == "chilled-a"));
    let states = list_all(
        &mut c,
        by(&|r| {
            r.states = vec![
                pb::BookingState::Confirmed as i32,
                pb::BookingState::Cancelled as i32,
            ]
        }),
    )
    .await;
    assert_eq!(
        ids(&states),
        expect(&|m| matches!(
            m.5,
            pb::BookingState::Confirmed | pb::BookingState::Cancelled
        ))
    );
    // Overlap: bookings occupying at least one day of 12-04..12-05.
    let window = list_all(
        &mut c,
        by(&|r| {
            r.first_day = Some(date("2026-12-04"));
            r.last_day = Some(date("2026-12-05"))
        }),
    )
    .await;
    assert_eq!(
        ids(&window),
        expect(&|m| m.3.as_str() <= "2026-12-05" && m.4.as_str() >= "2026-12-04")
    );
    // Bounds are inclusive: a booking ending on 12-03 is in from 12-03, not from 12-04.
    let from = list_all(&mut c, by(&|r| r.first_day = Some(date("2026-12-03")))).await;
    assert_eq!(ids(&from), expect(&|m| m.4.as_str() >= "2026-12-03"));
    let until = list_all(&mut c, by(&|r| r.last_day = Some(date("2026-12-03")))).await;
    assert_eq!(ids(&until), expect(&|m| m.3.as_str() <= "2026-12-03"));
    let combined = list_all(
        &mut c,
        by(&|r| {
            r.customer_id = "bob".into();
            r.zone_id = "pharma-a".into();
            r.states = vec![pb::BookingState::Held as i32];
            r.first_day = Some(date("2026-12-03"));
        }),
    )
    .await;
    assert_eq!(
        ids(&combined),
        expect(&|m| m.1 == "bob"
            && m.2 == "pharma-a"
            && m.5 == pb::BookingState::Held
            && m.4.as_str() >= "2026-12-03")
    );

    // A token is bound to its filters.
    let page = c
        .list_bookings(by(&|r| r.customer_id = "alice".into()))
        .await
        .unwrap()
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    let status = c
        .list_bookings(by(&|r| {
            r.customer_id = "bob".into();
            r.page_token = page.next_page_token.clone();
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["page_token"]);
    // page_size 0 is the default (100), above 1000 is clamped.
    let page = c
        .list_bookings(pb::ListBookingsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (page.bookings.len(), page.next_page_token.as_str()),
        (24, "")
    );
    let page = c
        .list_bookings(pb::ListBookingsRequest {
            page_size: 5000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.bookings.len(), 24);
}
