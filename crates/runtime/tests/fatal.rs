//! A server whose store can no longer make writes durable stops itself, says why, and
//! closes its store: a process left running with such a store looks alive to its
//! supervisor and is never restarted, while opening the store again replays its log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coldchain_runtime::Shutdown;
use coldchain_runtime::host::{spawn_service, store_failure, store_probe};
use coldchain_runtime::server::{Limits, ServeError, ServiceSpec, bind};
use coldchain_store::{Identity, Store, StoreError, StoreOptions, Table, WriteError};

const COUNTS: Table<String, i64> = Table::new("count");

/// A server of `store` with no routes of its own: health, and the store's failure.
fn spec(label: &str, store: &Store, on_stopped: Box<dyn FnOnce() + Send>) -> ServiceSpec {
    ServiceSpec {
        label: label.into(),
        service_name: "coldchain.test.v1.Nothing",
        routes: tonic::service::Routes::default(),
        probe: store_probe(store.clone()),
        on_stopped,
        fatal: store_failure(store.clone()),
    }
}

async fn bump(store: &Store) -> Result<(), WriteError<StoreError>> {
    store
        .write(None, |tx| {
            let count = tx.get(&COUNTS, &"a".to_string())?.unwrap_or(0);
            tx.put(&COUNTS, &"a".to_string(), &(count + 1))?;
            Ok::<_, StoreError>(())
        })
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_store_fails_stops_itself_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity {
        site: "la-vientiane".into(),
        service: "inventory".into(),
    };
    let options = StoreOptions {
        // Every record starts a new segment, so each write must create a file.
        wal_segment_bytes: 1,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &identity, options).unwrap();
    bump(&store).await.unwrap();

    let closed = Arc::new(AtomicBool::new(false));
    let spec = spec(
        "la-vientiane/inventory",
        &store,
        Box::new({
            let closed = closed.clone();
            let store = store.clone();
            move || {
                store.close();
                closed.store(true, Ordering::SeqCst);
            }
        }),
    );
    let shutdown = Shutdown::new();
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let running = spawn_service(listener, spec, Limits::default(), shutdown.clone()).unwrap();

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !running.stopped.is_finished() && !shutdown.is_triggered(),
        "a server with a healthy store keeps serving"
    );

    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    let write = bump(&store).await;
    assert!(
        matches!(write, Err(WriteError::Store(StoreError::Flush(_)))),
        "{write:?}"
    );

    let served = tokio::time::timeout(Duration::from_secs(10), running.stopped)
        .await
        .expect("the server stops by itself")
        .expect("its task ends normally");
    match served {
        Err(ServeError::Failed(reason)) => {
            assert!(reason.contains("database failed"), "{reason}");
            assert!(reason.contains("write-ahead log"), "{reason}");
        }
        other => panic!("expected a failed stop, got {other:?}"),
    }
    assert!(
        shutdown.is_triggered(),
        "the process's shutdown fires, so every other server of it stops too"
    );
    assert!(
        closed.load(Ordering::SeqCst),
        "the store is closed on the way out"
    );
}

#[tokio::test]
async fn a_requested_shutdown_is_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity {
        site: "la-vientiane".into(),
        service: "booking".into(),
    };
    let store = Store::open(dir.path(), &identity, StoreOptions::default()).unwrap();
    let spec = spec(
        "la-vientiane/booking",
        &store,
        Box::new({
            let store = store.clone();
            move || store.close()
        }),
    );
    let shutdown = Shutdown::new();
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let running = spawn_service(listener, spec, Limits::default(), shutdown.clone()).unwrap();
    shutdown.trigger();
    let served = tokio::time::timeout(Duration::from_secs(10), running.stopped)
        .await
        .expect("the server stops")
        .expect("its task ends normally");
    assert!(served.is_ok(), "{served:?}");
}
