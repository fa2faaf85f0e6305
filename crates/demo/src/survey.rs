//! Act 1: the gateway lists the network and its health.

use coldchain_proto::network::v1 as network;

use crate::day::Day;
use crate::outcome::DemoError;

/// The network as the gateway sees it.
pub(crate) struct Survey {
    pub(crate) sites: usize,
    pub(crate) services_serving: usize,
    pub(crate) services_total: usize,
}

/// Operations asks the gateway for every site and the health of its services.
pub(crate) async fn network(day: &Day<'_>) -> Result<Survey, DemoError> {
    day.progress.say(&format!(
        "run {}: asking the gateway {} for the network",
        day.run, day.config.gateway
    ));
    let sites = coldchain_ops::gateway_list_sites(&day.gateway, Vec::new())
        .await
        .map_err(|error| DemoError {
            step: "list sites".into(),
            error,
        })?;
    let services_total: usize = sites.iter().map(|s| s.endpoints.len()).sum();
    let services_serving = sites
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.health == network::EndpointHealth::Serving as i32)
        .count();
    day.progress.say(&format!(
        "{} sites, {services_serving}/{services_total} services serving",
        sites.len()
    ));
    Ok(Survey {
        sites: sites.len(),
        services_serving,
        services_total,
    })
}
