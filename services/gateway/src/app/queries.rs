//! The fan-out queries: every selected site asked concurrently, each within the per-site
//! deadline; a site that is down or slow shows up in the answer's failures (or, for
//! ListSites, as an UNREACHABLE endpoint) and never fails or stalls the whole answer.

use std::time::Duration;

use coldchain_network::ServiceKind;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_runtime::ServiceError;

use super::GatewayApp;
use super::sites::{self, timed, within};
use crate::domain::{self, SiteStock, SpaceAnswer, SpaceQuery, StockAnswer};
use crate::error;
use crate::store::TransferPage;
use crate::wire::requests::{SitesQuery, StockQuery, TransfersQuery};
use crate::wire::sites::{availability_request, days_free, levels, stock_request};

/// A page of ListSites: the sites with their services' health.
pub struct SitesPage {
    /// The sites of the page, each with its endpoints.
    pub sites: Vec<pb::Site>,
    /// The position of the next page's first site, when there is one.
    pub next: Option<u32>,
}

impl GatewayApp {
    /// ListSites: the page's sites, every service health-checked concurrently.
    pub async fn list_sites(&self, query: &SitesQuery) -> Result<SitesPage, ServiceError> {
        let selected = domain::select_sites(self.network(), &query.site_ids)?;
        let page: Vec<_> = selected
            .iter()
            .skip(query.start)
            .take(query.size)
            .map(|(_, site)| site)
            .collect();
        let end = query.start + page.len();
        let deadline = self.options.health_deadline;
        let sites = &self.sites;
        let probes = futures::future::join_all(page.iter().map(|site| async move {
            futures::future::join_all(
                ServiceKind::SITE_SERVICES
                    .into_iter()
                    .map(|kind| sites::probe(sites, &site.id, kind, deadline)),
            )
            .await
        }))
        .await;
        let checked_ms = self.now_ms();
        Ok(SitesPage {
            sites: page
                .iter()
                .zip(probes)
                .map(|(site, probes)| crate::wire::sites::site(site, probes, checked_ms))
                .collect(),
            next: (end < selected.len()).then_some(end as u32),
        })
    }

    /// FindStock: every site's positions of the sku summed per zone, and the stock in
    /// transit from the gateway's own transfers.
    pub async fn find_stock(
        &self,
        query: &StockQuery,
        deadline: Duration,
    ) -> Result<StockAnswer, ServiceError> {
        let selected = domain::select_sites(self.network(), &query.site_ids)?;
        let sites = &self.sites;
        let answers = futures::future::join_all(selected.iter().map(|(_, site)| async move {
            let result = match sites.inventory(&site.id) {
                Ok(mut client) => {
                    let request = stock_request(&query.sku);
                    within(deadline, client.get_stock(timed(request, deadline))).await
                }
                Err(status) => Err(status),
            };
            (site, result)
        }))
        .await;

        let mut answer = StockAnswer {
            sku: query.sku.clone(),
            sites: Vec::new(),
            in_transit: Vec::new(),
            failures: Vec::new(),
        };
        for (site, result) in answers {
            let stock = match result {
                Ok(stock) => stock,
                Err(status) if status.code() == tonic::Code::NotFound => {
                    inv::GetStockResponse::default()
                }
                Err(status) => {
                    let failure = sites.site_error(&site.id, ServiceKind::Inventory, &status);
                    answer.failures.push(failure);
                    continue;
                }
            };
            let (unit, levels) = levels(&stock);
            let zone_class = |zone: &str| site.zone(zone).map(|z| z.class);
            match domain::zone_totals(&levels, zone_class, query.class, query.min_quantity) {
                Ok(zones) => answer.sites.push(SiteStock {
                    site_id: site.id.clone(),
                    unit,
                    zones,
                    inbound_in_transit: 0,
                }),
                Err(total) => answer.failures.push(error::total_failure(&site.id, &total)),
            }
        }

        let travelling = self.store.travelling_with_sku(&query.sku)?;
        answer.in_transit = domain::in_transit(
            travelling,
            self.network(),
            &query.sku,
            query.class,
            &query.site_ids,
        );
        let inbound = domain::inbound_totals(&answer.in_transit, &query.sku);
        let mut refused = Vec::new();
        answer
            .sites
            .retain_mut(|site| match inbound.get(&site.site_id) {
                None => true,
                Some(Ok(total)) => {
                    site.inbound_in_transit = *total;
                    true
                }
                Some(Err(total)) => {
                    refused.push(error::total_failure(&site.site_id, total));
                    false
                }
            });
        answer.failures.extend(refused);
        Ok(answer)
    }

    /// FindSpace: every site with zones of the class asked for its availability over the
    /// range; per zone the least free day, sorted by fit.
    pub async fn find_space(
        &self,
        query: &SpaceQuery,
        deadline: Duration,
    ) -> Result<SpaceAnswer, ServiceError> {
        let selected = domain::select_sites(self.network(), &query.site_ids)?;
        let sites = &self.sites;
        let answers = futures::future::join_all(
            selected
                .iter()
                .filter(|(_, site)| site.has_class(query.class))
                .map(|(index, site)| async move {
                    let result = match sites.booking(&site.id) {
                        Ok(mut client) => {
                            let request =
                                availability_request(query.class, query.first_day, query.last_day);
                            within(deadline, client.get_availability(timed(request, deadline)))
                                .await
                        }
                        Err(status) => Err(status),
                    };
                    (*index, site, result)
                }),
        )
        .await;
        let mut offers = Vec::new();
        let mut failures = Vec::new();
        for (index, site, result) in answers {
            match result {
                Ok(availability) => offers.extend(domain::site_offers(
                    index,
                    &site.id,
                    &days_free(&availability),
                    query.pallets,
                )),
                Err(status) => {
                    failures.push(sites.site_error(&site.id, ServiceKind::Booking, &status))
                }
            }
        }
        offers.sort_by(domain::compare_offers);
        Ok(SpaceAnswer {
            class: query.class,
            offers,
            failures,
        })
    }

    /// ListTransfers: a page of the gateway's transfers, newest first.
    pub fn list_transfers(&self, query: &TransfersQuery) -> Result<TransferPage, ServiceError> {
        let filter = &query.filter;
        domain::check_known(
            self.network(),
            [&filter.source_site_id, &filter.destination_site_id]
                .into_iter()
                .filter(|id| !id.is_empty()),
        )?;
        Ok(self
            .store
            .list(filter, query.after.as_deref(), query.size)?)
    }
}
