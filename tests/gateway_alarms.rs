//! The gateway's alarms against the real telemetry services, in-process on 127.0.0.1,
//! called through the generated client: the merged alarm feed across a site restart and a
//! gateway shutdown, and ListAlarms merged across sites.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod gateway_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use gateway_support::*;
use tonic::Code;

// ---------------------------------------------------------------------------------------
// Alarms

/// Raises one excursion (RAISED) and clears it again, on a reefer sensor with instant
/// excursions, at instants `at` and `at + 1`.
async fn excursion(telemetry: &mut Telemetry, sensor: &str, tag: &str, at: i64) {
    push(telemetry, sensor, &format!("{tag}-hot"), at, 9.0).await;
    push(telemetry, sensor, &format!("{tag}-ok"), at + 1, 2.0).await;
}

/// Collects the merged stream in the background.
fn collect(
    mut stream: tonic::Streaming<pb::WatchAlarmsResponse>,
) -> tokio::sync::mpsc::UnboundedReceiver<pb::WatchAlarmsResponse> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(message)) = stream.message().await {
            if tx.send(message).is_err() {
                return;
            }
        }
    });
    rx
}

struct Merged {
    rx: tokio::sync::mpsc::UnboundedReceiver<pb::WatchAlarmsResponse>,
    events: Vec<(String, u64)>,
    statuses: Vec<(String, bool)>,
}

impl Merged {
    /// Reads messages until `done` holds (within 15 s).
    async fn until(&mut self, what: &str, done: impl Fn(&Merged) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = tokio::time::timeout(left, self.rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out waiting for {what}; events {:?} statuses {:?}",
                        self.events, self.statuses
                    )
                })
                .expect("the merged stream runs");
            for event in message.events {
                self.events.push((
                    event.site_id.clone(),
                    event.event.expect("an event").sequence,
                ));
            }
            for status in message.feed_status {
                if !status.connected {
                    let error = status.error.expect("a dropped feed says why");
                    assert_eq!(error.site_id, status.site_id);
                    assert!(!error.code.is_empty());
                }
                self.statuses.push((status.site_id, status.connected));
            }
        }
    }

    fn has_all(&self, expected: &BTreeSet<(String, u64)>) -> bool {
        let got: BTreeSet<(String, u64)> = self.events.iter().cloned().collect();
        expected.is_subset(&got)
    }
}

async fn feed_keys(net: &Net, site: &str) -> BTreeSet<(String, u64)> {
    let mut telemetry = net.telemetry(site).await;
    site_alarm_events(&mut telemetry)
        .await
        .into_iter()
        .map(|e| (site.to_string(), e.sequence))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merged_alarm_stream_survives_a_site_restart_with_no_loss_or_repeat() {
    let mut net = Net::start(&[(PARK, TELEMETRY), (VIENTIANE, TELEMETRY)]).await;
    let mut park = net.telemetry(PARK).await;
    let mut vientiane = net.telemetry(VIENTIANE).await;
    register_reefer(&mut park, "reefer-park").await;
    register_reefer(&mut vientiane, "reefer-vte").await;
    let base = now_secs() - 240;
    excursion(&mut park, "reefer-park", "p1", base).await;
    excursion(&mut vientiane, "reefer-vte", "v1", base).await;

    let mut gateway = net.gateway().await;
    let stream = gateway
        .watch_alarms(pb::WatchAlarmsRequest {
            site_ids: vec![PARK.into(), VIENTIANE.into()],
            ..pb::WatchAlarmsRequest::default()
        })
        .await
        .expect("stream opens")
        .into_inner();
    let mut merged = Merged {
        rx: collect(stream),
        events: Vec::new(),
        statuses: Vec::new(),
    };
    let before: BTreeSet<_> = feed_keys(&net, PARK)
        .await
        .union(&feed_keys(&net, VIENTIANE).await)
        .cloned()
        .collect();
    assert!(
        before.len() >= 4,
        "two raised and two cleared alarms: {before:?}"
    );
    merged
        .until("the first events", |m| m.has_all(&before))
        .await;
    assert!(merged.statuses.contains(&(PARK.to_string(), true)));

    // The park's telemetry goes down mid-stream; more happens at Vientiane meanwhile.
    excursion(&mut park, "reefer-park", "p2", base + 10).await;
    net.stop_service(PARK, TELEMETRY).await;
    merged
        .until("the park's feed to drop", |m| {
            m.statuses.contains(&(PARK.to_string(), false))
        })
        .await;
    excursion(&mut vientiane, "reefer-vte", "v2", base + 10).await;

    // It comes back on the same data; alarms are raised before the gateway reconnects.
    net.start_service(PARK, TELEMETRY).await;
    let mut park = net.telemetry(PARK).await;
    excursion(&mut park, "reefer-park", "p3", base + 20).await;
    excursion(&mut park, "reefer-park", "p4", base + 30).await;
    merged
        .until("the park's feed to reconnect", |m| {
            m.statuses
                .iter()
                .filter(|s| s == &&(PARK.to_string(), true))
                .count()
                == 2
        })
        .await;
    excursion(&mut park, "reefer-park", "p5", base + 40).await;

    let expected: BTreeSet<_> = feed_keys(&net, PARK)
        .await
        .union(&feed_keys(&net, VIENTIANE).await)
        .cloned()
        .collect();
    assert!(expected.len() >= before.len() + 8);
    merged
        .until("every event of both sites", |m| m.has_all(&expected))
        .await;
    // Exactly once, and per site in sequence order from 1 without a gap.
    let distinct: BTreeSet<_> = merged.events.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        merged.events.len(),
        "an event was repeated: {:?}",
        merged.events
    );
    for site in [PARK, VIENTIANE] {
        let sequences: Vec<u64> = merged
            .events
            .iter()
            .filter(|(s, _)| s == site)
            .map(|(_, n)| *n)
            .collect();
        let expected: Vec<u64> = (1..=sequences.len() as u64).collect();
        assert_eq!(sequences, expected, "{site}'s events in order, none lost");
    }

    // A client resuming with cursors gets exactly what follows them.
    let park_cursor = 3;
    let resumed = gateway
        .watch_alarms(pb::WatchAlarmsRequest {
            from_sequences: [(PARK.to_string(), park_cursor)].into_iter().collect(),
            site_ids: vec![PARK.into(), VIENTIANE.into()],
        })
        .await
        .unwrap()
        .into_inner();
    let mut again = Merged {
        rx: collect(resumed),
        events: Vec::new(),
        statuses: Vec::new(),
    };
    let wanted: BTreeSet<_> = expected
        .iter()
        .filter(|(s, n)| s != PARK || *n >= park_cursor)
        .cloned()
        .collect();
    again
        .until("the resumed events", |m| m.has_all(&wanted))
        .await;
    let got: BTreeSet<_> = again.events.iter().cloned().collect();
    assert_eq!(got, wanted);
    assert_eq!(got.len(), again.events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_merged_stream_ends_resumably_when_the_gateway_shuts_down() {
    let mut net = Net::start(&[(PARK, TELEMETRY)]).await;
    let mut park = net.telemetry(PARK).await;
    register_reefer(&mut park, "reefer-park").await;
    excursion(&mut park, "reefer-park", "p1", now_secs() - 60).await;
    let mut gateway = net.gateway().await;
    let mut stream = gateway
        .watch_alarms(pb::WatchAlarmsRequest {
            site_ids: vec![PARK.into()],
            ..pb::WatchAlarmsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let expected = feed_keys(&net, PARK).await;
    let mut got = BTreeSet::new();
    while !expected.is_subset(&got) {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("events arrive")
            .expect("the stream runs")
            .expect("a message");
        got.extend(
            message
                .events
                .into_iter()
                .map(|e| (e.site_id, e.event.unwrap().sequence)),
        );
    }
    let next = expected.len() as u64 + 1;
    net.stop_gateway().await;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream ends")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream must end with a resumable error"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert!(
        ended.message().contains(&format!("{PARK}: {next}")),
        "names the cursor to resume from: {}",
        ended.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_alarms_merges_sites_newest_first_and_pages() {
    let net = Net::start(&[(PARK, TELEMETRY), (VIENTIANE, TELEMETRY)]).await;
    let mut park = net.telemetry(PARK).await;
    let mut vientiane = net.telemetry(VIENTIANE).await;
    register_reefer(&mut park, "reefer-park").await;
    register_reefer(&mut vientiane, "reefer-vte").await;
    let base = now_secs() - 600;
    for i in 0..4 {
        excursion(&mut park, "reefer-park", &format!("p{i}"), base + i * 20).await;
        excursion(
            &mut vientiane,
            "reefer-vte",
            &format!("v{i}"),
            base + i * 20 + 5,
        )
        .await;
    }
    let mut gateway = net.gateway().await;
    let whole = gateway
        .list_alarms(pb::ListAlarmsRequest {
            site_ids: vec![PARK.into(), VIENTIANE.into()],
            ..pb::ListAlarmsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(whole.failures.is_empty());
    assert!(whole.next_page_token.is_empty());
    assert_eq!(whole.alarms.len(), 8);
    let keys: Vec<(i64, String, String)> = whole
        .alarms
        .iter()
        .map(|a| {
            (
                a.started_at.as_ref().unwrap().seconds,
                a.site_id.clone(),
                a.alarm_id.clone(),
            )
        })
        .collect();
    for pair in keys.windows(2) {
        assert!(pair[0].0 >= pair[1].0, "newest first: {keys:?}");
    }
    assert_eq!(keys[0].1, VIENTIANE, "the newest alarm is Vientiane's");

    // Pages of 3 give the same list.
    let mut paged = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let page = gateway
            .list_alarms(pb::ListAlarmsRequest {
                site_ids: vec![PARK.into(), VIENTIANE.into()],
                page_size: 3,
                page_token: token.clone(),
                ..pb::ListAlarmsRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        paged.extend(
            page.alarms
                .into_iter()
                .map(|a| (a.started_at.unwrap().seconds, a.site_id, a.alarm_id)),
        );
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, keys);

    // With every site asked, the others fail alone and the answer stays partial.
    let partial = gateway
        .list_alarms(pb::ListAlarmsRequest {
            kinds: vec![tel::AlarmKind::ExcursionHigh as i32],
            ..pb::ListAlarmsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(partial.alarms.len(), 8);
    assert_eq!(partial.failures.len(), shipped().sites.len() - 2);
    assert!(partial.next_page_token.is_empty());
}
