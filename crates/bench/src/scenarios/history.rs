//! The inventory and booking loads on stores with history behind them, next to the same
//! loads on empty stores: throughput, tail latency, the resident memory of the process
//! while the load runs, and the latency of a read whose answer does not grow with history
//! (one page of `ListStock` / `ListBookings`).
//!
//! The history is written through the API first, as a warehouse system's batch uploads and
//! customers' bookings make it: ledger entries over many lots at the inventory, confirmed
//! bookings spread over a year at the booking service.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coldchain_proto::booking::v1 as booking;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_runtime::client::Channel as KeyedChannel;
use coldchain_runtime::error::ServiceError;
use coldchain_runtime::network::ServiceKind;

use super::{booking_pair, fill_request, receipt_request, run_id};
use crate::Build;
use crate::host::{Caller, DiskUse, Host, bench_customer};
use crate::load::{self, LoadResult, LoadSpec};
use crate::network::RssPeak;

/// Movements per call while filling the ledger.
const FILL_MOVEMENTS: u64 = 500;
/// Ledger entries per lot in the filled history (10 million entries over 100,000 lots).
pub const ENTRIES_PER_LOT: u64 = 100;
/// Calls in flight while filling.
const FILL_CONCURRENCY: u64 = 8;

/// One load on one store: empty, or after its history was written.
pub struct Phase {
    /// Rows written before the load (ledger entries, or bookings).
    pub history: u64,
    /// How long writing them took.
    pub fill: Duration,
    /// The write load.
    pub load: LoadResult,
    /// The largest resident memory of this process (the server and the load's clients)
    /// sampled while the load ran.
    pub rss_peak: u64,
    /// One page of the service's list read, by a few clients after the load.
    pub read: LoadResult,
    /// The inventory with history: one lot's whole history (`ListLotEntries`, the site's
    /// part of a trace) read by a few clients after the load; its entries are spread over
    /// the whole ledger, the worst case of the lot index.
    pub lot_history: Option<LoadResult>,
    /// Rows in the store at the end: the history and what the load wrote.
    pub rows: u64,
    /// Its data directory after a clean stop at the end.
    pub disk: DiskUse,
    /// Its data directory after a clean stop right after the history was written (the
    /// inventory's; the booking phase does not stop in between).
    pub history_disk: Option<DiskUse>,
}

/// The same service, empty and with history.
pub struct History {
    pub empty: Phase,
    pub filled: Phase,
}

/// `RecordMovements` and `ListStock` at an empty inventory and at one holding `entries`
/// ledger entries.
pub async fn inventory_history(
    spec: &LoadSpec,
    connections: usize,
    build: Build,
    entries: u64,
) -> Result<History, String> {
    Ok(History {
        empty: inventory_phase(spec, connections, build, 0).await?,
        filled: inventory_phase(spec, connections, build, entries).await?,
    })
}

/// `HoldSpace`+`ConfirmBooking` and `ListBookings` at an empty booking service and at one
/// holding `bookings` confirmed bookings.
pub async fn booking_history(
    spec: &LoadSpec,
    connections: usize,
    build: Build,
    bookings: u64,
) -> Result<History, String> {
    Ok(History {
        empty: booking_phase(spec, connections, build, 0).await?,
        filled: booking_phase(spec, connections, build, bookings).await?,
    })
}

async fn inventory_phase(
    spec: &LoadSpec,
    connections: usize,
    build: Build,
    entries: u64,
) -> Result<Phase, String> {
    let host = Host::start(ServiceKind::Inventory, build).await?;
    let channels = host.channels_as(connections, Caller::Warehouse).await?;
    let started = Instant::now();
    fill_ledger(&channels, entries).await?;
    let fill = started.elapsed();
    // The history alone at rest, after a clean stop; then the load on it.
    let (host, history_disk) = host
        .restart_measuring_disk(ServiceKind::Inventory, build)
        .await?;
    let channels = host.channels_as(connections, Caller::Warehouse).await?;
    let rss = RssPeak::start(std::process::id());
    let run = run_id();
    let load_channels = channels.clone();
    let written = Arc::new(AtomicU64::new(0));
    let counted = written.clone();
    let load = load::run("inventory", spec, move |worker, iteration| {
        let mut client = inventory::inventory_service_client::InventoryServiceClient::new(
            load_channels[worker % load_channels.len()].clone(),
        );
        let request = receipt_request(run, worker, iteration);
        let counted = counted.clone();
        async move {
            let response = client.record_movements(request).await?;
            let entries = response.into_inner().entries.len() as u64;
            counted.fetch_add(entries, Ordering::Relaxed);
            Ok(())
        }
    })
    .await;
    let rss_peak = rss.stop();
    let read_channels = channels.clone();
    let read = load::run("ListStock", &read_spec(spec), move |worker, iteration| {
        let mut client = inventory::inventory_service_client::InventoryServiceClient::new(
            read_channels[worker % read_channels.len()].clone(),
        );
        let request = inventory::ListStockRequest {
            sku: format!("SKU-{:03}", (worker as u64 + iteration) % 100),
            page_size: 100,
            ..Default::default()
        };
        async move { client.list_stock(request).await.map(|_| ()) }
    })
    .await;
    let lot_history = if entries > 0 {
        let lots = (entries / ENTRIES_PER_LOT).max(1);
        let channels = channels.clone();
        Some(
            load::run(
                "ListLotEntries",
                &read_spec(spec),
                move |worker, iteration| {
                    let mut client =
                        inventory::inventory_service_client::InventoryServiceClient::new(
                            channels[worker % channels.len()].clone(),
                        );
                    // The fill's naming (see `fill_request`), a different lot each call.
                    let lot = (worker as u64 * 7919 + iteration * 104_729) % lots;
                    let request = inventory::ListLotEntriesRequest {
                        sku: format!("HIST-{:05}", lot / 100),
                        lot_id: format!("H{lot:07}"),
                        page_size: 1000,
                        ..Default::default()
                    };
                    async move {
                        let page = client.list_lot_entries(request).await?.into_inner();
                        if page.entries.is_empty() {
                            return Err(tonic::Status::from(ServiceError::internal(
                                "a lot of the history answered no entries",
                            )));
                        }
                        Ok(())
                    }
                },
            )
            .await,
        )
    } else {
        None
    };
    let disk = host.stop_and_measure_space().await?;
    Ok(Phase {
        history: entries,
        fill,
        load,
        rss_peak,
        read,
        lot_history,
        rows: entries + written.load(Ordering::Relaxed),
        disk,
        history_disk: Some(history_disk),
    })
}

/// Writes `entries` receipts, `FILL_MOVEMENTS` a call, over `entries / ENTRIES_PER_LOT`
/// lots.
pub async fn fill_ledger(channels: &[KeyedChannel], entries: u64) -> Result<(), String> {
    let calls = entries.div_ceil(FILL_MOVEMENTS);
    let lots = (entries / ENTRIES_PER_LOT).max(1);
    let run = run_id();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers: Vec<tokio::task::JoinHandle<Result<(), String>>> = Vec::new();
    for worker in 0..FILL_CONCURRENCY {
        let channel = channels[worker as usize % channels.len()].clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut client =
                inventory::inventory_service_client::InventoryServiceClient::new(channel);
            loop {
                let call = next.fetch_add(1, Ordering::Relaxed);
                if call >= calls {
                    return Ok(());
                }
                let movements = FILL_MOVEMENTS.min(entries - call * FILL_MOVEMENTS);
                let request = fill_request(run, call, movements, lots);
                client
                    .record_movements(request)
                    .await
                    .map_err(|status| format!("filling the ledger: {status}"))?;
                if call > 0 && call.is_multiple_of((calls / 10).max(1)) {
                    eprintln!(
                        "  inventory history: {} of {entries} entries",
                        call * FILL_MOVEMENTS
                    );
                }
            }
        }));
    }
    for worker in workers {
        worker.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

async fn booking_phase(
    spec: &LoadSpec,
    connections: usize,
    build: Build,
    bookings: u64,
) -> Result<Phase, String> {
    let customers = spec.concurrency.max(FILL_CONCURRENCY as usize);
    let host = Host::start_booking(customers, build).await?;
    let connections = host.channels(connections).await?;
    let channels: Vec<KeyedChannel> = (0..customers)
        .map(|worker| {
            host.as_caller(
                &connections[worker % connections.len()],
                Caller::Customer(worker),
            )
        })
        .collect();
    let started = Instant::now();
    fill_bookings(&channels, bookings).await?;
    let fill = started.elapsed();
    let rss = RssPeak::start(std::process::id());
    let run = run_id();
    let today = chrono::Utc::now().date_naive();
    let load_channels = channels.clone();
    let written = Arc::new(AtomicU64::new(0));
    let counted = written.clone();
    let load = load::run("booking", spec, move |worker, iteration| {
        let client = booking::booking_service_client::BookingServiceClient::new(
            load_channels[worker % load_channels.len()].clone(),
        );
        let counted = counted.clone();
        async move {
            booking_pair(client, run, today, worker, iteration).await?;
            counted.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    })
    .await;
    let rss_peak = rss.stop();
    let read = load::run("ListBookings", &read_spec(spec), move |worker, _| {
        let mut client = booking::booking_service_client::BookingServiceClient::new(
            channels[worker % channels.len()].clone(),
        );
        let request = booking::ListBookingsRequest {
            customer_id: bench_customer(worker % channels.len()),
            page_size: 100,
            ..Default::default()
        };
        async move { client.list_bookings(request).await.map(|_| ()) }
    })
    .await;
    let disk = host.stop_and_measure_space().await?;
    Ok(Phase {
        history: bookings,
        fill,
        load,
        rss_peak,
        read,
        lot_history: None,
        rows: bookings + written.load(Ordering::Relaxed),
        disk,
        history_disk: None,
    })
}

/// Holds and confirms `bookings` bookings of one pallet for one day, over the next year,
/// `FILL_CONCURRENCY` customers at a time.
pub async fn fill_bookings(channels: &[KeyedChannel], bookings: u64) -> Result<(), String> {
    let run = run_id();
    let today = chrono::Utc::now().date_naive();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers: Vec<tokio::task::JoinHandle<Result<(), String>>> = Vec::new();
    for (worker, channel) in channels.iter().take(FILL_CONCURRENCY as usize).enumerate() {
        let client = booking::booking_service_client::BookingServiceClient::new(channel.clone());
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= bookings {
                    return Ok(());
                }
                booking_pair(client.clone(), run, today, worker, n)
                    .await
                    .map_err(|status| format!("filling the bookings: {status}"))?;
                if n > 0 && n.is_multiple_of((bookings / 10).max(1)) {
                    eprintln!("  booking history: {n} of {bookings} bookings");
                }
            }
        }));
    }
    for worker in workers {
        worker.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// The read after a load: a few clients, no warm-up beyond a second, half the window.
pub fn read_spec(spec: &LoadSpec) -> LoadSpec {
    LoadSpec {
        concurrency: 4,
        warmup: Duration::from_secs(1),
        duration: (spec.duration / 2).max(Duration::from_secs(1)),
        rate: None,
    }
}
