//! The fixed names of the network: temperature classes and kinds of service.

use std::fmt;
use std::str::FromStr;

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

    pub(crate) const NAMES: &'static [&'static str] =
        &["FROZEN", "CHILLED", "PHARMA", "COOL", "AMBIENT"];

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

    pub(crate) const NAMES: &'static [&'static str] =
        &["inventory", "telemetry", "booking", "gateway"];

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
