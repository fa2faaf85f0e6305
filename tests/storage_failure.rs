//! `coldchain serve inventory` whose database can no longer make writes durable stops by
//! itself, with exit code 1, instead of staying up unable to write: compose's restart policy
//! then starts it again, and opening the database replays its write-ahead log.
//!
//! The failure is injected by removing the log's directory under the running process: the
//! segment open at that moment still takes appends (its file stays open), and the write that
//! needs the next segment cannot create it. Removing the log also loses what it held that
//! sled had not flushed, so this test checks the fail-stop and the restart, not durability
//! (`inventory_process` checks that every acknowledged write survives a kill).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::time::{Duration, Instant};

use coldchain_proto::inventory::v1 as pb;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_runtime::auth::ApiKey;
use coldchain_runtime::client::Channel;

const SITE: &str = "cn-huaihua-park";
const WRITERS: usize = 8;
/// Far more than one log segment's worth (1 MiB after a start) of these receipts.
const MAX_WRITES_PER_WRITER: usize = 20_000;

type Client = InventoryServiceClient<Channel>;

fn client(endpoint: &str, key: &ApiKey) -> Client {
    InventoryServiceClient::new(common::channel(endpoint, Some(key)))
}

fn receipt(request_id: String, lot: usize) -> pb::RecordMovementsRequest {
    pb::RecordMovementsRequest {
        request_id,
        movements: vec![pb::Movement {
            kind: pb::MovementKind::Receipt as i32,
            sku: "SKU-FAIL".into(),
            lot: Some(common::lasting_lot(format!("L{lot}"))),
            zone_id: "chilled-a".into(),
            quantity: 1,
            unit: "kg".into(),
            ..Default::default()
        }],
        actor: Default::default(),
    }
}

/// True when the status is the client's own report of a connection that broke under the
/// call, not an answer from the server (those carry no source). A call the client sends as
/// the stopping server closes its socket reaches a socket that no longer reads: the kernel
/// resets the connection, and tonic reports UNKNOWN "transport error". Whatever the client
/// calls it, the call was not acknowledged, and a retry with the same id is safe.
fn connection_lost(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// Writes until the first refusal; returns it (`None` if every write was acknowledged).
async fn write_until_refused(mut client: Client, writer: usize) -> Option<tonic::Status> {
    for n in 0..MAX_WRITES_PER_WRITER {
        let request = receipt(format!("fail-w{writer}-{n}"), writer);
        if let Err(status) = client.record_movements(request).await {
            return Some(status);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_log_fails_answers_unavailable_exits_1_and_starts_again() {
    let net = common::TestNetwork::new();
    let mut server =
        common::Server::start_with_env(&net, "inventory", Some(SITE), &common::NO_RATE_LIMIT);
    let key = net.keyring().key(&common::warehouse(SITE));
    let mut first = client(&server.endpoint, &key);
    first
        .record_movements(receipt("fail-before".into(), 0))
        .await
        .expect("a healthy service writes");

    let wal = net.data_dir().join(SITE).join("inventory").join("wal");
    std::fs::remove_dir_all(&wal).expect("remove the log directory");
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(write_until_refused(client(&server.endpoint, &key), w)))
        .collect();
    let mut refusals = Vec::new();
    for writer in writers {
        refusals.extend(writer.await.unwrap());
    }
    assert!(
        !refusals.is_empty(),
        "{} writes past the log's first segment were all acknowledged",
        WRITERS * MAX_WRITES_PER_WRITER
    );
    // Once the store failed, a call is refused by the failed store, or by the server
    // stopping: unavailable, every answer, so a client retries with the same id. Or the call
    // finds the server gone, and no answer comes at all.
    for status in refusals.iter().filter(|s| !connection_lost(s)) {
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }
    assert!(
        refusals
            .iter()
            .any(|s| s.message().contains("can no longer make writes durable")),
        "a write of the failed generation says why: {refusals:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the process must stop by itself, not stay up unable to write"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        status.code(),
        Some(1),
        "a non-zero exit, for the restart policy"
    );

    // Started again on the same data directory, it serves and writes.
    let server =
        common::Server::start_with_env(&net, "inventory", Some(SITE), &common::NO_RATE_LIMIT);
    client(&server.endpoint, &key)
        .record_movements(receipt("fail-after".into(), 0))
        .await
        .expect("the restarted service writes");
}
