//! The gateway's fan-out queries against the real site services, in-process on 127.0.0.1,
//! called through the generated client: answers with sites down or slow, live health, space
//! offers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod gateway_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use coldchain_proto::booking::v1 as book;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::common::v1 as cc;
use coldchain_proto::network::v1 as pb;
use coldchain_runtime::network::TemperatureClass;
use gateway_support::*;

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
