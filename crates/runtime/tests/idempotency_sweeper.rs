//! The idempotency sweeper follows the store's clock: once an hour of that clock has
//! passed, expired request ids are forgotten, however little real time went by.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::time::{Duration, Instant};

use coldchain_runtime::Shutdown;
use coldchain_runtime::host::spawn_idempotency_sweeper;
use coldchain_runtime::idempotency::Protobuf;
use coldchain_store::{
    ForgetRefusals, Idempotent, Identity, ManualClock, Store, StoreOptions, Table, WriteError,
    fingerprint,
};

#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    #[prost(uint64, tag = "1")]
    sequence: u64,
}

/// The idempotency records the store holds: every row of its `_requests` table, read as
/// keys alone.
fn records(store: &Store) -> usize {
    const REQUESTS: Table<String, ()> = Table::new("_requests");
    store.scan_prefix(&REQUESTS, &[]).count()
}

/// Writes one ledger entry under `request_id`, with `content` as the request's bytes.
async fn write(store: &Store, request_id: &str, content: &[u8]) -> Result<(), WriteError<String>> {
    let request = fingerprint(request_id, content);
    store
        .write(
            Some(Idempotent::new(&request, &Protobuf, &ForgetRefusals)),
            |tx| {
                let sequence = tx.append_ledger(|sequence| sequence.to_be_bytes().to_vec());
                Ok::<_, String>(Reply { sequence })
            },
        )
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_request_ids_are_forgotten_as_the_stores_own_clock_passes_the_hour() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_800_000_000_000);
    let options = StoreOptions {
        idempotency_retention: Duration::from_secs(24 * 3600),
        clock: clock.clone(),
        ..StoreOptions::default()
    };
    let identity = Identity {
        site: "la-vientiane".into(),
        service: "inventory".into(),
    };
    let store = Store::open(dir.path(), &identity, options).unwrap();
    write(&store, "req-1", b"first").await.unwrap();
    let shutdown = Shutdown::new();
    spawn_idempotency_sweeper(store.clone(), shutdown.clone());

    assert_eq!(records(&store), 1);
    // 25 hours of the store's clock, in no real time. A write no longer replays the
    // expired record whether or not it is swept (see `Store::is_expired`): what the sweep
    // does is remove it, so the records are counted.
    clock.advance(Duration::from_secs(25 * 3600));
    let deadline = Instant::now() + Duration::from_secs(20);
    while records(&store) > 0 {
        assert!(
            Instant::now() < deadline,
            "the record is still stored 20 s after 25 h of the store's clock"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And a write after the sweep stays remembered until its own hours pass.
    write(&store, "req-2", b"third").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(records(&store), 1, "a fresh record is not swept");
    shutdown.trigger();
}
