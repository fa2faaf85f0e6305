//! RPC metrics on both sides of a call, through the process's real endpoint: a server of
//! the bootstrap and a `client::Channel` calling it, each labelled as its own instance;
//! refusals, unknown paths and abandoned streams each under their own code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use coldchain_runtime::Shutdown;
use coldchain_runtime::client::{ClientOptions, lazy_channel};
use coldchain_runtime::host::spawn_service;
use coldchain_runtime::observe::ServiceLabels;
use coldchain_runtime::observe::exporter;
use coldchain_runtime::observe::rpc::{RpcMetrics, Side};
use coldchain_runtime::server::{Limits, ServiceSpec, always_healthy, bind, never_fatal};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// The value of the one sample of `metric` with every one of `labels`.
fn sample(body: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let lines: Vec<&str> = body
        .lines()
        .filter(|line| {
            line.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{'))
                && labels
                    .iter()
                    .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .collect();
    assert!(lines.len() <= 1, "{lines:?}");
    lines.first()?.rsplit(' ').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_of_a_call_are_counted_by_method_and_code() {
    let shutdown = Shutdown::new();
    let endpoint = exporter::start(Some("127.0.0.1:0".parse().unwrap()), &shutdown)
        .await
        .unwrap()
        .unwrap();
    assert!(exporter::enabled());

    let limits = Limits {
        metrics: RpcMetrics::new(Side::Server, ServiceLabels::new("la-vientiane", "booking")),
        ..Limits::default()
    };
    let spec = ServiceSpec {
        label: "la-vientiane/booking".into(),
        service_name: "coldchain.booking.v1.BookingService",
        routes: tonic::service::Routes::default(),
        probe: always_healthy(),
        on_stopped: Box::new(|| {}),
        fatal: never_fatal(),
    };
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let server = spawn_service(listener, spec, limits, shutdown.clone()).unwrap();
    let options = ClientOptions {
        metrics: RpcMetrics::new(
            Side::Client,
            ServiceLabels::new("la-vientiane", "inventory"),
        ),
        ..ClientOptions::default()
    };
    let mut client = HealthClient::new(lazy_channel(&server.endpoint(), &options).unwrap());
    for _ in 0..3 {
        client.check(HealthCheckRequest::default()).await.unwrap();
    }
    let unknown = client
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    // A stream the caller abandons: CANCELLED on the server, once it notices.
    let mut watch = client
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().unwrap();
    drop(watch);
    // A path no contract names.
    let mut raw = tonic::client::Grpc::new(lazy_channel(&server.endpoint(), &options).unwrap());
    raw.ready().await.unwrap();
    let unimplemented = raw
        .unary::<_, HealthCheckRequest, _>(
            tonic::Request::new(HealthCheckRequest::default()),
            http::uri::PathAndQuery::from_static("/nope.Nothing/Here"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(unimplemented.code(), tonic::Code::Unimplemented);

    let scrape = || async {
        let url = endpoint.url();
        let authority = url
            .trim_start_matches("http://")
            .trim_end_matches("/metrics")
            .to_owned();
        let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(
            text.contains("content-type: text/plain; version=0.0.4"),
            "{text}"
        );
        text
    };
    let check = |side: &str, site: &str, service: &str, code: &str| {
        vec![
            ("site", site.to_owned()),
            ("service", service.to_owned()),
            ("rpc_service", "grpc.health.v1.Health".to_owned()),
            ("rpc_method", side.to_owned()),
            ("rpc_response_status_code", code.to_owned()),
        ]
    };
    let count = |body: &str, metric: &str, labels: Vec<(&str, String)>| {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        sample(body, metric, &labels)
    };
    let server_count = "rpc_server_call_duration_seconds_count";
    let client_count = "rpc_client_call_duration_seconds_count";
    let mut body = scrape().await;
    // The server ends an abandoned stream when it next writes or notices the reset.
    for _ in 0..50 {
        if count(
            &body,
            server_count,
            check("Watch", "la-vientiane", "booking", "CANCELLED"),
        )
        .is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        body = scrape().await;
    }
    let booking = |method, code| check(method, "la-vientiane", "booking", code);
    let inventory = |method, code| check(method, "la-vientiane", "inventory", code);
    assert_eq!(
        count(&body, server_count, booking("Check", "OK")),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        count(&body, server_count, booking("Check", "NOT_FOUND")),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        count(&body, client_count, inventory("Check", "OK")),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        count(&body, client_count, inventory("Check", "NOT_FOUND")),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        count(&body, server_count, booking("Watch", "CANCELLED")),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        count(&body, client_count, inventory("Watch", "CANCELLED")),
        Some(1.0),
        "{body}"
    );
    let other = [
        ("site", "la-vientiane"),
        ("rpc_service", "other"),
        ("rpc_method", "other"),
        ("rpc_response_status_code", "UNIMPLEMENTED"),
    ];
    assert_eq!(sample(&body, server_count, &other), Some(1.0), "{body}");
    assert_eq!(sample(&body, client_count, &other), Some(1.0), "{body}");
    assert_eq!(
        sample(
            &body,
            "coldchain_health_serving",
            &[("site", "la-vientiane"), ("service", "booking")]
        ),
        Some(1.0),
        "{body}"
    );
    assert!(body.contains("rpc_server_call_duration_seconds_bucket{"));
    assert!(body.contains("le=\"0.0005\""));

    shutdown.trigger();
    let _ = server.stopped.await;
}
