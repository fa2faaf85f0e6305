//! A lot's genealogy across the network: the walk of `domain::genealogy` fed with the
//! sites' answers. Level by level (breadth-first), the transformations the lots' ledger
//! entries name are read at their sites (GetTransformation) concurrently, then the lots
//! found are read at every site concurrently: their whole trace for TraceLot, their
//! entries only for a recall. A site that does not answer leaves its part out and is named
//! in the failures; the walk stops at the deadline (and says it stopped short).

use std::time::{Duration, Instant};

use coldchain_network::ServiceKind;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_runtime::ServiceError;

use super::GatewayApp;
use super::sites::{timed, within};
use crate::domain::SiteFailure;
use crate::domain::genealogy::{
    Direction, Genealogy, Link, LotRef, MAX_LINKED_LOTS, ToRead, TransformationEntry,
    TransformationFacts,
};
use crate::wire::requests::TraceQuery;
use crate::wire::trace as render;

/// What the walk reads of each lot it links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Its own trace (TraceLot's `related`).
    Traces,
    /// Its ledger entries only: a recall needs the lots, not their history.
    EntriesOnly,
}

/// What the walk found.
#[derive(Debug, Default)]
pub struct Walked {
    /// The links, nearest first.
    pub links: Vec<Link>,
    /// The lots linked, nearest first.
    pub lots: Vec<LotRef>,
    /// More lots were linked than one walk follows, or the deadline came first.
    pub truncated: bool,
    /// With [`Reading::Traces`]: each linked lot's own trace, in the order of `lots`.
    pub related: Vec<pb::TraceLotResponse>,
    /// The sites that did not answer.
    pub failures: Vec<SiteFailure>,
}

impl GatewayApp {
    /// Walks the genealogy of `roots` (each with the transformation entries of its ledger)
    /// in `directions`, until nothing is left to read or `until` passes.
    pub(super) async fn walk_genealogy(
        &self,
        roots: Vec<(LotRef, Vec<TransformationEntry>)>,
        directions: &[Direction],
        reading: Reading,
        until: Instant,
    ) -> Result<Walked, ServiceError> {
        let root_lots: Vec<LotRef> = roots.iter().map(|(lot, _)| lot.clone()).collect();
        let mut walk = Genealogy::new(&root_lots, directions, MAX_LINKED_LOTS);
        let mut walked = Walked::default();
        let mut frontier = roots;
        let mut out_of_time = false;
        loop {
            let to_read: Vec<ToRead> = frontier
                .iter()
                .flat_map(|(lot, entries)| walk.transformations_of(lot, entries))
                .collect();
            if to_read.is_empty() {
                break;
            }
            let Some(left) = remaining(until) else {
                out_of_time = true;
                break;
            };
            let records = futures::future::join_all(
                to_read
                    .iter()
                    .map(|read| self.read_transformation(read, left)),
            )
            .await;
            let mut found = Vec::new();
            for (read, record) in to_read.iter().zip(records) {
                match record {
                    Ok(facts) => found.extend(walk.add(read, &facts)),
                    Err(status) => walked.failures.push(self.sites.site_error(
                        &read.transformation.site_id,
                        ServiceKind::Inventory,
                        &status,
                    )),
                }
            }
            if found.is_empty() {
                break;
            }
            let Some(left) = remaining(until) else {
                out_of_time = true;
                break;
            };
            let lots = futures::future::join_all(
                found
                    .iter()
                    .map(|lot| self.read_linked_lot(lot, reading, left)),
            )
            .await;
            frontier = Vec::with_capacity(found.len());
            for (lot, read) in found.into_iter().zip(lots) {
                let (trace, failures) = read?;
                walked.failures.extend(failures);
                frontier.push((lot, render::transformation_entries(&trace)));
                if reading == Reading::Traces {
                    walked.related.push(trace);
                }
            }
        }
        walked.lots = walk.linked().iter().map(|l| l.lot.clone()).collect();
        let (links, truncated) = walk.into_links();
        walked.links = links;
        walked.truncated = truncated || out_of_time;
        Ok(walked)
    }

    /// A transformation at its site.
    async fn read_transformation(
        &self,
        read: &ToRead,
        deadline: Duration,
    ) -> Result<TransformationFacts, tonic::Status> {
        let site_id = &read.transformation.site_id;
        let mut client = self.sites.inventory(site_id)?;
        let request = inv::GetTransformationRequest {
            transformation_id: read.transformation.transformation_id.clone(),
        };
        let record = within(
            deadline,
            client.get_transformation(timed(request, deadline)),
        )
        .await?;
        Ok(render::transformation_facts(
            site_id,
            &read.transformation.transformation_id,
            &record,
        ))
    }

    /// A linked lot at every site: its own trace, or only its entries (as the events of an
    /// otherwise empty trace), and the sites that did not answer.
    async fn read_linked_lot(
        &self,
        lot: &LotRef,
        reading: Reading,
        deadline: Duration,
    ) -> Result<(pb::TraceLotResponse, Vec<SiteFailure>), ServiceError> {
        let query = TraceQuery {
            sku: lot.sku.clone(),
            lot_id: lot.lot_id.clone(),
            site_ids: Vec::new(),
        };
        if reading == Reading::Traces {
            // The related trace names its own unanswered sites in its errors.
            return Ok((self.trace_one(&query, deadline).await?, Vec::new()));
        }
        let parts = futures::future::join_all(self.network().sites.iter().map(|site| {
            let query = &query;
            async move { (site, self.site_part(site, query, deadline).await) }
        }))
        .await;
        let mut trace = pb::TraceLotResponse {
            sku: lot.sku.clone(),
            lot_id: lot.lot_id.clone(),
            ..Default::default()
        };
        let mut failures = Vec::new();
        for (site, part) in parts {
            match part {
                Ok(part) => trace.events.extend(
                    part.entries
                        .into_iter()
                        .map(|entry| render::entry_event(&site.id, entry)),
                ),
                Err(status) => {
                    failures.push(
                        self.sites
                            .site_error(&site.id, ServiceKind::Inventory, &status),
                    );
                }
            }
        }
        Ok((trace, failures))
    }
}

/// The time left until `until`; `None` once it has passed.
fn remaining(until: Instant) -> Option<Duration> {
    let left = until.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}

impl GatewayApp {
    /// The transformations `lot`'s entries name, at every site, and the sites that did not
    /// answer (they name none).
    pub(super) async fn transformation_entries_of(
        &self,
        lot: &LotRef,
        deadline: Duration,
    ) -> (Vec<TransformationEntry>, Vec<SiteFailure>) {
        match self
            .read_linked_lot(lot, Reading::EntriesOnly, deadline)
            .await
        {
            Ok((trace, failures)) => (render::transformation_entries(&trace), failures),
            // Entries only: the read makes no call that fails as a whole.
            Err(_) => (Vec::new(), Vec::new()),
        }
    }
}
