//! The booking service over gRPC: real tonic servers on 127.0.0.1:0 in this process, called
//! through the generated client, on temporary data directories with a manual clock.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use coldchain_booking::BookingOptions;
use coldchain_proto::booking::v1 as pb;
use coldchain_proto::common::v1 as common_pb;
use coldchain_runtime::network::TemperatureClass;
use common::*;
use tonic::Code;
use tonic_types::StatusExt;

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("instant")
        .timestamp_millis()
}

fn ts(rfc3339: &str) -> prost_types::Timestamp {
    let ms = ms(rfc3339);
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn state(b: &pb::Booking) -> pb::BookingState {
    pb::BookingState::try_from(b.state).expect("a known state")
}

fn bad_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

async fn rows(
    c: &mut pb::booking_service_client::BookingServiceClient<tonic::transport::Channel>,
    zone: &str,
    first: &str,
    last: &str,
) -> Vec<(String, i32, i32, i32, i32)> {
    c.get_availability(availability_zone(zone, first, last))
        .await
        .expect("availability")
        .into_inner()
        .days
        .into_iter()
        .map(|r| {
            let d = r.date.unwrap();
            (
                format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
                r.held,
                r.confirmed,
                r.checked_in,
                r.free,
            )
        })
        .collect()
}

fn row(
    day: &str,
    held: i32,
    confirmed: i32,
    checked_in: i32,
    free: i32,
) -> (String, i32, i32, i32, i32) {
    (day.to_string(), held, confirmed, checked_in, free)
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_clients_racing_for_the_last_positions_get_exactly_the_capacity() {
    const CAPACITY: u32 = 250;
    const FREE: usize = 50;
    const CLIENTS: usize = 200;
    const CHANNELS: usize = 8;
    let h = Harness::start_site(
        park_with(&[("race", TemperatureClass::Frozen, CAPACITY)]),
        quiet(),
    )
    .await;
    let mut c = h.client().await;
    c.hold_space(hold_zone(
        "fill",
        "c0",
        "race",
        (CAPACITY as i32) - FREE as i32,
        "2026-12-05",
        "2026-12-05",
    ))
    .await
    .unwrap();

    let mut channels = Vec::new();
    for _ in 0..CHANNELS {
        channels.push(h.client().await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let mut client = channels[i % CHANNELS].clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            client
                .hold_space(hold_zone(
                    &format!("race-{i}"),
                    &format!("c{i}"),
                    "race",
                    1,
                    "2026-12-05",
                    "2026-12-05",
                ))
                .await
        }));
    }
    let mut granted = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => granted += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert!(
                    status.message().contains("2026-12-05 short by 1 (0 free)"),
                    "{}",
                    status.message()
                );
                refused += 1;
            }
        }
    }
    assert_eq!((granted, refused), (FREE, CLIENTS - FREE));
    assert_eq!(
        rows(&mut c, "race", "2026-12-05", "2026-12-05").await,
        vec![row("2026-12-05", CAPACITY as i32, 0, 0, 0)]
    );
    assert!(h.bookings.audit().await.unwrap().is_empty());
    assert_counters_match_bookings(&mut c, &h.site, "2026-12-05", "2026-12-05").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_confirms_and_cancels_keep_the_invariant() {
    let site = park_with(&[
        ("chill-x", TemperatureClass::Chilled, 30),
        ("chill-y", TemperatureClass::Chilled, 20),
    ]);
    let h = Harness::start_site(site, quiet()).await;
    let mut tasks = Vec::new();
    for t in 0..24u64 {
        let mut client = h.client().await;
        tasks.push(tokio::spawn(async move {
            let mut seed = t
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut next = move |n: u64| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) % n
            };
            let mut mine = Vec::new();
            for i in 0..15 {
                let zone = if next(2) == 0 { "chill-x" } else { "chill-y" };
                let start = 2 + next(4);
                let len = next(3);
                let first = format!("2026-12-{start:02}");
                let last = format!("2026-12-{:02}", start + len);
                let pallets = 1 + next(8) as i32;
                match client
                    .hold_space(hold_zone(
                        &format!("m{t}-{i}"),
                        "c",
                        zone,
                        pallets,
                        &first,
                        &last,
                    ))
                    .await
                {
                    Ok(b) => mine.push(b.into_inner().booking_id),
                    Err(status) => {
                        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}")
                    }
                }
                if let Some(id) = mine.get(next(mine.len().max(1) as u64) as usize).cloned() {
                    let result = if next(3) == 0 {
                        client
                            .cancel_booking(cancel(&format!("mx{t}-{i}"), &id))
                            .await
                    } else {
                        client
                            .confirm_booking(confirm(&format!("mc{t}-{i}"), &id))
                            .await
                    };
                    if let Err(status) = result {
                        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(h.bookings.audit().await.unwrap().is_empty());
    let mut c = h.client().await;
    assert_counters_match_bookings(&mut c, &h.site, "2026-12-02", "2026-12-08").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_counters_equal_the_live_bookings() {
    let h = Harness::start_site(
        park_with(&[("tiny", TemperatureClass::Frozen, 10)]),
        quiet(),
    )
    .await;
    let mut c = h.client().await;
    let mut ids = BTreeMap::new();
    for (i, (zone, pallets, first, last)) in [
        ("tiny", 4, "2026-12-02", "2026-12-03"),
        ("tiny", 3, "2026-12-03", "2026-12-04"),
        ("pharma-a", 10, "2026-12-01", "2026-12-05"),
        ("pharma-a", 5, "2026-12-02", "2026-12-02"),
        ("chilled-a", 7, "2026-12-01", "2026-12-03"),
    ]
    .into_iter()
    .enumerate()
    {
        let b = c
            .hold_space(hold_zone(
                &format!("r{i}"),
                "c1",
                zone,
                pallets,
                first,
                last,
            ))
            .await
            .unwrap()
            .into_inner();
        ids.insert(i, b.booking_id);
    }
    c.confirm_booking(confirm("rc1", &ids[&1])).await.unwrap();
    c.confirm_booking(confirm("rc2", &ids[&2])).await.unwrap();
    c.check_in(check_in("ri2", &ids[&2], Some(8)))
        .await
        .unwrap();
    c.cancel_booking(cancel("rx3", &ids[&3])).await.unwrap();
    c.confirm_booking(confirm("rc4", &ids[&4])).await.unwrap();
    c.check_in(check_in("ri4", &ids[&4], None)).await.unwrap();
    c.complete_booking(complete("rd4", &ids[&4])).await.unwrap();

    let snapshot =
        |c: &mut pb::booking_service_client::BookingServiceClient<tonic::transport::Channel>| {
            let mut c = c.clone();
            async move {
                let mut out = Vec::new();
                for zone in ["tiny", "pharma-a", "chilled-a"] {
                    out.extend(rows(&mut c, zone, "2026-12-01", "2026-12-06").await);
                }
                let list = list_all(&mut c, pb::ListBookingsRequest::default()).await;
                (out, list)
            }
        };
    let before = snapshot(&mut c).await;
    let sequence = h.bookings.store().durable_sequence();

    drop(c);
    let h = h.restart().await;
    let mut c = h.client().await;
    assert_eq!(snapshot(&mut c).await, before);
    assert!(h.bookings.audit().await.unwrap().is_empty());
    assert_eq!(h.bookings.store().durable_sequence(), sequence);
    // Live bookings only (the completed one's used day is checked separately below).
    assert_eq!(
        rows(&mut c, "chilled-a", "2026-12-01", "2026-12-03").await,
        vec![
            row("2026-12-01", 0, 0, 7, 2993),
            row("2026-12-02", 0, 0, 0, 3000),
            row("2026-12-03", 0, 0, 0, 3000)
        ],
        "completed on 12-01: only 12-01 stays used"
    );
    assert_counters_match_bookings(&mut c, &h.site, "2026-12-02", "2026-12-06").await;
    // Retries replay, new holds get new ids.
    let replay = c
        .hold_space(hold_zone("r0", "c1", "tiny", 4, "2026-12-02", "2026-12-03"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.booking_id, ids[&0]);
    let fresh = c
        .hold_space(hold_zone("r9", "c1", "tiny", 3, "2026-12-02", "2026-12-02"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        ids.values().all(|id| *id < fresh.booking_id),
        "{} is new",
        fresh.booking_id
    );
    // The tiny zone is full on 12-03 (4 + 3 of 10 leaves 3; 4 more do not fit).
    let status = c
        .hold_space(hold_zone(
            "r10",
            "c1",
            "tiny",
            4,
            "2026-12-03",
            "2026-12-03",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    // Lapses still work after the restart.
    h.set_ms(ms("2026-12-01T02:15:00.001Z"));
    assert_eq!(
        h.bookings.sweep_due().await.unwrap(),
        2,
        "the two holds never confirmed"
    );
    assert!(h.bookings.audit().await.unwrap().is_empty());
    assert_counters_match_bookings(&mut c, &h.site, "2026-12-02", "2026-12-06").await;
}
