#![forbid(unsafe_code)]
//! The network description, `deploy/network.toml`: the gateway, every site, its temperature
//! zones and the ports of its services.
//!
//! The file is read with serde (`deny_unknown_fields`) into raw structs whose fields are all
//! optional, then validated as a whole: every problem — duplicate ids, a bad id, an unknown
//! temperature class or time zone, limits outside the class, zero capacity, a site with no
//! zones, port 0, port clashes, missing fields — goes into one [`ConfigErrors`].
//!
//! Pure data and its rules: no I/O but reading the file, no clock, no gRPC. Domains of the
//! services use these words (temperature classes, sites, zones) without depending on the
//! runtime.

pub mod gs1;
mod model;
mod names;
mod parse;
mod problems;

pub use model::{
    ConsoleConfig, GatewayConfig, NetworkConfig, SiteConfig, SiteEndpoints, SitePorts, SkuConfig,
    ZoneConfig,
};
pub use names::{ParseNameError, ServiceKind, TemperatureClass};
pub use problems::{ConfigErrors, did_you_mean, toml_error_message};

#[cfg(test)]
mod tests;
