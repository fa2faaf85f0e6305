//! Every request rule of BookingService, one table per RPC: each row mutates a valid base
//! request and states the code and the exact `google.rpc.BadRequest` field names the server
//! must answer with. After each mutating table the store's sequence shows that nothing was
//! written, and the base request then succeeds under the request_id every row used (a
//! refused request must not consume its request_id).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use coldchain_proto::booking::v1 as pb;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::common::v1 as cpb;
use coldchain_testkit::table::*;
use common::*;
use tonic::Code;
use tonic::transport::Channel;

type Client = BookingServiceClient<Channel>;

// ---------------------------------------------------------------------------------------------
// The table machinery

fn duration(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos })
}

// ---------------------------------------------------------------------------------------------
// Fixture

/// Bookings of cust-1 in pharma-a for 2026-12-02..=2026-12-03, 2 pallets each (today is
/// 2026-12-01 at the site).
struct Fixture {
    h: Harness,
    c: Client,
    held: String,
    confirmed: String,
    checked_in: String,
}

async fn fixture() -> Fixture {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let booking = c
            .hold_space(hold_zone(
                &format!("fx-{n}"),
                "cust-1",
                "pharma-a",
                2,
                "2026-12-02",
                "2026-12-03",
            ))
            .await
            .expect("hold")
            .into_inner();
        ids.push(booking.booking_id);
    }
    for id in &ids[1..] {
        c.confirm_booking(confirm(&format!("fx-c-{id}"), id))
            .await
            .expect("confirm");
    }
    c.check_in(check_in("fx-ci", &ids[2], None))
        .await
        .expect("check in");
    Fixture {
        h,
        c,
        held: ids[0].clone(),
        confirmed: ids[1].clone(),
        checked_in: ids[2].clone(),
    }
}

impl Fixture {
    fn sequence(&self) -> u64 {
        self.h.bookings.store().durable_sequence()
    }
}

// ---------------------------------------------------------------------------------------------
// GetAvailability

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_availability_rules() {
    type Req = pb::GetAvailabilityRequest;
    use pb::get_availability_request::Space;
    let f = fixture().await;
    let base = availability_zone("pharma-a", "2026-12-02", "2026-12-03");
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.push(invalid("no space", &["space"], |r: &mut Req| {
        r.space = None
    }));
    for class in [0, -1, 6, 999] {
        rows.push(invalid(
            format!("class {class}"),
            &["temperature_class"],
            move |r: &mut Req| r.space = Some(Space::TemperatureClass(class)),
        ));
    }
    rows.extend(id_rows("zone_id", true, |r: &mut Req, v| {
        r.space = Some(Space::ZoneId(v))
    }));
    rows.extend(day_range_rows(true, |r: &mut Req| {
        (&mut r.first_day, &mut r.last_day)
    }));
    rows.push(invalid("reversed", &["last_day"], |r: &mut Req| {
        std::mem::swap(&mut r.first_day, &mut r.last_day)
    }));
    rows.push(invalid("367 days", &["last_day"], |r: &mut Req| {
        r.last_day = ymd(2027, 12, 3)
    }));
    rows.push(invalid(
        "entirely in the past",
        &["last_day"],
        |r: &mut Req| {
            r.first_day = ymd(2026, 11, 1);
            r.last_day = ymd(2026, 11, 30);
        },
    ));
    rows.push(invalid(
        "every field at once",
        &["space", "first_day", "last_day"],
        |r: &mut Req| {
            r.space = None;
            r.first_day = None;
            r.last_day = ymd(2026, 2, 30);
        },
    ));
    rows.push(refused("an unknown zone", Code::NotFound, |r: &mut Req| {
        r.space = Some(Space::ZoneId("no-such-zone".into()))
    }));
    let c = f.c.clone();
    check_table("GetAvailability", &base, rows, |r| {
        let mut c = c.clone();
        async move { c.get_availability(r).await }
    })
    .await;
    // The edges: 366 days, a class, a range that starts in the past but ends today.
    let mut c = f.c.clone();
    for request in [
        Req {
            last_day: ymd(2027, 12, 2),
            ..base.clone()
        },
        Req {
            space: Some(Space::TemperatureClass(
                cpb::TemperatureClass::Pharma as i32,
            )),
            ..base.clone()
        },
        availability_zone("pharma-a", "2026-11-01", "2026-12-01"),
    ] {
        c.get_availability(request.clone())
            .await
            .unwrap_or_else(|e| panic!("{request:?}: {e:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// HoldSpace

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_space_rules() {
    type Req = pb::HoldSpaceRequest;
    use pb::hold_space_request::Space;
    let f = fixture().await;
    let before = f.sequence();
    let base = hold_zone("hs", "cust-2", "pharma-a", 2, "2026-12-02", "2026-12-03");
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("request_id", true, |r: &mut Req, v| {
        r.request_id = v
    }));
    rows.extend(id_rows("customer_id", true, |r: &mut Req, v| {
        r.customer_id = v
    }));
    rows.push(invalid("no space", &["space"], |r: &mut Req| {
        r.space = None
    }));
    for class in [0, -1, 6, 999] {
        rows.push(invalid(
            format!("class {class}"),
            &["temperature_class"],
            move |r: &mut Req| r.space = Some(Space::TemperatureClass(class)),
        ));
    }
    rows.extend(id_rows("zone_id", true, |r: &mut Req, v| {
        r.space = Some(Space::ZoneId(v))
    }));
    for pallets in [0, -3, i32::MIN] {
        rows.push(invalid(
            format!("pallets {pallets}"),
            &["pallets"],
            move |r: &mut Req| r.pallets = pallets,
        ));
    }
    rows.push(invalid(
        "more pallets than the zone has",
        &["pallets"],
        |r: &mut Req| r.pallets = 601,
    ));
    rows.push(invalid(
        "more pallets than any zone of the class has",
        &["pallets"],
        |r: &mut Req| {
            r.space = Some(Space::TemperatureClass(
                cpb::TemperatureClass::Pharma as i32,
            ));
            r.pallets = 601;
        },
    ));
    rows.extend(day_range_rows(true, |r: &mut Req| {
        (&mut r.first_day, &mut r.last_day)
    }));
    rows.push(invalid("reversed", &["last_day"], |r: &mut Req| {
        std::mem::swap(&mut r.first_day, &mut r.last_day)
    }));
    rows.push(invalid("367 days", &["last_day"], |r: &mut Req| {
        r.last_day = ymd(2027, 12, 3)
    }));
    rows.push(invalid(
        "first_day before the site's today",
        &["first_day"],
        |r: &mut Req| r.first_day = ymd(2026, 11, 30),
    ));
    for (name, ttl) in [
        ("0", duration(0, 0)),
        ("negative", duration(-5, 0)),
        ("negative nanos", duration(0, -1)),
        ("24 h and 1 ms", duration(24 * 3600, 1_000_000)),
        ("i64::MAX seconds", duration(i64::MAX, 0)),
        ("nanos of a whole second", duration(1, 1_000_000_000)),
        ("mixed signs", duration(5, -1)),
    ] {
        rows.push(invalid(
            format!("hold_ttl {name}"),
            &["hold_ttl"],
            move |r: &mut Req| r.hold_ttl = ttl,
        ));
    }
    rows.push(invalid(
        "customer_reference over 128 bytes",
        &["customer_reference"],
        |r: &mut Req| r.customer_reference = over_bytes(128),
    ));
    rows.push(invalid(
        "customer_reference with a control character",
        &["customer_reference"],
        |r: &mut Req| r.customer_reference = "po\n1".into(),
    ));
    rows.push(invalid(
        "every field at once",
        &[
            "request_id",
            "customer_id",
            "space",
            "pallets",
            "first_day",
            "hold_ttl",
            "customer_reference",
        ],
        |r: &mut Req| {
            r.request_id.clear();
            r.customer_id = " c".into();
            r.space = None;
            r.pallets = 0;
            r.first_day = ymd(2026, 13, 1);
            r.hold_ttl = duration(-1, 0);
            r.customer_reference = "\u{0}".into();
        },
    ));
    rows.push(refused("an unknown zone", Code::NotFound, |r: &mut Req| {
        r.space = Some(Space::ZoneId("no-such-zone".into()))
    }));
    rows.push(refused(
        "no room on the days",
        Code::FailedPrecondition,
        |r: &mut Req| r.pallets = 600,
    ));
    let c = f.c.clone();
    check_writes(
        "HoldSpace",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.hold_space(r).await }
        },
    )
    .await;
    assert_eq!(f.sequence(), before, "a refused hold writes nothing");
    let mut c = f.c.clone();
    c.hold_space(base)
        .await
        .expect("the base request, request_id unused");
    // The edges: a 24 h hold, a 128-byte reference, 366 days, the rest of the zone.
    c.hold_space(Req {
        hold_ttl: duration(24 * 3600, 0),
        customer_reference: "r".repeat(128),
        first_day: ymd(2026, 12, 1),
        last_day: ymd(2027, 12, 1),
        pallets: 600 - 8,
        ..hold_zone(
            "hs-edges",
            "cust-2",
            "pharma-a",
            1,
            "2026-12-01",
            "2026-12-01",
        )
    })
    .await
    .expect("the edges are valid");
}

// ---------------------------------------------------------------------------------------------
// The transitions and GetBooking

/// The request_id and booking_id rows every transition has, through `parts`.
fn transition_rows<R: 'static>(parts: fn(&mut R) -> (&mut String, &mut String)) -> Vec<Row<R>> {
    let mut rows = Vec::new();
    for (field, pick) in [("request_id", 0), ("booking_id", 1)] {
        for (form, value) in std::iter::once(("empty", String::new())).chain(malformed_ids()) {
            rows.push(invalid(
                format!("{field} {form}"),
                &[field],
                move |r: &mut R| {
                    let (request_id, booking_id) = parts(r);
                    *if pick == 0 { request_id } else { booking_id } = value.clone();
                },
            ));
        }
    }
    rows.push(refused(
        "an unknown booking",
        Code::NotFound,
        move |r: &mut R| *parts(r).1 = "BK-404".into(),
    ));
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_booking_rules() {
    type Req = pb::ConfirmBookingRequest;
    let f = fixture().await;
    let before = f.sequence();
    let base = confirm("cf", &f.held);
    let mut rows = transition_rows(|r: &mut Req| (&mut r.request_id, &mut r.booking_id));
    let confirmed = f.confirmed.clone();
    rows.push(refused(
        "a booking that is not HELD",
        Code::FailedPrecondition,
        move |r: &mut Req| r.booking_id = confirmed.clone(),
    ));
    let c = f.c.clone();
    check_writes(
        "ConfirmBooking",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.confirm_booking(r).await }
        },
    )
    .await;
    assert_eq!(
        f.sequence(),
        before,
        "a refused confirmation writes nothing"
    );
    f.c.clone()
        .confirm_booking(base)
        .await
        .expect("the base request, request_id unused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_booking_rules() {
    type Req = pb::CancelBookingRequest;
    let f = fixture().await;
    let before = f.sequence();
    let base = cancel("cn", &f.held);
    let mut rows = transition_rows(|r: &mut Req| (&mut r.request_id, &mut r.booking_id));
    for (name, reason) in [
        ("empty", String::new()),
        ("blank", "  ".to_string()),
        ("over 512 bytes", over_bytes(512)),
        ("with a control character", "changed\u{7}".to_string()),
    ] {
        rows.push(invalid(
            format!("reason {name}"),
            &["reason"],
            move |r: &mut Req| r.reason = reason.clone(),
        ));
    }
    let checked_in = f.checked_in.clone();
    rows.push(refused(
        "a booking that is CHECKED_IN",
        Code::FailedPrecondition,
        move |r: &mut Req| r.booking_id = checked_in.clone(),
    ));
    let c = f.c.clone();
    check_writes(
        "CancelBooking",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.cancel_booking(r).await }
        },
    )
    .await;
    assert_eq!(
        f.sequence(),
        before,
        "a refused cancellation writes nothing"
    );
    f.c.clone()
        .cancel_booking(pb::CancelBookingRequest {
            reason: "é".repeat(256),
            ..base
        })
        .await
        .expect("the base request with a 512-byte reason, request_id unused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_in_rules() {
    type Req = pb::CheckInRequest;
    let f = fixture().await;
    let before = f.sequence();
    let base = check_in("ci", &f.confirmed, None);
    let mut rows = transition_rows(|r: &mut Req| (&mut r.request_id, &mut r.booking_id));
    for arrived in [0, -1, i32::MIN] {
        rows.push(invalid(
            format!("pallets_arrived {arrived}"),
            &["pallets_arrived"],
            move |r: &mut Req| r.pallets_arrived = Some(arrived),
        ));
    }
    rows.push(invalid(
        "more pallets arrived than booked",
        &["pallets_arrived"],
        |r: &mut Req| r.pallets_arrived = Some(3),
    ));
    let held = f.held.clone();
    rows.push(refused(
        "a booking that is not CONFIRMED",
        Code::FailedPrecondition,
        move |r: &mut Req| r.booking_id = held.clone(),
    ));
    let c = f.c.clone();
    check_writes(
        "CheckIn",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.check_in(r).await }
        },
    )
    .await;
    assert_eq!(f.sequence(), before, "a refused check-in writes nothing");
    f.c.clone()
        .check_in(base)
        .await
        .expect("the base request, request_id unused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_booking_rules() {
    type Req = pb::CompleteBookingRequest;
    let f = fixture().await;
    let before = f.sequence();
    let base = complete("cp", &f.checked_in);
    let mut rows = transition_rows(|r: &mut Req| (&mut r.request_id, &mut r.booking_id));
    let held = f.held.clone();
    rows.push(refused(
        "a booking that is not CHECKED_IN",
        Code::FailedPrecondition,
        move |r: &mut Req| r.booking_id = held.clone(),
    ));
    let c = f.c.clone();
    check_writes(
        "CompleteBooking",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.complete_booking(r).await }
        },
    )
    .await;
    assert_eq!(f.sequence(), before, "a refused completion writes nothing");
    f.c.clone()
        .complete_booking(base)
        .await
        .expect("the base request, request_id unused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_booking_rules() {
    type Req = pb::GetBookingRequest;
    let f = fixture().await;
    let base = Req {
        booking_id: f.held.clone(),
    };
    let mut rows: Vec<Row<Req>> = id_rows("booking_id", true, |r: &mut Req, v| r.booking_id = v);
    rows.push(refused(
        "an unknown booking",
        Code::NotFound,
        |r: &mut Req| r.booking_id = "BK-404".into(),
    ));
    let c = f.c.clone();
    c.clone()
        .get_booking(base.clone())
        .await
        .expect("the base request is valid");
    check_table("GetBooking", &base, rows, |r| {
        let mut c = c.clone();
        async move { c.get_booking(r).await }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// ListBookings

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_bookings_rules() {
    type Req = pb::ListBookingsRequest;
    let f = fixture().await;
    let mut c = f.c.clone();
    let base = Req {
        page_size: 1,
        ..Req::default()
    };
    let token = c
        .list_bookings(base.clone())
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let other_query = c
        .list_bookings(Req {
            customer_id: "cust-1".into(),
            ..base.clone()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty() && !other_query.is_empty());
    c.list_bookings(Req {
        page_token: token.clone(),
        ..base.clone()
    })
    .await
    .expect("the genuine token is accepted");
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("customer_id", false, |r: &mut Req, v| {
        r.customer_id = v
    }));
    rows.extend(id_rows("zone_id", false, |r: &mut Req, v| r.zone_id = v));
    rows.extend(enum_list_rows("states", 8, |r: &mut Req, v| r.states = v));
    rows.extend(day_range_rows(false, |r: &mut Req| {
        (&mut r.first_day, &mut r.last_day)
    }));
    rows.push(invalid("reversed days", &["last_day"], |r: &mut Req| {
        r.first_day = ymd(2026, 12, 5);
        r.last_day = ymd(2026, 12, 4);
    }));
    for size in [-1, i32::MIN] {
        rows.push(invalid(
            format!("page_size {size}"),
            &["page_size"],
            move |r: &mut Req| r.page_size = size,
        ));
    }
    for (name, value) in [
        ("not hex", "zz".to_string()),
        ("odd length", "abc".to_string()),
        ("upper-case hex", token.to_uppercase()),
        ("first digit flipped", flip(&token, 0)),
        ("middle digit flipped", flip(&token, token.len() / 2)),
        ("last digit flipped", flip(&token, token.len() - 1)),
        ("truncated", token[..token.len() - 2].to_string()),
        ("extended", format!("{token}00")),
        ("over 4 KiB", "ab".repeat(3000)),
        ("token of another query", other_query),
    ] {
        rows.push(invalid(
            format!("page_token {name}"),
            &["page_token"],
            move |r: &mut Req| r.page_token = value.clone(),
        ));
    }
    rows.push(invalid(
        "the genuine token with other filters",
        &["page_token"],
        move |r: &mut Req| {
            r.states = vec![1];
            r.page_token = token.clone();
        },
    ));
    rows.push(invalid(
        "every field at once",
        &[
            "customer_id",
            "zone_id",
            "states[0]",
            "first_day",
            "page_size",
            "page_token",
        ],
        |r: &mut Req| {
            r.customer_id = "\u{1}".into();
            r.zone_id = " z".into();
            r.states = vec![0];
            r.first_day = ymd(2026, 2, 30);
            r.page_size = -1;
            r.page_token = "zz".into();
        },
    ));
    check_table("ListBookings", &base, rows, |r| {
        let mut c = c.clone();
        async move { c.list_bookings(r).await }
    })
    .await;
    // Sizes above the maximum are clamped, not refused.
    f.c.clone()
        .list_bookings(Req {
            page_size: i32::MAX,
            ..Req::default()
        })
        .await
        .expect("clamped");
}
