//! The network as the rest of the code sees it: the gateway, the sites, their zones, ports
//! and endpoints.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use chrono_tz::Tz;

use crate::parse::parse_network;
use crate::{ConfigErrors, ServiceKind, TemperatureClass};

/// The whole network: the gateway and every site, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// The gateway at the hub.
    pub gateway: GatewayConfig,
    /// The operations console at the hub (`[console]`, optional: 127.0.0.1:8080 by default).
    pub console: ConsoleConfig,
    /// Every site, in file order.
    pub sites: Vec<SiteConfig>,
    /// GS1 identifiers of skus (`[[sku]]`, optional), for traceability exports.
    pub skus: Vec<SkuConfig>,
}

/// A sku's GS1 identity (`[[sku]]` with `id` and `gtin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuConfig {
    /// The sku, as the inventories know it.
    pub id: String,
    /// Its GTIN (8, 12, 13 or 14 digits, check digit verified).
    pub gtin: String,
}

impl NetworkConfig {
    /// The GTIN of `sku`, as 14 digits, when the file gives one.
    pub fn gtin14(&self, sku: &str) -> Option<String> {
        self.skus
            .iter()
            .find(|s| s.id == sku)
            .map(|s| crate::gs1::gtin14(&s.gtin))
    }
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

/// Where the operations console listens: the web pages people open (not gRPC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// The dev listen address, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
}

impl ConsoleConfig {
    /// Where the console listens unless `[console] listen` says otherwise.
    pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

    /// The port of [`ConsoleConfig::listen`].
    pub fn port(&self) -> u16 {
        self.listen.port()
    }
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: Self::DEFAULT_LISTEN,
        }
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
    /// Its GS1 Global Location Number (13 digits, check digit verified), if the file
    /// gives one: traceability exports name the site by it.
    pub gln: Option<String>,
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
        parse_network(text)
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
