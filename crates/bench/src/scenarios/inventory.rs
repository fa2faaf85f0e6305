//! Durable `RecordMovements`, then one consumer reading the whole ledger (`WatchLedger`).

use std::time::{Duration, Instant};

use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_runtime::client::Channel as KeyedChannel;
use coldchain_runtime::network::ServiceKind;

use super::run_id;
use crate::Build;
use crate::host::{Caller, Host};
use crate::load::{self, LoadResult, LoadSpec};

/// The expiry of every lot: past any run.
const FAR_FUTURE: common::Date = common::Date {
    year: 2099,
    month: 12,
    day: 31,
};

/// What the inventory scenario leaves for the WatchLedger scenario.
pub struct InventoryRun {
    pub load: LoadResult,
    pub watch_entries_per_second: f64,
    pub watch_entries: u64,
}

/// Durable `RecordMovements`, one receipt a call, over 10,000 sku/lot pairs; then one
/// consumer reads the whole ledger through `WatchLedger`.
pub async fn inventory(
    spec: &LoadSpec,
    connections: usize,
    build: Build,
) -> Result<InventoryRun, String> {
    let host = Host::start(ServiceKind::Inventory, build).await?;
    let channels = host.channels_as(connections, Caller::Warehouse).await?;
    let run = run_id();
    let result = load::run("inventory", spec, move |worker, iteration| {
        let mut client = inventory::inventory_service_client::InventoryServiceClient::new(
            channels[worker % channels.len()].clone(),
        );
        let request = receipt_request(run, worker, iteration);
        async move { client.record_movements(request).await.map(|_| ()) }
    })
    .await;
    // Let the last writers settle, then read the ledger from the start to its head.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let channel = host.channels_as(1, Caller::Warehouse).await?.remove(0);
    let (watch_entries, elapsed) = read_ledger(channel).await?;
    host.stop().await;
    Ok(InventoryRun {
        load: result,
        watch_entries_per_second: watch_entries as f64 / elapsed.as_secs_f64().max(1e-9),
        watch_entries,
    })
}

/// The scenario's call: one receipt of one case, to one of 10,000 sku/lot pairs.
pub fn receipt_request(
    run: u64,
    worker: usize,
    iteration: u64,
) -> inventory::RecordMovementsRequest {
    let pair = (worker as u64 * 7919 + iteration * 104_729) % 10_000;
    inventory::RecordMovementsRequest {
        request_id: format!("bench-{run}-{worker}-{iteration}"),
        movements: vec![receipt(
            format!("SKU-{:03}", pair / 100),
            format!("LOT-{pair:05}"),
        )],
        actor: Default::default(),
    }
}

/// Call `call` of a history: `movements` receipts of one case, entry `e` of the history
/// going to lot `e % lots` (100 lots a sku).
pub fn fill_request(
    run: u64,
    call: u64,
    movements: u64,
    lots: u64,
) -> inventory::RecordMovementsRequest {
    let first = call * movements;
    inventory::RecordMovementsRequest {
        request_id: format!("history-{run}-{call}"),
        movements: (first..first + movements)
            .map(|entry| {
                let lot = entry % lots.max(1);
                receipt(format!("HIST-{:05}", lot / 100), format!("H{lot:07}"))
            })
            .collect(),
        actor: Default::default(),
    }
}

/// A receipt of one case of `sku`, lot `lot_id`, into the bench zone.
fn receipt(sku: String, lot_id: String) -> inventory::Movement {
    inventory::Movement {
        kind: inventory::MovementKind::Receipt as i32,
        sku,
        lot: Some(inventory::LotInfo {
            lot_id,
            expiry: Some(FAR_FUTURE),
            production: None,
            origin: String::new(),
        }),
        zone_id: "chilled-a".into(),
        quantity: 1,
        unit: "case".into(),
        ..Default::default()
    }
}

async fn read_ledger(channel: KeyedChannel) -> Result<(u64, Duration), String> {
    let mut client = inventory::inventory_service_client::InventoryServiceClient::new(channel);
    let started = Instant::now();
    let mut stream = client
        .watch_ledger(inventory::WatchLedgerRequest { from_sequence: 1 })
        .await
        .map_err(|s| format!("watch ledger: {s}"))?
        .into_inner();
    let mut seen = 0u64;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.message()).await;
        match next {
            Ok(Ok(Some(batch))) => {
                seen += batch.entries.len() as u64;
                let last = batch.entries.last().map(|e| e.sequence).unwrap_or(0);
                if batch.head_sequence > 0 && last >= batch.head_sequence {
                    break;
                }
            }
            Ok(Ok(None)) => break,
            Ok(Err(status)) => return Err(format!("watch ledger: {status}")),
            Err(_) => break,
        }
    }
    Ok((seen, started.elapsed()))
}
