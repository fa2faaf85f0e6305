#![no_main]
#![forbid(unsafe_code)]
//! `NetworkConfig::parse` of arbitrary text (seeded with the shipped network files).
//!
//! - Never panics; a refusal lists at least one problem, none of them empty.
//! - A network it accepts keeps every rule it promises: at least one site, each with at
//!   least one zone; site ids unique and zone ids unique within their site, all DNS labels;
//!   every port non-zero and used by one service only; zone limits finite, ordered and
//!   within their class; capacities at least one pallet.

use std::collections::HashSet;

use coldchain_runtime::network::{NetworkConfig, ServiceKind};
use libfuzzer_sys::fuzz_target;

fn is_dns_label(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let network = match NetworkConfig::parse(&text) {
        Ok(network) => network,
        Err(errors) => {
            assert!(!errors.is_empty());
            assert!(errors.problems().iter().all(|p| !p.trim().is_empty()));
            return;
        }
    };
    assert!(!network.sites.is_empty());
    let mut ports = HashSet::new();
    assert_ne!(network.gateway.port(), 0);
    ports.insert(network.gateway.port());
    let mut site_ids = HashSet::new();
    for site in &network.sites {
        assert!(is_dns_label(&site.id), "{:?}", site.id);
        assert!(
            site_ids.insert(site.id.as_str()),
            "duplicate site {:?}",
            site.id
        );
        assert_eq!(network.site(&site.id).map(|s| &s.id), Some(&site.id));
        for kind in ServiceKind::SITE_SERVICES {
            let port = site.port(kind).expect("a site service has a port");
            assert_ne!(port, 0);
            assert!(ports.insert(port), "port {port} used twice");
            assert!(network.endpoint(&site.id, kind).is_some());
        }
        assert!(!site.zones.is_empty());
        let mut zone_ids = HashSet::new();
        for zone in &site.zones {
            assert!(is_dns_label(&zone.id), "{:?}", zone.id);
            assert!(
                zone_ids.insert(zone.id.as_str()),
                "duplicate zone {:?}",
                zone.id
            );
            assert!(zone.min_celsius.is_finite() && zone.max_celsius.is_finite());
            assert!(zone.min_celsius <= zone.max_celsius, "{zone:?}");
            assert!(zone.class.admits(zone.min_celsius), "{zone:?}");
            assert!(zone.class.admits(zone.max_celsius), "{zone:?}");
            assert!(zone.capacity_pallets >= 1);
        }
    }
});
