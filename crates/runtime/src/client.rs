//! The client connector every service-to-service call uses: lazy channels (a dependency
//! that is down does not stop us from starting), a deadline on every call, and retries of
//! `UNAVAILABLE` by the network's one policy ([`crate::retry`]).
//!
//! A [`Channel`] speaks TLS when the options carry a CA, and sends this process's API key on
//! every call when they carry one. It observes every call (`rpc_client_call_duration_seconds`)
//! when the process records metrics, and opens a client span whose context goes out as
//! `traceparent` when it exports traces (see [`crate::observe`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tonic::body::Body;
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::auth::ApiKey;
use crate::coalesce::CoalescedWrites;
use crate::error::ServiceError;
use crate::observe::rpc::{CallObserver, RpcMetrics};
use crate::retry::Backoff;

/// How a client connects and retries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Deadline of one attempt.
    pub call_timeout: Duration,
    /// Attempts in total (1 = no retry).
    pub max_attempts: u32,
    /// First backoff; doubles each retry, with jitter (see [`Backoff`]).
    pub initial_backoff: Duration,
    /// Backoff ceiling.
    pub max_backoff: Duration,
    /// TLS towards servers (`https`), trusting the configured CA; `None` is plaintext.
    pub tls: Option<ClientTlsConfig>,
    /// The API key sent on every call; `None` sends none.
    pub key: Option<ApiKey>,
    /// Where the calls' durations and codes are recorded, with the calling instance's
    /// labels; `None` records nothing.
    pub metrics: Option<Arc<RpcMetrics>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(5),
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            tls: None,
            key: None,
            metrics: None,
        }
    }
}

impl ClientOptions {
    /// The backoff between attempts.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.initial_backoff, self.max_backoff)
    }
}

/// A gRPC channel that adds this process's credentials to every call: what every generated
/// client of this project is built on.
#[derive(Clone)]
pub struct Channel {
    inner: tonic::transport::Channel,
    authorization: Option<http::HeaderValue>,
    metrics: Option<Arc<RpcMetrics>>,
}

impl Channel {
    /// Wraps a transport channel, sending `key` (if any) on every call.
    pub fn new(inner: tonic::transport::Channel, key: Option<&ApiKey>) -> Self {
        Self {
            inner,
            authorization: key.map(ApiKey::header_value),
            metrics: None,
        }
    }

    /// The same channel, recording its calls into `metrics`.
    pub fn observed(mut self, metrics: Option<Arc<RpcMetrics>>) -> Self {
        self.metrics = metrics;
        self
    }
}

impl tower::Service<http::Request<Body>> for Channel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        if let Some(value) = &self.authorization {
            // A caller that set its own credentials on this request keeps them.
            request
                .headers_mut()
                .entry(http::header::AUTHORIZATION)
                .or_insert_with(|| value.clone());
        }
        let observer = self.metrics.as_ref().map(|m| m.start(request.uri().path()));
        let span = crate::observe::traces::client_span(&mut request);
        let inner = match &span {
            Some(span) => span.in_scope(|| self.inner.call(request)),
            None => self.inner.call(request),
        };
        ResponseFuture {
            inner,
            observer,
            span,
        }
    }
}

/// A call of a [`Channel`] under way: observed when it answers, inside its client span.
pub struct ResponseFuture {
    inner: tonic::transport::channel::ResponseFuture,
    observer: Option<CallObserver>,
    span: Option<tracing::Span>,
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<Body>, tonic::transport::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let _entered = this.span.as_ref().map(tracing::Span::enter);
        let polled = Pin::new(&mut this.inner).poll(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(response)) => Poll::Ready(Ok(match this.observer.take() {
                Some(observer) => observer.finish(response),
                None => response,
            })),
            Poll::Ready(Err(error)) => {
                if let Some(observer) = this.observer.take() {
                    observer.failed(transport_code(&error));
                }
                Poll::Ready(Err(error))
            }
        }
    }
}

/// The code tonic turns a transport failure into for the caller: `CANCELLED` when the
/// channel's own timeout expired, `UNAVAILABLE` otherwise.
fn transport_code(error: &tonic::transport::Error) -> tonic::Code {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.is::<tonic::TimeoutExpired>() {
            return tonic::Code::Cancelled;
        }
        source = cause.source();
    }
    tonic::Code::Unavailable
}

/// A channel that connects on first use and reconnects after failures. With TLS options an
/// `http://` endpoint is reached as `https://`.
pub fn lazy_channel(endpoint: &str, options: &ClientOptions) -> Result<Channel, ServiceError> {
    Ok(Channel::new(
        configure(endpoint, options)?.connect_with_connector_lazy(connector(options)),
        options.key.as_ref(),
    )
    .observed(options.metrics.clone()))
}

/// Like [`lazy_channel`], but connects now: for command-line tools that should say at once
/// that a server is unreachable or refuses the handshake.
pub async fn connect(endpoint: &str, options: &ClientOptions) -> Result<Channel, ServiceError> {
    let channel = transport(endpoint, options).await?;
    Ok(Channel::new(channel, options.key.as_ref()).observed(options.metrics.clone()))
}

/// One HTTP/2 connection to `endpoint`, made now, without credentials: for callers that
/// share a connection between several identities (see [`Channel::new`]).
pub async fn transport(
    endpoint: &str,
    options: &ClientOptions,
) -> Result<tonic::transport::Channel, ServiceError> {
    configure(endpoint, options)?
        .connect_with_connector(connector(options))
        .await
        .map_err(|e| {
            let mut message = format!("cannot connect to {endpoint}: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            ServiceError::unavailable(message)
        })
}

/// TCP connections as tonic's own connector makes them (no delay, the connect timeout),
/// with their writes coalesced (see `coalesce`). TLS, when configured, runs on top.
fn connector(
    options: &ClientOptions,
) -> impl tower::Service<
    http::Uri,
    Response = TokioIo<CoalescedWrites<tokio::net::TcpStream>>,
    Error = tower::BoxError,
    Future: Send,
> + Send
+ Clone
+ 'static {
    let mut http = HttpConnector::new();
    // The scheme is tonic's business: it adds TLS itself for `https`.
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(options.connect_timeout));
    tower::ServiceExt::map_err(
        tower::ServiceExt::map_response(http, |tcp: TokioIo<tokio::net::TcpStream>| {
            TokioIo::new(CoalescedWrites::new(tcp.into_inner()))
        }),
        tower::BoxError::from,
    )
}

/// The address a client with `options` really dials for `endpoint`: with TLS an `http://`
/// endpoint is reached as `https://`. What a tool shows as the endpoint it spoke to.
pub fn dialed(endpoint: &str, options: &ClientOptions) -> String {
    match (&options.tls, endpoint.strip_prefix("http://")) {
        (Some(_), Some(rest)) => format!("https://{rest}"),
        _ => endpoint.to_string(),
    }
}

fn configure(endpoint: &str, options: &ClientOptions) -> Result<Endpoint, ServiceError> {
    let uri = dialed(endpoint, options);
    let mut configured = Endpoint::from_shared(uri)
        .map_err(|e| ServiceError::invalid("endpoint", format!("{endpoint:?} is not a uri: {e}")))?
        .connect_timeout(options.connect_timeout)
        .timeout(options.call_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if let Some(tls) = &options.tls {
        configured = configured.tls_config(tls.clone()).map_err(|e| {
            ServiceError::invalid("tls", format!("cannot use tls towards {endpoint}: {e}"))
        })?;
    }
    Ok(configured)
}

/// Runs `call` with the retry policy of `options` (see [`crate::retry::with_retry`]).
pub async fn with_retry<T, F, Fut>(options: &ClientOptions, call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    crate::retry::with_retry(options.max_attempts, options.backoff(), call).await
}

/// Wraps a request with the per-call deadline (sent as `grpc-timeout`).
pub fn request<T>(message: T, options: &ClientOptions) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(options.call_timeout);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_endpoint_is_invalid_argument() {
        assert!(lazy_channel("not a uri", &ClientOptions::default()).is_err());
    }

    #[test]
    fn the_dialed_address_shows_the_scheme_really_spoken() {
        let plain = ClientOptions::default();
        let tls = ClientOptions {
            tls: Some(ClientTlsConfig::new()),
            ..ClientOptions::default()
        };
        assert_eq!(
            dialed("http://10.0.0.1:50121", &plain),
            "http://10.0.0.1:50121"
        );
        assert_eq!(
            dialed("http://10.0.0.1:50121", &tls),
            "https://10.0.0.1:50121"
        );
        assert_eq!(dialed("https://h:1", &tls), "https://h:1");
    }
}
