//! A service as a process of its own: the booking service's resident memory under load,
//! without the bench's clients beside it. The in-process history scenario reads the bench
//! process's memory, the load's clients and earlier phases included; this one runs the bench
//! site as `coldchain serve` processes (as the soak does), drives the booking service's
//! write load at an empty store, fills it with N bookings, and drives the load again,
//! sampling the server process's own resident memory during each load.

use std::time::{Duration, Instant};

use coldchain_proto::booking::v1 as booking;
use coldchain_runtime::auth::Role;
use coldchain_runtime::client::{Channel as KeyedChannel, ClientOptions};
use coldchain_runtime::network::ServiceKind;
use coldchain_soak::cluster::Cluster;

use crate::host::{BENCH_NETWORK, SITE, bench_customer};
use crate::load::{self, LoadResult, LoadSpec};
use crate::network::RssPeak;
use crate::scenarios::{booking_pair, fill_bookings, read_spec, run_id};

/// One load on the booking process.
pub struct AlonePhase {
    /// Confirmed bookings in the store when the load started.
    pub history: u64,
    /// `HoldSpace`+`ConfirmBooking` pairs.
    pub load: LoadResult,
    /// The server process's largest resident memory sampled during the load.
    pub rss_peak: u64,
    /// One page of a customer's `ListBookings`, after the load.
    pub read: LoadResult,
}

/// The booking service alone, empty and then with its history.
pub struct AloneRun {
    pub empty: AlonePhase,
    pub filled: AlonePhase,
    /// How long the history took to write.
    pub fill: Duration,
}

/// Runs the booking load on an empty booking process, fills it with `bookings` bookings,
/// and runs the load again.
pub async fn booking_alone(
    spec: &LoadSpec,
    connections: usize,
    bookings: u64,
) -> Result<AloneRun, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cluster = Cluster::prepare(dir.path(), exe, BENCH_NETWORK, &[SITE.to_string()])?;
    // Each load client books for a customer of its own, as in the in-process scenarios:
    // their credentials are added before the servers read the file.
    let customers = spec.concurrency.max(1);
    let keys = (0..customers)
        .map(|n| {
            let customer = bench_customer(n);
            cluster.keyring.add(
                &coldchain_credentials::customer(&customer),
                &Role::BookingClient { customer },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    cluster.start_all(Duration::from_secs(60)).await?;
    let result = run(&cluster, &keys, spec, connections, bookings).await;
    cluster.stop_all().await;
    result
}

async fn run(
    cluster: &Cluster,
    keys: &[coldchain_runtime::auth::ApiKey],
    spec: &LoadSpec,
    connections: usize,
    bookings: u64,
) -> Result<AloneRun, String> {
    let process = format!("{}@{SITE}", ServiceKind::Booking);
    let pid = cluster
        .pid(&process)
        .ok_or_else(|| format!("{process} is not running"))?;
    let endpoint = cluster
        .network
        .site(SITE)
        .and_then(|site| site.endpoint(ServiceKind::Booking))
        .ok_or("the bench network has no booking service")?;
    let options = ClientOptions {
        call_timeout: Duration::from_secs(600),
        ..ClientOptions::default()
    };
    let mut transports = Vec::with_capacity(connections.max(1));
    for _ in 0..connections.max(1) {
        transports.push(
            coldchain_runtime::client::transport(&endpoint, &options)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let channels: Vec<KeyedChannel> = keys
        .iter()
        .enumerate()
        .map(|(n, key)| KeyedChannel::new(transports[n % transports.len()].clone(), Some(key)))
        .collect();
    let empty = phase(&channels, spec, pid, 0).await;
    let started = Instant::now();
    fill_bookings(&channels, bookings, None).await?;
    let fill = started.elapsed();
    let filled = phase(&channels, spec, pid, bookings).await;
    Ok(AloneRun {
        empty,
        filled,
        fill,
    })
}

async fn phase(channels: &[KeyedChannel], spec: &LoadSpec, pid: u32, history: u64) -> AlonePhase {
    let rss = RssPeak::start(pid);
    let run = run_id();
    let today = chrono::Utc::now().date_naive();
    let load_channels = channels.to_vec();
    let load = load::run("booking alone", spec, move |worker, iteration| {
        let client = booking::booking_service_client::BookingServiceClient::new(
            load_channels[worker % load_channels.len()].clone(),
        );
        booking_pair(client, run, today, worker, iteration)
    })
    .await;
    let rss_peak = rss.stop();
    let read_channels = channels.to_vec();
    let read = load::run(
        "booking alone: ListBookings",
        &read_spec(spec),
        move |worker, _| {
            let mut client = booking::booking_service_client::BookingServiceClient::new(
                read_channels[worker % read_channels.len()].clone(),
            );
            let request = booking::ListBookingsRequest {
                customer_id: bench_customer(worker % read_channels.len()),
                page_size: 100,
                ..Default::default()
            };
            async move { client.list_bookings(request).await.map(|_| ()) }
        },
    )
    .await;
    AlonePhase {
        history,
        load,
        rss_peak,
        read,
    }
}
