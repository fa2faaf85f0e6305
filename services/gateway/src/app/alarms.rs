//! ListAlarms across the sites: each site's list read page by page from its cursor, the
//! pages merged newest first (the order and the cursors are the domain's), and a site
//! that fails left out of this page and resumed from its cursor in the next.

use std::collections::BTreeSet;
use std::time::Duration;

use coldchain_network::ServiceKind;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::ServiceError;

use super::GatewayApp;
use super::sites::{timed, within};
use crate::domain::{self, MergeCursor, MergeSource, SiteCursor, SiteFailure};
use crate::wire::requests::AlarmsQuery;
use crate::wire::sites::{alarm_key, alarms_request};

/// A merged page of alarms.
pub struct AlarmsPage {
    /// The alarms, newest first, each with its site_id.
    pub alarms: Vec<tel::Alarm>,
    /// Where the next page resumes; `None` on the last page.
    pub next: Option<MergeCursor>,
    /// The sites that did not answer.
    pub failures: Vec<SiteFailure>,
}

impl GatewayApp {
    /// ListAlarms: one merged page from every selected site.
    pub async fn list_alarms(
        &self,
        query: &AlarmsQuery,
        deadline: Duration,
    ) -> Result<AlarmsPage, ServiceError> {
        let selected = domain::select_sites(self.network(), &query.site_ids)?;
        let size = query.size;
        let sites = &self.sites;
        let fetch = |site_id: String, token: String, page_size: usize| {
            let request = alarms_request(&query.filter, token, page_size);
            async move {
                match sites.telemetry(&site_id) {
                    Ok(mut client) => {
                        within(deadline, client.list_alarms(timed(request, deadline))).await
                    }
                    Err(status) => Err(status),
                }
            }
        };

        // First pages of every site still to read, concurrently; skip what earlier pages
        // already returned.
        let starting: Vec<(String, SiteCursor)> = selected
            .iter()
            .map(|(_, site)| {
                let cursor = query.cursor.sites.get(&site.id).cloned();
                (site.id.clone(), cursor.unwrap_or_default())
            })
            .filter(|(_, c)| !c.done)
            .collect();
        let firsts = futures::future::join_all(starting.iter().map(|(site_id, c)| {
            let skip = c.skip as usize;
            fetch(site_id.clone(), c.token.clone(), size.saturating_add(skip))
        }))
        .await;
        let mut failures = Vec::new();
        let mut sources: Vec<MergeSource<tel::Alarm>> = Vec::new();
        let mut next = MergeCursor::default();
        for (site, c) in query.cursor.sites.iter() {
            if c.done {
                next.sites.insert(site.clone(), c.clone());
            }
        }
        for ((site_id, c), result) in starting.into_iter().zip(firsts) {
            match result {
                Ok(page) => sources.push(MergeSource::new(
                    site_id,
                    c,
                    page.alarms,
                    page.next_page_token,
                )),
                Err(status) => {
                    failures.push(sites.site_error(&site_id, ServiceKind::Telemetry, &status));
                    next.sites.insert(site_id, c);
                }
            }
        }

        // The k-way merge; a site whose buffer runs dry reads its next page before the
        // merge goes on.
        let mut alarms = Vec::new();
        while alarms.len() < size {
            for source in sources.iter_mut() {
                while let Some(token) = source.wants_page() {
                    match fetch(source.site_id().to_string(), token.to_string(), size).await {
                        Ok(page) => source.next_page(page.alarms, page.next_page_token),
                        Err(status) => {
                            let site_id = source.site_id();
                            failures.push(sites.site_error(
                                site_id,
                                ServiceKind::Telemetry,
                                &status,
                            ));
                            source.failed();
                        }
                    }
                }
            }
            let Some(i) = domain::alarms::first_source(&sources, alarm_key) else {
                break;
            };
            let source = &mut sources[i];
            if let Some(mut alarm) = source.pop() {
                if alarm.site_id.is_empty() {
                    alarm.site_id = source.site_id().to_string();
                }
                alarms.push(alarm);
            }
        }
        for source in sources {
            let (site_id, cursor) = source.into_cursor();
            next.sites.insert(site_id, cursor);
        }
        let failed: BTreeSet<&str> = failures.iter().map(|f| f.site_id.as_str()).collect();
        let more = domain::alarms::has_more(
            selected.iter().map(|(_, site)| site.id.as_str()),
            &failed,
            &next,
        );
        Ok(AlarmsPage {
            alarms,
            next: more.then_some(next),
            failures,
        })
    }
}
