//! The harness of the gateway's own tests: the private network ([`net`], shared with the
//! root package's tests against the real site services) with fake site services — the
//! gateway depends on no other service, not even in its tests.
#![allow(dead_code)]

pub mod fake_inventory;
mod fake_telemetry;
mod net;

use coldchain_runtime::host::{ServiceContext, StartError};
use coldchain_runtime::network::ServiceKind;
use coldchain_runtime::server::ServiceSpec;
use tonic::Status;

pub use net::*;

/// The network of the gateway's own tests.
pub type Net = Network<Fakes>;

/// The site services of the gateway's own tests: a fake telemetry that has two alarms
/// ([`fake_telemetry`]) and a fake inventory that records what it is asked to move
/// ([`fake_inventory`]); no other site service runs.
pub enum Fakes {}

impl SiteServices for Fakes {
    fn build(kind: ServiceKind, ctx: &ServiceContext) -> Result<ServiceSpec, StartError> {
        match kind {
            ServiceKind::Telemetry => Ok(fake_telemetry::service(ctx)),
            ServiceKind::Inventory => Ok(fake_inventory::service(ctx)),
            other => panic!("the gateway's own tests have no fake {other}"),
        }
    }
}

/// The field names of an INVALID_ARGUMENT's BadRequest details.
pub fn fields(status: &Status) -> Vec<String> {
    coldchain_testkit::table::bad_request_fields(status)
}
