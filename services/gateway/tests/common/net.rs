//! The private network of the gateway's tests on 127.0.0.1 — the site services a test
//! needs and the gateway, each on its own port over one temporary data directory; every
//! other site's endpoints point at ports where nothing listens. Services can be stopped and
//! restarted on the same port and data.
//!
//! Shared by the gateway's own tests (`services/gateway/tests`, with fake site services)
//! and the root package's tests of the gateway against the real site services
//! (`tests/gateway_support`, which includes this file): the network is written once.
#![allow(dead_code)]

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coldchain_proto::common::v1 as common;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_runtime::Shutdown;
use coldchain_runtime::client::ClientOptions;
use coldchain_runtime::config::Config;
use coldchain_runtime::host::{RunningService, ServiceContext, StartError, spawn_service};
use coldchain_runtime::network::{NetworkConfig, ServiceKind};
use coldchain_runtime::server::ServiceSpec;
use tonic::transport::Channel;

pub const PARK: &str = "cn-huaihua-park";
pub const VIENTIANE: &str = "la-vientiane";
pub const HANOI: &str = "vn-hanoi";
pub const INVENTORY: ServiceKind = ServiceKind::Inventory;
pub const TELEMETRY: ServiceKind = ServiceKind::Telemetry;
pub const BOOKING: ServiceKind = ServiceKind::Booking;

pub type Gateway = NetworkServiceClient<Channel>;

/// The shipped network file, parsed.
pub fn shipped() -> NetworkConfig {
    // Relative to this file, which the root package's tests include too.
    NetworkConfig::parse(include_str!("../../../../deploy/network.toml"))
        .expect("shipped network parses")
}

/// Reserves a port on 127.0.0.1 without listening on it: connections to it are refused,
/// and no other test's `bind(…:0)` gets it (the kernel does not pick a bound port). `port`
/// 0 picks a free one. SO_REUSEADDR lets a stopped server's port be reserved again while
/// its old connections linger.
pub fn reserve(port: u16) -> tokio::net::TcpSocket {
    let started = Instant::now();
    loop {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        match socket.bind(format!("127.0.0.1:{port}").parse().unwrap()) {
            Ok(()) => return socket,
            Err(error) if started.elapsed() < Duration::from_secs(10) => {
                let _ = error;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("cannot reserve port {port}: {error}"),
        }
    }
}

fn port_of(socket: &tokio::net::TcpSocket) -> u16 {
    socket.local_addr().expect("bound").port()
}

/// Gateway options that make tests fast.
pub fn fast_gateway() -> coldchain_gateway::Options {
    coldchain_gateway::Options {
        site_deadline: Duration::from_millis(1500),
        health_deadline: Duration::from_millis(800),
        step_timeout: Duration::from_millis(1500),
        step_attempts: 2,
        resume_interval: Duration::from_millis(100),
        resume_backoff: Duration::from_millis(100),
        resume_backoff_max: Duration::from_millis(400),
        watch_buffer: 64,
        watch_stall: Duration::from_secs(10),
        watch_backoff_initial: Duration::from_millis(600),
        watch_backoff_max: Duration::from_millis(1200),
        ..coldchain_gateway::Options::default()
    }
}

fn client_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_millis(500),
        call_timeout: Duration::from_millis(3000),
        max_attempts: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..ClientOptions::default()
    }
}

fn gateway_key() -> (String, ServiceKind) {
    (String::from("hub"), ServiceKind::Gateway)
}

/// How a test suite builds the site services it starts: the root package's tests start the
/// real ones, the gateway's own tests fakes (a service never depends on another service).
pub trait SiteServices {
    /// The server of `kind` at the context's site.
    fn build(kind: ServiceKind, ctx: &ServiceContext) -> Result<ServiceSpec, StartError>;
}

/// The private network, its site services built by `S`.
pub struct Network<S> {
    pub dir: tempfile::TempDir,
    pub network: Arc<NetworkConfig>,
    pub gateway_options: coldchain_gateway::Options,
    /// The credentials the gateway accepts; `None` (the default): no authentication.
    pub gateway_credentials: Option<Arc<coldchain_runtime::auth::Credentials>>,
    reserved: HashMap<(String, ServiceKind), tokio::net::TcpSocket>,
    ports: HashMap<(String, ServiceKind), u16>,
    running: HashMap<(String, ServiceKind), RunningService>,
    gateway_port: u16,
    gateway: Option<RunningService>,
    sites: PhantomData<S>,
}

impl<S: SiteServices> Network<S> {
    /// A network where the services in `up` run; every other site service is down.
    pub async fn start(up: &[(&str, ServiceKind)]) -> Self {
        Self::start_with(up, fast_gateway(), |_| {}).await
    }

    /// Like [`Network::start`], with gateway options and a last edit of the network (e.g. to
    /// point an endpoint at a server that never answers).
    pub async fn start_with(
        up: &[(&str, ServiceKind)],
        gateway_options: coldchain_gateway::Options,
        edit: impl FnOnce(&mut NetworkConfig),
    ) -> Self {
        let mut network = shipped();
        let mut reserved = HashMap::new();
        let mut ports = HashMap::new();
        for site in &mut network.sites {
            for kind in ServiceKind::SITE_SERVICES {
                let socket = reserve(0);
                let port = port_of(&socket);
                reserved.insert((site.id.clone(), kind), socket);
                ports.insert((site.id.clone(), kind), port);
                let endpoint = Some(format!("http://127.0.0.1:{port}"));
                match kind {
                    ServiceKind::Inventory => site.endpoints.inventory = endpoint,
                    ServiceKind::Telemetry => site.endpoints.telemetry = endpoint,
                    _ => site.endpoints.booking = endpoint,
                }
            }
        }
        let gateway_socket = reserve(0);
        let gateway_port = port_of(&gateway_socket);
        reserved.insert(gateway_key(), gateway_socket);
        network.gateway.listen = format!("127.0.0.1:{gateway_port}").parse().unwrap();
        network.gateway.endpoint = None;
        edit(&mut network);
        let mut net = Network {
            dir: tempfile::tempdir().expect("tempdir"),
            network: Arc::new(network),
            gateway_options,
            gateway_credentials: None,
            reserved,
            ports,
            running: HashMap::new(),
            gateway_port,
            gateway: None,
            sites: PhantomData,
        };
        for (site, kind) in up {
            net.start_service(site, *kind).await;
        }
        net.start_gateway().await;
        net
    }

    fn context(&self, kind: ServiceKind, site: &str) -> ServiceContext {
        let site = self.network.site(site).expect("site").clone();
        let config = Config {
            data_dir: self.dir.path().to_path_buf(),
            shutdown_grace: Duration::from_secs(1),
            ..Config::default()
        };
        let mut ctx = ServiceContext::new(
            kind,
            site,
            self.network.clone(),
            Arc::new(config),
            Shutdown::new(),
        );
        ctx.client = client_options();
        ctx
    }

    /// The context the gateway is started with (its data directory, its store).
    pub fn gateway_context(&self) -> ServiceContext {
        self.context(ServiceKind::Gateway, &self.network.sites[0].id)
    }

    /// Builds a service, waiting for a previous instance to release the database.
    async fn build(
        &self,
        ctx: &ServiceContext,
        build: impl Fn(&ServiceContext) -> Result<ServiceSpec, StartError>,
    ) -> ServiceSpec {
        let started = Instant::now();
        loop {
            match build(ctx) {
                Ok(spec) => return spec,
                Err(error) if started.elapsed() < Duration::from_secs(10) => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("{} does not start: {error}", ctx.label()),
            }
        }
    }

    /// Turns a port's reservation into a listener.
    fn listener(&mut self, key: &(String, ServiceKind), port: u16) -> tokio::net::TcpListener {
        let socket = self.reserved.remove(key).unwrap_or_else(|| reserve(port));
        socket.listen(1024).expect("listen")
    }

    /// Starts (or restarts, on the same port and data) a site service.
    pub async fn start_service(&mut self, site: &str, kind: ServiceKind) {
        let key = (site.to_string(), kind);
        assert!(
            !self.running.contains_key(&key),
            "{site} {kind} already runs"
        );
        let port = self.ports[&key];
        let ctx = self.context(kind, site);
        let spec = self.build(&ctx, |ctx| S::build(kind, ctx)).await;
        let listener = self.listener(&key, port);
        let running =
            spawn_service(listener, spec, ctx.limits(), ctx.shutdown.clone()).expect("spawn");
        self.running.insert(key, running);
    }

    /// Stops a site service (graceful: drained and flushed).
    pub async fn stop_service(&mut self, site: &str, kind: ServiceKind) {
        let key = (site.to_string(), kind);
        let running = self.running.remove(&key).expect("the service runs");
        running.stop().await;
        let port = self.ports[&key];
        self.reserved.insert(key, reserve(port));
    }

    /// Starts (or restarts, on the same port and data directory) the gateway.
    pub async fn start_gateway(&mut self) {
        assert!(self.gateway.is_none(), "the gateway already runs");
        let ctx = self.gateway_context();
        let options = self.gateway_options.clone();
        let spec = self
            .build(&ctx, |ctx| {
                coldchain_gateway::service_with(ctx, options.clone())
            })
            .await;
        let listener = self.listener(&gateway_key(), self.gateway_port);
        let mut limits = ctx.limits();
        if let Some(credentials) = &self.gateway_credentials {
            limits.gatekeeper = Some(Arc::new(coldchain_runtime::auth::Gatekeeper::new(
                credentials.clone(),
                coldchain_runtime::auth::ServerScope {
                    kind: ServiceKind::Gateway,
                    site: None,
                },
                10_000,
                10_000,
            )));
        }
        self.gateway =
            Some(spawn_service(listener, spec, limits, ctx.shutdown.clone()).expect("spawn"));
    }

    /// Stops the gateway.
    pub async fn stop_gateway(&mut self) {
        self.gateway.take().expect("the gateway runs").stop().await;
        self.reserved
            .insert(gateway_key(), reserve(self.gateway_port));
    }

    /// `http://127.0.0.1:<port>` of a site service.
    pub fn endpoint(&self, site: &str, kind: ServiceKind) -> String {
        format!("http://127.0.0.1:{}", self.ports[&(site.to_string(), kind)])
    }

    /// `http://127.0.0.1:<port>` of the gateway.
    pub fn gateway_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    /// A client of the gateway.
    pub async fn gateway(&self) -> Gateway {
        NetworkServiceClient::connect(format!("http://127.0.0.1:{}", self.gateway_port))
            .await
            .expect("connect to the gateway")
    }
}

pub fn date(year: i32, month: i32, day: i32) -> common::Date {
    common::Date { year, month, day }
}

/// One transfer line of kg.
pub fn line(
    sku: &str,
    lot: &str,
    from_zone: &str,
    to_zone: &str,
    quantity: i64,
) -> pb::TransferLine {
    pb::TransferLine {
        sku: sku.into(),
        lot_id: lot.into(),
        source_zone_id: from_zone.into(),
        destination_zone_id: to_zone.into(),
        quantity,
        unit: "kg".into(),
        lot: None,
    }
}

/// A StartTransfer from the park to Vientiane.
pub fn start(
    request_id: &str,
    transfer_id: &str,
    lines: Vec<pb::TransferLine>,
) -> pb::StartTransferRequest {
    pb::StartTransferRequest {
        request_id: request_id.into(),
        transfer_id: transfer_id.into(),
        source_site_id: PARK.into(),
        destination_site_id: VIENTIANE.into(),
        lines,
        train_or_route: "China-Laos express X8011".into(),
        ..pb::StartTransferRequest::default()
    }
}

/// The transfer's state.
pub fn state(t: &pb::Transfer) -> pb::TransferState {
    pb::TransferState::try_from(t.state).expect("a known state")
}

/// Polls GetTransfer until the transfer is in `wanted` (within `within`).
pub async fn wait_for_state(
    gateway: &mut Gateway,
    transfer_id: &str,
    wanted: pb::TransferState,
    within: Duration,
) -> pb::Transfer {
    let deadline = Instant::now() + within;
    loop {
        let t = gateway
            .get_transfer(pb::GetTransferRequest {
                transfer_id: transfer_id.into(),
            })
            .await
            .expect("get transfer")
            .into_inner();
        if state(&t) == wanted {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "transfer {transfer_id} still {:?} (last_error {:?}) after {within:?}",
            state(&t),
            t.last_error
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
