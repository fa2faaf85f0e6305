//! The gateway against the real site services, in-process on 127.0.0.1, called through the
//! generated client: fan-out answers with sites down or slow, live health, space offers,
//! the merged alarm feed across a site restart, and the transfer saga across gateway
//! restarts, replays, refusals and concurrency.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use coldchain_proto::booking::v1 as book;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::common::v1 as cc;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::network::{ServiceKind, TemperatureClass};
use common::*;
use tonic::Code;

const SKU: &str = "kiwi-hongyang";

// ---------------------------------------------------------------------------------------
// Fan-out

/// A server that accepts TCP connections and never answers: a site that hangs.
async fn hanging_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn find_stock_is_partial_when_sites_are_down_or_slow() {
    let hanging = hanging_server().await;
    let net = Net::start_with(
        &[(PARK, INVENTORY), (VIENTIANE, INVENTORY)],
        fast_gateway(),
        |network| {
            let hanoi = network.sites.iter_mut().find(|s| s.id == HANOI).unwrap();
            hanoi.endpoints.inventory = Some(format!("http://127.0.0.1:{hanging}"));
        },
    )
    .await;
    receive_lot(&net, PARK, SKU, "K1", "chilled-a", 40, date(2099, 6, 1)).await;
    receive_lot(&net, PARK, SKU, "K2", "chilled-a", 10, date(2098, 1, 1)).await;
    receive(&net, PARK, SKU, "K3", "frozen-a", 5).await;
    receive(&net, VIENTIANE, SKU, "V1", "cool-a", 7).await;
    let mut gateway = net.gateway().await;

    let started = Instant::now();
    let answer = gateway
        .find_stock(pb::FindStockRequest {
            sku: SKU.into(),
            ..pb::FindStockRequest::default()
        })
        .await
        .expect("a partial answer, not a failure")
        .into_inner();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "a hanging site must not stall the answer: {:?}",
        started.elapsed()
    );
    assert_eq!(answer.sku, SKU);
    let sites: Vec<&str> = answer.sites.iter().map(|s| s.site_id.as_str()).collect();
    assert_eq!(
        sites,
        [PARK, VIENTIANE],
        "the sites that answered, in network order"
    );
    let park = &answer.sites[0];
    let zones: Vec<(&str, i64, i64, i64)> = park
        .zones
        .iter()
        .map(|z| (z.zone_id.as_str(), z.on_hand, z.available, z.lot_count))
        .collect();
    assert_eq!(zones, [("chilled-a", 50, 50, 2), ("frozen-a", 5, 5, 1)]);
    assert_eq!(park.zones[0].earliest_expiry, Some(date(2098, 1, 1)));
    assert_eq!(park.zones[0].unit, "kg");
    assert_eq!(
        park.zones[0].temperature_class,
        cc::TemperatureClass::Chilled as i32
    );
    assert_eq!(answer.sites[1].zones[0].zone_id, "cool-a");
    assert_eq!(answer.sites[1].zones[0].on_hand, 7);

    let failures: BTreeMap<&str, &str> = answer
        .failures
        .iter()
        .map(|f| (f.site_id.as_str(), f.code.as_str()))
        .collect();
    assert_eq!(
        failures.len(),
        6,
        "every other site fails alone: {:?}",
        answer.failures
    );
    assert_eq!(failures[HANOI], "DEADLINE_EXCEEDED");
    for (site, code) in &failures {
        if *site != HANOI {
            assert_eq!(*code, "UNAVAILABLE", "{site}");
        }
    }
    for failure in &answer.failures {
        assert!(!failure.message.is_empty());
        assert_eq!(failure.message, failure.message.to_lowercase());
    }

    // Filters: class, minimum available quantity, sites.
    let frozen = gateway
        .find_stock(pb::FindStockRequest {
            sku: SKU.into(),
            temperature_class: cc::TemperatureClass::Frozen as i32,
            site_ids: vec![PARK.into(), VIENTIANE.into()],
            ..pb::FindStockRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(frozen.failures.is_empty());
    assert_eq!(frozen.sites[0].zones.len(), 1);
    assert_eq!(frozen.sites[0].zones[0].zone_id, "frozen-a");
    assert!(
        frozen.sites[1].zones.is_empty(),
        "Vientiane answered, with no frozen stock"
    );
    let plenty = gateway
        .find_stock(pb::FindStockRequest {
            sku: SKU.into(),
            min_quantity: 20,
            site_ids: vec![PARK.into()],
            ..pb::FindStockRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plenty.sites.len(), 1);
    assert_eq!(
        plenty.sites[0]
            .zones
            .iter()
            .map(|z| z.zone_id.as_str())
            .collect::<Vec<_>>(),
        ["chilled-a"]
    );

    // A sku nobody has: every answering site is listed, empty.
    let none = gateway
        .find_stock(pb::FindStockRequest {
            sku: "durian".into(),
            site_ids: vec![PARK.into(), VIENTIANE.into()],
            ..pb::FindStockRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.sites.len(), 2);
    assert!(none.sites.iter().all(|s| s.zones.is_empty()));

    // The client's own deadline shortens the per-site one.
    let mut request = tonic::Request::new(pb::FindStockRequest {
        sku: SKU.into(),
        site_ids: vec![PARK.into(), HANOI.into()],
        ..pb::FindStockRequest::default()
    });
    // 1.2 s: the configured 1.5 s per site would miss it.
    request.set_timeout(Duration::from_millis(1200));
    let short = gateway
        .find_stock(request)
        .await
        .expect("answered within the client's deadline")
        .into_inner();
    assert_eq!(short.sites.len(), 1);
    assert_eq!(short.failures.len(), 1);
    assert_eq!(short.failures[0].code, "DEADLINE_EXCEEDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_sites_reports_zones_endpoints_and_live_health() {
    let net = Net::start(&[(PARK, INVENTORY), (PARK, BOOKING)]).await;
    let mut gateway = net.gateway().await;
    let answer = gateway
        .list_sites(pb::ListSitesRequest {
            site_ids: vec![HANOI.into(), PARK.into()],
            ..pb::ListSitesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.next_page_token.is_empty());
    let ids: Vec<&str> = answer.sites.iter().map(|s| s.site_id.as_str()).collect();
    assert_eq!(ids, [PARK, HANOI], "network order");
    let park = &answer.sites[0];
    assert_eq!(park.time_zone, "Asia/Shanghai");
    assert!(!park.name.is_empty() && !park.reached_by.is_empty());
    let network = shipped();
    let config = network.site(PARK).unwrap();
    assert_eq!(park.zones.len(), config.zones.len());
    for (zone, expected) in park.zones.iter().zip(&config.zones) {
        assert_eq!(zone.zone_id, expected.id);
        assert_eq!(zone.capacity_pallets as u32, expected.capacity_pallets);
        assert_eq!(zone.min_celsius, expected.min_celsius);
        assert!(!zone.name.is_empty());
    }
    assert_eq!(park.endpoints.len(), 3);
    let health = |site: &pb::Site, kind: pb::ServiceKind| {
        site.endpoints
            .iter()
            .find(|e| e.service == kind as i32)
            .cloned()
            .expect("endpoint listed")
    };
    let inventory = health(park, pb::ServiceKind::Inventory);
    assert_eq!(
        inventory.health,
        pb::EndpointHealth::Serving as i32,
        "{inventory:?}"
    );
    assert!(inventory.latency.is_some());
    assert!(inventory.error.is_empty());
    assert!(inventory.checked_at.is_some());
    assert_eq!(inventory.endpoint, net.endpoint(PARK, INVENTORY));
    assert_eq!(
        health(park, pb::ServiceKind::Booking).health,
        pb::EndpointHealth::Serving as i32
    );
    let telemetry = health(park, pb::ServiceKind::Telemetry);
    assert_eq!(telemetry.health, pb::EndpointHealth::Unreachable as i32);
    assert!(telemetry.latency.is_none());
    assert!(!telemetry.error.is_empty());
    for endpoint in &answer.sites[1].endpoints {
        assert_eq!(
            endpoint.health,
            pb::EndpointHealth::Unreachable as i32,
            "{endpoint:?}"
        );
    }

    // Pages over every site, in network order.
    let mut token = String::new();
    let mut all = Vec::new();
    loop {
        let page = gateway
            .list_sites(pb::ListSitesRequest {
                page_size: 3,
                page_token: token,
                ..pb::ListSitesRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.sites.len() <= 3);
        all.extend(page.sites.into_iter().map(|s| s.site_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(
        all,
        network.site_ids().map(str::to_string).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn find_space_sorts_offers_by_fit_with_failures_per_site() {
    let net = Net::start(&[(PARK, BOOKING), (VIENTIANE, BOOKING)]).await;
    let mut booking = BookingServiceClient::connect(net.endpoint(VIENTIANE, BOOKING))
        .await
        .unwrap();
    booking
        .hold_space(book::HoldSpaceRequest {
            request_id: "hold-1".into(),
            customer_id: "shipper-1".into(),
            space: Some(book::hold_space_request::Space::ZoneId("chilled-a".into())),
            pallets: 200,
            first_day: Some(date(2030, 6, 2)),
            last_day: Some(date(2030, 6, 2)),
            ..book::HoldSpaceRequest::default()
        })
        .await
        .expect("space held");
    let mut gateway = net.gateway().await;
    let find = |pallets: i32| pb::FindSpaceRequest {
        temperature_class: cc::TemperatureClass::Chilled as i32,
        pallets,
        first_day: Some(date(2030, 6, 1)),
        last_day: Some(date(2030, 6, 3)),
        site_ids: vec![],
    };
    let answer = gateway.find_space(find(400)).await.unwrap().into_inner();
    let offers: Vec<(&str, &str, i32, bool)> = answer
        .offers
        .iter()
        .map(|o| (o.site_id.as_str(), o.zone_id.as_str(), o.min_free, o.fits))
        .collect();
    assert_eq!(
        offers,
        [
            (PARK, "chilled-a", 3000, true),
            (VIENTIANE, "chilled-a", 300, false)
        ]
    );
    assert_eq!(answer.offers[1].capacity_pallets, 500);
    let network = shipped();
    let expected_failures = network
        .sites
        .iter()
        .filter(|s| s.id != PARK && s.id != VIENTIANE && s.has_class(TemperatureClass::Chilled))
        .count();
    assert_eq!(answer.failures.len(), expected_failures);
    assert!(answer.failures.iter().all(|f| f.code == "UNAVAILABLE"));

    // Both fit: the least spare room first.
    let answer = gateway.find_space(find(250)).await.unwrap().into_inner();
    let order: Vec<&str> = answer.offers.iter().map(|o| o.site_id.as_str()).collect();
    assert_eq!(order, [VIENTIANE, PARK]);
    assert!(answer.offers.iter().all(|o| o.fits));
}

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

// ---------------------------------------------------------------------------------------
// Transfers

async fn start_transfer(gateway: &mut Gateway, request: pb::StartTransferRequest) -> pb::Transfer {
    gateway
        .start_transfer(request)
        .await
        .expect("transfer started")
        .into_inner()
}

async fn receive_transfer(
    gateway: &mut Gateway,
    request_id: &str,
    transfer_id: &str,
) -> Result<pb::Transfer, tonic::Status> {
    gateway
        .receive_transfer(pb::ReceiveTransferRequest {
            request_id: request_id.into(),
            transfer_id: transfer_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_moves_stock_binds_the_reefer_and_shows_in_transit() {
    let net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY), (PARK, TELEMETRY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    receive(&net, PARK, "citrus-navel", "C1", "chilled-a", 50).await;
    let mut gateway = net.gateway().await;

    let mut request = start(
        "start-1",
        "X8011-0001",
        vec![
            line(SKU, "K1", "chilled-a", "chilled-a", 30),
            line("citrus-navel", "C1", "chilled-a", "chilled-a", 20),
        ],
    );
    request.reefer_sensor_id = "reefer-7".into();
    request.reefer_container_id = "MSKU1234565".into();
    let transfer = start_transfer(&mut gateway, request).await;
    assert_eq!(
        state(&transfer),
        pb::TransferState::InTransit,
        "{transfer:?}"
    );
    assert!(transfer.last_error.is_empty(), "{transfer:?}");
    assert!(transfer.shipped_at.is_some() && transfer.created_at.is_some());
    assert_eq!(
        transfer.reefer_temperature_class,
        cc::TemperatureClass::Chilled as i32,
        "the first line's zone class"
    );
    let lot = transfer.lines[0]
        .lot
        .clone()
        .expect("the lot's attributes, copied from the source");
    assert_eq!(lot.expiry, Some(date(2099, 12, 31)));
    assert_eq!(lot.origin, "Qianyang, Hunan");
    assert_eq!(on_hand(&net, PARK, SKU).await, 70);
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 0);

    // The reefer's sensor is registered at the source, bound to the transfer.
    let mut telemetry = net.telemetry(PARK).await;
    let sensors = telemetry
        .list_sensors(tel::ListSensorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sensors;
    let sensor = sensors
        .iter()
        .find(|s| s.sensor_id == "reefer-7")
        .expect("sensor registered");
    match &sensor.binding {
        Some(tel::sensor::Binding::Reefer(reefer)) => {
            assert_eq!(reefer.transfer_id, "X8011-0001");
            assert_eq!(reefer.container_id, "MSKU1234565");
            assert_eq!(reefer.train_or_route, "China-Laos express X8011");
        }
        other => panic!("not a reefer binding: {other:?}"),
    }

    // In transit: in FindStock, inbound at the destination.
    let found = gateway
        .find_stock(pb::FindStockRequest {
            sku: SKU.into(),
            site_ids: vec![PARK.into(), VIENTIANE.into()],
            ..pb::FindStockRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.in_transit.len(), 1);
    let travelling = &found.in_transit[0];
    assert_eq!(travelling.transfer_id, "X8011-0001");
    assert_eq!(travelling.quantity, 30);
    assert_eq!(travelling.state, pb::TransferState::InTransit as i32);
    assert_eq!(
        travelling.lot.as_ref().unwrap().expiry,
        Some(date(2099, 12, 31))
    );
    assert_eq!(found.sites[0].zones[0].on_hand, 70);
    assert_eq!(found.sites[1].inbound_in_transit, 30);
    assert_eq!(found.sites[0].inbound_in_transit, 0);

    let done = receive_transfer(&mut gateway, "receive-1", "X8011-0001")
        .await
        .unwrap();
    assert_eq!(state(&done), pb::TransferState::Completed, "{done:?}");
    assert!(done.received_at.is_some() && done.completed_at.is_some());
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 30);
    assert_eq!(on_hand(&net, VIENTIANE, "citrus-navel").await, 20);
    assert_eq!(on_hand(&net, PARK, SKU).await, 70);
    let mut vientiane = net.inventory(VIENTIANE).await;
    let levels = vientiane
        .get_stock(inv::GetStockRequest {
            sku: SKU.into(),
            ..inv::GetStockRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .levels;
    assert_eq!(
        levels[0].lot.as_ref().unwrap().expiry,
        Some(date(2099, 12, 31)),
        "the destination learned the lot"
    );

    let found = gateway
        .find_stock(pb::FindStockRequest {
            sku: SKU.into(),
            site_ids: vec![VIENTIANE.into()],
            ..pb::FindStockRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(found.in_transit.is_empty());
    assert_eq!(found.sites[0].zones[0].on_hand, 30);

    // A replay answers the same; a new receipt of a completed transfer is refused.
    let replay = receive_transfer(&mut gateway, "receive-1", "X8011-0001")
        .await
        .unwrap();
    assert_eq!(state(&replay), pb::TransferState::Completed);
    let again = receive_transfer(&mut gateway, "receive-2", "X8011-0001")
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 30);

    // One ledger entry per line at each end.
    assert_eq!(transfer_entries(&net, PARK, "X8011-0001").await.len(), 2);
    assert_eq!(
        transfer_entries(&net, VIENTIANE, "X8011-0001").await.len(),
        2
    );

    // Listing with filters.
    let list = |states: Vec<pb::TransferState>| pb::ListTransfersRequest {
        states: states.into_iter().map(|s| s as i32).collect(),
        source_site_id: PARK.into(),
        ..pb::ListTransfersRequest::default()
    };
    let completed = gateway
        .list_transfers(list(vec![pb::TransferState::Completed]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(completed.transfers.len(), 1);
    let travelling = gateway
        .list_transfers(list(vec![pb::TransferState::InTransit]))
        .await
        .unwrap()
        .into_inner();
    assert!(travelling.transfers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reefer_sensor_is_bound_once_the_sources_telemetry_answers() {
    let mut net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "frozen-a", 100).await;
    let mut gateway = net.gateway().await;
    let mut request = start(
        "start-reefer",
        "T-REEFER",
        vec![line(SKU, "K1", "frozen-a", "frozen-a", 10)],
    );
    request.reefer_sensor_id = "reefer-9".into();
    request.reefer_container_id = "MSKU0000001".into();
    request.reefer_temperature_class = cc::TemperatureClass::Frozen as i32;
    let t = start_transfer(&mut gateway, request).await;
    assert_eq!(
        state(&t),
        pb::TransferState::InTransit,
        "the goods left even if the sensor could not be bound yet"
    );
    assert!(
        t.last_error
            .starts_with("binding reefer sensor: UNAVAILABLE"),
        "{}",
        t.last_error
    );

    net.start_service(PARK, TELEMETRY).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = gateway
            .get_transfer(pb::GetTransferRequest {
                transfer_id: "T-REEFER".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if t.last_error.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still {}", t.last_error);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut telemetry = net.telemetry(PARK).await;
    let sensors = telemetry
        .list_sensors(tel::ListSensorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sensors;
    let sensor = sensors
        .iter()
        .find(|s| s.sensor_id == "reefer-9")
        .expect("registered by the resumer");
    match &sensor.binding {
        Some(tel::sensor::Binding::Reefer(reefer)) => {
            assert_eq!(reefer.transfer_id, "T-REEFER");
            assert_eq!(
                reefer.temperature_class,
                cc::TemperatureClass::Frozen as i32
            );
        }
        other => panic!("not a reefer binding: {other:?}"),
    }
    assert_eq!(on_hand(&net, PARK, SKU).await, 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_transfer_is_idempotent_and_ids_are_not_reused() {
    let net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    let mut gateway = net.gateway().await;
    let request = start(
        "start-idem",
        "T-IDEM",
        vec![line(SKU, "K1", "chilled-a", "chilled-a", 30)],
    );
    let first = start_transfer(&mut gateway, request.clone()).await;
    let replay = start_transfer(&mut gateway, request.clone()).await;
    assert_eq!(replay.transfer_id, first.transfer_id);
    assert_eq!(state(&replay), pb::TransferState::InTransit);
    assert_eq!(on_hand(&net, PARK, SKU).await, 70, "the stock left once");

    // The same request_id with another request.
    let mut other = request.clone();
    other.lines[0].quantity = 31;
    let reused = gateway.start_transfer(other.clone()).await.unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(fields(&reused), ["request_id"]);
    // Another request_id for the same transfer: the same transfer, nothing moves again.
    let mut same = request.clone();
    same.request_id = "start-idem-2".into();
    assert_eq!(
        start_transfer(&mut gateway, same).await.transfer_id,
        "T-IDEM"
    );
    // Another transfer under the same id.
    other.request_id = "start-idem-3".into();
    let taken = gateway.start_transfer(other).await.unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    assert_eq!(on_hand(&net, PARK, SKU).await, 70);
    assert_eq!(transfer_entries(&net, PARK, "T-IDEM").await.len(), 1);

    // The gateway names a transfer when the client does not; a replay keeps the name.
    let unnamed = start(
        "start-unnamed",
        "",
        vec![line(SKU, "K1", "chilled-a", "chilled-a", 5)],
    );
    let named = start_transfer(&mut gateway, unnamed.clone()).await;
    assert!(
        named.transfer_id.starts_with("tr-"),
        "{}",
        named.transfer_id
    );
    assert_eq!(
        start_transfer(&mut gateway, unnamed).await.transfer_id,
        named.transfer_id
    );
    assert_eq!(on_hand(&net, PARK, SKU).await, 65);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_transfer_fails_with_the_sources_code_and_moves_nothing() {
    let net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 10).await;
    let mut gateway = net.gateway().await;
    let request = start(
        "start-big",
        "T-BIG",
        vec![line(SKU, "K1", "chilled-a", "chilled-a", 11)],
    );
    let refused = gateway.start_transfer(request.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains(PARK), "{}", refused.message());
    let transfer = gateway
        .get_transfer(pb::GetTransferRequest {
            transfer_id: "T-BIG".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&transfer), pb::TransferState::Failed);
    assert!(
        transfer.last_error.starts_with("FAILED_PRECONDITION: "),
        "{}",
        transfer.last_error
    );
    let replay = gateway.start_transfer(request).await.unwrap_err();
    assert_eq!(replay.code(), Code::FailedPrecondition);
    assert_eq!(on_hand(&net, PARK, SKU).await, 10);
    let receive = receive_transfer(&mut gateway, "receive-big", "T-BIG")
        .await
        .unwrap_err();
    assert_eq!(receive.code(), Code::FailedPrecondition);

    // An unknown lot at the source: its NOT_FOUND.
    let unknown = gateway
        .start_transfer(start(
            "start-unknown",
            "T-UNKNOWN",
            vec![line(SKU, "NO-SUCH-LOT", "chilled-a", "chilled-a", 1)],
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_never_take_more_than_the_source_has() {
    let net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut gateway = net.gateway().await;
        tasks.push(tokio::spawn(async move {
            gateway
                .start_transfer(start(
                    &format!("race-{i}"),
                    &format!("T-RACE-{i}"),
                    vec![line(SKU, "K1", "chilled-a", "chilled-a", 30)],
                ))
                .await
        }));
    }
    let mut started = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(t) => {
                assert_eq!(state(&t.into_inner()), pb::TransferState::InTransit);
                started += 1;
            }
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(started, 3);
    assert_eq!(on_hand(&net, PARK, SKU).await, 10);
    let mut gateway = net.gateway().await;
    let found = gateway
        .find_stock(pb::FindStockRequest {
            sku: SKU.into(),
            site_ids: vec![PARK.into()],
            ..pb::FindStockRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.in_transit.iter().map(|t| t.quantity).sum::<i64>(), 90);
    let failed = gateway
        .list_transfers(pb::ListTransfersRequest {
            states: vec![pb::TransferState::Failed as i32],
            ..pb::ListTransfersRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(failed.transfers.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_interrupted_by_a_gateway_restart_completes_exactly_once() {
    // The destination's inventory is down when the goods arrive.
    let mut net = Net::start(&[(PARK, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    let mut gateway = net.gateway().await;
    let t = start_transfer(
        &mut gateway,
        start(
            "start-r",
            "T-RESTART",
            vec![line(SKU, "K1", "chilled-a", "chilled-a", 40)],
        ),
    )
    .await;
    assert_eq!(state(&t), pb::TransferState::InTransit);
    let receiving = receive_transfer(&mut gateway, "receive-r", "T-RESTART")
        .await
        .unwrap();
    assert_eq!(state(&receiving), pb::TransferState::Receiving);
    assert!(
        receiving.last_error.starts_with("UNAVAILABLE"),
        "{}",
        receiving.last_error
    );

    // The gateway stops between the steps; the destination comes up; a new gateway on the
    // same data finishes the transfer on its own.
    net.stop_gateway().await;
    net.start_service(VIENTIANE, INVENTORY).await;
    net.start_gateway().await;
    let mut gateway = net.gateway().await;
    let done = wait_for_state(
        &mut gateway,
        "T-RESTART",
        pb::TransferState::Completed,
        Duration::from_secs(10),
    )
    .await;
    assert!(done.last_error.is_empty());
    assert_eq!(on_hand(&net, PARK, SKU).await, 60);
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 40);

    // Repeats change nothing.
    assert_eq!(
        state(
            &receive_transfer(&mut gateway, "receive-r", "T-RESTART")
                .await
                .unwrap()
        ),
        pb::TransferState::Completed
    );
    let again = receive_transfer(&mut gateway, "receive-r2", "T-RESTART")
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(
        on_hand(&net, VIENTIANE, SKU).await,
        40,
        "received exactly once"
    );
    assert_eq!(transfer_entries(&net, PARK, "T-RESTART").await.len(), 1);
    assert_eq!(
        transfer_entries(&net, VIENTIANE, "T-RESTART").await.len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_requested_while_the_source_is_down_ships_after_a_restart() {
    let mut net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    net.stop_service(PARK, INVENTORY).await;
    let mut gateway = net.gateway().await;
    let t = start_transfer(
        &mut gateway,
        start(
            "start-s",
            "T-SOURCE",
            vec![line(SKU, "K1", "chilled-a", "chilled-a", 25)],
        ),
    )
    .await;
    assert_eq!(state(&t), pb::TransferState::Requested, "{t:?}");
    assert!(t.last_error.starts_with("UNAVAILABLE"), "{}", t.last_error);
    let refused = receive_transfer(&mut gateway, "receive-s0", "T-SOURCE")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "not shipped yet");

    net.stop_gateway().await;
    net.start_service(PARK, INVENTORY).await;
    net.start_gateway().await;
    let mut gateway = net.gateway().await;
    wait_for_state(
        &mut gateway,
        "T-SOURCE",
        pb::TransferState::InTransit,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(on_hand(&net, PARK, SKU).await, 75);
    let done = receive_transfer(&mut gateway, "receive-s", "T-SOURCE")
        .await
        .unwrap();
    assert_eq!(state(&done), pb::TransferState::Completed);
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 25);
    assert_eq!(transfer_entries(&net, PARK, "T-SOURCE").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_after_the_source_recorded_but_before_the_gateway_did_ships_once() {
    let mut net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive(&net, PARK, SKU, "K1", "chilled-a", 100).await;
    net.stop_gateway().await;

    // What a gateway that crashed right after the source's answer leaves behind: the
    // transfer REQUESTED in its store, the TRANSFER_OUT recorded at the source.
    {
        // The stopped gateway's last connection tasks may hold its database a moment.
        let started = Instant::now();
        let store = loop {
            match coldchain_store::Store::open(
                &net.dir.path().join("gateway"),
                &coldchain_store::Identity {
                    site: "hub".into(),
                    service: "gateway".into(),
                },
                coldchain_store::StoreOptions::default(),
            ) {
                Ok(store) => break store,
                Err(error) if started.elapsed() < Duration::from_secs(10) => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("the gateway's store: {error}"),
            }
        };
        let transfers = coldchain_gateway::store::GatewayStore::new(store.clone());
        let spec = coldchain_gateway::domain::TransferSpec {
            transfer_id: Some("T-CRASH".into()),
            source_site_id: PARK.into(),
            destination_site_id: VIENTIANE.into(),
            lines: vec![coldchain_gateway::domain::Line {
                sku: SKU.into(),
                lot_id: "K1".into(),
                source_zone_id: "chilled-a".into(),
                destination_zone_id: "chilled-a".into(),
                quantity: 35,
                unit: "kg".into(),
                lot: None,
            }],
            reefer_sensor_id: String::new(),
            reefer_container_id: String::new(),
            reefer_class: TemperatureClass::Chilled,
            train_or_route: String::new(),
        };
        transfers
            .create(
                &coldchain_store::fingerprint("crash-start", b"crash"),
                &coldchain_gateway::wire::TransferRefCodec,
                spec,
            )
            .await
            .expect("recorded");
        let transfer = transfers.get("T-CRASH").unwrap().unwrap();
        let mut park = net.inventory(PARK).await;
        park.record_movements(coldchain_gateway::wire::transfer_out_request(&transfer))
            .await
            .expect("the source recorded the transfer out");
        store.close();
    }
    assert_eq!(on_hand(&net, PARK, SKU).await, 65);

    net.start_gateway().await;
    let mut gateway = net.gateway().await;
    let shipped = wait_for_state(
        &mut gateway,
        "T-CRASH",
        pb::TransferState::InTransit,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        shipped.lines[0].lot.as_ref().unwrap().expiry,
        Some(date(2099, 12, 31))
    );
    assert_eq!(
        on_hand(&net, PARK, SKU).await,
        65,
        "the retry replayed; the stock left once"
    );
    assert_eq!(transfer_entries(&net, PARK, "T-CRASH").await.len(), 1);
    receive_transfer(&mut gateway, "receive-crash", "T-CRASH")
        .await
        .unwrap();
    assert_eq!(on_hand(&net, VIENTIANE, SKU).await, 35);
}

// ---------------------------------------------------------------------------------------
// Validation

fn assert_invalid<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    expected_fields: &[&str],
    case: &str,
) {
    let status = result.expect_err(case);
    assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    let got = fields(&status);
    for field in expected_fields {
        assert!(
            got.iter().any(|f| f == field),
            "{case}: {field} not in {got:?}"
        );
    }
    assert!(
        !status.message().starts_with(char::is_uppercase),
        "{case}: lowercase message"
    );
}

fn assert_code<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    case: &str,
) {
    let status = result.expect_err(case);
    assert_eq!(status.code(), code, "{case}: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_requests_are_refused_and_change_nothing() {
    let net = Net::start(&[]).await;
    let mut g = net.gateway().await;
    let good = || {
        start(
            "r-1",
            "T-1",
            vec![line(SKU, "K1", "chilled-a", "chilled-a", 5)],
        )
    };

    // StartTransfer: malformed fields, all reported at once.
    let mut bad = good();
    bad.request_id = String::new();
    bad.transfer_id = "bad\u{7}id".into();
    bad.lines[0].quantity = 0;
    bad.lines[0].unit = String::new();
    bad.reefer_sensor_id = "reefer-1".into();
    bad.reefer_temperature_class = 99;
    bad.train_or_route = "x".repeat(200);
    assert_invalid(
        g.start_transfer(bad).await,
        &[
            "request_id",
            "transfer_id",
            "lines[0].quantity",
            "lines[0].unit",
            "reefer_container_id",
            "reefer_temperature_class",
            "train_or_route",
        ],
        "many bad fields",
    );
    type Edit = Box<dyn Fn(&mut pb::StartTransferRequest)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "no source",
            Box::new(|r| r.source_site_id.clear()),
            "source_site_id",
        ),
        (
            "to itself",
            Box::new(|r| r.destination_site_id = PARK.into()),
            "destination_site_id",
        ),
        ("no lines", Box::new(|r| r.lines.clear()), "lines"),
        (
            "too many lines",
            Box::new(|r| {
                r.lines = (0..1001)
                    .map(|i| line(SKU, &format!("L{i}"), "chilled-a", "chilled-a", 1))
                    .collect()
            }),
            "lines",
        ),
        (
            "negative quantity",
            Box::new(|r| r.lines[0].quantity = -3),
            "lines[0].quantity",
        ),
        (
            "bad sku",
            Box::new(|r| r.lines[0].sku = " kiwi".into()),
            "lines[0].sku",
        ),
        (
            "no lot",
            Box::new(|r| r.lines[0].lot_id.clear()),
            "lines[0].lot_id",
        ),
        (
            "long unit",
            Box::new(|r| r.lines[0].unit = "u".repeat(17)),
            "lines[0].unit",
        ),
        (
            "repeated line",
            Box::new(|r| r.lines.push(r.lines[0].clone())),
            "lines[1]",
        ),
        (
            "class changes",
            Box::new(|r| r.lines[0].destination_zone_id = "frozen-a".into()),
            "lines[0].destination_zone_id",
        ),
        (
            "one lot to two zones",
            Box::new(|r| r.lines.push(line(SKU, "K1", "frozen-a", "frozen-a", 1))),
            "lines[1].destination_zone_id",
        ),
    ];
    for (case, edit, field) in cases {
        let mut request = good();
        edit(&mut request);
        assert_invalid(g.start_transfer(request).await, &[field], case);
    }
    let mut unknown_site = good();
    unknown_site.destination_site_id = "xx-nowhere".into();
    assert_code(
        g.start_transfer(unknown_site).await,
        Code::NotFound,
        "unknown site",
    );
    let mut unknown_zone = good();
    unknown_zone.lines[0].source_zone_id = "no-such-zone".into();
    assert_code(
        g.start_transfer(unknown_zone).await,
        Code::NotFound,
        "unknown zone",
    );

    // Other transfer calls.
    assert_invalid(
        g.receive_transfer(pb::ReceiveTransferRequest {
            request_id: String::new(),
            transfer_id: "x\ty".into(),
        })
        .await,
        &["request_id", "transfer_id"],
        "receive",
    );
    assert_code(
        g.receive_transfer(pb::ReceiveTransferRequest {
            request_id: "r".into(),
            transfer_id: "T-NONE".into(),
        })
        .await,
        Code::NotFound,
        "receive unknown",
    );
    assert_invalid(
        g.get_transfer(pb::GetTransferRequest {
            transfer_id: String::new(),
        })
        .await,
        &["transfer_id"],
        "get",
    );
    assert_code(
        g.get_transfer(pb::GetTransferRequest {
            transfer_id: "T-NONE".into(),
        })
        .await,
        Code::NotFound,
        "get unknown",
    );
    assert_invalid(
        g.list_transfers(pb::ListTransfersRequest {
            states: vec![0, 42],
            page_size: -1,
            ..Default::default()
        })
        .await,
        &["states[0]", "states[1]", "page_size"],
        "list transfers",
    );
    assert_invalid(
        g.list_transfers(pb::ListTransfersRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await,
        &["page_token"],
        "list transfers token",
    );
    assert_code(
        g.list_transfers(pb::ListTransfersRequest {
            source_site_id: "xx-nowhere".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "list transfers unknown site",
    );

    // Fan-out calls.
    assert_invalid(
        g.find_stock(pb::FindStockRequest {
            sku: String::new(),
            temperature_class: 42,
            min_quantity: -1,
            site_ids: vec!["a\u{1}".into()],
        })
        .await,
        &["sku", "temperature_class", "min_quantity", "site_ids[0]"],
        "find stock",
    );
    assert_code(
        g.find_stock(pb::FindStockRequest {
            sku: SKU.into(),
            site_ids: vec!["xx-nowhere".into()],
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "find stock unknown site",
    );
    assert_invalid(
        g.find_space(pb::FindSpaceRequest {
            temperature_class: 0,
            pallets: 0,
            first_day: None,
            last_day: Some(date(2026, 2, 30)),
            site_ids: vec![],
        })
        .await,
        &["temperature_class", "pallets", "first_day", "last_day"],
        "find space",
    );
    assert_invalid(
        g.find_space(pb::FindSpaceRequest {
            temperature_class: cc::TemperatureClass::Cool as i32,
            pallets: 1,
            first_day: Some(date(2030, 6, 2)),
            last_day: Some(date(2030, 6, 1)),
            site_ids: vec![],
        })
        .await,
        &["last_day"],
        "find space backwards",
    );
    assert_invalid(
        g.find_space(pb::FindSpaceRequest {
            temperature_class: cc::TemperatureClass::Cool as i32,
            pallets: 1,
            first_day: Some(date(2030, 1, 1)),
            last_day: Some(date(2031, 1, 2)),
            site_ids: vec![],
        })
        .await,
        &["last_day"],
        "find space too long",
    );
    assert_invalid(
        g.list_sites(pb::ListSitesRequest {
            page_size: -1,
            ..Default::default()
        })
        .await,
        &["page_size"],
        "sites",
    );
    assert_invalid(
        g.list_sites(pb::ListSitesRequest {
            page_token: "00".into(),
            ..Default::default()
        })
        .await,
        &["page_token"],
        "sites token",
    );
    assert_code(
        g.list_sites(pb::ListSitesRequest {
            site_ids: vec!["xx-nowhere".into()],
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "sites unknown",
    );
    assert_invalid(
        g.list_alarms(pb::ListAlarmsRequest {
            states: vec![0],
            kinds: vec![99],
            ..Default::default()
        })
        .await,
        &["states[0]", "kinds[0]"],
        "alarms",
    );
    let unknown_cursor = g
        .watch_alarms(pb::WatchAlarmsRequest {
            from_sequences: [("xx-nowhere".to_string(), 3)].into_iter().collect(),
            site_ids: vec![],
        })
        .await;
    assert_code(unknown_cursor, Code::NotFound, "watch unknown site");

    // Nothing was recorded.
    let all = g
        .list_transfers(pb::ListTransfersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(all.transfers.is_empty(), "{:?}", all.transfers);
    let _ = ServiceKind::Gateway;
}
