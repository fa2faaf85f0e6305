//! Booking ids unique across the network: the new form names the site, bookings stored by
//! builds before it keep their ids, and an id of another site is NOT_FOUND here.
//!
//! `fixtures/store-bk-sequence-ids` is a data directory written by the build before
//! network-unique ids (commit bebf2db), through its gRPC API on the park, at [`T0_MS`]
//! with the manual clock of these tests: the requests `old-1` … `old-5x` below, leaving
//! - `BK-000000000001` HELD (cust-1, pharma-a, 5 pallets, 2026-12-02..=04; request `old-1`),
//! - `BK-000000000002` CONFIRMED (cust-1, frozen-a, 3 pallets, 2026-12-02),
//! - `BK-000000000004` CHECKED_IN (cust-2, chilled-a, 2 pallets, 1 arrived, 2026-12-02..=05),
//! - `BK-000000000007` HELD (cust-2, pharma-a, 1 pallet, 2026-12-02),
//! - `BK-000000000008` CANCELLED (cust-1, pharma-a, 4 pallets, 2026-12-03),
//!
//! and ledger entries 1 to 9. The server was stopped cleanly (drained, flushed, closed)
//! and the directory copied as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::path::Path;
use std::sync::Arc;

use coldchain_proto::booking::v1 as pb;
use coldchain_store::ManualClock;
use common::*;
use tonic::Code;

const PARK: &str = "cn-huaihua-park";
const OLD_IDS: [&str; 5] = [
    "BK-000000000001",
    "BK-000000000002",
    "BK-000000000004",
    "BK-000000000007",
    "BK-000000000008",
];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The park on a copy of the fixture, a minute after it was written.
async fn start_on_fixture() -> Harness {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-bk-sequence-ids");
    copy_dir(&fixture, dir.path());
    Harness::start_in(dir, ManualClock::at(T0_MS + 60_000), park(), quiet()).await
}

async fn get(
    c: &mut pb::booking_service_client::BookingServiceClient<tonic::transport::Channel>,
    id: &str,
) -> Result<pb::Booking, tonic::Status> {
    c.get_booking(pb::GetBookingRequest {
        booking_id: id.to_string(),
    })
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_stored_before_network_unique_ids_keep_their_ids() {
    let h = start_on_fixture().await;
    let mut c = h.client().await;

    // Every old booking reads by its old id, as it was stored.
    let mut found = Vec::new();
    for id in OLD_IDS {
        let b = get(&mut c, id).await.expect("an old id is found");
        assert_eq!(b.booking_id, id);
        assert_eq!(b.site_id, PARK);
        found.push(state(&b));
    }
    use pb::BookingState as S;
    assert_eq!(
        found,
        [S::Held, S::Confirmed, S::CheckedIn, S::Held, S::Cancelled]
    );
    assert!(h.bookings.audit().await.unwrap().is_empty());
    assert_eq!(h.bookings.ledger(1, 100).unwrap().len(), 9);

    // A retry of a request answered before the upgrade replays the stored answer.
    let sequence = h.bookings.store().durable_sequence();
    let replay = c
        .hold_space(hold_zone(
            "old-1",
            "cust-1",
            "pharma-a",
            5,
            "2026-12-02",
            "2026-12-04",
        ))
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(replay.booking_id, "BK-000000000001");
    assert_eq!(replay.created_at, Some(ts("2026-12-01T02:00:00Z")));
    assert_eq!(h.bookings.store().durable_sequence(), sequence);

    // New bookings get ids naming the site, after the stored sequence.
    let new = c
        .hold_space(hold_zone(
            "new-1",
            "cust-1",
            "pharma-a",
            2,
            "2026-12-02",
            "2026-12-02",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(new.booking_id, "BK-000000000010-cn-huaihua-park");
    let later = c
        .hold_space(hold_zone(
            "new-2",
            "cust-1",
            "frozen-a",
            1,
            "2026-12-03",
            "2026-12-03",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(later.booking_id, "BK-000000000011-cn-huaihua-park");

    // Every transition works on an old id.
    let confirmed = c
        .confirm_booking(confirm("t1", "BK-000000000001"))
        .await
        .expect("confirm by old id")
        .into_inner();
    assert_eq!(state(&confirmed), S::Confirmed);
    let checked = c
        .check_in(check_in("t2", "BK-000000000002", None))
        .await
        .expect("check in by old id")
        .into_inner();
    assert_eq!(state(&checked), S::CheckedIn);
    let completed = c
        .complete_booking(complete("t3", "BK-000000000004"))
        .await
        .expect("complete by old id")
        .into_inner();
    assert_eq!(state(&completed), S::Completed);
    let cancelled = c
        .cancel_booking(cancel("t4", "BK-000000000007"))
        .await
        .expect("cancel by old id")
        .into_inner();
    assert_eq!(state(&cancelled), S::Cancelled);

    // Listing: first day, then id; old ids before new ones of the same day (creation
    // order), and page by page the same as all at once.
    let expected = [
        "BK-000000000001",
        "BK-000000000002",
        "BK-000000000004",
        "BK-000000000007",
        "BK-000000000010-cn-huaihua-park",
        "BK-000000000008",
        "BK-000000000011-cn-huaihua-park",
    ];
    let ids = |list: Vec<pb::Booking>| -> Vec<String> {
        list.into_iter().map(|b| b.booking_id).collect()
    };
    for page_size in [1, 2, 3, 1000] {
        let all = list_all(
            &mut c,
            pb::ListBookingsRequest {
                page_size,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(ids(all), expected, "page_size {page_size}");
    }
    let mine = list_all(
        &mut c,
        pb::ListBookingsRequest {
            customer_id: "cust-1".into(),
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        ids(mine),
        [
            "BK-000000000001",
            "BK-000000000002",
            "BK-000000000010-cn-huaihua-park",
            "BK-000000000008",
            "BK-000000000011-cn-huaihua-park",
        ]
    );
    assert_counters_match_bookings(&mut c, &h.site, "2026-12-01", "2026-12-06").await;
    assert!(h.bookings.audit().await.unwrap().is_empty());

    // And all of it again after a restart.
    let h = h.restart().await;
    let mut c = h.client().await;
    assert_eq!(
        state(&get(&mut c, "BK-000000000001").await.unwrap()),
        S::Confirmed
    );
    assert_eq!(
        state(
            &get(&mut c, "BK-000000000010-cn-huaihua-park")
                .await
                .unwrap()
        ),
        S::Held
    );
    assert!(h.bookings.audit().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_differ_across_sites_and_an_id_of_another_site_is_not_found_here() {
    let vientiane_site = network().site("la-vientiane").expect("vientiane").clone();
    let park = Harness::start().await;
    let vientiane = Harness::start_site(vientiane_site, quiet()).await;
    let (mut p, mut v) = (park.client().await, vientiane.client().await);
    let request = hold_zone("h", "cust-1", "frozen-a", 1, "2026-12-02", "2026-12-02");
    let at_park = p.hold_space(request.clone()).await.unwrap().into_inner();
    let at_vientiane = v.hold_space(request).await.unwrap().into_inner();
    assert_eq!(at_park.booking_id, "BK-000000000001-cn-huaihua-park");
    assert_eq!(at_vientiane.booking_id, "BK-000000000001-la-vientiane");

    // Vientiane's booking asked of the park: NOT_FOUND naming the site it belongs to,
    // for every call, and nothing is written.
    let id = at_vientiane.booking_id.as_str();
    let sequence = park.bookings.store().durable_sequence();
    let mut refusals = vec![get(&mut p, id).await.unwrap_err()];
    refusals.push(p.confirm_booking(confirm("c", id)).await.unwrap_err());
    refusals.push(p.cancel_booking(cancel("x", id)).await.unwrap_err());
    refusals.push(p.check_in(check_in("i", id, None)).await.unwrap_err());
    refusals.push(p.complete_booking(complete("d", id)).await.unwrap_err());
    for status in refusals {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(status.message().contains(id), "{}", status.message());
        assert!(
            status.message().contains("booking of site la-vientiane"),
            "{}",
            status.message()
        );
    }
    assert_eq!(park.bookings.store().durable_sequence(), sequence);
    // The park's own booking is untouched, and Vientiane still has its own.
    assert_eq!(
        state(&get(&mut p, &at_park.booking_id).await.unwrap()),
        pb::BookingState::Held
    );
    assert_eq!(get(&mut v, id).await.unwrap().site_id, "la-vientiane");

    // Ids of no site's form are NOT_FOUND as before; ids that are not identifiers at all
    // are INVALID_ARGUMENT naming booking_id.
    for unknown in ["BK-000000000001", "BK-404", "BK-1-", "nope"] {
        assert_eq!(
            get(&mut p, unknown).await.unwrap_err().code(),
            Code::NotFound
        );
    }
    for malformed in ["", " BK-000000000001-cn-huaihua-park", "BK-\u{7}"] {
        let status = get(&mut p, malformed).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{malformed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_larger_than_int32_books_at_most_int32_pallets_a_day() {
    let site = park_with(&[(
        "frozen-huge",
        coldchain_runtime::network::TemperatureClass::Frozen,
        u32::MAX,
    )]);
    let h = Harness::start_site(site, quiet()).await;
    let mut c = h.client().await;
    let huge =
        |r: &str, pallets| hold_zone(r, "c", "frozen-huge", pallets, "2026-12-02", "2026-12-02");
    c.hold_space(huge("a", i32::MAX - 1)).await.expect("fits");
    c.hold_space(huge("b", 1)).await.expect("fits exactly");
    let status = c.hold_space(huge("c", 1)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let row = c
        .get_availability(availability_zone("frozen-huge", "2026-12-02", "2026-12-02"))
        .await
        .unwrap()
        .into_inner()
        .days
        .remove(0);
    assert_eq!(
        (row.capacity, row.held, row.free),
        (i32::MAX, i32::MAX, 0),
        "every figure exact in int32"
    );
    assert!(h.bookings.audit().await.unwrap().is_empty());
}
