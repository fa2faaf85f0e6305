//! TraceLot: a lot's life across the network. Each selected site's inventory gives the
//! lot's ledger entries and its stock now; the entries name the transfers that carried
//! it (read from the gateway's own store, with any still travelling); the stays those
//! make (domain `trace`) are measured against the sensors that covered them, at each
//! site's telemetry. A site that does not answer leaves its part out and is named in the
//! answer's errors, like every fan-out.

use std::collections::BTreeMap;
use std::time::Duration;

use coldchain_network::{ServiceKind, SiteConfig};
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::ServiceError;
use coldchain_runtime::client::Channel;
use coldchain_runtime::proto_time::{millis, timestamp};

use super::GatewayApp;
use super::genealogy::Reading;
use super::sites::{timed, within};
use crate::domain::genealogy::{Direction, LotRef};
use crate::domain::trace::{self, Stay};
use crate::domain::{self, SiteFailure, Transfer};
use crate::wire::requests::TraceQuery;
use crate::wire::trace as render;

/// The most entries of one lot read from one site (its oldest).
pub const MAX_ENTRIES_PER_SITE: usize = 10_000;
/// The most alarms read per stay (newest first).
const MAX_ALARMS_PER_STAY: usize = 1_000;
/// The page size of the calls to the sites.
const PAGE: i32 = 1_000;

/// The lots a recall covers: named ones, or every lot of the sku (none named).
pub struct LotsQuery {
    /// The sku.
    pub sku: String,
    /// The lots; empty: every lot of the sku the sites have stock of.
    pub lot_ids: Vec<String>,
    /// Lots of any sku besides (a recall's derived lots).
    pub derived: Vec<LotRef>,
}

/// Where a recall's lots are: positions, in transit, gone out.
pub struct LotsState {
    /// Positions with stock on hand.
    pub positions: Vec<pb::LotPosition>,
    /// On transfers that have not arrived.
    pub in_transit: Vec<pb::TransferStep>,
    /// Issued to orders and customers.
    pub shipped: Vec<pb::RecalledShipment>,
    /// The sites that did not answer.
    pub errors: Vec<pb::SiteError>,
}

/// The most lots of a sku a recall's answer describes.
const MAX_LOTS_PER_ANSWER: usize = 100;

/// One site's part: its entries of the lot and its positions with stock.
pub(super) struct SitePart {
    pub(super) entries: Vec<inv::LedgerEntry>,
    pub(super) positions: Vec<inv::StockLevel>,
    pub(super) truncated: bool,
}

impl GatewayApp {
    /// TraceLot: the lot's own trace, then its genealogy (what made it and what was made
    /// from it, through transformations at any site) with the trace of every linked lot.
    pub async fn trace_lot(
        &self,
        query: &TraceQuery,
        deadline: Duration,
    ) -> Result<pb::TraceLotResponse, ServiceError> {
        let started = std::time::Instant::now();
        let mut answer = self.trace_one(query, deadline).await?;
        let root = LotRef::new(query.sku.clone(), query.lot_id.clone());
        let entries = render::transformation_entries(&answer);
        let walked = self
            .walk_genealogy(
                vec![(root, entries)],
                &[Direction::Upstream, Direction::Downstream],
                Reading::Traces,
                started + deadline,
            )
            .await?;
        answer.genealogy = walked.links.iter().map(render::link).collect();
        answer.genealogy_truncated = walked.truncated;
        answer.related = walked.related;
        answer
            .errors
            .extend(walked.failures.into_iter().map(crate::wire::site_error));
        answer.errors.sort_by(|a, b| a.site_id.cmp(&b.site_id));
        answer.errors.dedup();
        Ok(answer)
    }

    /// One lot's own trace (no genealogy): its entries, positions, transfers, stays with
    /// their exposures, and alarms.
    pub(super) async fn trace_one(
        &self,
        query: &TraceQuery,
        deadline: Duration,
    ) -> Result<pb::TraceLotResponse, ServiceError> {
        let selected = domain::select_sites(self.network(), &query.site_ids)?;
        let parts =
            futures::future::join_all(selected.iter().map(|(_, site)| async move {
                (site, self.site_part(site, query, deadline).await)
            }))
            .await;

        let mut answer = pb::TraceLotResponse {
            sku: query.sku.clone(),
            lot_id: query.lot_id.clone(),
            ..Default::default()
        };
        let mut failures = Vec::new();
        let mut lot_entries = Vec::new();
        for (site, part) in parts {
            match part {
                Ok(part) => {
                    answer.truncated |= part.truncated;
                    lot_entries.extend(part.entries.iter().map(|e| render::lot_entry(&site.id, e)));
                    answer.events.extend(
                        part.entries
                            .into_iter()
                            .map(|entry| render::entry_event(&site.id, entry)),
                    );
                    answer.positions.extend(
                        part.positions
                            .iter()
                            .filter(|level| level.on_hand > 0)
                            .map(|level| render::position(&site.id, level)),
                    );
                }
                Err(status) => failures.push(self.sites.site_error(
                    &site.id,
                    ServiceKind::Inventory,
                    &status,
                )),
            }
        }

        let transfers = self.lot_transfers(query, &lot_entries)?;
        let mut stays = trace::zone_stays(&lot_entries);
        for transfer in &transfers {
            answer
                .events
                .extend(render::step_events(transfer, &query.sku, &query.lot_id));
            if transfer.state.is_travelling() {
                answer
                    .in_transit
                    .push(render::in_transit(transfer, &query.sku, &query.lot_id));
            }
            stays.extend(trace::reefer_stay(transfer));
        }
        stays.sort_by(|a, b| (a.start_ms, &a.site_id).cmp(&(b.start_ms, &b.site_id)));

        let now_ms = self.now_ms();
        let measured = futures::future::join_all(
            stays
                .iter()
                .map(|stay| self.measure_stay(stay, now_ms, deadline)),
        )
        .await;
        let mut alarms = BTreeMap::new();
        for (stay, measured) in stays.iter().zip(measured) {
            let (exposures, stay_alarms, failure) = measured;
            failures.extend(failure);
            for alarm in stay_alarms {
                alarms.entry(alarm.alarm_id.clone()).or_insert(alarm);
            }
            answer.stays.push(render::stay(stay, exposures));
        }
        answer
            .events
            .extend(alarms.into_values().map(render::alarm_event));
        render::sort_events(&mut answer.events);
        failures.sort_by(|a: &SiteFailure, b| a.site_id.cmp(&b.site_id));
        failures.dedup();
        answer.errors = failures.into_iter().map(crate::wire::site_error).collect();
        Ok(answer)
    }

    /// ExportTraceEpcis: the trace as an EPCIS 2.0 document, created now.
    pub async fn export_trace_epcis(
        &self,
        query: &TraceQuery,
        deadline: Duration,
    ) -> Result<pb::EpcisDocument, ServiceError> {
        let trace = self.trace_lot(query, deadline).await?;
        let created = chrono::DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default();
        let document = coldchain_epcis::document(&trace, self.network(), created);
        Ok(pb::EpcisDocument {
            json_ld: document.to_string(),
            errors: trace.errors,
        })
    }

    /// Where `query`'s lots are across the network (every site): their positions, what
    /// travels, what went out to orders. For every lot of a sku, the lots are those the
    /// sites have positions of (up to [`MAX_LOTS_PER_ANSWER`]).
    pub async fn lots_state(
        &self,
        query: &LotsQuery,
        deadline: Duration,
    ) -> Result<LotsState, ServiceError> {
        let mut state = LotsState {
            positions: Vec::new(),
            in_transit: Vec::new(),
            shipped: Vec::new(),
            errors: Vec::new(),
        };
        let mut failures = Vec::new();
        let lots = if query.lot_ids.is_empty() {
            let (lots, lot_failures) = self.lots_of_sku(&query.sku, deadline).await;
            failures.extend(lot_failures);
            lots
        } else {
            query.lot_ids.clone()
        };
        let lots = lots
            .into_iter()
            .take(MAX_LOTS_PER_ANSWER)
            .map(|lot_id| LotRef::new(query.sku.clone(), lot_id))
            .chain(query.derived.iter().take(MAX_LOTS_PER_ANSWER).cloned());
        for LotRef { sku, lot_id } in lots {
            let trace_query = TraceQuery {
                sku: sku.clone(),
                lot_id: lot_id.clone(),
                site_ids: Vec::new(),
            };
            let parts = futures::future::join_all(self.network().sites.iter().map(|site| {
                let trace_query = &trace_query;
                async move { (site, self.site_part(site, trace_query, deadline).await) }
            }))
            .await;
            let mut lot_entries = Vec::new();
            for (site, part) in parts {
                match part {
                    Ok(part) => {
                        lot_entries
                            .extend(part.entries.iter().map(|e| render::lot_entry(&site.id, e)));
                        state.positions.extend(
                            part.positions
                                .iter()
                                .filter(|level| level.on_hand > 0)
                                .map(|level| render::position(&site.id, level)),
                        );
                        state.shipped.extend(
                            part.entries
                                .iter()
                                .filter(|e| e.kind == inv::LedgerEntryKind::Issue as i32)
                                .map(|e| render::shipment(&site.id, &lot_id, e)),
                        );
                    }
                    Err(status) => failures.push(self.sites.site_error(
                        &site.id,
                        ServiceKind::Inventory,
                        &status,
                    )),
                }
            }
            for transfer in self.lot_transfers(&trace_query, &lot_entries)? {
                if transfer.state.is_travelling() {
                    state
                        .in_transit
                        .push(render::in_transit(&transfer, &sku, &lot_id));
                }
            }
        }
        failures.sort_by(|a: &SiteFailure, b| a.site_id.cmp(&b.site_id));
        failures.dedup();
        state.errors = failures.into_iter().map(crate::wire::site_error).collect();
        Ok(state)
    }

    /// The lots of `sku` the sites have positions of, in order, and the sites that did not
    /// answer.
    pub(super) async fn lots_of_sku(
        &self,
        sku: &str,
        deadline: Duration,
    ) -> (Vec<String>, Vec<SiteFailure>) {
        let answers =
            futures::future::join_all(self.network().sites.iter().map(|site| async move {
                let request = inv::GetStockRequest {
                    sku: sku.to_string(),
                    lot_id: String::new(),
                    zone_id: String::new(),
                };
                let answer = match self.sites.inventory(&site.id) {
                    Ok(mut client) => {
                        within(deadline, client.get_stock(timed(request, deadline))).await
                    }
                    Err(status) => Err(status),
                };
                (site, answer)
            }))
            .await;
        let mut lots = std::collections::BTreeSet::new();
        let mut failures = Vec::new();
        for (site, answer) in answers {
            match answer {
                Ok(stock) => lots.extend(
                    stock
                        .levels
                        .into_iter()
                        .filter_map(|level| level.lot.map(|lot| lot.lot_id)),
                ),
                // A site that never had the sku has no lot of it.
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) => failures.push(self.sites.site_error(
                    &site.id,
                    ServiceKind::Inventory,
                    &status,
                )),
            }
        }
        (lots.into_iter().collect(), failures)
    }

    /// A site's entries of the lot (oldest first, up to [`MAX_ENTRIES_PER_SITE`]) and its
    /// stock of the lot now.
    pub(super) async fn site_part(
        &self,
        site: &SiteConfig,
        query: &TraceQuery,
        deadline: Duration,
    ) -> Result<SitePart, tonic::Status> {
        let mut client = self.sites.inventory(&site.id)?;
        let mut part = SitePart {
            entries: Vec::new(),
            positions: Vec::new(),
            truncated: false,
        };
        let mut page_token = String::new();
        loop {
            let request = inv::ListLotEntriesRequest {
                sku: query.sku.clone(),
                lot_id: query.lot_id.clone(),
                page_size: PAGE,
                page_token,
            };
            let page = within(deadline, client.list_lot_entries(timed(request, deadline))).await?;
            part.entries.extend(page.entries);
            if page.next_page_token.is_empty() {
                break;
            }
            if part.entries.len() >= MAX_ENTRIES_PER_SITE {
                part.entries.truncate(MAX_ENTRIES_PER_SITE);
                part.truncated = true;
                break;
            }
            page_token = page.next_page_token;
        }
        if !part.entries.is_empty() {
            let request = inv::GetStockRequest {
                sku: query.sku.clone(),
                lot_id: query.lot_id.clone(),
                zone_id: String::new(),
            };
            let stock = within(deadline, client.get_stock(timed(request, deadline))).await?;
            part.positions = stock.levels;
        }
        Ok(part)
    }

    /// The transfers that carried the lot: those its entries name, and those travelling
    /// with it now (whose source may not have answered), oldest first.
    fn lot_transfers(
        &self,
        query: &TraceQuery,
        entries: &[trace::LotEntry],
    ) -> Result<Vec<Transfer>, ServiceError> {
        let mut transfers = BTreeMap::new();
        for transfer_id in trace::transfer_ids(entries) {
            if let Some(transfer) = self.store.get(&transfer_id)? {
                transfers.insert(transfer_id, transfer);
            }
        }
        for transfer in self.store.travelling_with_sku(&query.sku)? {
            let selected = query.site_ids.is_empty()
                || query.site_ids.contains(&transfer.source_site_id)
                || query.site_ids.contains(&transfer.destination_site_id);
            if selected && trace::carried(&transfer, &query.sku, &query.lot_id) > 0 {
                transfers.insert(transfer.transfer_id.clone(), transfer);
            }
        }
        let mut transfers: Vec<Transfer> = transfers
            .into_values()
            .filter(|t| trace::carried(t, &query.sku, &query.lot_id) > 0)
            .collect();
        transfers.sort_by_key(|t| t.created_ms);
        Ok(transfers)
    }

    /// The exposures of a stay (one per sensor that covered it) and the alarms of those
    /// sensors during it; a telemetry that does not answer is a failure of this part.
    async fn measure_stay(
        &self,
        stay: &Stay,
        now_ms: i64,
        deadline: Duration,
    ) -> (Vec<tel::Exposure>, Vec<tel::Alarm>, Option<SiteFailure>) {
        match self.stay_readings(stay, now_ms, deadline).await {
            Ok((exposures, alarms)) => (exposures, alarms, None),
            Err(status) => (
                Vec::new(),
                Vec::new(),
                Some(
                    self.sites
                        .site_error(&stay.site_id, ServiceKind::Telemetry, &status),
                ),
            ),
        }
    }

    async fn stay_readings(
        &self,
        stay: &Stay,
        now_ms: i64,
        deadline: Duration,
    ) -> Result<(Vec<tel::Exposure>, Vec<tel::Alarm>), tonic::Status> {
        let mut client = self.sites.telemetry(&stay.site_id)?;
        let sensor_ids = if stay.zone_id.is_empty() {
            if stay.reefer_sensor_id.is_empty() {
                Vec::new()
            } else {
                vec![stay.reefer_sensor_id.clone()]
            }
        } else {
            let mut ids = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = tel::ListSensorsRequest {
                    zone_id: stay.zone_id.clone(),
                    statuses: Vec::new(),
                    page_size: PAGE,
                    page_token,
                };
                let page = within(deadline, client.list_sensors(timed(request, deadline))).await?;
                ids.extend(page.sensors.into_iter().map(|s| s.sensor_id));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            ids
        };
        let end_ms = stay.end_or(now_ms).max(stay.start_ms.saturating_add(1));
        let mut exposures = Vec::with_capacity(sensor_ids.len());
        let mut alarms = Vec::new();
        for sensor_id in sensor_ids {
            let request = tel::GetExposureRequest {
                sensor_id: sensor_id.clone(),
                start_time: Some(timestamp(stay.start_ms)),
                end_time: Some(timestamp(end_ms)),
            };
            exposures.push(within(deadline, client.get_exposure(timed(request, deadline))).await?);
            alarms.extend(
                self.sensor_alarms(&mut client, &sensor_id, stay, now_ms, deadline)
                    .await?,
            );
        }
        Ok((exposures, alarms))
    }

    /// The alarms of a sensor that overlap the stay (newest first, up to
    /// [`MAX_ALARMS_PER_STAY`] read).
    async fn sensor_alarms(
        &self,
        client: &mut TelemetryServiceClient<Channel>,
        sensor_id: &str,
        stay: &Stay,
        now_ms: i64,
        deadline: Duration,
    ) -> Result<Vec<tel::Alarm>, tonic::Status> {
        let mut alarms = Vec::new();
        let mut read = 0;
        let mut page_token = String::new();
        loop {
            let request = tel::ListAlarmsRequest {
                sensor_id: sensor_id.to_string(),
                page_size: PAGE,
                page_token,
                ..Default::default()
            };
            let page = within(deadline, client.list_alarms(timed(request, deadline))).await?;
            read += page.alarms.len();
            let mut older = false;
            for alarm in page.alarms {
                let start = alarm.started_at.as_ref().and_then(millis).unwrap_or(0);
                let end = alarm.cleared_at.as_ref().and_then(millis);
                older |= end.is_some_and(|end| end < stay.start_ms);
                if stay.overlaps(start, end, now_ms) {
                    alarms.push(alarm);
                }
            }
            // Newest first: once alarms over before the stay began show up, the rest are older.
            if page.next_page_token.is_empty() || older || read >= MAX_ALARMS_PER_STAY {
                return Ok(alarms);
            }
            page_token = page.next_page_token;
        }
    }
}
