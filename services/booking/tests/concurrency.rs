//! Races and restarts over gRPC: many clients for the last positions, concurrent
//! transitions, and the counters after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use coldchain_proto::booking::v1 as pb;
use coldchain_runtime::network::TemperatureClass;
use common::*;
use tonic::Code;

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
