//! A service as a process of its own: the booking service's resident memory under load,
//! without the bench's clients beside it. The in-process history scenario reads the bench
//! process's memory, the load's clients and earlier phases included; this one runs the bench
//! site as `coldchain serve` processes (as the soak does) and drives the booking service's
//! write load at an empty store. Then it writes N bookings over two years of a booking
//! service's clock (in this process: see [`HistoryClock`]), starts the site again with that
//! booking data, and drives the load again, sampling the server process's own resident
//! memory during each load.

use std::path::Path;
use std::time::{Duration, Instant};

use coldchain_proto::booking::v1 as booking;
use coldchain_runtime::auth::{ApiKey, Role};
use coldchain_runtime::client::{Channel as KeyedChannel, ClientOptions};
use coldchain_runtime::network::ServiceKind;
use coldchain_soak::cluster::Cluster;

use crate::Build;
use crate::host::{BENCH_NETWORK, Caller, Host, SITE, bench_customer};
use crate::load::{self, LoadResult, LoadSpec};
use crate::network::RssPeak;
use crate::scenarios::{
    FILL_CONCURRENCY, HistoryClock, booking_pair, fill_bookings, list_bookings_load, run_id,
};

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

/// Runs the booking load on an empty booking process; writes `bookings` bookings over two
/// years of a booking service's clock, in this process (a process of its own runs on the
/// real clock); hands that data directory to a new booking process and runs the load again.
pub async fn booking_alone(
    spec: &LoadSpec,
    connections: usize,
    bookings: u64,
    build: Build,
) -> Result<AloneRun, String> {
    let empty = {
        let mut site = AloneSite::start(spec.concurrency, None).await?;
        let phase = site.phase(spec, connections, 0).await;
        site.cluster.stop_all().await;
        phase?
    };
    let started = Instant::now();
    let history = write_history(bookings, build).await?;
    let fill = started.elapsed();
    let mut site = AloneSite::start(spec.concurrency, Some(history.path())).await?;
    let filled = site.phase(spec, connections, bookings).await;
    site.cluster.stop_all().await;
    Ok(AloneRun {
        empty,
        filled: filled?,
        fill,
    })
}

/// Writes `bookings` bookings at an in-process booking service on a [`HistoryClock`], stops
/// it cleanly and answers its data directory.
async fn write_history(bookings: u64, build: Build) -> Result<tempfile::TempDir, String> {
    let customers = FILL_CONCURRENCY as usize;
    let clock = HistoryClock::for_bookings(bookings);
    let host = Host::start_booking_with_clock(customers, clock.clone(), build).await?;
    let connections = host.channels(1).await?;
    let channels: Vec<KeyedChannel> = (0..customers)
        .map(|worker| host.as_caller(&connections[0], Caller::Customer(worker)))
        .collect();
    fill_bookings(&channels, bookings, Some(clock)).await?;
    host.stop_keeping_data().await
}

/// The bench site as processes, its load clients' credentials added.
struct AloneSite {
    cluster: Cluster,
    keys: Vec<ApiKey>,
    /// Holds the cluster's files until the site is dropped.
    _dir: tempfile::TempDir,
}

impl AloneSite {
    /// Starts the bench site's processes with a credential for each of `customers` booking
    /// clients; with `history`, the booking service opens that data directory (of an
    /// in-process service of the bench site) instead of an empty one.
    async fn start(customers: usize, history: Option<&Path>) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cluster = Cluster::prepare(dir.path(), exe, BENCH_NETWORK, &[SITE.to_string()])?;
        // Each load client books for a customer of its own, as in the in-process scenarios:
        // their credentials are added before the servers read the file.
        let keys = (0..customers.max(1))
            .map(|n| {
                let customer = bench_customer(n);
                cluster.keyring.add(
                    &coldchain_credentials::customer(&customer),
                    &Role::BookingClient { customer },
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(history) = history {
            // The same layout under both data directories: <site>/<service>.
            let relative = Path::new(SITE).join(ServiceKind::Booking.as_str());
            let to = cluster.data_dir(&booking_process())?.join(&relative);
            let parent = to.parent().ok_or("a data directory has no parent")?;
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            std::fs::rename(history.join(&relative), &to)
                .map_err(|e| format!("moving the history to {}: {e}", to.display()))?;
        }
        cluster.start_all(Duration::from_secs(120)).await?;
        Ok(Self {
            cluster,
            keys,
            _dir: dir,
        })
    }

    /// The booking load and the list read, the server's memory sampled.
    async fn phase(
        &self,
        spec: &LoadSpec,
        connections: usize,
        history: u64,
    ) -> Result<AlonePhase, String> {
        let process = booking_process();
        let pid = self
            .cluster
            .pid(&process)
            .ok_or_else(|| format!("{process} is not running"))?;
        let endpoint = self
            .cluster
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
        let channels: Vec<KeyedChannel> = self
            .keys
            .iter()
            .enumerate()
            .map(|(n, key)| KeyedChannel::new(transports[n % transports.len()].clone(), Some(key)))
            .collect();
        Ok(phase(&channels, spec, pid, history).await)
    }
}

/// The booking service's process name in the cluster.
fn booking_process() -> String {
    format!("{}@{SITE}", ServiceKind::Booking)
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
    let read = list_bookings_load("booking alone: ListBookings", spec, channels.to_vec()).await;
    AlonePhase {
        history,
        load,
        rss_peak,
        read,
    }
}
