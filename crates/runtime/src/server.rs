//! The server bootstrap every service uses: health with real status, reflection (v1 and
//! v1alpha), a per-RPC deadline, a global concurrency limit that sheds load, message size
//! limits, one tracing span per RPC (an OpenTelemetry server span when traces are on), the
//! RPC metrics of every call it answers, and a graceful shutdown that drains and then
//! flushes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use http::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::admin::Admin;
use crate::auth::Gatekeeper;
use crate::error::{Code, ServiceError};
use crate::observe::rpc::{CallObserver, RpcMetrics};
use crate::shutdown::Shutdown;

/// Limits applied to every server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The longest any unary call (or a stream's setup) may take; a shorter client
    /// deadline (`grpc-timeout`) wins.
    pub rpc_timeout: Duration,
    /// Calls in flight per server, across all connections; beyond it calls are shed
    /// with `RESOURCE_EXHAUSTED`.
    pub concurrency_limit: usize,
    /// The largest message decoded or encoded.
    pub max_message_bytes: usize,
    /// How long shutdown waits for in-flight calls before giving up on them.
    pub shutdown_grace: Duration,
    /// How often the health probe runs.
    pub health_interval: Duration,
    /// Who may call what, and how often; `None` serves without authentication.
    pub gatekeeper: Option<Arc<Gatekeeper>>,
    /// TLS; `None` serves plaintext.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// Where to answer `grpc.health.v1.Health` alone in plaintext too, for probes that
    /// cannot speak TLS (Kubernetes' gRPC probes); `None` for no such listener.
    pub health_addr: Option<SocketAddr>,
    /// Where every call's duration and code are recorded; `None` while metrics are off.
    pub metrics: Option<Arc<RpcMetrics>>,
    /// The admin service (online backups) of the server's store, served next to the
    /// service; `None` for a server without a store.
    pub admin: Option<Admin>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rpc_timeout: Duration::from_secs(10),
            concurrency_limit: 1024,
            max_message_bytes: 4 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(3),
            health_interval: Duration::from_secs(2),
            gatekeeper: None,
            tls: None,
            health_addr: None,
            metrics: None,
            admin: None,
        }
    }
}

/// Checks whether a service can do its work (its store answers, …).
pub type HealthProbe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A probe that always passes: for services with nothing of their own to check.
pub fn always_healthy() -> HealthProbe {
    Arc::new(|| Box::pin(async { Ok(()) }))
}

/// Resolves, with the reason, when a service can no longer do its work and must stop so
/// that whatever supervises it (compose's restart policy, an operator) starts it again:
/// its store can no longer make writes durable, for one.
pub type Fatal = BoxFuture<'static, String>;

/// For services with no such condition: never resolves.
pub fn never_fatal() -> Fatal {
    Box::pin(std::future::pending())
}

/// Why [`serve`] ended other than by a requested shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The server's transport failed (binding TLS, accepting connections).
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// The service's [`Fatal`] condition fired: it stopped itself.
    #[error("stopped because it can no longer serve: {0}")]
    Failed(String),
    /// The plaintext health listener could not be bound.
    #[error("health listener: {0}")]
    HealthListener(std::io::Error),
}

/// What a service hands to [`serve`].
pub struct ServiceSpec {
    /// For logs: `la-vientiane/inventory`.
    pub label: String,
    /// The fully qualified gRPC service name, reported by health.
    pub service_name: &'static str,
    /// The service's routes (its tonic server, already given its message limits).
    pub routes: Routes,
    /// Its health check.
    pub probe: HealthProbe,
    /// Runs after the server drained: flush and close the store.
    pub on_stopped: Box<dyn FnOnce() + Send>,
    /// Stops the server, with an error, when it fires.
    pub fatal: Fatal,
}

/// Binds a listener; port 0 picks a free port.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Serves `spec` on `listener` until `shutdown` fires, then drains (bounded by
/// `limits.shutdown_grace`) and runs `spec.on_stopped`.
///
/// When `spec.fatal` fires first, it triggers `shutdown` itself (the whole process stops:
/// a process that keeps running with one service unable to work looks alive to its
/// supervisor and is never restarted) and returns [`ServeError::Failed`].
pub async fn serve(
    listener: TcpListener,
    spec: ServiceSpec,
    limits: Limits,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    // Health alone, in plaintext, on a port of its own: what it tells (SERVING or not) is
    // open on the main port too, so this opens nothing new. It stops with the server.
    let health_listener = match limits.health_addr {
        Some(addr) => match bind(addr).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                (spec.on_stopped)();
                return Err(ServeError::HealthListener(error));
            }
        },
        None => None,
    };
    let (health, health_service) = tonic_health::server::health_reporter();

    let probe_task = tokio::spawn(run_probe(
        health.clone(),
        spec.service_name,
        spec.probe.clone(),
        limits.health_interval,
        shutdown.clone(),
        spec.label.clone(),
        limits.metrics.as_ref().map(|m| m.health(spec.service_name)),
    ));

    let health_task = health_listener.map(|listener| {
        let health_only = tonic::transport::Server::builder()
            .add_service(health_service.clone())
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown.wait(),
            );
        let label = spec.label.clone();
        tokio::spawn(async move {
            if let Err(error) = health_only.await {
                tracing::error!(service = %label, %error, "plaintext health listener failed");
            }
        })
    });

    let mut routes = spec.routes.add_service(health_service);
    let mut served = vec![spec.service_name];
    if let Some(admin) = limits.admin.clone() {
        routes = routes.add_service(admin.server(limits.max_message_bytes));
        served.push(coldchain_proto::ADMIN_SERVICE);
    }
    let routes = with_reflection(routes, &served);
    let guard = GuardLayer {
        permits: Arc::new(Semaphore::new(limits.concurrency_limit)),
        limit: limits.concurrency_limit,
        timeout: limits.rpc_timeout,
        label: Arc::from(spec.label.as_str()),
        gatekeeper: limits.gatekeeper.clone(),
        metrics: limits.metrics.clone(),
    };
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|stream| stream.map(crate::coalesce::CoalescedWrites::new));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = limits.tls.clone() {
        builder = builder.tls_config(tls)?;
    }
    let server = builder
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .layer(guard)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown.wait());
    tokio::pin!(server);

    let serving = async {
        tokio::select! {
            result = &mut server => result,
            () = async {
                shutdown.wait().await;
                tokio::time::sleep(limits.shutdown_grace).await;
            } => {
                tracing::warn!(service = %spec.label, "calls still in flight after the shutdown grace period; stopping anyway");
                Ok(())
            }
        }
    };
    tokio::pin!(serving);
    // Watched in this task, next to the server, so that nothing of it outlives `serve`.
    let mut failure = None;
    let result = tokio::select! {
        result = &mut serving => result,
        reason = spec.fatal => {
            tracing::error!(
                service = %spec.label,
                %reason,
                "stopping: this service can no longer serve; it recovers when started again",
            );
            shutdown.trigger();
            failure = Some(reason);
            serving.await
        }
    };
    probe_task.abort();
    if let Some(task) = health_task {
        task.abort();
    }
    (spec.on_stopped)();
    tracing::debug!(service = %spec.label, "stopped");
    result?;
    match failure {
        Some(reason) => Err(ServeError::Failed(reason)),
        None => Ok(()),
    }
}

async fn run_probe(
    health: tonic_health::server::HealthReporter,
    service_name: &'static str,
    probe: HealthProbe,
    interval: Duration,
    shutdown: Shutdown,
    label: String,
    serving: Option<metrics::Gauge>,
) {
    let mut last: Option<bool> = None;
    loop {
        let ok = if shutdown.is_triggered() {
            false
        } else {
            match probe().await {
                Ok(()) => true,
                Err(problem) => {
                    if last != Some(false) {
                        tracing::error!(service = %label, %problem, "health check failed: NOT_SERVING");
                    }
                    false
                }
            }
        };
        if last != Some(ok) {
            let status = if ok {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            health.set_service_status("", status).await;
            health.set_service_status(service_name, status).await;
            if let Some(gauge) = &serving {
                gauge.set(if ok { 1.0 } else { 0.0 });
            }
            last = Some(ok);
        }
        if shutdown.is_triggered() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.wait() => {}
        }
    }
}

/// Sheds calls beyond the concurrency limit, enforces the deadline, opens the per-RPC
/// tracing span and observes the call.
#[derive(Clone)]
struct GuardLayer {
    permits: Arc<Semaphore>,
    limit: usize,
    timeout: Duration,
    label: Arc<str>,
    gatekeeper: Option<Arc<Gatekeeper>>,
    metrics: Option<Arc<RpcMetrics>>,
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            config: self.clone(),
        }
    }
}

#[derive(Clone)]
struct Guard<S> {
    inner: S,
    config: GuardLayer,
}

impl<S> Service<Request<Body>> for Guard<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let method = request.uri().path().to_string();
        let span =
            crate::observe::traces::server_span(&self.config.label, &method, request.headers());
        let observer = self.config.metrics.as_ref().map(|m| m.start(&method));
        // Who is calling comes first: a refused caller costs no concurrency permit.
        if let Some(gatekeeper) = &self.config.gatekeeper {
            let authorization = request.headers().get(http::header::AUTHORIZATION);
            match gatekeeper.admit(&method, authorization) {
                Ok(Some(principal)) => {
                    span.record("caller", principal.id.as_str());
                    request.extensions_mut().insert(principal);
                }
                Ok(None) => {}
                Err(refusal) => {
                    span.in_scope(|| tracing::info!(?refusal, "call refused"));
                    let response = observed(observer, refused(refusal).into_http());
                    return Box::pin(async move { Ok(response) });
                }
            }
        }
        let Ok(permit) = self.config.permits.clone().try_acquire_owned() else {
            let limit = self.config.limit;
            span.in_scope(|| tracing::warn!(limit, "overloaded: call shed"));
            let response = refused(ServiceError::new(
                Code::ResourceExhausted,
                format!("server overloaded: {limit} calls in flight; retry with backoff"),
            ))
            .into_http();
            let response = observed(observer, response);
            return Box::pin(async move { Ok(response) });
        };
        // A client stream lasts as long as the client keeps sending: only the client's own
        // deadline bounds it. Every other call gets the server's deadline too.
        let server_deadline = if client_streaming_methods().contains(method.as_str()) {
            None
        } else {
            Some(self.config.timeout)
        };
        let deadline = match (
            crate::retry::client_deadline(request.headers()),
            server_deadline,
        ) {
            (Some(client), Some(server)) => Some(client.min(server)),
            (client, server) => client.or(server),
        };
        // Take the service that was driven to readiness, leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(
            async move {
                let started = Instant::now();
                let call = inner.call(request);
                let outcome = match deadline {
                    Some(deadline) => tokio::time::timeout(deadline, call)
                        .await
                        .map_err(|_| deadline),
                    None => Ok(call.await),
                };
                let response = match outcome {
                    Ok(Ok(response)) => oversized_is_resource_exhausted(response),
                    Err(deadline) => refused(ServiceError::new(
                        Code::DeadlineExceeded,
                        format!("deadline of {} ms exceeded", deadline.as_millis()),
                    ))
                    .into_http(),
                };
                drop(permit);
                let response = observed(observer, response);
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_string();
                tracing::debug!(
                    code,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "done"
                );
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// `response`, its call recorded by `observer` (when metrics are on).
fn observed(observer: Option<CallObserver>, response: Response<Body>) -> Response<Body> {
    match observer {
        Some(observer) => observer.finish(response),
        None => response,
    }
}

/// tonic refuses a message over the size limit with OUT_OF_RANGE; this network's contract
/// (DESIGN.md) says RESOURCE_EXHAUSTED. The refusal is always a trailers-only response (no
/// message was answered yet), so its status is in the headers and is rewritten there.
fn oversized_is_resource_exhausted(mut response: Response<Body>) -> Response<Body> {
    let Some(status) = tonic::Status::from_header_map(response.headers()) else {
        return response;
    };
    if status.code() != tonic::Code::OutOfRange
        || !status.message().contains("message length too large")
    {
        return response;
    }
    let detail = status
        .message()
        .split_once("too large: ")
        .map_or(status.message(), |(_, detail)| detail);
    let replacement = refused(ServiceError::new(
        Code::ResourceExhausted,
        format!("message too large: {detail}"),
    ));
    let headers = response.headers_mut();
    headers.remove("grpc-status");
    headers.remove("grpc-message");
    if replacement.add_header(headers).is_err() {
        tracing::warn!("could not rewrite an oversized-message status");
    }
    response
}

/// The paths (`/package.Service/Method`) of every client-streaming method of our contracts,
/// read once from the embedded descriptor set.
fn client_streaming_methods() -> &'static std::collections::HashSet<String> {
    static METHODS: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    METHODS.get_or_init(|| {
        use prost::Message;
        let Ok(set) = prost_types::FileDescriptorSet::decode(coldchain_proto::FILE_DESCRIPTOR_SET)
        else {
            return Default::default();
        };
        let mut out = std::collections::HashSet::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    if method.client_streaming() {
                        out.insert(format!(
                            "/{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        out
    })
}

/// Reflection over both protocol versions (`grpc.reflection.v1` for today's tools,
/// `v1alpha` for grpcui, Postman, Evans and older grpcurl), listing exactly what this
/// server serves: its own service, health and reflection, not every contract of the
/// descriptor set (a service listed but not served would answer UNIMPLEMENTED).
fn with_reflection(routes: Routes, served: &[&'static str]) -> Routes {
    let builder = || {
        let builder = served.iter().fold(
            tonic_reflection::server::Builder::configure(),
            |builder, name| builder.with_service_name(*name),
        );
        builder
            .register_encoded_file_descriptor_set(coldchain_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
            .include_reflection_service(false)
            .with_service_name(HEALTH_SERVICE)
            .with_service_name(REFLECTION_V1)
            .with_service_name(REFLECTION_V1ALPHA)
    };
    // The descriptor sets are compiled in and decoded by the test below.
    #[allow(clippy::expect_used)]
    routes
        .add_service(
            builder()
                .build_v1()
                .expect("embedded descriptor sets are valid"),
        )
        .add_service(
            builder()
                .build_v1alpha()
                .expect("embedded descriptor sets are valid"),
        )
}

const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// The status of a refusal the bootstrap answers itself, through the one mapping.
fn refused(refusal: impl Into<ServiceError>) -> tonic::Status {
    tonic::Status::from(refusal.into())
}

/// The name under which a tonic server registers, for health.
pub fn service_name<S: NamedService>() -> &'static str {
    S::NAME
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_of_every_service_builds() {
        for name in [
            coldchain_proto::INVENTORY_SERVICE,
            coldchain_proto::TELEMETRY_SERVICE,
            coldchain_proto::BOOKING_SERVICE,
            coldchain_proto::NETWORK_SERVICE,
        ] {
            let _ = with_reflection(Routes::default(), &[name, coldchain_proto::ADMIN_SERVICE]);
        }
    }

    #[test]
    fn client_streaming_methods_come_from_the_contracts() {
        let methods = client_streaming_methods();
        assert!(methods.contains("/coldchain.telemetry.v1.TelemetryService/StreamReadings"));
        assert!(!methods.contains("/coldchain.telemetry.v1.TelemetryService/PushReadings"));
    }
}
