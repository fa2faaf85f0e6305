//! The gateway's merged WatchAlarms as a feed: the slow-consumer rule of every feed (cut at
//! the configured limit, naming the cursors to resume from, and a resume that gives every
//! event exactly once), and a site whose connection breaks reported UNAVAILABLE.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coldchain_proto::network::v1 as pb;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_runtime::network::ServiceKind;
use common::*;
use tonic::Code;

const PARK: &str = "cn-huaihua-park";
const FEED_EVENTS: u64 = 40_000;

/// The sequences of a message's events, all of the park.
fn sequences(message: &pb::WatchAlarmsResponse) -> Vec<u64> {
    message
        .events
        .iter()
        .map(|e| {
            assert_eq!(e.site_id, PARK);
            e.event.as_ref().unwrap().sequence
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_client_is_cut_at_the_feed_limit_and_resumes_with_every_event_once() {
    let options = coldchain_gateway::Options {
        watch_buffer: 1,
        watch_stall: Duration::from_millis(200),
        ..fast_gateway()
    };
    let net = Net::start_with(&[(PARK, ServiceKind::Telemetry)], options, |_| {}).await;
    // A client with the protocol's smallest windows, so the transport cannot absorb the
    // feed while it does not read.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", net.network.gateway.listen))
            .unwrap()
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .unwrap();
    let mut stream = NetworkServiceClient::new(channel)
        .watch_alarms(pb::WatchAlarmsRequest {
            site_ids: vec![PARK.into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut delivered = Vec::new();
    let cut = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.message().await {
                Ok(Some(message)) => delivered.extend(sequences(&message)),
                Ok(None) => panic!("the stream ended without the resumable error"),
                Err(status) => break status,
            }
        }
    })
    .await
    .expect("cut off in time");
    assert_eq!(cut.code(), Code::ResourceExhausted, "{cut:?}");
    let resume = delivered.last().map_or(1, |last| last + 1);
    assert!(resume <= FEED_EVENTS, "cut off before the end");
    // At the configured limit, naming where to resume.
    assert!(
        cut.message().contains("stalled for 200 ms"),
        "{}",
        cut.message()
    );
    assert!(
        cut.message()
            .ends_with(&format!("resume with from_sequences {{{PARK}: {resume}}}")),
        "{}",
        cut.message()
    );
    assert_eq!(delivered, (1..resume).collect::<Vec<u64>>());

    // Resuming from the named cursor gives every later event exactly once.
    let mut resumed = net
        .gateway()
        .await
        .watch_alarms(pb::WatchAlarmsRequest {
            site_ids: vec![PARK.into()],
            from_sequences: [(PARK.to_string(), resume)].into_iter().collect(),
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::timeout(Duration::from_secs(30), async {
        while delivered.last() != Some(&FEED_EVENTS) {
            let message = resumed.message().await.unwrap().expect("the stream runs");
            delivered.extend(sequences(&message));
        }
    })
    .await
    .expect("the rest arrives");
    assert_eq!(delivered, (1..=FEED_EVENTS).collect::<Vec<u64>>());
}

/// A TCP relay in front of a site service whose connections can be cut at once, as a
/// killed process or a broken network would.
struct Relay {
    addr: SocketAddr,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start() -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accepting = {
            let upstream = upstream.clone();
            let tasks = tasks.clone();
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let to = upstream.lock().unwrap().expect("the relay's upstream");
                    let relayed = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    tasks.lock().unwrap().push(relayed);
                }
            })
        };
        tasks.lock().unwrap().push(accepting);
        Relay {
            addr,
            upstream,
            tasks,
        }
    }

    /// Closes every relayed connection and refuses new ones.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

async fn next(
    stream: &mut tonic::Streaming<pb::WatchAlarmsResponse>,
    what: &str,
) -> pb::WatchAlarmsResponse {
    tokio::time::timeout(Duration::from_secs(15), stream.message())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap()
        .expect("the merged stream runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_whose_connection_breaks_is_a_dropped_feed_with_unavailable() {
    let relay = Relay::start().await;
    let net = Net::start_with(
        &[(PARK, ServiceKind::Telemetry)],
        fast_gateway(),
        |network| {
            let site = network.sites.iter_mut().find(|s| s.id == PARK).unwrap();
            let real = site.endpoints.telemetry.clone().unwrap();
            let real: SocketAddr = real.trim_start_matches("http://").parse().unwrap();
            *relay.upstream.lock().unwrap() = Some(real);
            site.endpoints.telemetry = Some(format!("http://{}", relay.addr));
        },
    )
    .await;
    let mut stream = net
        .gateway()
        .await
        .watch_alarms(pb::WatchAlarmsRequest {
            site_ids: vec![PARK.into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // Connected, and events flowing.
    let mut events = 0;
    while events == 0 {
        events += next(&mut stream, "the first events").await.events.len();
    }
    relay.cut();
    let dropped = loop {
        let message = next(&mut stream, "the park's feed to drop").await;
        if let Some(status) = message.feed_status.into_iter().find(|s| !s.connected) {
            break status;
        }
    };
    let error = dropped.error.expect("a dropped feed says why");
    assert_eq!(error.site_id, PARK);
    assert_eq!(error.code, "UNAVAILABLE", "{error:?}");
    assert!(error.message.contains("unreachable"), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_merged_stream_sends_keep_alives() {
    let options = coldchain_gateway::Options {
        watch_keepalive: Duration::from_millis(200),
        ..fast_gateway()
    };
    // No site service runs: the park's feed is reported down once, then nothing happens.
    let net = Net::start_with(&[], options, |_| {}).await;
    let mut stream = net
        .gateway()
        .await
        .watch_alarms(pb::WatchAlarmsRequest {
            site_ids: vec![PARK.into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let down = next(&mut stream, "the park's feed reported down").await;
    assert_eq!(down.feed_status.len(), 1, "{down:?}");
    assert!(!down.feed_status[0].connected);
    for _ in 0..3 {
        let keepalive = next(&mut stream, "a keep-alive").await;
        assert_eq!(keepalive, pb::WatchAlarmsResponse::default());
    }
}
