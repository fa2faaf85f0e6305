//! The inventory and booking loads on stores with history behind them, next to the same
//! loads on empty stores: throughput, tail latency, the resident memory of the process
//! while the load runs, and the latency of a read whose answer does not grow with history
//! (one page of `ListStock` / `ListBookings`).
//!
//! The history is written through the API first, as a warehouse system's batch uploads and
//! customers' bookings make it: ledger entries over many lots at the inventory, confirmed
//! bookings spread over a year at the booking service.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coldchain_proto::booking::v1 as booking;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_runtime::client::Channel as KeyedChannel;
use coldchain_runtime::error::ServiceError;
use coldchain_runtime::network::ServiceKind;
use coldchain_store::{Clock, SystemClock};

use super::{booking_pair, booking_pair_held_for, fill_request, receipt_request, run_id};
use crate::Build;
use crate::host::{Caller, DiskUse, Host, bench_customer};
use crate::load::{self, LoadResult, LoadSpec};
use crate::network::RssPeak;

/// Movements per call while filling the ledger.
const FILL_MOVEMENTS: u64 = 500;
/// Ledger entries per lot in the filled history (10 million entries over 100,000 lots).
pub const ENTRIES_PER_LOT: u64 = 100;
/// Calls in flight while filling.
pub const FILL_CONCURRENCY: u64 = 8;

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
    let clock = HistoryClock::for_bookings(bookings);
    let host = Host::start_booking_with_clock(customers, clock.clone(), build).await?;
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
    fill_bookings(&channels, bookings, Some(clock)).await?;
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
    let read = list_bookings_load("ListBookings", spec, channels).await;
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

/// The time a booking history covers: the "1 million bookings over two years".
const BOOKING_HISTORY_SPAN_MS: i64 = 2 * 365 * 24 * 3600 * 1000;
/// The service clock's advance per booking of the history, at most: a smaller history
/// covers less time, so that the clock moves little between a hold and its confirm.
const BOOKING_HISTORY_STEP_MS: i64 = 63_000;
/// How long the history's holds last: the clock moves while the other fill workers book
/// (about a minute a booking), so the default 15 minutes could lapse before the confirm.
const HISTORY_HOLD_TTL: Duration = Duration::from_secs(6 * 3600);

/// The booking service's clock while its history is written: the real clock, moved back
/// by what is left of the history's span. The history is thus written over the two years
/// of the service's clock that end now: its holds lapse, its days close and its request
/// records expire (the hourly sweep follows this clock) as they would have. Once the
/// history is written the clock is the real one, and the load runs on it.
pub struct HistoryClock {
    span_ms: i64,
    behind_ms: AtomicI64,
}

impl HistoryClock {
    /// A clock `span_ms` behind the real one.
    fn new(span_ms: i64) -> Arc<Self> {
        Arc::new(Self {
            span_ms,
            behind_ms: AtomicI64::new(span_ms),
        })
    }

    /// The history covering `bookings` bookings.
    pub fn for_bookings(bookings: u64) -> Arc<Self> {
        Self::new(
            BOOKING_HISTORY_SPAN_MS.min(BOOKING_HISTORY_STEP_MS.saturating_mul(bookings as i64)),
        )
    }

    /// Moves the clock to where `written` of `total` bookings are made (never back).
    fn reach(&self, written: u64, total: u64) {
        let left =
            self.span_ms as i128 * (total.saturating_sub(written)) as i128 / total.max(1) as i128;
        self.behind_ms.fetch_min(left as i64, Ordering::SeqCst);
    }

    /// The UTC day of the clock.
    fn today(&self) -> chrono::NaiveDate {
        chrono::DateTime::from_timestamp_millis(self.now_millis())
            .unwrap_or_default()
            .date_naive()
    }
}

impl Clock for HistoryClock {
    fn now_millis(&self) -> i64 {
        SystemClock.now_millis() - self.behind_ms.load(Ordering::SeqCst)
    }
}

/// Holds and confirms `bookings` bookings of one pallet for one day, each within the year
/// after the day it is made, `FILL_CONCURRENCY` customers at a time. With `clock` (the
/// service's), the bookings are made over its history's span (see [`HistoryClock`]);
/// without, all now.
pub async fn fill_bookings(
    channels: &[KeyedChannel],
    bookings: u64,
    clock: Option<Arc<HistoryClock>>,
) -> Result<(), String> {
    let run = run_id();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers: Vec<tokio::task::JoinHandle<Result<(), String>>> = Vec::new();
    for (worker, channel) in channels.iter().take(FILL_CONCURRENCY as usize).enumerate() {
        let client = booking::booking_service_client::BookingServiceClient::new(channel.clone());
        let next = next.clone();
        let clock = clock.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= bookings {
                    return Ok(());
                }
                let (today, hold_ttl) = match &clock {
                    Some(clock) => {
                        clock.reach(n, bookings);
                        // A day later than the clock's: it moves on while the hold is
                        // made, and the site's own day may already be the next.
                        (clock.today() + chrono::Days::new(1), Some(HISTORY_HOLD_TTL))
                    }
                    None => (chrono::Utc::now().date_naive(), None),
                };
                booking_pair_held_for(client.clone(), run, today, worker, n, hold_ttl)
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
    if let Some(clock) = clock {
        clock.reach(bookings, bookings);
    }
    Ok(())
}

/// The read that follows a booking load: each client lists the first page of its own
/// customer's bookings, the page a booking client opens most.
pub async fn list_bookings_load(
    name: &str,
    spec: &LoadSpec,
    channels: Vec<KeyedChannel>,
) -> LoadResult {
    load::run(name, &read_spec(spec), move |worker, _| {
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
    .await
}

/// The read after a load: a few clients, no warm-up beyond a second, half the window.
fn read_spec(spec: &LoadSpec) -> LoadSpec {
    LoadSpec {
        concurrency: 4,
        warmup: Duration::from_secs(1),
        duration: (spec.duration / 2).max(Duration::from_secs(1)),
        rate: None,
    }
}
