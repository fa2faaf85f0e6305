//! What a service instance is given to start: its site, the network, the process config,
//! its clock and the shutdown signal. `coldchain serve` and `coldchain dev` build one per
//! server; tests build them around temporary directories.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use coldchain_store::{Identity, SharedClock, Store, StoreError, StoreOptions, system_clock};

use crate::admin::Admin;
use crate::auth::{Gatekeeper, ServerScope};
use crate::client::ClientOptions;
use crate::config::Config;
use crate::network::{NetworkConfig, ServiceKind, SiteConfig};
use crate::observe::ServiceLabels;
use crate::observe::rpc::{RpcMetrics, Side};
use crate::security::Security;
use crate::server::Limits;
use crate::shutdown::Shutdown;

/// Everything a service instance needs from its host process.
#[derive(Clone)]
pub struct ServiceContext {
    /// Which service this instance is.
    pub kind: ServiceKind,
    /// The site it serves (the gateway gets the first site; it does not use it).
    pub site: SiteConfig,
    /// The whole network, for endpoints of other services.
    pub network: Arc<NetworkConfig>,
    /// The process configuration.
    pub config: Arc<Config>,
    /// The clock (a manual one in tests).
    pub clock: SharedClock,
    /// The process's shutdown signal; long-lived streams end when it fires.
    pub shutdown: Shutdown,
    /// How this instance calls other services (TLS, its own API key, retries).
    pub client: ClientOptions,
    /// What its server enforces: credentials and TLS.
    pub security: Security,
    /// The store [`ServiceContext::open_store`] opened last (shared by clones), whose
    /// admin service (online backups) the server serves.
    opened: Arc<Mutex<Option<Store>>>,
}

impl ServiceContext {
    /// A context with the real clock and default client options (which observe the calls
    /// this instance makes, when the process records metrics).
    pub fn new(
        kind: ServiceKind,
        site: SiteConfig,
        network: Arc<NetworkConfig>,
        config: Arc<Config>,
        shutdown: Shutdown,
    ) -> Self {
        let mut ctx = Self {
            kind,
            site,
            network,
            config,
            clock: system_clock(),
            shutdown,
            client: ClientOptions::default(),
            security: Security::default(),
            opened: Arc::default(),
        };
        ctx.client.metrics = RpcMetrics::new(Side::Client, ctx.metric_labels());
        ctx
    }

    /// The `site` and `service` labels of this instance's series (the gateway's site is
    /// `hub`, as in its store's identity), and the hook through which a service registers
    /// series of its own (see [`crate::observe`]).
    pub fn metric_labels(&self) -> ServiceLabels {
        let site = match self.kind {
            ServiceKind::Gateway => "hub".to_string(),
            _ => self.site.id.clone(),
        };
        ServiceLabels::new(site, self.kind.as_str())
    }

    /// `la-vientiane/inventory`, for logs.
    pub fn label(&self) -> String {
        match self.kind {
            ServiceKind::Gateway => "gateway".to_string(),
            kind => format!("{}/{}", self.site.id, kind.as_str()),
        }
    }

    /// `<data_dir>/<site>/<service>` (`<data_dir>/gateway` for the gateway).
    pub fn data_path(&self) -> PathBuf {
        match self.kind {
            ServiceKind::Gateway => self.config.data_dir.join("gateway"),
            kind => self.config.data_dir.join(&self.site.id).join(kind.as_str()),
        }
    }

    /// `<wal_archive_dir>/<site>/<service>` (`…/gateway` for the gateway), when the
    /// configuration keeps a log archive.
    pub fn wal_archive_path(&self) -> Option<PathBuf> {
        let root = self.config.wal_archive_dir.as_ref()?;
        Some(match self.kind {
            ServiceKind::Gateway => root.join("gateway"),
            kind => root.join(&self.site.id).join(kind.as_str()),
        })
    }

    /// Opens this instance's database.
    pub fn open_store(&self) -> Result<Store, StoreError> {
        let labels = self.metric_labels();
        let identity = Identity {
            site: labels.site.into_owned(),
            service: labels.service.into_owned(),
        };
        let store = Store::open(
            &self.data_path(),
            &identity,
            StoreOptions {
                cache_bytes: self.config.sled_cache_bytes,
                row_cache_bytes: usize::try_from(self.config.row_cache_bytes).unwrap_or(usize::MAX),
                request_filter_bytes: usize::try_from(self.config.request_filter_bytes)
                    .unwrap_or(usize::MAX),
                overlay_bytes: usize::try_from(self.config.overlay_bytes).unwrap_or(usize::MAX),
                idempotency_retention: self.config.idempotency_retention,
                clock: self.clock.clone(),
                wal_archive_dir: self.wal_archive_path(),
                ..StoreOptions::default()
            },
        )?;
        *lock(&self.opened) = Some(store.clone());
        Ok(store)
    }

    /// The server limits from the config, with this instance's gatekeeper and TLS, and the
    /// admin service of the store it opened (call it after building the service).
    pub fn limits(&self) -> Limits {
        let gatekeeper = self.security.credentials.as_ref().map(|credentials| {
            let scope = ServerScope {
                kind: self.kind,
                site: (self.kind != ServiceKind::Gateway).then(|| self.site.id.clone()),
            };
            Arc::new(Gatekeeper::new(
                credentials.clone(),
                scope,
                self.config.rate_limit,
                self.config.rate_burst,
            ))
        });
        Limits {
            rpc_timeout: self.config.rpc_timeout,
            concurrency_limit: self.config.concurrency_limit,
            max_message_bytes: self.config.max_message_bytes,
            shutdown_grace: self.config.shutdown_grace,
            gatekeeper,
            tls: self.security.server_tls.clone(),
            health_addr: self
                .config
                .health_port
                .map(|port| std::net::SocketAddr::new(self.config.listen_host, port)),
            metrics: RpcMetrics::new(Side::Server, self.metric_labels()),
            admin: lock(&self.opened)
                .clone()
                .map(|store| Admin::new(store, self.label())),
            ..Limits::default()
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only ever holds an assignment: a poisoned lock's value is whole.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A health probe that checks a store answers.
pub fn store_probe(store: Store) -> crate::server::HealthProbe {
    Arc::new(move || {
        let store = store.clone();
        Box::pin(async move {
            store.measure_disk();
            store.check().map_err(|e| e.to_string())
        })
    })
}

/// Fires once `store` can no longer make writes durable: the service stops, and opening
/// the store again (a restart) replays its write-ahead log.
pub fn store_failure(store: Store) -> crate::server::Fatal {
    Box::pin(async move { format!("its database failed: {}", store.failed().await) })
}

/// How much of the store's clock passes between two sweeps of expired request ids.
const IDEMPOTENCY_SWEEP_EVERY_MS: i64 = 3_600_000;

/// Forgets expired request ids once an hour until shutdown. The hour is the store's
/// clock's, looked at every second: a store on a clock of its own (a test, the bench's
/// history written over two years of a moving clock) is swept as its own hours pass.
pub fn spawn_idempotency_sweeper(store: Store, shutdown: Shutdown) {
    let mut last_sweep = store.clock().now_millis();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                () = shutdown.wait() => return,
            }
            let now = store.clock().now_millis();
            if now.saturating_sub(last_sweep) < IDEMPOTENCY_SWEEP_EVERY_MS {
                continue;
            }
            last_sweep = now;
            match store.sweep_expired_requests().await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "forgot expired request ids"),
                Err(error) => tracing::warn!(%error, "sweeping expired request ids failed"),
            }
        }
    });
}

/// Why a service could not start (its store would not open, its config is wrong, …).
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// A service running in this process on a local port: for tests and `coldchain dev`.
pub struct RunningService {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Fire to stop it.
    pub shutdown: Shutdown,
    /// Resolves when it stopped (after draining and flushing): with an error when it stopped
    /// itself (see [`crate::server::Fatal`]) or its transport failed.
    pub stopped: tokio::task::JoinHandle<Result<(), crate::server::ServeError>>,
}

impl RunningService {
    /// `http://addr`, for clients (a TLS client reaches it as `https://addr`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops it and waits until its store is flushed and closed.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = self.stopped.await;
    }
}

/// Starts `spec` on `listener` in the background.
pub fn spawn_service(
    listener: tokio::net::TcpListener,
    spec: crate::server::ServiceSpec,
    limits: Limits,
    shutdown: Shutdown,
) -> std::io::Result<RunningService> {
    let addr = listener.local_addr()?;
    let label = spec.label.clone();
    let stopped = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let served = crate::server::serve(listener, spec, limits, shutdown).await;
            if let Err(error) = &served {
                tracing::error!(service = %label, %error, "server failed");
            }
            served
        }
    });
    Ok(RunningService {
        addr,
        shutdown,
        stopped,
    })
}
