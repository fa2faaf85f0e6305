//! The admin service every server with a store serves: only `operations` may stream a
//! snapshot, and the streamed bytes are a backup file that verifies and restores while the
//! server keeps taking writes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;

use coldchain_proto::admin::v1::StreamSnapshotRequest;
use coldchain_proto::admin::v1::admin_service_client::AdminServiceClient;
use coldchain_runtime::Shutdown;
use coldchain_runtime::admin::{Admin, CHUNK_BYTES};
use coldchain_runtime::auth::{ApiKey, Credentials, Gatekeeper, Role, ServerScope};
use coldchain_runtime::host::{spawn_service, store_failure, store_probe};
use coldchain_runtime::network::ServiceKind;
use coldchain_runtime::server::{Limits, ServiceSpec, bind};
use coldchain_store::snapshot;
use coldchain_store::{Identity, Store, StoreError, StoreOptions, Table};

const COUNTS: Table<String, i64> = Table::new("count");

fn identity() -> Identity {
    Identity {
        site: "la-vientiane".into(),
        service: "inventory".into(),
    }
}

async fn bump(store: &Store, key: &str) {
    store
        .write(None, |tx| {
            let count = tx.get(&COUNTS, &key.to_string())?.unwrap_or(0);
            tx.put(&COUNTS, &key.to_string(), &(count + 1))?;
            tx.append_ledger(|seq| format!("{seq}:{key}").into_bytes());
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
}

async fn call(endpoint: &str, key: Option<&ApiKey>) -> Result<Vec<Vec<u8>>, tonic::Status> {
    let mut client = AdminServiceClient::connect(endpoint.to_string())
        .await
        .unwrap()
        .max_decoding_message_size(4 << 20);
    let mut request = tonic::Request::new(StreamSnapshotRequest {});
    if let Some(key) = key {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", key.expose()).parse().unwrap(),
        );
    }
    let mut stream = client.stream_snapshot(request).await?.into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await? {
        chunks.push(chunk.data);
    }
    Ok(chunks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_streams_a_snapshot_that_restores_and_no_one_else_may() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), &identity(), StoreOptions::default()).unwrap();
    // More than one chunk of data.
    let padding = "x".repeat(200);
    for i in 0..6_000 {
        bump(&store, &format!("{padding}{}", i % 3_000)).await;
    }
    let operations = ApiKey::generate("ops").unwrap();
    let warehouse = ApiKey::generate("vientiane-wms").unwrap();
    let mut credentials = Credentials::default();
    credentials.insert(&operations, Role::Operations);
    credentials.insert(
        &warehouse,
        Role::Warehouse {
            site: "la-vientiane".into(),
        },
    );
    let scope = ServerScope {
        kind: ServiceKind::Inventory,
        site: Some("la-vientiane".into()),
    };
    let limits = Limits {
        gatekeeper: Some(Arc::new(Gatekeeper::new(
            Arc::new(credentials),
            scope,
            1_000,
            1_000,
        ))),
        admin: Some(Admin::new(store.clone(), "la-vientiane/inventory".into())),
        ..Limits::default()
    };
    let spec = ServiceSpec {
        label: "la-vientiane/inventory".into(),
        service_name: "coldchain.test.v1.Nothing",
        routes: tonic::service::Routes::default(),
        probe: store_probe(store.clone()),
        on_stopped: Box::new(|| {}),
        fatal: store_failure(store.clone()),
    };
    let shutdown = Shutdown::new();
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let running = spawn_service(listener, spec, limits, shutdown.clone()).unwrap();
    let endpoint = running.endpoint();

    let denied = call(&endpoint, Some(&warehouse)).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let anonymous = call(&endpoint, None).await.unwrap_err();
    assert_eq!(
        anonymous.code(),
        tonic::Code::Unauthenticated,
        "{anonymous:?}"
    );

    let load = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..500 {
                bump(&store, &format!("during{}", i % 10)).await;
            }
        })
    };
    let chunks = call(&endpoint, Some(&operations)).await.unwrap();
    load.await.unwrap();
    assert!(chunks.len() > 1, "streamed in chunks");
    assert!(chunks.iter().all(|chunk| chunk.len() <= CHUNK_BYTES));
    let file = dir.path().join("backup");
    std::fs::write(&file, chunks.concat()).unwrap();
    let manifest = snapshot::verify(&file).unwrap();
    assert_eq!(manifest.identity(), identity());
    assert!(manifest.ledger_sequence >= 6_000, "{manifest:?}");
    running.stop().await;
    store.close();

    let restored = dir.path().join("restored");
    snapshot::restore(&file, &restored, &identity()).unwrap();
    let store = Store::open(&restored, &identity(), StoreOptions::default()).unwrap();
    let ledger = store.ledger_from(1, usize::MAX).unwrap();
    assert_eq!(ledger.len() as u64, manifest.ledger_sequence);
    let counted: i64 = store
        .scan_prefix(&COUNTS, &[])
        .map(|entry| entry.unwrap().1)
        .sum();
    assert_eq!(
        counted as u64, manifest.ledger_sequence,
        "counts sum to the ledger"
    );
}
