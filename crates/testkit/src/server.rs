//! One harness for tests that start servers: a real service on `127.0.0.1:0` over a
//! temporary data directory, with a manual clock, restartable on the same data, exactly as
//! `coldchain serve` starts it (the same bootstrap, limits and shutdown).
//!
//! A service's tests wrap it with what is their own (a site, fake dependencies, message
//! builders): `TestServer::start(ServiceKind::Inventory, site, network, build)` where
//! `build` is the service's `service_with` with the test's options.

use std::sync::Arc;
use std::time::Duration;

use coldchain_runtime::Shutdown;
use coldchain_runtime::client::ClientOptions;
use coldchain_runtime::config::Config;
use coldchain_runtime::host::{RunningService, ServiceContext, StartError, spawn_service};
use coldchain_runtime::network::{NetworkConfig, ServiceKind, SiteConfig};
use coldchain_runtime::server::{ServiceSpec, bind};
use coldchain_store::ManualClock;

/// Builds a service's server from its context.
pub type Build = Arc<dyn Fn(&ServiceContext) -> Result<ServiceSpec, StartError> + Send + Sync>;

/// Client options for tests: short timeouts, quick retries.
pub fn fast_client() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_millis(300),
        call_timeout: Duration::from_millis(1500),
        max_attempts: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        ..ClientOptions::default()
    }
}

/// The shipped network file, `deploy/network.toml`.
pub fn shipped_network() -> NetworkConfig {
    #[allow(clippy::expect_used)] // the shipped file is checked by its own tests
    NetworkConfig::parse(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/network.toml"
    )))
    .expect("the shipped network file parses")
}

/// A running service and what it needs to start again on the same data.
pub struct TestServer {
    /// Its data directory (removed when the harness is dropped).
    pub dir: tempfile::TempDir,
    /// The clock the service reads.
    pub clock: Arc<ManualClock>,
    /// The network it belongs to.
    pub network: Arc<NetworkConfig>,
    /// The site it serves.
    pub site: SiteConfig,
    /// Which service it is.
    pub kind: ServiceKind,
    /// The process configuration it is given (the data directory filled in).
    pub config: Config,
    /// How it calls other services.
    pub client: ClientOptions,
    /// Where it listens now.
    pub endpoint: String,
    build: Build,
    running: Option<RunningService>,
}

impl TestServer {
    /// Starts `kind` of `site` with the clock at `now_ms`.
    pub async fn start(
        kind: ServiceKind,
        site: SiteConfig,
        network: NetworkConfig,
        now_ms: i64,
        build: Build,
    ) -> Self {
        Self::start_with(
            kind,
            site,
            network,
            ManualClock::at(now_ms),
            Config::default(),
            build,
        )
        .await
    }

    /// [`TestServer::start`] with a given clock and configuration.
    pub async fn start_with(
        kind: ServiceKind,
        site: SiteConfig,
        network: NetworkConfig,
        clock: Arc<ManualClock>,
        config: Config,
        build: Build,
    ) -> Self {
        let mut server = Self::new(kind, site, network, clock, config, build);
        server.boot().await;
        server
    }

    /// [`TestServer::start_with`] without starting: `config` (e.g. its `data_dir`, to share a
    /// directory between two instances) and `client` may be changed before [`TestServer::boot`].
    pub fn new(
        kind: ServiceKind,
        site: SiteConfig,
        network: NetworkConfig,
        clock: Arc<ManualClock>,
        config: Config,
        build: Build,
    ) -> Self {
        #[allow(clippy::expect_used)] // a test without a temporary directory cannot run
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            shutdown_grace: Duration::from_secs(2),
            ..config
        };
        Self {
            dir,
            clock,
            network: Arc::new(network),
            site,
            kind,
            config,
            client: fast_client(),
            endpoint: String::new(),
            build,
            running: None,
        }
    }

    /// The context the service is started with.
    pub fn context(&self) -> ServiceContext {
        let mut ctx = ServiceContext::new(
            self.kind,
            self.site.clone(),
            self.network.clone(),
            Arc::new(self.config.clone()),
            Shutdown::new(),
        );
        ctx.clock = self.clock.clone();
        ctx.client = self.client.clone();
        ctx
    }

    /// Starts the service on a fresh port. The previous instance's database may take a
    /// moment to be released, so opening is retried for a few seconds.
    #[allow(clippy::expect_used, clippy::panic)] // a harness that cannot start fails its test
    pub async fn boot(&mut self) {
        let ctx = self.context();
        let mut attempts = 0;
        let spec = loop {
            match (self.build)(&ctx) {
                Ok(spec) => break spec,
                Err(_) if attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("the service does not start: {error}"),
            }
        };
        let listener = bind(([127, 0, 0, 1], 0).into()).await.expect("bind");
        let running =
            spawn_service(listener, spec, ctx.limits(), ctx.shutdown.clone()).expect("spawn");
        self.endpoint = running.endpoint();
        self.running = Some(running);
    }

    /// Stops the service (drains, flushes, closes its store).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    /// Stops and starts again on the same data (on a new port: see `endpoint`).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }

    /// The running instance's shutdown signal.
    pub fn shutdown(&self) -> Option<Shutdown> {
        self.running.as_ref().map(|r| r.shutdown.clone())
    }

    /// Hands the running instance over (its new owner stops it).
    pub fn take_running(&mut self) -> Option<RunningService> {
        self.running.take()
    }

    /// Whether an instance is running.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldchain_runtime::server::{always_healthy, never_fatal};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    /// A server with nothing but health, counting its starts.
    fn empty(starts: Arc<std::sync::atomic::AtomicU32>) -> Build {
        Arc::new(move |ctx: &ServiceContext| {
            starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(ServiceSpec {
                label: ctx.label(),
                service_name: "grpc.health.v1.Health",
                routes: tonic::service::Routes::default(),
                probe: always_healthy(),
                on_stopped: Box::new(|| {}),
                fatal: never_fatal(),
            })
        })
    }

    #[tokio::test]
    async fn a_server_starts_answers_and_restarts_on_a_new_port() {
        let network = shipped_network();
        let site = network.sites[0].clone();
        let starts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut server = TestServer::start(
            ServiceKind::Inventory,
            site,
            network,
            1_000,
            empty(starts.clone()),
        )
        .await;
        let check = |endpoint: String| async move {
            let channel = tonic::transport::Endpoint::from_shared(endpoint)
                .unwrap()
                .connect()
                .await
                .unwrap();
            HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
                .is_ok()
        };
        assert!(check(server.endpoint.clone()).await);
        let first = server.endpoint.clone();
        server.restart().await;
        assert!(check(server.endpoint.clone()).await);
        assert_ne!(first, server.endpoint);
        assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 2);
        server.stop().await;
        assert!(!server.is_running());
    }
}
