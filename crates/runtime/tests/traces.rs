//! Traces across processes, in one: a call to a tiny relay server, which calls a second
//! server through `client::Channel`, is one trace at an in-process OTLP collector (a tonic
//! server of the OTLP trace service): four spans — the caller's client span, the relay's
//! server span, its client span, the leaf's server span — each the parent of the next. The
//! relay's log lines carry the trace id.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coldchain_runtime::client::{ClientOptions, lazy_channel};
use coldchain_runtime::config::LogFormat;
use coldchain_runtime::host::spawn_service;
use coldchain_runtime::observe::traces::{TraceSettings, Traces};
use coldchain_runtime::server::{Limits, ServiceSpec, always_healthy, bind, never_fatal};
use coldchain_runtime::{Shutdown, client::Channel};
use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tonic::body::Body;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// The OTLP collector: keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// `/test.Relay/Check`: answers with the leaf's health, asked through a `Channel`.
#[derive(Clone)]
struct Relay {
    leaf: Channel,
}

impl tonic::server::NamedService for Relay {
    const NAME: &'static str = "test.Relay";
}

impl tower::Service<http::Request<Body>> for Relay {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let check = Check(self.leaf.clone());
        Box::pin(async move {
            let codec =
                tonic_prost::ProstCodec::<HealthCheckResponse, HealthCheckRequest>::default();
            Ok(tonic::server::Grpc::new(codec).unary(check, request).await)
        })
    }
}

struct Check(Channel);

impl tonic::server::UnaryService<HealthCheckRequest> for Check {
    type Response = HealthCheckResponse;
    type Future = BoxFuture<'static, Result<tonic::Response<HealthCheckResponse>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<HealthCheckRequest>) -> Self::Future {
        let leaf = self.0.clone();
        Box::pin(async move {
            tracing::info!("asking the leaf");
            HealthClient::new(leaf).check(request.into_inner()).await
        })
    }
}

/// Log lines, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

fn spec(label: &str, service_name: &'static str, routes: tonic::service::Routes) -> ServiceSpec {
    ServiceSpec {
        label: label.into(),
        service_name,
        routes,
        probe: always_healthy(),
        on_stopped: Box::new(|| {}),
        fatal: never_fatal(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_and_the_call_it_makes_are_one_trace_with_parent_links() {
    let collector = Collector::default();
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let traces = Traces::start(&TraceSettings {
        endpoint: format!("http://{collector_addr}"),
        service_name: Some("trace-test".into()),
        attributes: Vec::new(),
    })
    .unwrap();
    let logs = Captured::default();
    coldchain_runtime::logging::init_with_traces(
        LogFormat::Json,
        "info",
        logs.clone(),
        Some(&traces),
    );

    let shutdown = Shutdown::new();
    let leaf_listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let leaf = spawn_service(
        leaf_listener,
        spec("leaf", "test.Leaf", tonic::service::Routes::default()),
        Limits::default(),
        shutdown.clone(),
    )
    .unwrap();
    let options = ClientOptions::default();
    let relay = Relay {
        leaf: lazy_channel(&leaf.endpoint(), &options).unwrap(),
    };
    let relay_listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let relay = spawn_service(
        relay_listener,
        spec("relay", "test.Relay", tonic::service::Routes::new(relay)),
        Limits::default(),
        shutdown.clone(),
    )
    .unwrap();

    let mut caller = tonic::client::Grpc::new(lazy_channel(&relay.endpoint(), &options).unwrap());
    caller.ready().await.unwrap();
    let answer: tonic::Response<HealthCheckResponse> = caller
        .unary(
            tonic::Request::new(HealthCheckRequest::default()),
            http::uri::PathAndQuery::from_static("/test.Relay/Check"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status, 1, "the leaf is SERVING");

    tokio::task::block_in_place(|| traces.flush()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans = collector.0.lock().unwrap().clone();
        if spans.len() >= 4 || Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let find = |name: &str, kind: SpanKind| {
        let found: Vec<&Span> = spans
            .iter()
            .filter(|s| s.name == name && s.kind == kind as i32)
            .collect();
        assert_eq!(found.len(), 1, "{name} {kind:?} in {spans:#?}");
        found[0].clone()
    };
    let caller_span = find("test.Relay/Check", SpanKind::Client);
    let relay_server = find("test.Relay/Check", SpanKind::Server);
    let relay_client = find("grpc.health.v1.Health/Check", SpanKind::Client);
    let leaf_server = find("grpc.health.v1.Health/Check", SpanKind::Server);

    assert!(
        caller_span.parent_span_id.is_empty(),
        "the caller's span is the root"
    );
    let chain = [&caller_span, &relay_server, &relay_client, &leaf_server];
    for pair in chain.windows(2) {
        assert_eq!(
            pair[1].trace_id, caller_span.trace_id,
            "one trace: {spans:#?}"
        );
        assert_eq!(
            pair[1].parent_span_id, pair[0].span_id,
            "{} ({}) is the parent of {} ({})",
            pair[0].name, pair[0].kind, pair[1].name, pair[1].kind
        );
    }
    assert_eq!(caller_span.trace_id.len(), 16);

    // The relay's log line names the trace it belongs to.
    let trace_id = hex(&caller_span.trace_id);
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = logs
        .lines()
        .find(|line| line.contains("asking the leaf"))
        .unwrap_or_else(|| panic!("no log line of the relay in {logs}"));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["span"]["trace_id"], trace_id, "{line}");
    assert_eq!(line["span"]["method"], "/test.Relay/Check", "{line}");

    shutdown.trigger();
    let _ = leaf.stopped.await;
    let _ = relay.stopped.await;
    traces.shutdown().await;
}
