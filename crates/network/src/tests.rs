//! The network file's rules, each with a test that fails when it breaks.

use crate::parse::id_problem;
use crate::*;
use proptest::prelude::*;

const SHIPPED: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/network.toml"
));
const SHIPPED_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/network.toml");

const SITE_IDS: [&str; 8] = [
    "cn-huaihua-park",
    "la-vientiane",
    "vn-hanoi",
    "vn-hochiminh",
    "th-bangkok",
    "kh-phnompenh",
    "my-kualalumpur",
    "sg-singapore",
];

/// A valid network of one site, with `extra` appended to its first zone's table.
fn one_site(zone: &str) -> String {
    format!(
        r#"
[gateway]
listen = "127.0.0.1:50051"

[[site]]
id = "la-vientiane"
name = "Vientiane"
location = "Vientiane, Laos"
reached_by = "China–Laos railway"
time_zone = "Asia/Vientiane"
[site.ports]
inventory = 50121
telemetry = 50122
booking = 50123
[[site.zone]]
{zone}
"#
    )
}

const COOL_ZONE: &str = r#"id = "cool-a"
class = "COOL"
min_celsius = 12.0
max_celsius = 15.0
capacity_pallets = 900"#;

fn problems(text: &str) -> Vec<String> {
    match NetworkConfig::parse(text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(e) => e.problems,
    }
}

fn one_problem(text: &str) -> String {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:#?}");
    p.into_iter().next().unwrap_or_default()
}

#[test]
fn shipped_network_is_valid() {
    let net = NetworkConfig::load(SHIPPED_PATH).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(net.site_ids().collect::<Vec<_>>(), SITE_IDS);
    assert_eq!(net.gateway.listen, "127.0.0.1:50051".parse().unwrap());
    assert_eq!(net.gateway_endpoint(), "http://127.0.0.1:50051");
    for site in &net.sites {
        assert!(
            site.has_class(TemperatureClass::Frozen),
            "{} has no FROZEN zone",
            site.id
        );
        assert!(
            site.has_class(TemperatureClass::Chilled),
            "{} has no CHILLED zone",
            site.id
        );
        for zone in &site.zones {
            assert!(zone.class.admits(zone.min_celsius) && zone.class.admits(zone.max_celsius));
        }
    }
    let vientiane = net.site("la-vientiane").unwrap();
    assert!(
        vientiane.has_class(TemperatureClass::Cool),
        "bananas need a COOL zone"
    );
    let bananas = vientiane
        .zones_of_class(TemperatureClass::Cool)
        .next()
        .unwrap();
    assert!(bananas.admits(13.0) && bananas.admits(14.0));
    assert_eq!(vientiane.time_zone, chrono_tz::Asia::Vientiane);
    assert_eq!(
        vientiane.endpoint(ServiceKind::Inventory).unwrap(),
        "http://127.0.0.1:50121"
    );
    assert_eq!(vientiane.endpoint(ServiceKind::Gateway), None);

    let park = net.site("cn-huaihua-park").unwrap();
    assert_eq!(park.time_zone, chrono_tz::Asia::Shanghai);
    assert_eq!(park.zone("frozen-a").unwrap().capacity_pallets, 2400);
    assert_eq!(park.ports.get(ServiceKind::Booking), Some(50113));
    assert_eq!(
        net.endpoint("vn-hanoi", ServiceKind::Telemetry).as_deref(),
        Some("http://127.0.0.1:50132")
    );
    assert_eq!(
        net.endpoint("nowhere", ServiceKind::Gateway).as_deref(),
        Some("http://127.0.0.1:50051")
    );
    assert_eq!(net.endpoint("nowhere", ServiceKind::Inventory), None);
    assert!(net.site("nowhere").is_none());

    // 8 sites × 3 services + the gateway, every port distinct.
    let mut all: Vec<u16> = net
        .sites
        .iter()
        .flat_map(|s| ServiceKind::SITE_SERVICES.map(|k| s.port(k).unwrap()))
        .collect();
    all.push(net.gateway.port());
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 25);
    assert_eq!(SHIPPED, std::fs::read_to_string(SHIPPED_PATH).unwrap());
}

#[test]
fn endpoint_overrides() {
    let text = one_site(COOL_ZONE).replace(
        "[[site.zone]]",
        "[site.endpoints]\ninventory = \"http://inventory-la-vientiane:50121\"\n[[site.zone]]",
    );
    let net = NetworkConfig::parse(
        &text.replace("listen = \"127.0.0.1:50051\"", "listen = \"0.0.0.0:50051\""),
    )
    .unwrap();
    let site = net.site("la-vientiane").unwrap();
    assert_eq!(
        site.endpoint(ServiceKind::Inventory).unwrap(),
        "http://inventory-la-vientiane:50121"
    );
    assert_eq!(
        site.endpoint(ServiceKind::Booking).unwrap(),
        "http://127.0.0.1:50123"
    );
    assert_eq!(net.gateway_endpoint(), "http://127.0.0.1:50051");

    let net = NetworkConfig::parse(&text.replace(
        "listen = \"127.0.0.1:50051\"",
        "listen = \"0.0.0.0:50051\"\nendpoint = \"http://gateway:50051\"",
    ))
    .unwrap();
    assert_eq!(net.gateway_endpoint(), "http://gateway:50051");

    let p = problems(
        &one_site(COOL_ZONE)
            .replace(
                "[[site.zone]]",
                "[site.endpoints]\ntelemetry = \"telemetry:50122\"\nbooking = \"http://\"\n[[site.zone]]",
            )
            .replace("listen = \"127.0.0.1:50051\"", "listen = \"127.0.0.1:50051\"\nendpoint = \"gw\""),
    );
    assert_eq!(
        p,
        vec![
            "gateway: endpoint must be an http:// or https:// url like \"http://inventory-la-vientiane:50121\", got \"gw\"",
            "site \"la-vientiane\" endpoints: telemetry must be an http:// or https:// url like \"http://inventory-la-vientiane:50121\", got \"telemetry:50122\"",
            "site \"la-vientiane\" endpoints: booking must be an http:// or https:// url like \"http://inventory-la-vientiane:50121\", got \"http://\"",
        ]
    );
}

#[test]
fn minimal_network_parses() {
    let net = NetworkConfig::parse(&one_site(COOL_ZONE)).unwrap();
    let zone = net.site("la-vientiane").unwrap().zone("cool-a").unwrap();
    assert_eq!(
        *zone,
        ZoneConfig {
            id: "cool-a".into(),
            class: TemperatureClass::Cool,
            min_celsius: 12.0,
            max_celsius: 15.0,
            capacity_pallets: 900,
        }
    );
    // Integers are fine for temperatures.
    let net = NetworkConfig::parse(&one_site(&COOL_ZONE.replace("12.0", "12"))).unwrap();
    assert_eq!(net.sites[0].zones[0].min_celsius, 12.0);
}

#[test]
fn broken_network_reports_every_problem() {
    let text = r#"
[gateway]
listen = "127.0.0.1:50121"

[[site]]
id = "la-vientiane"
name = "Vientiane"
location = "Vientiane, Laos"
reached_by = "China–Laos railway"
time_zone = "Asia/Vientian"
[site.ports]
inventory = 50121
telemetry = 0
booking = 50123
[[site.zone]]
id = "cool-a"
class = "COOL"
min_celsius = 8.0
max_celsius = 15.0
capacity_pallets = 0
[[site.zone]]
id = "cool-a"
class = "ICY"
min_celsius = 1.0
max_celsius = 2.0
capacity_pallets = 10

[[site]]
id = "la-vientiane"
name = ""
location = "Somewhere"
reached_by = "sea"
time_zone = "Asia/Bangkok"
[site.ports]
inventory = 50131
telemetry = 50123
booking = 70000

[[site]]
id = "TH_Bangkok"
name = "Bangkok"
location = "Bangkok, Thailand"
reached_by = "rail"
time_zone = "Asia/Bangkok"
[site.ports]
inventory = 50151
telemetry = 50152
booking = 50153
[[site.zone]]
id = "frozen-a"
class = "FROZEN"
min_celsius = -10.0
max_celsius = -25.0
capacity_pallets = 5000000000
"#;
    let p = problems(text);
    let want = [
        r#"site "la-vientiane": time_zone must be an IANA time zone name like "Asia/Shanghai", got "Asia/Vientian""#,
        r#"site "la-vientiane" ports: telemetry must be between 1 and 65535, got 0"#,
        r#"site "la-vientiane" zone "cool-a": min_celsius must be at least 10 for class COOL, got 8"#,
        r#"site "la-vientiane" zone "cool-a": capacity_pallets must be at least 1, got 0"#,
        r#"site "la-vientiane": duplicate zone id "cool-a" (zones 1 and 2)"#,
        r#"site "la-vientiane" zone "cool-a": class must be one of FROZEN, CHILLED, PHARMA, COOL, AMBIENT, got "ICY""#,
        r#"duplicate site id "la-vientiane" (sites 1 and 2)"#,
        r#"site "la-vientiane": name must not be empty"#,
        r#"site "la-vientiane" ports: booking must be between 1 and 65535, got 70000"#,
        r#"site "la-vientiane": must have at least one [[site.zone]]"#,
        r#"site "TH_Bangkok": id must be 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-', got "TH_Bangkok""#,
        r#"site "TH_Bangkok" zone "frozen-a": min_celsius must not be above max_celsius (-25), got -10"#,
        r#"site "TH_Bangkok" zone "frozen-a": min_celsius must be at most -18 for class FROZEN, got -10"#,
        r#"site "TH_Bangkok" zone "frozen-a": capacity_pallets must be at most 4294967295, got 5000000000"#,
        r#"port 50121 is used by more than one service: gateway, site "la-vientiane" inventory"#,
        r#"port 50123 is used by more than one service: site "la-vientiane" booking, site "la-vientiane" telemetry"#,
    ];
    assert_eq!(p, want);
    let shown = NetworkConfig::parse(text).unwrap_err().to_string();
    assert!(shown.starts_with("invalid configuration:\n  - site \"la-vientiane\": time_zone"));
    assert_eq!(shown.lines().count(), want.len() + 1);
}

#[test]
fn load_prefixes_problems_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("network.toml");
    std::fs::write(&path, one_site(&COOL_ZONE.replace("900", "0"))).unwrap();
    let err = NetworkConfig::load(&path).unwrap_err();
    assert_eq!(
        err.problems,
        vec![format!(
            "{}: site \"la-vientiane\" zone \"cool-a\": capacity_pallets must be at least 1, got 0",
            path.display()
        )]
    );
    let err = NetworkConfig::load(dir.path().join("missing.toml")).unwrap_err();
    assert!(
        err.problems[0].starts_with("cannot read network file"),
        "{err}"
    );
}

#[test]
fn unknown_keys_rejected() {
    let p = one_problem(&one_site(&format!("{COOL_ZONE}\nhumidity = 90")));
    assert!(p.contains("unknown field `humidity`"), "{p}");
    assert!(p.starts_with("line "), "{p}");

    let p = one_problem(
        &one_site(COOL_ZONE).replace("[site.ports]", "region = \"asean\"\n[site.ports]"),
    );
    assert!(p.contains("unknown field `region`"), "{p}");

    let p = one_problem(&format!(
        "{}\n[metrics]\nport = 9000\n",
        one_site(COOL_ZONE)
    ));
    assert!(p.contains("unknown field `metrics`"), "{p}");

    let p = one_problem(
        &one_site(COOL_ZONE).replace("booking = 50123", "booking = 50123\nadmin = 50124"),
    );
    assert!(p.contains("unknown field `admin`"), "{p}");
}

#[test]
fn toml_syntax_and_type_errors() {
    let p = one_problem("[gateway\nlisten = 1");
    assert!(p.starts_with("line 1, column "), "{p}");
    let p = one_problem(&one_site(&COOL_ZONE.replace("900", "\"many\"")));
    assert!(p.starts_with("line 20, column "), "{p}");
}

#[test]
fn rule_duplicate_site_ids() {
    let text = one_site(COOL_ZONE);
    let second = text
        .split_once("[[site]]")
        .map(|(_, s)| format!("[[site]]{s}"))
        .unwrap()
        .replace("5012", "5013");
    let p = one_problem(&format!("{text}\n{second}"));
    assert_eq!(p, r#"duplicate site id "la-vientiane" (sites 1 and 2)"#);
}

#[test]
fn rule_duplicate_zone_ids() {
    let p = one_problem(&one_site(&format!(
        "{COOL_ZONE}\n[[site.zone]]\n{COOL_ZONE}"
    )));
    assert_eq!(
        p,
        r#"site "la-vientiane": duplicate zone id "cool-a" (zones 1 and 2)"#
    );
}

#[test]
fn rule_id_charset() {
    for good in ["a", "la-vientiane", "zone-1", &"x".repeat(63)] {
        assert_eq!(id_problem(good), None, "{good}");
    }
    for bad in [
        "",
        "La-Vientiane",
        "la_vientiane",
        "la vientiane",
        "-a",
        "a-",
        "é",
        &"x".repeat(64),
    ] {
        assert!(id_problem(bad).is_some(), "{bad:?}");
    }
    let p = one_problem(&one_site(COOL_ZONE).replace("\"la-vientiane\"", "\"La Vientiane\""));
    assert_eq!(
        p,
        r#"site "La Vientiane": id must be 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-', got "La Vientiane""#
    );
    let p = one_problem(&one_site(&COOL_ZONE.replace("cool-a", "Cool_A")));
    assert!(
        p.starts_with(r#"site "la-vientiane" zone "Cool_A": id must be 1 to 63"#),
        "{p}"
    );
}

#[test]
fn rule_unknown_class() {
    let p = one_problem(&one_site(&COOL_ZONE.replace("\"COOL\"", "\"cool\"")));
    assert_eq!(
        p,
        r#"site "la-vientiane" zone "cool-a": class must be one of FROZEN, CHILLED, PHARMA, COOL, AMBIENT, got "cool" (did you mean "COOL"?)"#
    );
}

#[test]
fn rule_unknown_time_zone() {
    let p = one_problem(&one_site(COOL_ZONE).replace("Asia/Vientiane", "Laos/Vientiane"));
    assert_eq!(
        p,
        r#"site "la-vientiane": time_zone must be an IANA time zone name like "Asia/Shanghai", got "Laos/Vientiane""#
    );
}

#[test]
fn rule_min_above_max() {
    let p = one_problem(&one_site(
        &COOL_ZONE.replace("12.0", "14.5").replace("15.0", "13.5"),
    ));
    assert_eq!(
        p,
        r#"site "la-vientiane" zone "cool-a": min_celsius must not be above max_celsius (13.5), got 14.5"#
    );
    // Equal limits are allowed (a single set point).
    assert!(NetworkConfig::parse(&one_site(&COOL_ZONE.replace("12.0", "15.0"))).is_ok());
}

#[test]
fn rule_limits_within_class() {
    let p = problems(&one_site(
        &COOL_ZONE.replace("12.0", "9.5").replace("15.0", "16"),
    ));
    assert_eq!(
        p,
        vec![
            r#"site "la-vientiane" zone "cool-a": min_celsius must be at least 10 for class COOL, got 9.5"#,
            r#"site "la-vientiane" zone "cool-a": max_celsius must be at most 15 for class COOL, got 16"#,
        ]
    );
    let frozen = COOL_ZONE
        .replace("\"COOL\"", "\"FROZEN\"")
        .replace("12.0", "-40")
        .replace("15.0", "-17.5");
    let p = one_problem(&one_site(&frozen));
    assert_eq!(
        p,
        r#"site "la-vientiane" zone "cool-a": max_celsius must be at most -18 for class FROZEN, got -17.5"#
    );
    // FROZEN has no lower limit.
    assert!(NetworkConfig::parse(&one_site(&frozen.replace("-17.5", "-18"))).is_ok());
    let p = one_problem(&one_site(&COOL_ZONE.replace("12.0", "nan")));
    assert_eq!(
        p,
        r#"site "la-vientiane" zone "cool-a": min_celsius must be a finite number, got NaN"#
    );
}

#[test]
fn rule_zero_capacity() {
    let p = one_problem(&one_site(&COOL_ZONE.replace("900", "0")));
    assert_eq!(
        p,
        r#"site "la-vientiane" zone "cool-a": capacity_pallets must be at least 1, got 0"#
    );
    let p = one_problem(&one_site(&COOL_ZONE.replace("900", "-3")));
    assert_eq!(
        p,
        r#"site "la-vientiane" zone "cool-a": capacity_pallets must be at least 1, got -3"#
    );
}

#[test]
fn rule_site_without_zones() {
    let text = one_site("").replace("[[site.zone]]", "");
    let p = one_problem(&text);
    assert_eq!(
        p,
        r#"site "la-vientiane": must have at least one [[site.zone]]"#
    );
    let p = one_problem("[gateway]\nlisten = \"127.0.0.1:50051\"\n");
    assert_eq!(p, "the network must have at least one [[site]]");
}

#[test]
fn rule_port_clashes() {
    let p = one_problem(&one_site(COOL_ZONE).replace("50122", "50121"));
    assert_eq!(
        p,
        r#"port 50121 is used by more than one service: site "la-vientiane" inventory, site "la-vientiane" telemetry"#
    );
    let p = one_problem(&one_site(COOL_ZONE).replace("50123", "50051"));
    assert_eq!(
        p,
        r#"port 50051 is used by more than one service: gateway, site "la-vientiane" booking"#
    );
    // Across sites.
    let text = one_site(COOL_ZONE);
    let second = text
        .split_once("[[site]]")
        .map(|(_, s)| format!("[[site]]{s}"))
        .unwrap()
        .replace("la-vientiane", "la-luangprabang")
        .replace("50121", "50191")
        .replace("50122", "50192");
    let p = one_problem(&format!("{text}\n{second}"));
    assert_eq!(
        p,
        r#"port 50123 is used by more than one service: site "la-vientiane" booking, site "la-luangprabang" booking"#
    );
}

#[test]
fn rule_port_zero() {
    let p = one_problem(&one_site(COOL_ZONE).replace("50121", "0"));
    assert_eq!(
        p,
        r#"site "la-vientiane" ports: inventory must be between 1 and 65535, got 0"#
    );
    let p = one_problem(&one_site(COOL_ZONE).replace("127.0.0.1:50051", "127.0.0.1:0"));
    assert_eq!(p, "gateway: listen port must be between 1 and 65535, got 0");
    let p = one_problem(&one_site(COOL_ZONE).replace("127.0.0.1:50051", "localhost"));
    assert_eq!(
        p,
        r#"gateway: listen must be an ip address and port like "127.0.0.1:50051", got "localhost""#
    );
}

#[test]
fn rule_missing_fields_all_reported() {
    let text = "[gateway]\n[[site]]\n[[site.zone]]\n";
    assert_eq!(
        problems(text),
        vec![
            r#"gateway: missing listen (e.g. listen = "127.0.0.1:50051")"#,
            "site 1: missing id",
            "site 1: missing name",
            "site 1: missing location",
            "site 1: missing reached_by",
            r#"site 1: missing time_zone (an IANA name like "Asia/Shanghai")"#,
            "site 1: missing [site.ports] table (with inventory, telemetry and booking)",
            "site 1 zone 1: missing id",
            "site 1 zone 1: missing class (one of FROZEN, CHILLED, PHARMA, COOL, AMBIENT)",
            "site 1 zone 1: missing min_celsius",
            "site 1 zone 1: missing max_celsius",
            "site 1 zone 1: missing capacity_pallets",
        ]
    );
    assert_eq!(
        problems(""),
        vec![
            r#"missing [gateway] table (with listen = "127.0.0.1:50051")"#,
            "the network must have at least one [[site]]",
        ]
    );
}

#[test]
fn names_round_trip() {
    for class in TemperatureClass::ALL {
        assert_eq!(class.as_str().parse::<TemperatureClass>(), Ok(class));
        assert_eq!(class.to_string(), class.as_str());
    }
    let err = "frozen".parse::<TemperatureClass>().unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown temperature class "frozen", expected one of FROZEN, CHILLED, PHARMA, COOL, AMBIENT"#
    );
    for kind in ServiceKind::ALL {
        assert_eq!(kind.as_str().parse::<ServiceKind>(), Ok(kind));
        assert_eq!(kind.is_site_service(), kind != ServiceKind::Gateway);
    }
    assert!("Gateway".parse::<ServiceKind>().is_err());
    assert_eq!(TemperatureClass::Frozen.limits(), (None, Some(-18.0)));
    assert_eq!(TemperatureClass::Chilled.limits(), (Some(0.0), Some(4.0)));
    assert_eq!(TemperatureClass::Pharma.limits(), (Some(2.0), Some(8.0)));
    assert_eq!(TemperatureClass::Cool.limits(), (Some(10.0), Some(15.0)));
    assert_eq!(TemperatureClass::Ambient.limits(), (Some(15.0), Some(25.0)));
    assert!(TemperatureClass::Frozen.admits(-80.0));
    assert!(!TemperatureClass::Frozen.admits(-17.9));
}

proptest! {
    #[test]
    fn parse_never_panics(s in ".*") {
        let _ = NetworkConfig::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_mutated_shipped_file(
        at in 0usize..SHIPPED.len(),
        cut in 0usize..40,
        insert in "[\\[\\]=\"a-z0-9 .\\-\n#]{0,20}",
    ) {
        let mut start = at;
        while !SHIPPED.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + cut).min(SHIPPED.len());
        while !SHIPPED.is_char_boundary(end) {
            end -= 1;
        }
        let text = format!("{}{}{}", &SHIPPED[..start], insert, &SHIPPED[end..]);
        let _ = NetworkConfig::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_any_zone_values(
        class in "[A-Z]{0,8}",
        min in proptest::num::f64::ANY,
        max in proptest::num::f64::ANY,
        capacity in proptest::num::i64::ANY,
        port in proptest::num::i64::ANY,
    ) {
        let zone = format!(
            "id = \"z\"\nclass = \"{class}\"\nmin_celsius = {min:?}\nmax_celsius = {max:?}\ncapacity_pallets = {capacity}"
        );
        let text = one_site(&zone).replace("50122", &port.to_string());
        let _ = NetworkConfig::parse(&text);
    }
}

#[test]
fn rule_console_listen() {
    // Optional: without `[console]` the console listens on 127.0.0.1:8080.
    let net = NetworkConfig::parse(&one_site(COOL_ZONE)).unwrap();
    assert_eq!(net.console.listen, ConsoleConfig::DEFAULT_LISTEN);
    assert_eq!(net.console.port(), 8080);
    let with = |section: &str| {
        one_site(COOL_ZONE).replace("[gateway]", &format!("[console]\n{section}\n\n[gateway]"))
    };
    let net = NetworkConfig::parse(&with("listen = \"0.0.0.0:8088\"")).unwrap();
    assert_eq!(net.console.listen, "0.0.0.0:8088".parse().unwrap());
    assert_eq!(
        one_problem(&with("")),
        r#"console: missing listen (e.g. listen = "127.0.0.1:8080")"#
    );
    assert_eq!(
        one_problem(&with("listen = \"127.0.0.1:0\"")),
        "console: listen port must be between 1 and 65535, got 0"
    );
    assert_eq!(
        one_problem(&with("listen = \"console\"")),
        r#"console: listen must be an ip address and port like "127.0.0.1:8080", got "console""#
    );
    assert_eq!(
        one_problem(&with("listen = \"127.0.0.1:50051\"")),
        "port 50051 is used by more than one service: gateway, console"
    );
    // The shipped file names the console's port.
    let shipped = NetworkConfig::parse(SHIPPED).unwrap();
    assert_eq!(shipped.console.port(), 8080);
}

#[test]
fn rule_gs1_identifiers() {
    // Optional: a site's GLN and the sku table.
    let net = NetworkConfig::parse(&one_site(COOL_ZONE)).unwrap();
    assert_eq!(net.sites[0].gln, None);
    assert!(net.skus.is_empty());

    let with_gln = |gln: &str| {
        one_site(COOL_ZONE).replace(
            "time_zone = \"Asia/Vientiane\"",
            &format!("time_zone = \"Asia/Vientiane\"\ngln = \"{gln}\""),
        )
    };
    let net = NetworkConfig::parse(&with_gln("9506000134352")).unwrap();
    assert_eq!(net.sites[0].gln.as_deref(), Some("9506000134352"));
    assert_eq!(
        one_problem(&with_gln("9506000134353")),
        r#"site "la-vientiane": gln "9506000134353" has check digit 3, expected 2"#
    );
    assert_eq!(
        one_problem(&with_gln("95060001")),
        r#"site "la-vientiane": gln must be 13 digits, got "95060001""#
    );

    let with_skus = |tables: &str| format!("{}\n{tables}", one_site(COOL_ZONE));
    let net = NetworkConfig::parse(&with_skus(
        "[[sku]]\nid = \"kiwi\"\ngtin = \"96385074\"\n[[sku]]\nid = \"rice\"\ngtin = \"09506000134352\"",
    ))
    .unwrap();
    assert_eq!(net.gtin14("kiwi").as_deref(), Some("00000096385074"));
    assert_eq!(net.gtin14("rice").as_deref(), Some("09506000134352"));
    assert_eq!(net.gtin14("mango"), None);
    let mut found = problems(&with_skus(
        "[[sku]]\nid = \"kiwi\"\ngtin = \"96385075\"\n[[sku]]\ngtin = \"96385074\"\n\
         [[sku]]\nid = \"rice\"\n[[sku]]\nid = \"kiwi\"\ngtin = \"96385074\"\n\
         [[sku]]\nid = \"kiwi\"\ngtin = \"96385074\"",
    ));
    found.sort();
    assert_eq!(
        found,
        vec![
            r#"sku "kiwi": gtin "96385075" has check digit 5, expected 4"#.to_string(),
            r#"sku "kiwi": listed more than once"#.to_string(),
            r#"sku "rice": missing gtin"#.to_string(),
            "sku 2: missing id".to_string(),
        ]
    );

    // The shipped file names every site's GLN and the demo's skus.
    let shipped = NetworkConfig::parse(SHIPPED).unwrap();
    assert!(shipped.sites.iter().all(|s| s.gln.is_some()));
    assert!(shipped.gtin14("citrus-navel-mayang").is_some());
}
