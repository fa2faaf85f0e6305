//! The network description, `deploy/network.toml`: the gateway, every site, its temperature
//! zones and the ports of its services.
//!
//! The file is read with serde (`deny_unknown_fields`) into raw structs whose fields are all
//! optional, then validated as a whole: every problem — duplicate ids, a bad id, an unknown
//! temperature class or time zone, limits outside the class, zero capacity, a site with no
//! zones, port 0, port clashes, missing fields — goes into one [`ConfigErrors`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::str::FromStr;

use chrono_tz::Tz;
use serde::Deserialize;

pub use crate::config::ConfigErrors;
use crate::config::{did_you_mean, toml_error_message};

/// A name that is not one of the known ones (a temperature class, a service kind, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseNameError {
    /// What was being parsed, e.g. `temperature class`.
    pub what: &'static str,
    /// The text that was given.
    pub value: String,
    /// The accepted names.
    pub expected: &'static [&'static str],
}

impl fmt::Display for ParseNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?}, expected one of {}",
            self.what,
            self.value,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for ParseNameError {}

/// A temperature class of storage (the names are fixed contracts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TemperatureClass {
    /// ≤ −18 °C.
    Frozen,
    /// 0 to 4 °C.
    Chilled,
    /// 2 to 8 °C (medicines, vaccines).
    Pharma,
    /// 10 to 15 °C (bananas at 13–14 °C).
    Cool,
    /// 15 to 25 °C.
    Ambient,
}

impl TemperatureClass {
    /// Every class, coldest first.
    pub const ALL: [TemperatureClass; 5] = [
        TemperatureClass::Frozen,
        TemperatureClass::Chilled,
        TemperatureClass::Pharma,
        TemperatureClass::Cool,
        TemperatureClass::Ambient,
    ];

    const NAMES: &'static [&'static str] = &["FROZEN", "CHILLED", "PHARMA", "COOL", "AMBIENT"];

    /// The fixed name: `FROZEN`, `CHILLED`, `PHARMA`, `COOL` or `AMBIENT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TemperatureClass::Frozen => "FROZEN",
            TemperatureClass::Chilled => "CHILLED",
            TemperatureClass::Pharma => "PHARMA",
            TemperatureClass::Cool => "COOL",
            TemperatureClass::Ambient => "AMBIENT",
        }
    }

    /// The class's limits in °C, `(lowest, highest)`, inclusive; `None` is unbounded
    /// (FROZEN has no lower limit).
    pub const fn limits(self) -> (Option<f64>, Option<f64>) {
        match self {
            TemperatureClass::Frozen => (None, Some(-18.0)),
            TemperatureClass::Chilled => (Some(0.0), Some(4.0)),
            TemperatureClass::Pharma => (Some(2.0), Some(8.0)),
            TemperatureClass::Cool => (Some(10.0), Some(15.0)),
            TemperatureClass::Ambient => (Some(15.0), Some(25.0)),
        }
    }

    /// True when `celsius` lies within the class's limits.
    pub fn admits(self, celsius: f64) -> bool {
        let (low, high) = self.limits();
        low.is_none_or(|l| celsius >= l) && high.is_none_or(|h| celsius <= h)
    }
}

impl fmt::Display for TemperatureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TemperatureClass {
    type Err = ParseNameError;

    /// Accepts exactly the fixed upper-case names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TemperatureClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| ParseNameError {
                what: "temperature class",
                value: s.to_owned(),
                expected: TemperatureClass::NAMES,
            })
    }
}

/// One of the services of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    /// `coldchain.inventory.v1.InventoryService`, one per site.
    Inventory,
    /// `coldchain.telemetry.v1.TelemetryService`, one per site.
    Telemetry,
    /// `coldchain.booking.v1.BookingService`, one per site.
    Booking,
    /// `coldchain.network.v1.NetworkService`, one for the whole network.
    Gateway,
}

impl ServiceKind {
    /// Every kind.
    pub const ALL: [ServiceKind; 4] = [
        ServiceKind::Inventory,
        ServiceKind::Telemetry,
        ServiceKind::Booking,
        ServiceKind::Gateway,
    ];

    /// The kinds every site runs.
    pub const SITE_SERVICES: [ServiceKind; 3] = [
        ServiceKind::Inventory,
        ServiceKind::Telemetry,
        ServiceKind::Booking,
    ];

    const NAMES: &'static [&'static str] = &["inventory", "telemetry", "booking", "gateway"];

    /// `inventory`, `telemetry`, `booking` or `gateway` (also the directory name of its data).
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Inventory => "inventory",
            ServiceKind::Telemetry => "telemetry",
            ServiceKind::Booking => "booking",
            ServiceKind::Gateway => "gateway",
        }
    }

    /// True for the services every site runs (all but the gateway).
    pub const fn is_site_service(self) -> bool {
        !matches!(self, ServiceKind::Gateway)
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceKind {
    type Err = ParseNameError;

    /// Accepts the lower-case names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseNameError {
                what: "service",
                value: s.to_owned(),
                expected: ServiceKind::NAMES,
            })
    }
}

/// The whole network: the gateway and every site, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// The gateway at the hub.
    pub gateway: GatewayConfig,
    /// Every site, in file order.
    pub sites: Vec<SiteConfig>,
}

/// Where the gateway listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The dev listen address, e.g. `127.0.0.1:50051`.
    pub listen: SocketAddr,
    /// How clients reach it, when not `http://<listen>` (compose: `http://gateway:50051`).
    pub endpoint: Option<String>,
}

impl GatewayConfig {
    /// The port of [`GatewayConfig::listen`].
    pub fn port(&self) -> u16 {
        self.listen.port()
    }

    /// The endpoint override, or `http://<listen>` (an unspecified listen IP such as 0.0.0.0
    /// becomes 127.0.0.1).
    pub fn endpoint(&self) -> String {
        if let Some(endpoint) = &self.endpoint {
            return endpoint.clone();
        }
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        format!("http://{addr}")
    }
}

/// One site: a warehouse or the park.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteConfig {
    /// The fixed site id, e.g. `la-vientiane`.
    pub id: String,
    /// A display name.
    pub name: String,
    /// Where it is, e.g. `Vientiane, Laos`.
    pub location: String,
    /// How goods reach it, e.g. `China–Laos railway`.
    pub reached_by: String,
    /// Its IANA time zone: booking dates, "end of day" and expiry dates are local dates here.
    pub time_zone: Tz,
    /// The dev ports of its services.
    pub ports: SitePorts,
    /// Endpoint overrides (compose); see [`SiteConfig::endpoint`].
    pub endpoints: SiteEndpoints,
    /// Its temperature zones, in file order (at least one).
    pub zones: Vec<ZoneConfig>,
}

impl SiteConfig {
    /// The zone with this id.
    pub fn zone(&self, id: &str) -> Option<&ZoneConfig> {
        self.zones.iter().find(|z| z.id == id)
    }

    /// The zones of one temperature class.
    pub fn zones_of_class(&self, class: TemperatureClass) -> impl Iterator<Item = &ZoneConfig> {
        self.zones.iter().filter(move |z| z.class == class)
    }

    /// True when the site has at least one zone of this class.
    pub fn has_class(&self, class: TemperatureClass) -> bool {
        self.zones_of_class(class).next().is_some()
    }

    /// The total pallet positions of one class.
    pub fn capacity_of_class(&self, class: TemperatureClass) -> u64 {
        self.zones_of_class(class)
            .map(|z| u64::from(z.capacity_pallets))
            .sum()
    }

    /// The dev port of a site service; `None` for the gateway.
    pub fn port(&self, kind: ServiceKind) -> Option<u16> {
        self.ports.get(kind)
    }

    /// How clients reach a site service: the `[site.endpoints]` override, or
    /// `http://127.0.0.1:<port>`. `None` for [`ServiceKind::Gateway`], which is not a site
    /// service (see [`GatewayConfig::endpoint`]).
    pub fn endpoint(&self, kind: ServiceKind) -> Option<String> {
        let port = self.ports.get(kind)?;
        Some(
            self.endpoints
                .get(kind)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("http://127.0.0.1:{port}")),
        )
    }
}

/// The dev ports of a site's three services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SitePorts {
    /// The inventory service.
    pub inventory: u16,
    /// The telemetry service.
    pub telemetry: u16,
    /// The booking service.
    pub booking: u16,
}

impl SitePorts {
    /// The port of a site service; `None` for the gateway.
    pub fn get(&self, kind: ServiceKind) -> Option<u16> {
        match kind {
            ServiceKind::Inventory => Some(self.inventory),
            ServiceKind::Telemetry => Some(self.telemetry),
            ServiceKind::Booking => Some(self.booking),
            ServiceKind::Gateway => None,
        }
    }
}

/// Per-service endpoint overrides of a site (`[site.endpoints]`), e.g.
/// `inventory = "http://inventory-la-vientiane:50121"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteEndpoints {
    /// The inventory service.
    pub inventory: Option<String>,
    /// The telemetry service.
    pub telemetry: Option<String>,
    /// The booking service.
    pub booking: Option<String>,
}

impl SiteEndpoints {
    /// The override for a site service, if any.
    pub fn get(&self, kind: ServiceKind) -> Option<&str> {
        match kind {
            ServiceKind::Inventory => self.inventory.as_deref(),
            ServiceKind::Telemetry => self.telemetry.as_deref(),
            ServiceKind::Booking => self.booking.as_deref(),
            ServiceKind::Gateway => None,
        }
    }
}

/// A temperature zone of a site.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConfig {
    /// Unique within the site, e.g. `frozen-a`.
    pub id: String,
    /// Its temperature class.
    pub class: TemperatureClass,
    /// The lowest allowed temperature, °C (within the class's limits).
    pub min_celsius: f64,
    /// The highest allowed temperature, °C (within the class's limits, ≥ min).
    pub max_celsius: f64,
    /// Pallet positions, at least 1.
    pub capacity_pallets: u32,
}

impl ZoneConfig {
    /// True when `celsius` lies within the zone's limits.
    pub fn admits(&self, celsius: f64) -> bool {
        celsius >= self.min_celsius && celsius <= self.max_celsius
    }
}

impl NetworkConfig {
    /// Reads and validates a network file. Problems are prefixed with the path.
    pub fn load(path: impl AsRef<Path>) -> Result<NetworkConfig, ConfigErrors> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| {
            ConfigErrors::single(format!("cannot read network file {shown:?}: {err}"))
        })?;
        NetworkConfig::parse(&text).map_err(|errors| ConfigErrors {
            problems: errors
                .problems
                .into_iter()
                .map(|p| format!("{shown}: {p}"))
                .collect(),
        })
    }

    /// Parses and validates the text of a network file, reporting every problem at once.
    pub fn parse(text: &str) -> Result<NetworkConfig, ConfigErrors> {
        let raw: RawNetwork = toml::from_str(text)
            .map_err(|err| ConfigErrors::single(toml_error_message(text, &err)))?;
        validate(raw)
    }

    /// The site with this id.
    pub fn site(&self, id: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.id == id)
    }

    /// Every site id, in file order.
    pub fn site_ids(&self) -> impl Iterator<Item = &str> {
        self.sites.iter().map(|s| s.id.as_str())
    }

    /// How clients reach the gateway.
    pub fn gateway_endpoint(&self) -> String {
        self.gateway.endpoint()
    }

    /// How clients reach a service: a site service of `site`, or the gateway (whatever
    /// `site` is). `None` for an unknown site.
    pub fn endpoint(&self, site: &str, kind: ServiceKind) -> Option<String> {
        match kind {
            ServiceKind::Gateway => Some(self.gateway.endpoint()),
            _ => self.site(site)?.endpoint(kind),
        }
    }
}

// ----------------------------------------------------------------------------------------------
// Raw file structs: every field optional, so that missing fields are reported with the rest.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    gateway: Option<RawGateway>,
    #[serde(default)]
    site: Vec<RawSite>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    listen: Option<String>,
    endpoint: Option<String>,
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
fn id_problem(id: &str) -> Option<String> {
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

fn validate(raw: RawNetwork) -> Result<NetworkConfig, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    // (port, who uses it), for the clash check at the end.
    let mut ports: Vec<(u16, String)> = Vec::new();

    let gateway = validate_gateway(raw.gateway, &mut errors, &mut ports);

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
        Some(gateway) if errors.is_empty() => Ok(NetworkConfig { gateway, sites }),
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
    })
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

#[cfg(test)]
mod tests {
    use super::*;
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
}
