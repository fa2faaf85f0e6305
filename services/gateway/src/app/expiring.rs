//! ListExpiring across the network: every selected site's expiring positions (each counted
//! from the site's own today), merged earliest expiry first. A site that does not answer
//! is a failure of the answer, not of the call.

use std::time::Duration;

use coldchain_network::{ServiceKind, SiteConfig};
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_runtime::ServiceError;

use super::GatewayApp;
use super::sites::{timed, within};
use crate::domain::{self, SiteFailure};
use crate::wire::class_to_proto;
use crate::wire::requests::ExpiringQuery;

/// ListExpiring's answer.
pub struct ExpiringAnswer {
    /// The positions, earliest expiry first, then site, sku, lot, zone.
    pub levels: Vec<pb::SiteStockLevel>,
    /// More positions match than the limit.
    pub truncated: bool,
    /// The sites that did not answer.
    pub failures: Vec<SiteFailure>,
}

impl GatewayApp {
    /// ListExpiring: each site asked concurrently (its pages read until `limit` rows of the
    /// classes asked for, or its last page), then merged.
    pub async fn list_expiring(
        &self,
        query: &ExpiringQuery,
        deadline: Duration,
    ) -> Result<ExpiringAnswer, ServiceError> {
        let selected = domain::select_sites(self.network(), &query.site_ids)?;
        let answers = futures::future::join_all(selected.iter().map(|(_, site)| async move {
            (site, self.site_expiring(site, query, deadline).await)
        }))
        .await;
        let mut answer = ExpiringAnswer {
            levels: Vec::new(),
            truncated: false,
            failures: Vec::new(),
        };
        for (site, result) in answers {
            match result {
                Ok((levels, more)) => {
                    answer.truncated |= more;
                    answer.levels.extend(levels);
                }
                Err(status) => answer.failures.push(self.sites.site_error(
                    &site.id,
                    ServiceKind::Inventory,
                    &status,
                )),
            }
        }
        answer.levels.sort_by_key(fefo_key);
        if answer.levels.len() > query.limit {
            answer.levels.truncate(query.limit);
            answer.truncated = true;
        }
        Ok(answer)
    }

    /// One site's expiring positions of the classes asked for: up to `limit` of them, and
    /// whether it has more.
    async fn site_expiring(
        &self,
        site: &SiteConfig,
        query: &ExpiringQuery,
        deadline: Duration,
    ) -> Result<(Vec<pb::SiteStockLevel>, bool), tonic::Status> {
        let mut client = self.sites.inventory(&site.id)?;
        let mut levels = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = inv::ListExpiringRequest {
                within_days: query.within_days,
                zone_id: String::new(),
                page_size: i32::try_from(query.limit).unwrap_or(i32::MAX),
                page_token,
            };
            let page = within(deadline, client.list_expiring(timed(request, deadline))).await?;
            for level in page.levels {
                let class = site.zone(&level.zone_id).map(|zone| zone.class);
                if !query.classes.is_empty() && !class.is_some_and(|c| query.classes.contains(&c)) {
                    continue;
                }
                levels.push(pb::SiteStockLevel {
                    site_id: site.id.clone(),
                    temperature_class: class
                        .map_or(common::TemperatureClass::Unspecified, class_to_proto)
                        as i32,
                    level: Some(level),
                });
            }
            if page.next_page_token.is_empty() {
                return Ok((levels, false));
            }
            if levels.len() >= query.limit {
                return Ok((levels, true));
            }
            page_token = page.next_page_token;
        }
    }
}

/// A row's place: no expiry last, else earliest first; then site, sku, lot, zone.
type FefoKey = (bool, (i32, i32, i32), [String; 4]);

/// Earliest expiry first, then site, sku, lot, zone.
fn fefo_key(row: &pb::SiteStockLevel) -> FefoKey {
    let level = row.level.as_ref();
    let lot = level.and_then(|l| l.lot.as_ref());
    let expiry = lot
        .and_then(|lot| lot.expiry)
        .map(|d| (d.year, d.month, d.day));
    (
        expiry.is_none(),
        expiry.unwrap_or_default(),
        [
            row.site_id.clone(),
            level.map(|l| l.sku.clone()).unwrap_or_default(),
            lot.map(|lot| lot.lot_id.clone()).unwrap_or_default(),
            level.map(|l| l.zone_id.clone()).unwrap_or_default(),
        ],
    )
}
