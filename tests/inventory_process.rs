//! The inventory service as its own process (`coldchain serve inventory`) under concurrent
//! RecordMovements load, killed with SIGKILL mid-load and restarted on the same data
//! directory: every acknowledged movement is in the ledger exactly as acknowledged, nothing
//! refused is, the ledger is gap-free, and every position's balance equals the sum of its
//! ledger deltas. Requests whose outcome the kill made unknown are retried with the same
//! request_id afterwards and land exactly once. The writers call as the site's warehouse
//! system, with its key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use coldchain_proto::inventory::v1 as pb;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_runtime::auth::ApiKey;
use coldchain_runtime::client::Channel;

const SITE: &str = "cn-huaihua-park";
const ZONES: [&str; 2] = ["chilled-a", "frozen-a"];
const WRITERS: usize = 8;

type Client = InventoryServiceClient<Channel>;

/// What one writer saw.
#[derive(Default)]
struct Outcomes {
    /// Acknowledged: request → the entries answered.
    acked: Vec<(pb::RecordMovementsRequest, Vec<pb::LedgerEntry>)>,
    /// Refused by a rule (nothing may have changed).
    refused: Vec<String>,
    /// Unknown outcome (the process died under the call).
    unknown: Vec<pb::RecordMovementsRequest>,
}

fn movement(
    kind: pb::MovementKind,
    writer: usize,
    lot: u64,
    zone: &str,
    quantity: i64,
) -> pb::Movement {
    pb::Movement {
        kind: kind as i32,
        sku: format!("SKU-P{writer}"),
        lot: Some(common::lasting_lot(format!("L{lot}"))),
        zone_id: zone.to_string(),
        quantity,
        unit: "kg".into(),
        ..Default::default()
    }
}

/// A small deterministic batch: receipts, issues (some refused for want of stock) and
/// adjustments on the writer's own sku.
fn next_batch(writer: usize, n: u64, state: &mut u64) -> pb::RecordMovementsRequest {
    let mut movements = Vec::new();
    for _ in 0..(1 + n % 3) {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = *state >> 33;
        let lot = r % 4;
        let zone = ZONES[((r >> 3) % 2) as usize];
        let quantity = 1 + (r >> 5) as i64 % 20;
        let m = match (r >> 10) % 5 {
            0 | 1 => movement(pb::MovementKind::Receipt, writer, lot, zone, quantity),
            2 | 3 => movement(pb::MovementKind::Issue, writer, lot, zone, quantity),
            _ => pb::Movement {
                reason: "cycle count correction".into(),
                ..movement(pb::MovementKind::Adjustment, writer, lot, zone, -quantity)
            },
        };
        movements.push(m);
    }
    pb::RecordMovementsRequest {
        request_id: format!("w{writer}-{n}"),
        movements,
        actor: Default::default(),
    }
}

async fn connect(endpoint: &str, key: &ApiKey) -> Client {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .expect("endpoint")
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(3))
        .connect_lazy();
    InventoryServiceClient::new(Channel::new(channel, Some(key)))
}

async fn writer(endpoint: String, key: ApiKey, writer: usize, until: Instant) -> Outcomes {
    let mut client = connect(&endpoint, &key).await;
    let mut outcomes = Outcomes::default();
    let mut state = writer as u64 + 1;
    let mut n = 0;
    // Stock to issue from: one receipt per position first.
    let mut seed = Vec::new();
    for lot in 0..4 {
        for zone in ZONES {
            seed.push(movement(pb::MovementKind::Receipt, writer, lot, zone, 50));
        }
    }
    let seed = pb::RecordMovementsRequest {
        request_id: format!("w{writer}-seed"),
        movements: seed,
        actor: Default::default(),
    };
    let entries = client
        .record_movements(seed.clone())
        .await
        .expect("seed before the kill")
        .into_inner()
        .entries;
    outcomes.acked.push((seed, entries));
    while Instant::now() < until {
        let request = next_batch(writer, n, &mut state);
        n += 1;
        match client.record_movements(request.clone()).await {
            Ok(response) => outcomes
                .acked
                .push((request, response.into_inner().entries)),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                outcomes.refused.push(request.request_id)
            }
            Err(status) => {
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::Unavailable
                            | tonic::Code::Unknown
                            | tonic::Code::Internal
                            | tonic::Code::Cancelled
                            | tonic::Code::DeadlineExceeded
                    ),
                    "unexpected {status:?}"
                );
                outcomes.unknown.push(request);
                // The server is gone: back off a little instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    outcomes
}

/// The whole ledger through WatchLedger, from 1 to the head.
async fn read_ledger(client: &mut Client) -> Vec<pb::LedgerEntry> {
    let mut stream = client
        .watch_ledger(pb::WatchLedgerRequest { from_sequence: 1 })
        .await
        .expect("watch")
        .into_inner();
    let mut out: Vec<pb::LedgerEntry> = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("ledger message in time")
            .expect("stream ok")
            .expect("stream open");
        let head = message.head_sequence;
        out.extend(message.entries);
        if out.last().map_or(0, |e| e.sequence) >= head {
            return out;
        }
    }
}

async fn all_positions(client: &mut Client) -> Vec<pb::StockLevel> {
    let mut levels = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_stock(pb::ListStockRequest {
                include_empty: true,
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list stock")
            .into_inner();
        levels.extend(page.levels);
        token = page.next_page_token;
        if token.is_empty() {
            return levels;
        }
    }
}

/// A private network whose file is valid: `TestNetwork::new` picks free ports one at a
/// time, and two picks can collide (a port clash the network file refuses); pick again.
fn test_network() -> common::TestNetwork {
    for _ in 0..10 {
        let net = common::TestNetwork::new();
        if coldchain_runtime::network::NetworkConfig::load(&net.file).is_ok() {
            return net;
        }
    }
    panic!("no valid test network after 10 attempts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_movement_survives_sigkill() {
    let net = test_network();
    let server =
        common::Server::start_with_env(&net, "inventory", Some(SITE), &common::NO_RATE_LIMIT);
    let endpoint = server.endpoint.clone();
    let key = net.keyring().key(&common::warehouse(SITE));

    let started = Instant::now();
    let until = started + Duration::from_secs(2);
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(endpoint.clone(), key.clone(), w, until)))
        .collect();
    // Kill in the middle of the load: no shutdown hook, nothing flushed beyond what was
    // acknowledged.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    let mut outcomes = Outcomes::default();
    for task in tasks {
        let o = task.await.unwrap();
        outcomes.acked.extend(o.acked);
        outcomes.refused.extend(o.refused);
        outcomes.unknown.extend(o.unknown);
    }
    let acked_before_kill = outcomes.acked.len();
    assert!(
        acked_before_kill > WRITERS * 5,
        "the load ran: {acked_before_kill} acknowledged"
    );
    assert!(!outcomes.unknown.is_empty(), "the kill happened mid-load");

    eprintln!(
        "before the kill: {acked_before_kill} acknowledged, {} refused, {} unknown",
        outcomes.refused.len(),
        outcomes.unknown.len()
    );

    // Restart on the same data directory.
    let server =
        common::Server::start_with_env(&net, "inventory", Some(SITE), &common::NO_RATE_LIMIT);
    let mut client = connect(&server.endpoint, &key).await;

    // Retrying an acknowledged request replays its answer.
    let (request, entries) = outcomes.acked.last().cloned().unwrap();
    let replay = client
        .record_movements(request)
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(replay.entries, entries);
    // Requests whose outcome is unknown are retried with the same id: each lands once
    // (replayed if it had committed, applied now otherwise) or is refused by a rule.
    for request in std::mem::take(&mut outcomes.unknown) {
        match client.record_movements(request.clone()).await {
            Ok(response) => outcomes
                .acked
                .push((request, response.into_inner().entries)),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                outcomes.refused.push(request.request_id)
            }
            Err(status) => panic!("retry after restart: {status:?}"),
        }
    }

    let ledger = read_ledger(&mut client).await;
    // Gap-free from 1.
    for (i, entry) in ledger.iter().enumerate() {
        assert_eq!(
            entry.sequence,
            i as u64 + 1,
            "gap or duplicate in the ledger"
        );
    }
    // Every acknowledged movement is there, exactly as acknowledged, exactly once.
    let by_sequence: BTreeMap<u64, &pb::LedgerEntry> =
        ledger.iter().map(|e| (e.sequence, e)).collect();
    let mut per_request: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in &ledger {
        *per_request.entry(entry.request_id.as_str()).or_default() += 1;
    }
    for (request, entries) in &outcomes.acked {
        assert_eq!(entries.len(), request.movements.len());
        for entry in entries {
            assert_eq!(
                by_sequence.get(&entry.sequence).copied(),
                Some(entry),
                "acknowledged entry {} of {} missing or different after the restart",
                entry.sequence,
                request.request_id
            );
        }
        assert_eq!(
            per_request.get(request.request_id.as_str()).copied(),
            Some(request.movements.len()),
            "{} applied once",
            request.request_id
        );
    }
    // Nothing refused left a trace.
    let refused: BTreeSet<&str> = outcomes.refused.iter().map(String::as_str).collect();
    assert!(
        ledger
            .iter()
            .all(|e| !refused.contains(e.request_id.as_str()))
    );
    let acked: BTreeSet<&str> = outcomes
        .acked
        .iter()
        .map(|(r, _)| r.request_id.as_str())
        .collect();
    assert!(
        ledger.iter().all(|e| acked.contains(e.request_id.as_str())),
        "every ledger entry belongs to a request whose outcome we know"
    );

    // Every balance equals the sum of its position's deltas, and every entry's
    // balance_after is the running sum.
    let mut sums: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for entry in &ledger {
        let key = (
            entry.sku.clone(),
            entry
                .lot
                .as_ref()
                .map(|l| l.lot_id.clone())
                .unwrap_or_default(),
            entry.zone_id.clone(),
        );
        let sum = sums.entry(key.clone()).or_default();
        *sum += entry.delta;
        assert_eq!(
            entry.balance_after, *sum,
            "running balance of {key:?} at {}",
            entry.sequence
        );
        assert!(*sum >= 0);
    }
    let levels = all_positions(&mut client).await;
    assert_eq!(levels.len(), sums.len());
    for level in levels {
        let key = (
            level.sku.clone(),
            level
                .lot
                .as_ref()
                .map(|l| l.lot_id.clone())
                .unwrap_or_default(),
            level.zone_id.clone(),
        );
        assert_eq!(Some(&level.on_hand), sums.get(&key), "balance of {key:?}");
    }
    drop(server);
}
