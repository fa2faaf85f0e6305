//! The inventory service through its generated client, against real tonic servers on
//! 127.0.0.1:0 over temporary data dirs: the change feed, concurrency, restart and the
//! booking check-in (the other RPCs are in `api.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::time::Duration;

use coldchain_inventory::Options;
use coldchain_proto::common::v1 as cpb;
use coldchain_proto::inventory::v1 as pb;
use common::*;
use tonic::Code;

fn jun30() -> cpb::Date {
    date(2026, 6, 30)
}

// ---------------------------------------------------------------------------------------------
// WatchLedger

async fn write_entries(c: &mut Client, prefix: &str, batches: usize, per_batch: usize) {
    for b in 0..batches {
        let movements = (0..per_batch)
            .map(|i| receipt("SKU-W", &format!("L{}", i % 10), CHILLED, 1, jun30()))
            .collect();
        record(c, &format!("{prefix}-{b}"), movements)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn watch_ledger_sends_history_then_live_entries() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    write_entries(&mut c, "hist", 3, 100).await;
    let mut stream = c
        .watch_ledger(pb::WatchLedgerRequest { from_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while seen.len() < 300 {
        let message = stream.message().await.unwrap().unwrap();
        assert!(message.head_sequence >= 300);
        seen.extend(message.entries.into_iter().map(|e| e.sequence));
    }
    // Live: written after the consumer caught up.
    let mut writer = h.client().await;
    let live = tokio::spawn(async move { write_entries(&mut writer, "live", 5, 20).await });
    while seen.len() < 400 {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("live entries arrive")
            .unwrap()
            .unwrap();
        seen.extend(message.entries.into_iter().map(|e| e.sequence));
    }
    live.await.unwrap();
    assert_eq!(seen, (1..=400).collect::<Vec<u64>>());

    // A start beyond the head waits for that entry.
    let mut ahead = c
        .watch_ledger(pb::WatchLedgerRequest { from_sequence: 402 })
        .await
        .unwrap()
        .into_inner();
    write_entries(&mut c, "ahead", 1, 3).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(10), ahead.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.extend(message.entries.iter().map(|e| e.sequence));
    }
    assert_eq!(got, vec![402, 403]);
}

#[tokio::test]
async fn a_consumer_that_disconnects_and_resumes_sees_every_entry_once() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    write_entries(&mut c, "before", 4, 250).await;
    // Writers keep going while the consumer comes and goes.
    let mut writer = h.client().await;
    let writing = tokio::spawn(async move { write_entries(&mut writer, "during", 20, 50).await });
    let total = 1000 + 20 * 50;
    let mut seen: Vec<u64> = Vec::new();
    let mut rounds = 0;
    while (seen.len() as u64) < total {
        rounds += 1;
        let from = seen.last().map_or(1, |last| last + 1);
        let mut stream = c
            .watch_ledger(pb::WatchLedgerRequest {
                from_sequence: from,
            })
            .await
            .unwrap()
            .into_inner();
        // Take two messages, then hang up mid-stream.
        for _ in 0..2 {
            if seen.len() as u64 >= total {
                break;
            }
            let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("entries arrive")
            else {
                break;
            };
            seen.extend(message.entries.iter().map(|e| e.sequence));
        }
        drop(stream);
        assert!(rounds < 500, "no progress");
    }
    writing.await.unwrap();
    assert!(
        rounds > 2,
        "the consumer really reconnected ({rounds} rounds)"
    );
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<u64>>(),
        "every entry exactly once, in order"
    );
    // And the entries are the ledger's: the request ids of the writes, in order.
    let entries = ledger(&mut c, 1).await;
    assert_eq!(entries.len() as u64, total);
    assert_eq!(entries[0].request_id, "before-0");
    assert_eq!(entries.last().unwrap().request_id, "during-19");
}

#[tokio::test]
async fn a_stalled_consumer_is_cut_off_with_a_resumable_error() {
    let options = Options {
        feed_buffer: 1,
        feed_batch: 50,
        feed_stall: Duration::from_millis(200),
        ..Options::default()
    };
    let h = Harness::start_with(network(), options).await;
    let mut c = h.client().await;
    // Entries of ~500 bytes: 10,000 of them are far more than the flow-control windows
    // and send buffers between the pump and a consumer that stops reading.
    for b in 0..10 {
        let movements = (0..1000)
            .map(|i| pb::Movement {
                reason: format!("{:-<400}", format!("adjustment {b}-{i} ")),
                ..movement(pb::MovementKind::Adjustment, "SKU-W", "L1", CHILLED, 1)
            })
            .collect();
        if b == 0 {
            record(
                &mut c,
                "w-first",
                vec![receipt("SKU-W", "L1", CHILLED, 1, jun30())],
            )
            .await
            .unwrap();
        }
        record(&mut c, &format!("w-{b}"), movements).await.unwrap();
    }
    let total = 10_001 + 10;
    // A consumer with small windows (hyper's client default is 2 MiB per stream).
    let channel = tonic::transport::Endpoint::from_shared(h.endpoint.clone())
        .unwrap()
        .initial_stream_window_size(Some(64 * 1024))
        .initial_connection_window_size(Some(64 * 1024))
        .connect()
        .await
        .unwrap();
    let mut slow = pb::inventory_service_client::InventoryServiceClient::new(channel);
    let mut stream = slow
        .watch_ledger(pb::WatchLedgerRequest { from_sequence: 1 })
        .await
        .unwrap()
        .into_inner();
    let mut seen: Vec<u64> = Vec::new();
    let first = stream.message().await.unwrap().unwrap();
    seen.extend(first.entries.iter().map(|e| e.sequence));
    // Stop reading: the pump waits for room, gives up after the stall limit. Meanwhile
    // writers are not held up.
    let started = std::time::Instant::now();
    write_entries(&mut c, "meanwhile", 1, 10).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let error = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.message().await {
                Ok(Some(message)) => seen.extend(message.entries.iter().map(|e| e.sequence)),
                Ok(None) => panic!("the stream ended without an error"),
                Err(status) => break status,
            }
        }
    })
    .await
    .expect("the stream was cut off");
    assert_eq!(error.code(), Code::ResourceExhausted);
    // At the documented limit: the configured queue, full for the configured stall.
    assert!(
        error
            .message()
            .starts_with("consumer too slow: 1 messages queued for 200 ms;"),
        "{}",
        error.message()
    );
    let resume: u64 = error
        .message()
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume sequence in {:?}", error.message()));
    assert_eq!(resume, *seen.last().unwrap() + 1, "{}", error.message());
    assert!(resume < total, "it was cut off before the end");
    let rest = ledger(&mut c, resume).await;
    seen.extend(rest.iter().map(|e| e.sequence));
    assert_eq!(seen, (1..=total).collect::<Vec<u64>>());
}

#[tokio::test]
async fn shutdown_ends_streams_with_unavailable() {
    let mut h = Harness::start().await;
    let mut c = h.client().await;
    write_entries(&mut c, "w", 1, 5).await;
    let mut stream = c
        .watch_ledger(pb::WatchLedgerRequest { from_sequence: 1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().entries.len(), 5);
    h.shutdown().trigger();
    let status = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    assert!(message.entries.is_empty(), "only the caught-up marker")
                }
                Ok(None) => panic!("ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream ends promptly");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("resume from sequence 6"),
        "{}",
        status.message()
    );
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_clients_never_oversell_one_lot() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    const ON_HAND: i64 = 480;
    record(
        &mut c,
        "r-1",
        vec![receipt("SKU-HOT", "L1", CHILLED, ON_HAND, jun30())],
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for client in 0..32 {
        let mut c = h.client().await;
        tasks.push(tokio::spawn(async move {
            let mut granted = Vec::new();
            let mut refused = 0;
            for i in 0.. {
                let quantity = 1 + (client + i) % 3;
                match record(
                    &mut c,
                    &format!("c{client}-{i}"),
                    vec![issue("SKU-HOT", "L1", CHILLED, quantity)],
                )
                .await
                {
                    Ok(entries) => granted.push((quantity, entries[0].balance_after)),
                    Err(status) => {
                        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                        refused += 1;
                        if quantity == 1 {
                            break;
                        }
                    }
                }
                assert!(refused < 10_000);
            }
            granted
        }));
    }
    let mut granted = Vec::new();
    for task in tasks {
        granted.extend(task.await.unwrap());
    }
    let total: i64 = granted.iter().map(|(q, _)| q).sum();
    assert_eq!(total, ON_HAND, "exactly the on-hand quantity was granted");
    let mut balances: Vec<i64> = granted.iter().map(|(_, b)| *b).collect();
    balances.sort_unstable();
    balances.dedup();
    assert_eq!(
        balances.len(),
        granted.len(),
        "every grant saw a distinct balance"
    );
    assert!(balances.iter().all(|b| *b >= 0));
    let l = level(&mut c, "SKU-HOT", "L1", CHILLED).await;
    assert_eq!((l.on_hand, l.available), (0, 0));
    let entries = ledger(&mut c, 1).await;
    assert_eq!(entries.iter().map(|e| e.delta).sum::<i64>(), 0);
    assert!(entries.iter().all(|e| e.balance_after >= 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_allocations_never_reserve_more_than_available() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    record(
        &mut c,
        "r-1",
        vec![receipt("SKU-F", "L1", CHILLED, 100, jun30())],
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for n in 0..16 {
        let mut c = h.client().await;
        tasks.push(tokio::spawn(async move {
            c.allocate_stock(allocate(
                &format!("a-{n}"),
                &format!("O-{n}"),
                15,
                pb::AllocationStrategy::Fefo,
            ))
            .await
            .map(|r| r.into_inner().quantity)
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(15) => ok += 1,
            Ok(other) => panic!("allocated {other}"),
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition),
        }
    }
    assert_eq!(ok, 6);
    let l = level(&mut c, "SKU-F", "L1", CHILLED).await;
    assert_eq!((l.allocated, l.available), (90, 10));
}

// ---------------------------------------------------------------------------------------------
// Restart

#[tokio::test]
async fn a_restart_keeps_balances_holds_allocations_and_the_ledger() {
    let mut h = Harness::start().await;
    let mut c = h.client().await;
    allocation_fixture(&h, &mut c).await;
    c.allocate_stock(allocate("a-1", "O-1", 25, pb::AllocationStrategy::Fefo))
        .await
        .unwrap();
    record(&mut c, "i-1", vec![issue("SKU-F", "L-JUN", CHILLED, 3)])
        .await
        .unwrap();
    let before_stock = stock(&mut c, "SKU-F", "", "").await.unwrap();
    let before_ledger = ledger(&mut c, 1).await;

    h.restart().await;
    let mut c = h.client().await;
    assert_eq!(stock(&mut c, "SKU-F", "", "").await.unwrap(), before_stock);
    assert_eq!(ledger(&mut c, 1).await, before_ledger);
    // The hold and the allocation are still in force; sequences continue without a gap.
    let apr = level(&mut c, "SKU-F", "L-APR", CHILLED).await;
    assert_eq!(apr.available, 0);
    let entries = record(&mut c, "i-2", vec![issue("SKU-F", "L-JUN", CHILLED, 1)])
        .await
        .unwrap();
    assert_eq!(
        entries[0].sequence,
        before_ledger.last().unwrap().sequence + 1
    );
    // A retry of a request from before the restart replays.
    let replay = record(&mut c, "i-1", vec![issue("SKU-F", "L-JUN", CHILLED, 3)])
        .await
        .unwrap();
    assert_eq!(replay[0].request_id, "i-1");
    assert_eq!(level(&mut c, "SKU-F", "L-JUN", CHILLED).await.on_hand, 36);
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Booking check-in

fn booked(lot_id: &str, quantity: i64, booking_id: &str, pallets: i32) -> pb::Movement {
    pb::Movement {
        booking_id: booking_id.into(),
        pallets,
        ..receipt("SKU-A", lot_id, CHILLED, quantity, jun30())
    }
}

#[tokio::test]
async fn a_receipt_citing_a_booking_checks_it_in_once() {
    let fake = FakeBooking::default();
    let booking = start_fake_booking(fake.clone()).await;
    let h = Harness::start_with(
        network_with_booking(&booking.endpoint()),
        Options::default(),
    )
    .await;
    let mut c = h.client().await;
    let movements = vec![
        booked("L1", 10, "bk-1", 2),
        booked("L2", 10, "bk-1", 3),
        booked("L3", 10, "bk-2", 0),
        receipt("SKU-A", "L4", CHILLED, 1, jun30()),
    ];
    let entries = record(&mut c, "rcv-1", movements.clone()).await.unwrap();
    assert_eq!(entries[0].booking_id, "bk-1");
    let calls = fake.calls();
    assert_eq!(calls.len(), 2, "one check-in per booking: {calls:?}");
    assert_eq!(
        (calls[0].booking_id.as_str(), calls[0].pallets_arrived),
        ("bk-1", Some(5))
    );
    assert_eq!(
        (calls[1].booking_id.as_str(), calls[1].pallets_arrived),
        ("bk-2", None)
    );
    assert_eq!(
        calls[0].request_id,
        coldchain_inventory::api::check_in_request_id(SITE, "rcv-1", "bk-1")
    );
    assert!(calls[0].request_id.len() <= 128);
    // A retry replays without checking in again.
    assert_eq!(record(&mut c, "rcv-1", movements).await.unwrap(), entries);
    assert_eq!(fake.calls().len(), 2);
    booking.stop().await;
}

#[tokio::test]
async fn a_booking_refusal_keeps_its_code_and_records_nothing() {
    let fake = FakeBooking::default();
    let booking = start_fake_booking(fake.clone()).await;
    let h = Harness::start_with(
        network_with_booking(&booking.endpoint()),
        Options::default(),
    )
    .await;
    let mut c = h.client().await;
    for (id, booking_id, code) in [
        ("r-1", "bk-unknown", Code::NotFound),
        ("r-2", "bk-cancelled", Code::FailedPrecondition),
        ("r-3", "bk-flaky", Code::Unavailable),
    ] {
        let status = record(&mut c, id, vec![booked("L1", 10, booking_id, 1)])
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{booking_id}: {status:?}");
        assert!(
            status.message().contains(booking_id),
            "{}",
            status.message()
        );
    }
    assert_eq!(
        stock(&mut c, "SKU-A", "", "").await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(ledger(&mut c, 1).await.is_empty());
    // A batch refused for its own content never reaches the booking service.
    let before = fake.calls().len();
    let status = record(
        &mut c,
        "r-4",
        vec![
            booked("L1", 10, "bk-1", 1),
            issue("SKU-A", "L1", CHILLED, 11),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(fake.calls().len(), before);
    booking.stop().await;
}

#[tokio::test]
async fn an_unreachable_booking_service_is_unavailable_and_changes_nothing() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = Harness::start_with(
        network_with_booking(&format!("http://127.0.0.1:{port}")),
        Options::default(),
    )
    .await;
    let mut c = h.client().await;
    record(
        &mut c,
        "r-0",
        vec![receipt("SKU-A", "L1", CHILLED, 5, jun30())],
    )
    .await
    .unwrap();
    let status = record(&mut c, "r-1", vec![booked("L1", 10, "bk-1", 1)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("bk-1"), "{}", status.message());
    assert_eq!(level(&mut c, "SKU-A", "L1", CHILLED).await.on_hand, 5);
    assert_eq!(ledger(&mut c, 1).await.len(), 1);
    // Receipts that cite no booking do not need the booking service.
    record(
        &mut c,
        "r-2",
        vec![receipt("SKU-A", "L1", CHILLED, 5, jun30())],
    )
    .await
    .unwrap();
}
