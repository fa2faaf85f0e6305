//! The Prometheus endpoint of a process: `metrics-exporter-prometheus`' recorder, installed
//! once as the `metrics` facade's global recorder, and a small HTTP/1.1 server answering
//! `GET /metrics` with its rendering (text format 0.0.4).
//!
//! The listener is bound before anything is installed, so an address in use fails the
//! start with a message naming `metrics_listen`, like any other bad configuration.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::shutdown::Shutdown;

/// Upper bounds of the RPC duration buckets, in seconds: OpenTelemetry's recommended
/// boundaries for `rpc.*.call.duration`, with finer ones below 5 ms, where most calls of
/// this network answer.
pub const RPC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
    0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Upper bounds of the write-ahead log's sync durations, in seconds (an `fdatasync` takes
/// about 0.1 ms on a good disk; the alert fires at a p99 over 50 ms).
pub const SYNC_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Upper bounds of the writers gathered into one group commit.
pub const WRITER_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// How often histograms' recorded values are folded into their buckets between scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Whether this process records metrics (a recorder is installed).
pub fn enabled() -> bool {
    HANDLE.get().is_some()
}

/// The process's metrics endpoint, once started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsEndpoint {
    /// Where `GET /metrics` is served (the port chosen, when 0 was asked for).
    pub addr: SocketAddr,
}

impl MetricsEndpoint {
    /// `http://addr/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }
}

/// Serves `GET /metrics` on `listen` until `shutdown` fires, recording from now on; `None`
/// (metrics off) does nothing. Fails, saying which setting, when `listen` cannot be bound.
///
/// Call it before the servers are built: the series they register before a recorder is
/// installed record nothing.
pub async fn start(
    listen: Option<SocketAddr>,
    shutdown: &Shutdown,
) -> Result<Option<MetricsEndpoint>, String> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("metrics_listen: cannot listen on {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("metrics_listen: {listen}: {e}"))?;
    let handle = install()?;
    tokio::spawn(serve(listener, handle, shutdown.clone()));
    Ok(Some(MetricsEndpoint { addr }))
}

/// Installs the recorder (once per process) without serving it: for a process that wants
/// the cost of recording without an endpoint (the bench), and for [`start`].
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let bad = |e: metrics_exporter_prometheus::BuildError| format!("metrics: {e}");
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_call_duration_seconds".into()),
            RPC_BUCKETS,
        )
        .map_err(bad)?
        .set_buckets_for_metric(
            Matcher::Full(coldchain_store::observe::WAL_SYNC_DURATION.into()),
            SYNC_BUCKETS,
        )
        .map_err(bad)?
        .set_buckets_for_metric(
            Matcher::Full(coldchain_store::observe::GROUP_COMMIT_WRITERS.into()),
            WRITER_BUCKETS,
        )
        .map_err(bad)?;
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| format!("metrics: cannot install the recorder: {e}"))?;
    let _ = HANDLE.set(handle.clone());
    super::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// What this process's metrics render as now, in the Prometheus text format (`None` while
/// metrics are off).
pub fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}

async fn serve(listener: tokio::net::TcpListener, handle: PrometheusHandle, shutdown: Shutdown) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.wait() => return,
        };
        let handle = handle.clone();
        let service = hyper::service::service_fn(move |request| {
            let handle = handle.clone();
            async move { Ok::<_, Infallible>(answer(&request, &handle)) }
        });
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "metrics endpoint: connection ended");
            }
        });
    }
}

fn answer<B>(request: &http::Request<B>, handle: &PrometheusHandle) -> http::Response<String> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&http::Method::GET, "/metrics") => (
            http::StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        ),
        (_, "/metrics") => (
            http::StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n".to_owned(),
        ),
        _ => (
            http::StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "metrics are at /metrics\n".to_owned(),
        ),
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}
