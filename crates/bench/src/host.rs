//! The servers of the scenarios: real servers of this project, started in this process on
//! 127.0.0.1:0 over a temporary data directory, driven through the generated clients.
//!
//! The servers authenticate and authorize every call as in production (the figures include
//! that cost); each load client presents the key of the role that makes its calls in real
//! life. Only the per-credential rate limit is raised out of the way: it would otherwise
//! shed the load it is meant to measure.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use coldchain_proto::bench::v1 as bench;
use coldchain_runtime::Shutdown;
use coldchain_runtime::auth::{ApiKey, Credentials, Role};
use coldchain_runtime::client::{Channel as KeyedChannel, ClientOptions};
use coldchain_runtime::config::Config;
use coldchain_runtime::error::ServiceError;
use coldchain_runtime::host::{RunningService, ServiceContext, spawn_service};
use coldchain_runtime::network::{NetworkConfig, ServiceKind, SiteConfig};
use coldchain_runtime::server::{ServiceSpec, always_healthy, bind, never_fatal};
use tonic::transport::Channel;

use crate::Build;

/// One site with room for anything the load asks: capacity never limits the figures.
pub(crate) const BENCH_NETWORK: &str = r#"
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
pub(crate) const SITE: &str = "bench-site";

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
/// A stopped service's data at rest.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskUse {
    /// Every file of its data directory.
    pub bytes: u64,
    /// The bytes of sled's keys and values (see [`sled_contents`]).
    pub logical: u64,
    /// Idempotency records held (the store's `_requests` rows).
    pub requests: u64,
    /// The bytes of sled's keys and values that keep them: the records and their expiry
    /// index.
    pub request_bytes: u64,
}

impl DiskUse {
    /// The data directory `path` of a stopped service.
    pub fn of(path: &std::path::Path) -> Result<Self, String> {
        let contents = sled_contents(path)?;
        Ok(DiskUse {
            bytes: dir_size(path),
            logical: contents.logical,
            requests: contents.requests,
            request_bytes: contents.request_bytes,
        })
    }

    /// Bytes per idempotency record: its keys and values, times sled's amplification (the
    /// share of the files it takes).
    pub fn bytes_per_request(&self) -> Option<f64> {
        (self.requests > 0)
            .then(|| self.request_bytes as f64 / self.requests as f64 * self.amplification())
    }

    /// sled's space amplification: its files' bytes over the bytes of what they hold.
    pub fn amplification(&self) -> f64 {
        self.bytes as f64 / self.logical.max(1) as f64
    }
}

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

/// The context of `kind` at the bench site, with its data in `data`.
fn bench_context(kind: ServiceKind, data: &tempfile::TempDir) -> Result<ServiceContext, String> {
    let network = NetworkConfig::parse(BENCH_NETWORK).map_err(|e| e.to_string())?;
    let site: SiteConfig = network
        .site(SITE)
        .cloned()
        .ok_or_else(|| format!("the bench network has no site {SITE}"))?;
    Ok(ServiceContext::new(
        kind,
        site,
        Arc::new(network),
        Arc::new(bench_config(data)),
        Shutdown::new(),
    ))
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

    /// Starts the booking service of the bench site on `clock`, accepting `customers`
    /// booking clients.
    pub async fn start_booking_with_clock(
        customers: usize,
        clock: coldchain_store::SharedClock,
        build: Build,
    ) -> Result<Self, String> {
        Self::launch(ServiceKind::Booking, Some(clock), customers, build).await
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
        let mut ctx = bench_context(kind, &data)?;
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
        let mut ctx = bench_context(ServiceKind::Gateway, &data)?;
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
        let listener = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
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

    /// Stops the service cleanly, measures its data directory (as
    /// [`Host::stop_and_measure_disk`]), and starts it again on the same data and keys, on
    /// a new port (channels must be made again).
    pub async fn restart_measuring_disk(
        self,
        kind: ServiceKind,
        build: Build,
    ) -> Result<(Self, DiskUse), String> {
        let Host {
            service,
            data,
            keys,
        } = self;
        service.stop().await;
        let bytes = DiskUse::of(data.path())?;
        let mut ctx = bench_context(kind, &data)?;
        ctx.security.credentials = Some(keys.credentials.clone());
        let spec = build(&ctx).map_err(|e| e.to_string())?;
        Ok((Self::serve(spec, ctx, data, keys).await?, bytes))
    }

    /// Stops the service cleanly, then measures the bytes its data directory takes: the
    /// data at rest, without the write-ahead log's space made ahead for records to come.
    pub async fn stop_and_measure_disk(self) -> u64 {
        self.service.stop().await;
        dir_size(self.data.path())
    }

    /// Stops the service cleanly and answers its data directory, whole, once every database
    /// in it is released (another process may open it then).
    pub async fn stop_keeping_data(self) -> Result<tempfile::TempDir, String> {
        self.service.stop().await;
        sled_contents(self.data.path())?;
        Ok(self.data)
    }

    /// [`Host::stop_and_measure_disk`], with the bytes of sled's keys and values (see
    /// [`sled_logical_bytes`]).
    pub async fn stop_and_measure_space(self) -> Result<DiskUse, String> {
        self.service.stop().await;
        DiskUse::of(self.data.path())
    }
}

/// What the sled databases under `path` hold (each directory with sled's `conf` and `db`
/// files), every tree counted.
pub struct SledContents {
    /// The bytes of every key and value: what sled's files would hold with no space lost
    /// to old versions and fragmentation.
    pub logical: u64,
    /// The idempotency records (`_requests/` keys).
    pub requests: u64,
    /// The bytes of the idempotency records and their expiry index.
    pub request_bytes: u64,
}

/// Reads [`SledContents`]. Call it once the service has stopped (sled locks its database
/// while open).
pub fn sled_contents(path: &std::path::Path) -> Result<SledContents, String> {
    let mut contents = SledContents {
        logical: 0,
        requests: 0,
        request_bytes: 0,
    };
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.join("conf").is_file() && dir.join("db").is_file() {
            let db = open_when_released(&dir)?;
            for name in db.tree_names() {
                let tree = db.open_tree(&name).map_err(|e| e.to_string())?;
                for entry in tree.iter() {
                    let (key, value) = entry.map_err(|e| e.to_string())?;
                    let size = (key.len() + value.len()) as u64;
                    contents.logical += size;
                    if key.starts_with(b"_requests/") {
                        contents.requests += 1;
                        contents.request_bytes += size;
                    } else if key.starts_with(b"_request_expiry/") {
                        contents.request_bytes += size;
                    }
                }
            }
            continue;
        }
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        stack.extend(
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.is_dir()),
        );
    }
    Ok(contents)
}

/// Opens the sled database in `dir` once the stopped service has let go of it. A service's
/// stop returns when it has drained and flushed, but a task of it that was mid-way (the
/// idempotency sweep, every second on the history's fast clock) may hold the database a
/// moment longer, and sled refuses a second opener while it is held.
fn open_when_released(dir: &std::path::Path) -> Result<sled::Db, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match sled::open(dir) {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
    }
}

/// The bytes the files under `path` take (what cannot be read counts as nothing).
pub fn dir_size(path: &std::path::Path) -> u64 {
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
            // Through the one error mapping, as a service's handler would.
            .map_err(|e| tonic::Status::from(ServiceError::unavailable(e.to_string())))?;
        Ok(tonic::Response::new(written.value))
    }
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
