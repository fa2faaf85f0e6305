//! The gateway's domain series (`coldchain_runtime::observe::domain`): transfers not
//! finished per state, and whether each site service answers a health probe.

use coldchain_network::ServiceKind;
use coldchain_proto::network::v1 as pb;
use coldchain_runtime::observe::domain::{SITE_REACHABLE, TRANSFERS};
use coldchain_runtime::observe::sampler::Sample;
use futures::future::join_all;

use super::GatewayApp;
use super::sites::probe;
use crate::domain::TransferState;

impl GatewayApp {
    /// Transfers requested, in transit and receiving (the store's pending index: finished
    /// transfers are not counted), and 1/0 per site service for a SERVING health probe,
    /// all probed at once within the health deadline.
    pub async fn sample(&self) -> Result<Sample, String> {
        let mut sample = Sample::default();
        for state in ["requested", "in_transit", "receiving"] {
            sample.set(TRANSFERS, &[("state", state)], 0.0);
        }
        for transfer_id in self.store.pending().map_err(|e| e.to_string())? {
            let Some(transfer) = self.store.get(&transfer_id).map_err(|e| e.to_string())? else {
                continue;
            };
            let state = match transfer.state {
                TransferState::Requested => "requested",
                TransferState::InTransit => "in_transit",
                TransferState::Receiving => "receiving",
                TransferState::Completed | TransferState::Failed => continue,
            };
            sample.add(TRANSFERS, &[("state", state)], 1.0);
        }
        let targets: Vec<(String, ServiceKind)> = self
            .network()
            .sites
            .iter()
            .flat_map(|site| ServiceKind::SITE_SERVICES.map(|kind| (site.id.clone(), kind)))
            .collect();
        let deadline = self.options.health_deadline;
        let probes = join_all(
            targets
                .iter()
                .map(|(site, kind)| probe(&self.sites, site, *kind, deadline)),
        )
        .await;
        for ((site, kind), answer) in targets.iter().zip(probes) {
            let serving = answer.health == pb::EndpointHealth::Serving;
            sample.set(
                SITE_REACHABLE,
                &[("target_site", site), ("target_service", kind.as_str())],
                if serving { 1.0 } else { 0.0 },
            );
        }
        Ok(sample)
    }
}
