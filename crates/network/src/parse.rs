//! Reading `network.toml`: raw structs whose fields are all optional (so that missing
//! fields are reported with the rest), then one validation pass collecting every problem.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::problems::{did_you_mean, toml_error_message};
use crate::{
    ConfigErrors, ConsoleConfig, GatewayConfig, NetworkConfig, ServiceKind, SiteConfig,
    SiteEndpoints, SitePorts, SkuConfig, TemperatureClass, ZoneConfig,
};

// ----------------------------------------------------------------------------------------------
// Raw file structs: every field optional, so that missing fields are reported with the rest.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    gateway: Option<RawGateway>,
    console: Option<RawConsole>,
    #[serde(default)]
    site: Vec<RawSite>,
    #[serde(default)]
    sku: Vec<RawSku>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSku {
    id: Option<String>,
    gtin: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    listen: Option<String>,
    endpoint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    id: Option<String>,
    name: Option<String>,
    location: Option<String>,
    reached_by: Option<String>,
    time_zone: Option<String>,
    ports: Option<RawPorts>,
    endpoints: Option<RawEndpoints>,
    gln: Option<String>,
    #[serde(default)]
    zone: Vec<RawZone>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPorts {
    inventory: Option<i64>,
    telemetry: Option<i64>,
    booking: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoints {
    inventory: Option<String>,
    telemetry: Option<String>,
    booking: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    id: Option<String>,
    class: Option<String>,
    min_celsius: Option<f64>,
    max_celsius: Option<f64>,
    capacity_pallets: Option<i64>,
}

/// Why `id` is not a valid site or zone id, if it is not: 1 to 63 characters of a-z, 0-9 and
/// '-', not starting or ending with '-' (a DNS label: ids become compose host names).
pub(crate) fn id_problem(id: &str) -> Option<String> {
    let ok = (1..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    (!ok).then(|| {
        format!(
            "id must be 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-', \
             got {id:?}"
        )
    })
}

/// Parses and validates the text of a network file, reporting every problem at once.
pub(crate) fn parse_network(text: &str) -> Result<NetworkConfig, ConfigErrors> {
    let raw: RawNetwork =
        toml::from_str(text).map_err(|err| ConfigErrors::single(toml_error_message(text, &err)))?;
    validate(raw)
}

fn validate(raw: RawNetwork) -> Result<NetworkConfig, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    // (port, who uses it), for the clash check at the end.
    let mut ports: Vec<(u16, String)> = Vec::new();

    let gateway = validate_gateway(raw.gateway, &mut errors, &mut ports);
    let console = validate_console(raw.console, &mut errors, &mut ports);

    if raw.site.is_empty() {
        errors.push("the network must have at least one [[site]]");
    }
    let mut first_index_of_site: HashMap<String, usize> = HashMap::new();
    let mut sites = Vec::with_capacity(raw.site.len());
    for (index, site) in raw.site.into_iter().enumerate() {
        let number = index + 1;
        if let Some(id) = &site.id {
            if let Some(first) = first_index_of_site.get(id) {
                errors.push(format!(
                    "duplicate site id {id:?} (sites {first} and {number})"
                ));
            } else {
                first_index_of_site.insert(id.clone(), number);
            }
        }
        if let Some(site) = validate_site(site, number, &mut errors, &mut ports) {
            sites.push(site);
        }
    }

    let skus = validate_skus(raw.sku, &mut errors);

    let mut users: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for (port, who) in ports {
        users.entry(port).or_default().push(who);
    }
    for (port, who) in users {
        if who.len() > 1 {
            errors.push(format!(
                "port {port} is used by more than one service: {}",
                who.join(", ")
            ));
        }
    }

    match gateway {
        Some(gateway) if errors.is_empty() => Ok(NetworkConfig {
            gateway,
            console,
            sites,
            skus,
        }),
        _ => Err(errors),
    }
}

fn validate_gateway(
    raw: Option<RawGateway>,
    errors: &mut ConfigErrors,
    ports: &mut Vec<(u16, String)>,
) -> Option<GatewayConfig> {
    let Some(raw) = raw else {
        errors.push("missing [gateway] table (with listen = \"127.0.0.1:50051\")");
        return None;
    };
    if let Some(endpoint) = &raw.endpoint
        && let Some(problem) = endpoint_problem(endpoint)
    {
        errors.push(format!("gateway: endpoint {problem}"));
    }
    let Some(listen) = raw.listen else {
        errors.push("gateway: missing listen (e.g. listen = \"127.0.0.1:50051\")");
        return None;
    };
    let Ok(addr) = listen.trim().parse::<SocketAddr>() else {
        errors.push(format!(
            "gateway: listen must be an ip address and port like \"127.0.0.1:50051\", got {listen:?}"
        ));
        return None;
    };
    if addr.port() == 0 {
        errors.push("gateway: listen port must be between 1 and 65535, got 0");
    } else {
        ports.push((addr.port(), "gateway".to_owned()));
    }
    Some(GatewayConfig {
        listen: addr,
        endpoint: raw.endpoint,
    })
}

/// The console's section: optional as a whole, and then `listen` is required.
fn validate_console(
    raw: Option<RawConsole>,
    errors: &mut ConfigErrors,
    ports: &mut Vec<(u16, String)>,
) -> ConsoleConfig {
    let mut console = ConsoleConfig::default();
    match raw.map(|raw| raw.listen) {
        None => {}
        Some(None) => errors.push("console: missing listen (e.g. listen = \"127.0.0.1:8080\")"),
        Some(Some(listen)) => match listen.trim().parse::<SocketAddr>() {
            Ok(addr) if addr.port() == 0 => {
                errors.push("console: listen port must be between 1 and 65535, got 0");
            }
            Ok(addr) => console.listen = addr,
            Err(_) => errors.push(format!(
                "console: listen must be an ip address and port like \"127.0.0.1:8080\", got {listen:?}"
            )),
        },
    }
    ports.push((console.port(), "console".to_owned()));
    console
}

/// Why an endpoint override is unusable, if it is.
fn endpoint_problem(endpoint: &str) -> Option<String> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains(char::is_whitespace) => None,
        _ => Some(format!(
            "must be an http:// or https:// url like \"http://inventory-la-vientiane:50121\", got {endpoint:?}"
        )),
    }
}

fn validate_site(
    raw: RawSite,
    number: usize,
    errors: &mut ConfigErrors,
    ports: &mut Vec<(u16, String)>,
) -> Option<SiteConfig> {
    let before = errors.len();
    let label = match &raw.id {
        Some(id) => format!("site {id:?}"),
        None => format!("site {number}"),
    };

    match &raw.id {
        None => errors.push(format!("{label}: missing id")),
        Some(id) => {
            if let Some(problem) = id_problem(id) {
                errors.push(format!("{label}: {problem}"));
            }
        }
    }

    let mut text_field = |value: Option<String>, field: &str| -> String {
        match value {
            None => {
                errors.push(format!("{label}: missing {field}"));
                String::new()
            }
            Some(v) if v.trim().is_empty() => {
                errors.push(format!("{label}: {field} must not be empty"));
                v
            }
            Some(v) => v,
        }
    };
    let name = text_field(raw.name, "name");
    let location = text_field(raw.location, "location");
    let reached_by = text_field(raw.reached_by, "reached_by");

    let time_zone = match &raw.time_zone {
        None => {
            errors.push(format!(
                "{label}: missing time_zone (an IANA name like \"Asia/Shanghai\")"
            ));
            None
        }
        Some(tz) => match tz.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                errors.push(format!(
                    "{label}: time_zone must be an IANA time zone name like \"Asia/Shanghai\", got {tz:?}"
                ));
                None
            }
        },
    };

    let site_ports = match raw.ports {
        None => {
            errors.push(format!(
                "{label}: missing [site.ports] table (with inventory, telemetry and booking)"
            ));
            None
        }
        Some(p) => {
            let mut port = |value: Option<i64>, kind: ServiceKind| -> u16 {
                match value {
                    None => {
                        errors.push(format!("{label} ports: missing {kind}"));
                        0
                    }
                    Some(v) => match u16::try_from(v) {
                        Ok(port) if port != 0 => {
                            ports.push((port, format!("{label} {kind}")));
                            port
                        }
                        _ => {
                            errors.push(format!(
                                "{label} ports: {kind} must be between 1 and 65535, got {v}"
                            ));
                            0
                        }
                    },
                }
            };
            Some(SitePorts {
                inventory: port(p.inventory, ServiceKind::Inventory),
                telemetry: port(p.telemetry, ServiceKind::Telemetry),
                booking: port(p.booking, ServiceKind::Booking),
            })
        }
    };

    let endpoints = match raw.endpoints {
        None => SiteEndpoints::default(),
        Some(e) => {
            for (value, kind) in [
                (&e.inventory, ServiceKind::Inventory),
                (&e.telemetry, ServiceKind::Telemetry),
                (&e.booking, ServiceKind::Booking),
            ] {
                if let Some(problem) = value.as_deref().and_then(endpoint_problem) {
                    errors.push(format!("{label} endpoints: {kind} {problem}"));
                }
            }
            SiteEndpoints {
                inventory: e.inventory,
                telemetry: e.telemetry,
                booking: e.booking,
            }
        }
    };

    if raw.zone.is_empty() {
        errors.push(format!("{label}: must have at least one [[site.zone]]"));
    }
    let mut first_index_of_zone: HashMap<String, usize> = HashMap::new();
    let mut zones = Vec::with_capacity(raw.zone.len());
    for (index, zone) in raw.zone.into_iter().enumerate() {
        let zone_number = index + 1;
        if let Some(id) = &zone.id {
            if let Some(first) = first_index_of_zone.get(id) {
                errors.push(format!(
                    "{label}: duplicate zone id {id:?} (zones {first} and {zone_number})"
                ));
            } else {
                first_index_of_zone.insert(id.clone(), zone_number);
            }
        }
        if let Some(zone) = validate_zone(zone, &label, zone_number, errors) {
            zones.push(zone);
        }
    }

    if let Some(problem) = raw.gln.as_deref().and_then(crate::gs1::gln_problem) {
        errors.push(format!("{label}: {problem}"));
    }

    if errors.len() > before {
        return None;
    }
    Some(SiteConfig {
        id: raw.id?,
        name,
        location,
        reached_by,
        time_zone: time_zone?,
        ports: site_ports?,
        endpoints,
        zones,
        gln: raw.gln,
    })
}

/// The `[[sku]]` tables: each an id and a valid GTIN, each sku once.
fn validate_skus(raw: Vec<RawSku>, errors: &mut ConfigErrors) -> Vec<SkuConfig> {
    let mut skus: Vec<SkuConfig> = Vec::with_capacity(raw.len());
    for (index, sku) in raw.into_iter().enumerate() {
        let label = match &sku.id {
            Some(id) => format!("sku {id:?}"),
            None => format!("sku {}", index + 1),
        };
        let before = errors.len();
        match &sku.id {
            None => errors.push(format!("{label}: missing id")),
            Some(id) if skus.iter().any(|s| &s.id == id) => {
                errors.push(format!("{label}: listed more than once"));
            }
            Some(_) => {}
        }
        match &sku.gtin {
            None => errors.push(format!("{label}: missing gtin")),
            Some(gtin) => {
                if let Some(problem) = crate::gs1::gtin_problem(gtin) {
                    errors.push(format!("{label}: {problem}"));
                }
            }
        }
        if errors.len() == before
            && let (Some(id), Some(gtin)) = (sku.id, sku.gtin)
        {
            skus.push(SkuConfig { id, gtin });
        }
    }
    skus
}

fn validate_zone(
    raw: RawZone,
    site_label: &str,
    number: usize,
    errors: &mut ConfigErrors,
) -> Option<ZoneConfig> {
    let before = errors.len();
    let label = match &raw.id {
        Some(id) => format!("{site_label} zone {id:?}"),
        None => format!("{site_label} zone {number}"),
    };
    match &raw.id {
        None => errors.push(format!("{label}: missing id")),
        Some(id) => {
            if let Some(problem) = id_problem(id) {
                errors.push(format!("{label}: {problem}"));
            }
        }
    }

    let class = match &raw.class {
        None => {
            errors.push(format!(
                "{label}: missing class (one of {})",
                TemperatureClass::NAMES.join(", ")
            ));
            None
        }
        Some(class) => match class.parse::<TemperatureClass>() {
            Ok(class) => Some(class),
            Err(_) => {
                errors.push(format!(
                    "{label}: class must be one of {}, got {class:?}{}",
                    TemperatureClass::NAMES.join(", "),
                    did_you_mean(&class.to_ascii_uppercase(), TemperatureClass::NAMES)
                ));
                None
            }
        },
    };

    let mut celsius = |value: Option<f64>, field: &str| -> Option<f64> {
        match value {
            None => {
                errors.push(format!("{label}: missing {field}"));
                None
            }
            Some(v) if !v.is_finite() => {
                errors.push(format!("{label}: {field} must be a finite number, got {v}"));
                None
            }
            Some(v) => Some(v),
        }
    };
    let min = celsius(raw.min_celsius, "min_celsius");
    let max = celsius(raw.max_celsius, "max_celsius");

    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        errors.push(format!(
            "{label}: min_celsius must not be above max_celsius ({max}), got {min}"
        ));
    }
    if let Some(class) = class {
        let (low, high) = class.limits();
        for (value, field) in [(min, "min_celsius"), (max, "max_celsius")] {
            let Some(value) = value else { continue };
            if let Some(low) = low.filter(|low| value < *low) {
                errors.push(format!(
                    "{label}: {field} must be at least {low} for class {class}, got {value}"
                ));
            }
            if let Some(high) = high.filter(|high| value > *high) {
                errors.push(format!(
                    "{label}: {field} must be at most {high} for class {class}, got {value}"
                ));
            }
        }
    }

    let capacity = match raw.capacity_pallets {
        None => {
            errors.push(format!("{label}: missing capacity_pallets"));
            None
        }
        Some(c) if c < 1 => {
            errors.push(format!(
                "{label}: capacity_pallets must be at least 1, got {c}"
            ));
            None
        }
        Some(c) => match u32::try_from(c) {
            Ok(c) => Some(c),
            Err(_) => {
                errors.push(format!(
                    "{label}: capacity_pallets must be at most {}, got {c}",
                    u32::MAX
                ));
                None
            }
        },
    };

    if errors.len() > before {
        return None;
    }
    Some(ZoneConfig {
        id: raw.id?,
        class: class?,
        min_celsius: min?,
        max_celsius: max?,
        capacity_pallets: capacity?,
    })
}
