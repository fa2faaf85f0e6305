//! Our side of every scenario: real servers of this project, started in this process on
//! 127.0.0.1:0 over a temporary data directory, driven through the generated clients.
//!
//! The servers authenticate and authorize every call as in production (the figures include
//! that cost); each load client presents the key of the role that makes its calls in real
//! life. Only the per-credential rate limit is raised out of the way: it would otherwise
//! shed the load it is meant to measure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coldchain_proto::bench::v1 as bench;
use coldchain_proto::booking::v1 as booking;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_runtime::Shutdown;
use coldchain_runtime::auth::{ApiKey, Credentials, Role};
use coldchain_runtime::client::{Channel as KeyedChannel, ClientOptions};
use coldchain_runtime::config::Config;
use coldchain_runtime::host::{RunningService, ServiceContext, spawn_service};
use coldchain_runtime::network::{NetworkConfig, ServiceKind};
use coldchain_runtime::server::{ServiceSpec, always_healthy, bind, never_fatal};
use tonic::transport::Channel;

use super::load::{self, LoadResult, LoadSpec};
use crate::Build;

/// One site with room for anything the load asks: capacity never limits the figures.
const BENCH_NETWORK: &str = r#"
[gateway]
listen = "127.0.0.1:61000"

[[site]]
id = "bench-site"
name = "Benchmark site"
location = "loopback"
reached_by = "loopback"
time_zone = "Asia/Shanghai"

[site.ports]
inventory = 61001
telemetry = 61002
booking = 61003

[[site.zone]]
id = "chilled-a"
class = "CHILLED"
min_celsius = 0.0
max_celsius = 4.0
capacity_pallets = 4000000000
"#;

/// The site of [`BENCH_NETWORK`].
const SITE: &str = "bench-site";

/// A per-credential rate no load of this bench reaches: the limiter runs (its cost is in
/// the figures) but never sheds.
const UNLIMITED_RATE: usize = 10_000_000;

/// Who a load client calls as.
#[derive(Debug, Clone, Copy)]
pub enum Caller {
    /// Operations: registers sensors.
    Operations,
    /// The bench site's warehouse system: records movements, reads stock and the ledger.
    Warehouse,
    /// The bench site's sensor gateway: streams readings.
    Sensors,
    /// The booking client of the n-th bench customer ([`bench_customer`]).
    Customer(usize),
}

/// The customer the n-th booking client books for.
pub fn bench_customer(n: usize) -> String {
    format!("bench-customer-{n}")
}

/// The credentials a bench server accepts and the keys its callers present: made in
/// memory for each server, never written anywhere.
pub struct Keys {
    credentials: Arc<Credentials>,
    operations: ApiKey,
    warehouse: ApiKey,
    sensors: ApiKey,
    customers: Vec<ApiKey>,
}

impl Keys {
    /// Operations, the site's warehouse and sensor gateway, and `customers` booking
    /// clients.
    fn generate(customers: usize) -> Result<Keys, String> {
        let mut credentials = Credentials::default();
        let mut make = |id: &str, role: Role| -> Result<ApiKey, String> {
            let key = ApiKey::generate(id)?;
            credentials.insert(&key, role);
            Ok(key)
        };
        let operations = make(coldchain_credentials::OPERATIONS, Role::Operations)?;
        let warehouse = make(
            &coldchain_credentials::warehouse(SITE),
            Role::Warehouse { site: SITE.into() },
        )?;
        let sensors = make(
            &coldchain_credentials::sensors(SITE),
            Role::SensorGateway { site: SITE.into() },
        )?;
        let customers = (0..customers)
            .map(|n| {
                let customer = bench_customer(n);
                make(
                    &coldchain_credentials::customer(&customer),
                    Role::BookingClient { customer },
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keys {
            credentials: Arc::new(credentials),
            operations,
            warehouse,
            sensors,
            customers,
        })
    }

    /// The key of `caller`; `None` for a customer beyond those generated (its calls are
    /// then refused, and counted as errors).
    fn key(&self, caller: Caller) -> Option<&ApiKey> {
        match caller {
            Caller::Operations => Some(&self.operations),
            Caller::Warehouse => Some(&self.warehouse),
            Caller::Sensors => Some(&self.sensors),
            Caller::Customer(n) => self.customers.get(n),
        }
    }
}

/// A server of ours running for one scenario, with its data directory and the keys of its
/// callers.
pub struct Host {
    pub service: RunningService,
    pub data: tempfile::TempDir,
    pub keys: Keys,
}

/// The bench's process config: room for any load, authentication on, no rate shedding.
fn bench_config(data: &tempfile::TempDir) -> Config {
    Config {
        data_dir: data.path().to_path_buf(),
        concurrency_limit: 100_000,
        rate_limit: UNLIMITED_RATE,
        rate_burst: UNLIMITED_RATE,
        ..Config::default()
    }
}

impl Host {
    /// Starts `kind` of the bench site, made by `build`.
    pub async fn start(kind: ServiceKind, build: Build) -> Result<Self, String> {
        Self::launch(kind, None, 0, build).await
    }

    /// Starts `kind` of the bench site with a clock of our choosing.
    pub async fn start_with_clock(
        kind: ServiceKind,
        clock: Option<coldchain_store::SharedClock>,
        build: Build,
    ) -> Result<Self, String> {
        Self::launch(kind, clock, 0, build).await
    }

    /// Starts the booking service of the bench site, accepting `customers` booking clients.
    pub async fn start_booking(customers: usize, build: Build) -> Result<Self, String> {
        Self::launch(ServiceKind::Booking, None, customers, build).await
    }

    async fn launch(
        kind: ServiceKind,
        clock: Option<coldchain_store::SharedClock>,
        customers: usize,
        build: Build,
    ) -> Result<Self, String> {
        let data = tempfile::Builder::new()
            .prefix("coldchain-bench")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let network = NetworkConfig::parse(BENCH_NETWORK).map_err(|e| e.to_string())?;
        let config = bench_config(&data);
        let site = network.sites[0].clone();
        let shutdown = Shutdown::new();
        let mut ctx = ServiceContext::new(
            kind,
            site,
            Arc::new(network),
            Arc::new(config),
            shutdown.clone(),
        );
        if let Some(clock) = clock {
            ctx.clock = clock;
        }
        let keys = Keys::generate(customers)?;
        ctx.security.credentials = Some(keys.credentials.clone());
        let spec = build(&ctx).map_err(|e| e.to_string())?;
        Self::serve(spec, ctx, data, keys).await
    }

    /// Starts the no-op service on the same server stack. With `durable`, each call also
    /// appends one ledger entry to a database of the services' kind and answers once the
    /// group commit has made it durable: the same wait a service's write has, with no rows
    /// of its own (the entries of one commit share one key).
    pub async fn noop(durable: bool) -> Result<Self, String> {
        let data = tempfile::tempdir().map_err(|e| e.to_string())?;
        let network = NetworkConfig::parse(BENCH_NETWORK).map_err(|e| e.to_string())?;
        let config = bench_config(&data);
        let mut ctx = ServiceContext::new(
            ServiceKind::Gateway,
            network.sites[0].clone(),
            Arc::new(network),
            Arc::new(config),
            Shutdown::new(),
        );
        // The ceiling pays for authentication too, so the services' share of it stays
        // comparable.
        let keys = Keys::generate(0)?;
        ctx.security.credentials = Some(keys.credentials.clone());
        let store = if durable {
            Some(ctx.open_store().map_err(|e| e.to_string())?)
        } else {
            None
        };
        let closing = store.clone();
        let spec = ServiceSpec {
            label: "bench/noop".into(),
            service_name: coldchain_proto::BENCH_SERVICE,
            routes: tonic::service::Routes::new(
                bench::bench_service_server::BenchServiceServer::new(Noop { store }),
            ),
            probe: always_healthy(),
            on_stopped: Box::new(move || {
                if let Some(store) = closing {
                    store.close();
                }
            }),
            fatal: never_fatal(),
        };
        Self::serve(spec, ctx, data, keys).await
    }

    async fn serve(
        spec: ServiceSpec,
        ctx: ServiceContext,
        data: tempfile::TempDir,
        keys: Keys,
    ) -> Result<Self, String> {
        let listener = bind("127.0.0.1:0".parse().expect("literal address"))
            .await
            .map_err(|e| e.to_string())?;
        let service = spawn_service(listener, spec, ctx.limits(), ctx.shutdown.clone())
            .map_err(|e| e.to_string())?;
        Ok(Self {
            service,
            data,
            keys,
        })
    }

    /// `connection` presenting the key of `caller` on every call.
    pub fn as_caller(&self, connection: &Channel, caller: Caller) -> KeyedChannel {
        KeyedChannel::new(connection.clone(), self.keys.key(caller))
    }

    /// `connections` channels to the server, connected now, calling as `caller`.
    pub async fn channels_as(
        &self,
        connections: usize,
        caller: Caller,
    ) -> Result<Vec<KeyedChannel>, String> {
        Ok(self
            .channels(connections)
            .await?
            .iter()
            .map(|connection| self.as_caller(connection, caller))
            .collect())
    }

    /// `connections` channels to the server, connected now, without credentials.
    ///
    /// Made by `coldchain_runtime::client`, the connector the services use towards each
    /// other: tonic's channel over TCP with writes coalesced. The clients share the
    /// server's two cores, and coalescing cuts what their connections cost, so less of
    /// the machine goes to the load generator (PostgreSQL's, `pgbench`, is C).
    pub async fn channels(&self, connections: usize) -> Result<Vec<Channel>, String> {
        let options = ClientOptions {
            // The bench reports latency itself; a call is never cut short.
            call_timeout: Duration::from_secs(600),
            ..ClientOptions::default()
        };
        let mut out = Vec::new();
        for _ in 0..connections.max(1) {
            let channel = coldchain_runtime::client::transport(&self.service.endpoint(), &options)
                .await
                .map_err(|e| e.to_string())?;
            out.push(channel);
        }
        Ok(out)
    }

    pub async fn stop(self) {
        self.service.stop().await;
    }

    /// Stops the service cleanly, then measures the bytes its data directory takes: the
    /// data at rest, without the write-ahead log's space made ahead for records to come.
    pub async fn stop_and_measure_disk(self) -> u64 {
        self.service.stop().await;
        dir_size(self.data.path())
    }
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The no-op service; with a store, the durable no-op (see [`Host::noop`]).
struct Noop {
    store: Option<coldchain_store::Store>,
}

#[tonic::async_trait]
impl bench::bench_service_server::BenchService for Noop {
    async fn noop(
        &self,
        request: tonic::Request<bench::NoopRequest>,
    ) -> Result<tonic::Response<bench::NoopResponse>, tonic::Status> {
        let payload = request.into_inner().payload;
        let Some(store) = &self.store else {
            return Ok(tonic::Response::new(bench::NoopResponse { payload }));
        };
        let written = store
            .write(None, |tx| {
                tx.append_ledger(|_| payload.clone());
                Ok::<_, std::convert::Infallible>(bench::NoopResponse { payload })
            })
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        Ok(tonic::Response::new(written.value))
    }
}

fn run_id() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn far_future() -> common::Date {
    common::Date {
        year: 2099,
        month: 12,
        day: 31,
    }
}

/// The gRPC ceiling: a no-op unary call through the same server stack; with `durable`, the
/// durable no-op (see [`Host::noop`]).
pub async fn ceiling(
    spec: &LoadSpec,
    connections: usize,
    durable: bool,
) -> Result<LoadResult, String> {
    let host = Host::noop(durable).await?;
    let channels = host.channels_as(connections, Caller::Operations).await?;
    let name = if durable { "durable no-op" } else { "ceiling" };
    let result = load::run(name, spec, move |worker, _| {
        let mut client = bench::bench_service_client::BenchServiceClient::new(
            channels[worker % channels.len()].clone(),
        );
        async move { client.noop(bench::NoopRequest::default()).await.map(|_| ()) }
    })
    .await;
    host.stop().await;
    Ok(result)
}

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
        let pair = (worker as u64 * 7919 + iteration * 104_729) % 10_000;
        let request = inventory::RecordMovementsRequest {
            request_id: format!("bench-{run}-{worker}-{iteration}"),
            movements: vec![inventory::Movement {
                kind: inventory::MovementKind::Receipt as i32,
                sku: format!("SKU-{:03}", pair / 100),
                lot: Some(inventory::LotInfo {
                    lot_id: format!("LOT-{pair:05}"),
                    expiry: Some(far_future()),
                    production: None,
                    origin: String::new(),
                }),
                zone_id: "chilled-a".into(),
                quantity: 1,
                unit: "case".into(),
                ..Default::default()
            }],
        };
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

/// `HoldSpace` then `ConfirmBooking`, durable, one pair per iteration; each worker is the
/// booking client of its own customer.
pub async fn booking(
    spec: &LoadSpec,
    connections: usize,
    build: Build,
) -> Result<LoadResult, String> {
    let host = Host::start_booking(spec.concurrency, build).await?;
    let connections = host.channels(connections).await?;
    let channels: Vec<KeyedChannel> = (0..spec.concurrency.max(1))
        .map(|worker| {
            host.as_caller(
                &connections[worker % connections.len()],
                Caller::Customer(worker),
            )
        })
        .collect();
    let run = run_id();
    let today = chrono::Utc::now().date_naive();
    let result = load::run("booking", spec, move |worker, iteration| {
        let mut client = booking::booking_service_client::BookingServiceClient::new(
            channels[worker % channels.len()].clone(),
        );
        let day = today + chrono::Days::new(1 + (worker as u64 * 31 + iteration) % 365);
        let date = common::Date {
            year: chrono::Datelike::year(&day),
            month: chrono::Datelike::month(&day) as i32,
            day: chrono::Datelike::day(&day) as i32,
        };
        let hold = booking::HoldSpaceRequest {
            request_id: format!("bench-{run}-{worker}-{iteration}-hold"),
            customer_id: bench_customer(worker),
            space: Some(booking::hold_space_request::Space::ZoneId(
                "chilled-a".into(),
            )),
            pallets: 1,
            first_day: Some(date),
            last_day: Some(date),
            ..Default::default()
        };
        async move {
            let held = client.hold_space(hold).await?.into_inner();
            client
                .confirm_booking(booking::ConfirmBookingRequest {
                    request_id: format!("bench-{run}-{worker}-{iteration}-confirm"),
                    booking_id: held.booking_id,
                })
                .await
                .map(|_| ())
        }
    })
    .await;
    host.stop().await;
    Ok(result)
}

/// What the telemetry scenario measured.
pub struct TelemetryRun {
    pub readings_per_second: f64,
    pub readings: u64,
    pub errors: u64,
    pub bytes_per_reading: f64,
}

/// What the query scenario measured.
pub struct QueryRun {
    pub load: LoadResult,
    pub buckets: usize,
    pub readings: u64,
}

const SENSORS: usize = 500;
const STREAMS: usize = 50;
const BATCH_SECONDS: usize = 20;

/// `StreamReadings` from 500 sensors and bytes on disk per reading.
pub async fn telemetry(spec: &LoadSpec, build: Build) -> Result<TelemetryRun, String> {
    let host = Host::start(ServiceKind::Telemetry, build).await?;
    let connection = host.channels(1).await?.remove(0);
    let mut client = telemetry::telemetry_service_client::TelemetryServiceClient::new(
        host.as_caller(&connection, Caller::Operations),
    );
    let channel = host.as_caller(&connection, Caller::Sensors);
    let run = run_id();
    for sensor in 0..SENSORS {
        client
            .register_sensor(telemetry::RegisterSensorRequest {
                request_id: format!("bench-{run}-sensor-{sensor}"),
                sensor_id: format!("S{sensor:04}"),
                binding: Some(telemetry::register_sensor_request::Binding::ZoneId(
                    "chilled-a".into(),
                )),
                ..Default::default()
            })
            .await
            .map_err(|s| format!("register sensor: {s}"))?;
    }
    // Readings start six days ago at 1 Hz per sensor: inside the 7-day window for long runs.
    let start = SystemTime::now() - Duration::from_secs(6 * 86_400);
    let start_secs = start
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let accepted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + spec.warmup + spec.duration;
    let measured_from = Instant::now() + spec.warmup;
    let measured_accepted = Arc::new(AtomicU64::new(0));
    let mut streams = Vec::new();
    for stream in 0..STREAMS {
        let mut client =
            telemetry::telemetry_service_client::TelemetryServiceClient::new(channel.clone());
        let accepted = accepted.clone();
        let measured_accepted = measured_accepted.clone();
        let errors = errors.clone();
        streams.push(tokio::spawn(async move {
            let sensors: Vec<String> = (0..SENSORS / STREAMS)
                .map(|i| format!("S{:04}", stream * (SENSORS / STREAMS) + i))
                .collect();
            let mut second = 0i64;
            // One client stream per round of batches: each round is acknowledged (durable)
            // when its summary arrives.
            while Instant::now() < deadline {
                let mut batches = Vec::new();
                for _ in 0..5 {
                    let mut readings = Vec::with_capacity(sensors.len() * BATCH_SECONDS);
                    for offset in 0..BATCH_SECONDS as i64 {
                        for (i, sensor) in sensors.iter().enumerate() {
                            let t = start_secs + second + offset;
                            readings.push(telemetry::Reading {
                                sensor_id: sensor.clone(),
                                time: Some(prost_types::Timestamp {
                                    seconds: t,
                                    nanos: 0,
                                }),
                                celsius: 2.0 + ((t + i as i64) % 20) as f64 * 0.05,
                                humidity_percent: None,
                                door_open: None,
                            });
                        }
                    }
                    second += BATCH_SECONDS as i64;
                    batches.push(telemetry::ReadingBatch { readings });
                }
                let began = Instant::now();
                match client.stream_readings(futures::stream::iter(batches)).await {
                    Ok(summary) => {
                        let n = summary.get_ref().accepted as u64;
                        accepted.fetch_add(n, Ordering::Relaxed);
                        if began >= measured_from && Instant::now() <= deadline {
                            measured_accepted.fetch_add(n, Ordering::Relaxed);
                        }
                        if summary.get_ref().rejected > 0 {
                            errors.fetch_add(summary.get_ref().rejected as u64, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for stream in streams {
        let _ = stream.await;
    }
    let readings = accepted.load(Ordering::Relaxed);
    let readings_per_second =
        measured_accepted.load(Ordering::Relaxed) as f64 / spec.duration.as_secs_f64().max(1e-9);

    // Everything acknowledged is durable; after a clean stop the data directory holds only
    // the stored readings and their indexes.
    let bytes_per_reading = host.stop_and_measure_disk().await as f64 / readings.max(1) as f64;
    Ok(TelemetryRun {
        readings_per_second,
        readings,
        errors: errors.load(Ordering::Relaxed),
        bytes_per_reading,
    })
}

/// The readings of the telemetry scenario as CSV rows, for PostgreSQL's COPY.
pub fn readings_csv(path: &std::path::Path, rows: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let start = 1_790_000_000i64;
    let per_sensor = rows / SENSORS as u64 + 1;
    let mut written = 0;
    'outer: for second in 0..per_sensor as i64 {
        for sensor in 0..SENSORS {
            if written == rows {
                break 'outer;
            }
            let t = chrono::DateTime::from_timestamp(start + second, 0).unwrap_or_default();
            writeln!(
                out,
                "S{sensor:04},{},{:.2}",
                t.to_rfc3339(),
                2.0 + ((second + sensor as i64) % 20) as f64 * 0.05
            )?;
            written += 1;
        }
    }
    out.flush()
}

/// `QueryReadings` over `days` days in 1-hour buckets of one 1 Hz sensor. The sensor's
/// history is pushed day by day under a manual clock that walks forward with it, as a
/// sensor streaming for `days` days would have written it (the ingest refuses readings
/// older than 7 days).
pub async fn telemetry_query(spec: &LoadSpec, days: u32, build: Build) -> Result<QueryRun, String> {
    let first_second = 1_790_000_000i64;
    let clock = coldchain_store::ManualClock::at(first_second * 1000);
    let host = Host::start_with_clock(ServiceKind::Telemetry, Some(clock.clone()), build).await?;
    let connection = host.channels(1).await?.remove(0);
    let mut operations = telemetry::telemetry_service_client::TelemetryServiceClient::new(
        host.as_caller(&connection, Caller::Operations),
    );
    let mut sensors = telemetry::telemetry_service_client::TelemetryServiceClient::new(
        host.as_caller(&connection, Caller::Sensors),
    );
    // The site's warehouse system reads the history.
    let channel = host.as_caller(&connection, Caller::Warehouse);
    let mut client =
        telemetry::telemetry_service_client::TelemetryServiceClient::new(channel.clone());
    let sensor = "Q0001".to_string();
    operations
        .register_sensor(telemetry::RegisterSensorRequest {
            request_id: format!("bench-query-sensor-{}", run_id()),
            sensor_id: sensor.clone(),
            binding: Some(telemetry::register_sensor_request::Binding::ZoneId(
                "chilled-a".into(),
            )),
            ..Default::default()
        })
        .await
        .map_err(|s| format!("register sensor: {s}"))?;
    let total = i64::from(days) * 86_400;
    let mut pushed = 0i64;
    while pushed < total {
        let n = (total - pushed).min(10_000);
        let readings = (0..n)
            .map(|k| {
                let t = first_second + pushed + k;
                telemetry::Reading {
                    sensor_id: sensor.clone(),
                    time: Some(prost_types::Timestamp {
                        seconds: t,
                        nanos: 0,
                    }),
                    celsius: 3.0 + ((t % 600) as f64) * 0.001,
                    humidity_percent: None,
                    door_open: None,
                }
            })
            .collect();
        clock.set((first_second + pushed + n) * 1000);
        let summary = sensors
            .stream_readings(futures::stream::iter([telemetry::ReadingBatch {
                readings,
            }]))
            .await
            .map_err(|s| format!("preload query series: {s}"))?;
        if summary.get_ref().accepted != n {
            return Err(format!(
                "preload query series: {} of {n} readings accepted",
                summary.get_ref().accepted
            ));
        }
        pushed += n;
    }
    let request = telemetry::QueryReadingsRequest {
        sensor_id: sensor,
        start_time: Some(prost_types::Timestamp {
            seconds: first_second,
            nanos: 0,
        }),
        end_time: Some(prost_types::Timestamp {
            seconds: first_second + total,
            nanos: 0,
        }),
        bucket: Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
    };
    let probe = client
        .query_readings(request.clone())
        .await
        .map_err(|s| format!("query readings: {s}"))?;
    let buckets = probe.get_ref().buckets.len();
    let counted: i64 = probe.get_ref().buckets.iter().map(|b| b.count).sum();
    if counted != total {
        return Err(format!(
            "query readings: buckets count {counted} readings, {total} were pushed"
        ));
    }
    let query_spec = LoadSpec {
        concurrency: 4,
        ..spec.clone()
    };
    let load = load::run("query", &query_spec, move |_, _| {
        let mut client =
            telemetry::telemetry_service_client::TelemetryServiceClient::new(channel.clone());
        let request = request.clone();
        async move { client.query_readings(request).await.map(|_| ()) }
    })
    .await;
    host.stop().await;
    Ok(QueryRun {
        load,
        buckets,
        readings: total as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Authorization by role, on a real service, is tested where the services are: in the
    /// binary (`bench_servers_authorize_every_call`, `src/run.rs`).
    #[tokio::test]
    async fn bench_servers_authenticate_every_call() {
        let host = Host::noop(false).await.unwrap();
        let connection = host.channels(1).await.unwrap().remove(0);
        let refused = bench::bench_service_client::BenchServiceClient::new(connection.clone())
            .noop(bench::NoopRequest::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        bench::bench_service_client::BenchServiceClient::new(
            host.as_caller(&connection, Caller::Operations),
        )
        .noop(bench::NoopRequest::default())
        .await
        .unwrap();
        host.stop().await;
    }

    /// The durable no-op is only a fair reference if each answer really waited for a
    /// durable write: every acknowledged call must be in the ledger after a restart.
    #[tokio::test]
    async fn the_durable_no_op_answers_after_its_ledger_entry_is_stored() {
        let host = Host::noop(true).await.unwrap();
        let connection = host.channels(1).await.unwrap().remove(0);
        let mut client = bench::bench_service_client::BenchServiceClient::new(
            host.as_caller(&connection, Caller::Operations),
        );
        for payload in [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()] {
            let answer = client
                .noop(bench::NoopRequest {
                    payload: payload.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(answer.payload, payload);
        }
        let Host { service, data, .. } = host;
        service.stop().await;
        let store = coldchain_store::Store::open(
            &data.path().join("gateway"),
            &coldchain_store::Identity {
                site: "hub".into(),
                service: "gateway".into(),
            },
            coldchain_store::StoreOptions::default(),
        )
        .unwrap();
        let entries: Vec<Vec<u8>> = store
            .ledger_from(1, 10)
            .unwrap()
            .into_iter()
            .map(|record| record.bytes)
            .collect();
        assert_eq!(
            entries,
            [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        store.close();
    }
}
