//! The configuration API as the binary uses it: config from file + environment, then the
//! network file it names, with every problem of both in one report.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::time::Duration;

use coldchain_runtime::config::{Config, ConfigErrors, LogFormat};
use coldchain_runtime::network::{NetworkConfig, ServiceKind, TemperatureClass};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/network.toml");

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn config_file_names_the_shipped_network() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("coldchain.toml");
    std::fs::write(
        &file,
        format!("network_file = {SHIPPED:?}\nlog_format = \"json\"\nrpc_timeout = \"2s\"\n"),
    )
    .unwrap();
    let vars = env(&[
        ("COLDCHAIN_CONFIG", file.to_str().unwrap()),
        ("COLDCHAIN_RPC_TIMEOUT", "750ms"),
    ]);
    let path = Config::file_from_env(&vars).unwrap();
    let config = Config::load(Some(&path), &vars).unwrap();
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.rpc_timeout, Duration::from_millis(750));

    let network = NetworkConfig::load(&config.network_file).unwrap();
    assert_eq!(network.sites.len(), 8);
    for site in &network.sites {
        assert!(site.has_class(TemperatureClass::Frozen), "{}", site.id);
        assert!(site.has_class(TemperatureClass::Chilled), "{}", site.id);
        for kind in ServiceKind::SITE_SERVICES {
            assert!(
                site.endpoint(kind)
                    .unwrap()
                    .starts_with("http://127.0.0.1:501")
            );
        }
    }
    assert_eq!(network.gateway.port(), 50051);
}

#[test]
fn config_and_network_problems_merge_into_one_report() {
    let vars = env(&[
        ("COLDCHAIN_LOG_FORMAT", "yaml"),
        ("COLDCHAIN_SHUTDOWN_GRACE", "soon"),
    ]);
    let mut report = ConfigErrors::new();
    if let Err(errors) = Config::load(None, &vars) {
        report.extend(errors);
    }
    let broken = std::fs::read_to_string(SHIPPED)
        .unwrap()
        .replacen("capacity_pallets = 2400", "capacity_pallets = 0", 1)
        .replacen("inventory = 50121", "inventory = 50111", 1);
    if let Err(errors) = NetworkConfig::parse(&broken) {
        report.extend(errors);
    }
    assert_eq!(report.len(), 4, "{report}");
    let shown = report.to_string();
    assert!(shown.starts_with("invalid configuration:\n  - COLDCHAIN_LOG_FORMAT: "));
    assert!(shown.contains("\n  - COLDCHAIN_SHUTDOWN_GRACE: "));
    assert!(shown.contains(
        "\n  - site \"cn-huaihua-park\" zone \"frozen-a\": capacity_pallets must be at least 1, got 0"
    ));
    assert!(shown.contains(
        "\n  - port 50111 is used by more than one service: site \"cn-huaihua-park\" inventory, site \"la-vientiane\" inventory"
    ));
}
