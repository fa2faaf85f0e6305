//! The policy, the credentials file and the keys, each rule with a test.

use std::time::{Duration, Instant};

use coldchain_proto::INVENTORY_SERVICE;

use super::*;
use crate::network::NetworkConfig;

fn network() -> NetworkConfig {
    NetworkConfig::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/network.toml"
    ))
    .expect("the shipped network file is valid")
}

fn header(key: &ApiKey) -> http::HeaderValue {
    key.header_value()
}

#[test]
fn a_key_round_trips_and_its_secret_is_never_printed() {
    let key = ApiKey::generate("th-bangkok-wms").unwrap();
    let parsed = ApiKey::parse(&key.expose()).unwrap();
    assert_eq!(parsed, key);
    assert!(!format!("{key:?}").contains(&key.secret));
    assert!(ApiKey::parse("cc2.x.y").is_err());
    assert!(ApiKey::parse("cc1.UPPER.y").is_err());
    assert!(ApiKey::parse("cc1.x.").is_err());
    assert!(ApiKey::generate("").is_err());
}

#[test]
fn the_audit_trails_own_names_are_never_credential_ids() {
    for reserved in coldchain_audit::RESERVED_PRINCIPALS {
        assert!(ApiKey::generate(reserved).is_err(), "{reserved}");
        assert!(
            ApiKey::parse(&format!("cc1.{reserved}.00")).is_err(),
            "{reserved}"
        );
    }
}

#[test]
fn only_the_right_secret_authenticates() {
    let key = ApiKey::generate("ops").unwrap();
    let mut credentials = Credentials::default();
    credentials.insert(&key, Role::Operations);
    assert_eq!(
        credentials.authenticate(Some(&header(&key))).unwrap().role,
        Role::Operations
    );

    let wrong = ApiKey::parse(&format!("cc1.ops.{}", "0".repeat(64))).unwrap();
    let unknown = ApiKey::generate("nobody").unwrap();
    for bad in [
        None,
        Some(http::HeaderValue::from_static("Bearer")),
        Some(http::HeaderValue::from_static("Basic b3BzOng=")),
        Some(header(&wrong)),
        Some(header(&unknown)),
    ] {
        assert_eq!(
            credentials.authenticate(bad.as_ref()),
            Err(Refusal::Unauthenticated)
        );
    }
}

#[test]
fn the_credentials_file_is_parsed_and_every_problem_reported() {
    let key = ApiKey::generate("bkk").unwrap();
    let hash = key.secret_sha256();
    let text = format!(
        r#"
[[credential]]
id = "bkk"
role = "warehouse"
site = "th-bangkok"
secret_sha256 = "{hash}"

[[credential]]
id = "acme"
role = "booking_client"
customer = "acme-foods"
secret_sha256 = "{hash}"

[[credential]]
id = "gw"
role = "service"
service = "gateway"
secret_sha256 = "{hash}"
"#
    );
    let credentials = Credentials::parse("creds.toml", &text, &network()).unwrap();
    assert_eq!(credentials.len(), 3);
    assert_eq!(
        credentials.authenticate(Some(&header(&key))).unwrap().role,
        Role::Warehouse {
            site: "th-bangkok".into()
        }
    );

    let bad = r#"
color = "red"
[[credential]]
id = "Bad Id"
role = "warehouse"
site = "atlantis"
customer = "x"
secret_sha256 = "abc"
[[credential]]
id = "x"
role = "wharehouse"
secret_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[credential]]
id = "y"
role = "service"
service = "booking"
secret_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[credential]]
id = "y"
role = "operations"
sekret = "z"
"#;
    let errors = Credentials::parse("creds.toml", bad, &network()).unwrap_err();
    for needle in [
        "unknown key \"color\"",
        "credential[0]: id:",
        "no site \"atlantis\"",
        "customer does not apply",
        "secret_sha256: expected 64 hex digits",
        "unknown role \"wharehouse\" (did you mean \"warehouse\"?)",
        "service: expected gateway, telemetry or inventory",
        "unknown key \"sekret\"",
        "credential[3]: secret_sha256 is required",
    ] {
        assert!(errors.mentions(needle), "{needle:?} missing from {errors}");
    }
}

#[test]
fn every_rpc_of_the_contracts_has_a_policy() {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(coldchain_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut count = 0;
    for file in set
        .file
        .iter()
        .filter(|f| f.package().starts_with("coldchain."))
    {
        for service in &file.service {
            for method in &service.method {
                let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                if file.package() == "coldchain.bench.v1" {
                    continue;
                }
                assert!(grants(&path).is_some(), "{path} has no policy");
                count += 1;
            }
        }
    }
    assert!(count >= 30, "only {count} methods found");
}

#[test]
fn site_roles_stay_on_their_site() {
    let bangkok = ServerScope {
        kind: ServiceKind::Inventory,
        site: Some("th-bangkok".into()),
    };
    let vientiane = ServerScope {
        kind: ServiceKind::Inventory,
        site: Some("la-vientiane".into()),
    };
    let wms = Principal {
        id: "bkk".into(),
        role: Role::Warehouse {
            site: "th-bangkok".into(),
        },
    };
    let path = format!("/{INVENTORY_SERVICE}/RecordMovements");
    assert_eq!(authorize(&wms, &bangkok, &path), Ok(()));
    assert!(matches!(
        authorize(&wms, &vientiane, &path),
        Err(Refusal::Denied(_))
    ));
    assert_eq!(
        authorize(&wms, &vientiane, "/grpc.health.v1.Health/Check"),
        Ok(())
    );
}

#[test]
fn the_rate_limit_refills_at_its_rate() {
    let limiter = RateLimiter::new(10.0, 3.0);
    let start = Instant::now();
    for _ in 0..3 {
        limiter.take("a", start).unwrap();
    }
    assert!(matches!(
        limiter.take("a", start),
        Err(Refusal::RateLimited(_))
    ));
    // Another credential has its own bucket.
    limiter.take("b", start).unwrap();
    // 100 ms later one token is back, and only one.
    let later = start + Duration::from_millis(100);
    limiter.take("a", later).unwrap();
    assert!(limiter.take("a", later).is_err());
}
