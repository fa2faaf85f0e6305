//! Commands answered by the gateway, one module an area: `sites`, `stock`, `space`,
//! `transfer`, `alarms`.

mod alarms;
mod expiring;
mod recall;
mod sites;
mod space;
mod stock;
mod trace;
mod transfers;

use clap::Args;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_runtime::client::Channel;

use super::{CliError, GatewayOpts, connect, connect_as};

pub use alarms::{AlarmsArgs, alarms};
pub use expiring::{ExpiringArgs, expiring};
pub use recall::{RecallCommand, recall};
pub use sites::{SitesArgs, list_sites, sites};
pub use space::{SpaceArgs, space};
pub use stock::{StockArgs, stock};
pub use trace::{TraceArgs, trace};
pub use transfers::{TransferCommand, transfer};

/// The `--as` flag of the gateway's commands: every one of them is an operations task
/// (`sites` and `space` are open to other roles too, so they can be tried as those).
#[derive(Args, Clone, Debug, Default)]
pub struct CallerOpt {
    /// Call as this credential of the keyring, e.g. customer-hunan-citrus-export
    /// [default: operations].
    #[arg(long = "as", value_name = "ID")]
    pub id: Option<String>,
}

/// A client of the gateway, calling as `--as` or operations.
pub fn client(
    opts: &GatewayOpts,
    caller: &CallerOpt,
) -> Result<NetworkServiceClient<Channel>, CliError> {
    let endpoint = opts.endpoint()?;
    let channel = match &caller.id {
        Some(id) => connect_as(&endpoint, id)?,
        None => connect(&endpoint)?,
    };
    Ok(NetworkServiceClient::new(channel))
}

/// Warns on stderr about the sites of a fan-out that did not answer.
fn warn_failures(failures: &[network::SiteError]) {
    for f in failures {
        eprintln!(
            "warning: site {} did not answer: {}: {}",
            f.site_id, f.code, f.message
        );
    }
}
