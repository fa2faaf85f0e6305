//! The gRPC handlers of `coldchain.network.v1.NetworkService`: validation (every field,
//! all violations at once), fan-out to the sites, the transfer saga's entry points, and
//! errors → Status.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use coldchain_proto::booking::v1 as book;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::network::v1::network_service_server::NetworkService;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::network::{NetworkConfig, ServiceKind, SiteConfig, TemperatureClass};
use coldchain_runtime::page_token;
use coldchain_runtime::validate::Violations;
use coldchain_runtime::{ServiceError, Shutdown};
use coldchain_store::{SharedClock, WriteError, fingerprint};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::Options;
use crate::convert::{
    class_from_proto, class_to_proto, date_from_proto, date_to_proto, duration, lot_to_proto,
    state_from_proto, state_to_proto, timestamp, transfer_to_proto,
};
use crate::domain::{
    self, AlarmKey, DayFree, Level, Line, LineProblem, MergeCursor, SiteCursor, Transfer,
    TransferError, TransferSpec, TransferState,
};
use crate::saga::{Driven, Saga};
use crate::sites::{self, Sites, client_deadline, fan_out_deadline, timed, within};
use crate::store::{GatewayStore, ListFilter, Refused};
use crate::watch::{self, WatchOptions};

/// The status of a refused transfer operation.
pub fn transfer_status(error: TransferError) -> Status {
    let message = error.to_string();
    match error {
        TransferError::NotFound(_) => ServiceError::not_found(message).into(),
        TransferError::AlreadyExists(_) => {
            ServiceError::new(coldchain_runtime::Code::AlreadyExists, message).into()
        }
        TransferError::WrongState { transfer_id, .. } => {
            ServiceError::failed_precondition(message.clone())
                .with_precondition("STATE", format!("transfer {transfer_id}"), message)
                .into()
        }
    }
}

/// The status of a failed write to the gateway's store.
pub fn write_status(error: WriteError<Refused>) -> Status {
    match error {
        WriteError::Rejected(Refused::Transfer(error)) => transfer_status(error),
        WriteError::Rejected(Refused::Store(error)) | WriteError::Store(error) => {
            ServiceError::from(error).into()
        }
        WriteError::RequestIdReused(id) => ServiceError::invalid(
            "request_id",
            format!("request_id {id:?} was already used for a different request"),
        )
        .into(),
    }
}

fn store_status(error: coldchain_store::StoreError) -> Status {
    ServiceError::from(error).into()
}

/// The handlers.
#[derive(Clone)]
pub struct GatewayApi {
    inner: Arc<Inner>,
}

struct Inner {
    store: GatewayStore,
    sites: Arc<Sites>,
    saga: Arc<Saga>,
    clock: SharedClock,
    options: Options,
    shutdown: Shutdown,
}

impl GatewayApi {
    /// Handlers over the gateway's store, calling `sites`.
    pub fn new(
        store: GatewayStore,
        sites: Arc<Sites>,
        saga: Arc<Saga>,
        clock: SharedClock,
        options: Options,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                sites,
                saga,
                clock,
                options,
                shutdown,
            }),
        }
    }

    fn network(&self) -> &NetworkConfig {
        self.inner.sites.network()
    }

    /// The sites named by a `site_ids` filter (all when empty), in network order, with
    /// their index. Unknown ids are NOT_FOUND (after the ids' form was validated).
    fn select_sites(&self, ids: &[String]) -> Result<Vec<(usize, SiteConfig)>, Status> {
        let network = self.network();
        let unknown: Vec<&str> = ids
            .iter()
            .filter(|id| network.site(id).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(unknown_sites(network, &unknown));
        }
        Ok(network
            .sites
            .iter()
            .enumerate()
            .filter(|(_, site)| ids.is_empty() || ids.contains(&site.id))
            .map(|(i, site)| (i, site.clone()))
            .collect())
    }

    fn fan_out_deadline<T>(&self, request: &Request<T>) -> Duration {
        fan_out_deadline(self.inner.options.site_deadline, client_deadline(request))
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_millis()
    }

    /// Runs a saga step in its own task, so a client that goes away mid-call does not cut
    /// a step between the site's answer and the gateway's record of it.
    async fn drive(&self, transfer: Transfer, step: Step) -> Result<Driven, Status> {
        let saga = self.inner.saga.clone();
        let id = transfer.transfer_id.clone();
        tokio::spawn(async move {
            let _claim = saga.claim(&id);
            match step {
                Step::Start => match transfer.state {
                    TransferState::Requested | TransferState::InTransit => {
                        saga.drive(transfer).await
                    }
                    _ => Ok(Driven {
                        transfer,
                        retry: false,
                        refusal: None,
                    }),
                },
                Step::Receive => match transfer.state {
                    TransferState::Receiving => saga.receive(transfer).await,
                    _ => Ok(Driven {
                        transfer,
                        retry: false,
                        refusal: None,
                    }),
                },
            }
        })
        .await
        .map_err(|e| Status::internal(format!("transfer step failed: {e}")))?
    }

    fn load(&self, transfer_id: &str) -> Result<Transfer, Status> {
        self.inner
            .store
            .get(transfer_id)
            .map_err(store_status)?
            .ok_or_else(|| transfer_status(TransferError::NotFound(transfer_id.to_string())))
    }
}

#[derive(Clone, Copy)]
enum Step {
    Start,
    Receive,
}

fn unknown_sites(network: &NetworkConfig, unknown: &[&str]) -> Status {
    let known: Vec<&str> = network.site_ids().collect();
    ServiceError::not_found(format!(
        "site {} not in the network; known sites: {}",
        unknown
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        known.join(", ")
    ))
    .into()
}

/// The bytes a page token of `method` is bound to: the method and the query's filters.
/// Without the method, the unfiltered queries of two list RPCs would encode alike (empty)
/// and a token of one would be taken by the other.
fn list_query(method: &str, filters: &[u8]) -> Vec<u8> {
    let mut query = Vec::with_capacity(method.len() + 1 + filters.len());
    query.extend_from_slice(method.as_bytes());
    query.push(0);
    query.extend_from_slice(filters);
    query
}

fn check_site_ids(v: &mut Violations, field: &str, ids: &[String]) {
    for (i, id) in ids.iter().enumerate() {
        v.id(&format!("{field}[{i}]"), id);
    }
}

fn check_unit(v: &mut Violations, field: &str, unit: &str) {
    if unit.is_empty() {
        v.add(field, "is required");
    } else if unit.len() > domain::MAX_UNIT_BYTES {
        v.add(
            field,
            format!("{unit:?} is longer than {} bytes", domain::MAX_UNIT_BYTES),
        );
    } else if unit.chars().any(|c| c.is_control() || c.is_whitespace()) {
        v.add(
            field,
            format!("{unit:?} must not contain spaces or control characters"),
        );
    }
}

fn check_date(
    v: &mut Violations,
    field: &str,
    date: Option<&common::Date>,
) -> Option<chrono::NaiveDate> {
    match date {
        None => {
            v.add(field, "is required");
            None
        }
        Some(d) => {
            let parsed = date_from_proto(d);
            if parsed.is_none() {
                v.add(
                    field,
                    format!("{}-{:02}-{:02} is not a valid date", d.year, d.month, d.day),
                );
            }
            parsed
        }
    }
}

/// Validates StartTransfer and turns it into a spec: INVALID_ARGUMENT for malformed fields
/// (all at once), then NOT_FOUND for sites or zones the network does not have.
fn start_spec(
    network: &NetworkConfig,
    req: &pb::StartTransferRequest,
) -> Result<TransferSpec, Status> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.optional_id("transfer_id", &req.transfer_id);
    v.id("source_site_id", &req.source_site_id);
    v.id("destination_site_id", &req.destination_site_id);
    if !req.source_site_id.is_empty() && req.source_site_id == req.destination_site_id {
        v.add(
            "destination_site_id",
            format!(
                "{:?} is the source site; a transfer goes to another site",
                req.destination_site_id
            ),
        );
    }
    if req.lines.is_empty() || req.lines.len() > domain::MAX_LINES {
        v.add(
            "lines",
            format!(
                "must hold 1 to {} lines, got {}",
                domain::MAX_LINES,
                req.lines.len()
            ),
        );
    }
    let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for (i, line) in req.lines.iter().enumerate() {
        v.nested(&format!("lines[{i}]"), |v| {
            v.id("sku", &line.sku);
            v.id("lot_id", &line.lot_id);
            v.id("source_zone_id", &line.source_zone_id);
            v.id("destination_zone_id", &line.destination_zone_id);
            v.check(line.quantity > 0, "quantity", || {
                format!("must be positive, got {}", line.quantity)
            });
            check_unit(v, "unit", &line.unit);
        });
        if let Some(first) = seen.insert((&line.sku, &line.lot_id, &line.source_zone_id), i) {
            v.add(
                format!("lines[{i}]"),
                format!(
                    "repeats sku {:?} lot {:?} from zone {:?} of lines[{first}]; one line per sku, lot and source zone",
                    line.sku, line.lot_id, line.source_zone_id
                ),
            );
        }
    }
    v.optional_id("reefer_sensor_id", &req.reefer_sensor_id);
    if req.reefer_sensor_id.is_empty() {
        v.optional_id("reefer_container_id", &req.reefer_container_id);
    } else {
        v.id("reefer_container_id", &req.reefer_container_id);
    }
    let reefer_class = match class_from_proto(req.reefer_temperature_class) {
        Ok(class) => class,
        Err(_) => {
            v.add(
                "reefer_temperature_class",
                format!(
                    "{} is not a temperature class",
                    req.reefer_temperature_class
                ),
            );
            None
        }
    };
    if req.train_or_route.len() > domain::MAX_ROUTE_BYTES {
        v.add(
            "train_or_route",
            format!(
                "must be at most {} bytes, got {}",
                domain::MAX_ROUTE_BYTES,
                req.train_or_route.len()
            ),
        );
    } else {
        v.text("train_or_route", &req.train_or_route, false);
    }
    v.finish().map_err(Status::from)?;

    let first_zone = req
        .lines
        .first()
        .map(|l| l.source_zone_id.as_str())
        .unwrap_or_default();
    let spec = TransferSpec {
        transfer_id: (!req.transfer_id.is_empty()).then(|| req.transfer_id.clone()),
        source_site_id: req.source_site_id.clone(),
        destination_site_id: req.destination_site_id.clone(),
        lines: req
            .lines
            .iter()
            .map(|l| Line {
                sku: l.sku.clone(),
                lot_id: l.lot_id.clone(),
                source_zone_id: l.source_zone_id.clone(),
                destination_zone_id: l.destination_zone_id.clone(),
                quantity: l.quantity,
                unit: l.unit.clone(),
                lot: None,
            })
            .collect(),
        reefer_sensor_id: req.reefer_sensor_id.clone(),
        reefer_container_id: req.reefer_container_id.clone(),
        reefer_class: reefer_class
            .or_else(|| domain::default_reefer_class(network, &req.source_site_id, first_zone))
            .unwrap_or(TemperatureClass::Chilled),
        train_or_route: req.train_or_route.clone(),
    };
    let problems = domain::check_lines(network, &spec);
    let mut v = Violations::new();
    let mut missing = Vec::new();
    for problem in problems {
        match problem {
            LineProblem::Invalid(field, description) => v.add(field, description),
            LineProblem::UnknownSite(field, id) => {
                missing.push(format!("{field}: site {id:?} not in the network"))
            }
            LineProblem::UnknownZone(field, site, zone) => {
                missing.push(format!("{field}: zone {zone:?} not found at site {site}"));
            }
        }
    }
    v.finish().map_err(Status::from)?;
    if !missing.is_empty() {
        return Err(ServiceError::not_found(missing.join("; ")).into());
    }
    Ok(spec)
}

fn alarm_key(site_id: &str, alarm: &tel::Alarm) -> AlarmKey {
    AlarmKey {
        started_at: alarm
            .started_at
            .as_ref()
            .map_or((0, 0), |t| (t.seconds, t.nanos)),
        site_id: site_id.to_string(),
        alarm_id: alarm.alarm_id.clone(),
    }
}

/// One site's part of a paged alarm merge.
struct AlarmSource {
    site_id: String,
    /// The token of the site page `buffer` came from.
    token: String,
    /// Alarms of that page already returned.
    consumed: u32,
    buffer: std::collections::VecDeque<tel::Alarm>,
    next_token: String,
    failed: bool,
}

#[tonic::async_trait]
impl NetworkService for GatewayApi {
    type WatchAlarmsStream = watch::AlarmStream;

    async fn list_sites(
        &self,
        request: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        check_site_ids(&mut v, "site_ids", &req.site_ids);
        let size = v.page_size(req.page_size);
        let mut filter: Vec<&str> = req.site_ids.iter().map(String::as_str).collect();
        filter.sort_unstable();
        filter.dedup();
        let query = list_query("ListSites", filter.join(",").as_bytes());
        let start = match v.page_token(&query, &req.page_token) {
            None => 0,
            Some(raw) => match <[u8; 4]>::try_from(raw.as_slice()) {
                Ok(position) => u32::from_be_bytes(position) as usize,
                Err(_) => {
                    v.add("page_token", "is not a token this query returned");
                    0
                }
            },
        };
        v.finish()?;
        let selected = self.select_sites(&req.site_ids)?;
        let page: Vec<&(usize, SiteConfig)> = selected.iter().skip(start).take(size).collect();
        let end = start + page.len();
        let next_page_token = if end < selected.len() {
            page_token::encode(&query, &(end as u32).to_be_bytes())
        } else {
            String::new()
        };
        let deadline = self.inner.options.health_deadline;
        let sites = &self.inner.sites;
        let probes = futures::future::join_all(page.iter().flat_map(|(_, site)| {
            ServiceKind::SITE_SERVICES
                .into_iter()
                .map(move |kind| async move {
                    (
                        site.id.clone(),
                        kind,
                        sites::probe(sites, &site.id, kind, deadline).await,
                    )
                })
        }))
        .await;
        let checked_at = timestamp(self.now_ms());
        let mut endpoints: HashMap<String, Vec<pb::ServiceEndpoint>> = HashMap::new();
        for (site_id, kind, probe) in probes {
            endpoints
                .entry(site_id.clone())
                .or_default()
                .push(pb::ServiceEndpoint {
                    service: match kind {
                        ServiceKind::Inventory => pb::ServiceKind::Inventory,
                        ServiceKind::Telemetry => pb::ServiceKind::Telemetry,
                        _ => pb::ServiceKind::Booking,
                    } as i32,
                    endpoint: sites.endpoint(&site_id, kind),
                    health: probe.health as i32,
                    latency: probe.latency.map(duration),
                    checked_at: Some(checked_at),
                    error: probe.error,
                });
        }
        let sites_out = page
            .iter()
            .map(|(_, site)| pb::Site {
                site_id: site.id.clone(),
                name: site.name.clone(),
                time_zone: site.time_zone.name().to_string(),
                reached_by: site.reached_by.clone(),
                zones: site
                    .zones
                    .iter()
                    .map(|z| pb::Zone {
                        zone_id: z.id.clone(),
                        name: format!("{} zone {}", z.class.as_str().to_lowercase(), z.id),
                        temperature_class: class_to_proto(z.class) as i32,
                        min_celsius: z.min_celsius,
                        max_celsius: z.max_celsius,
                        capacity_pallets: i32::try_from(z.capacity_pallets).unwrap_or(i32::MAX),
                    })
                    .collect(),
                endpoints: endpoints.remove(&site.id).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::ListSitesResponse {
            sites: sites_out,
            next_page_token,
        }))
    }

    async fn find_stock(
        &self,
        request: Request<pb::FindStockRequest>,
    ) -> Result<Response<pb::FindStockResponse>, Status> {
        let deadline = self.fan_out_deadline(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        v.id("sku", &req.sku);
        let class = match class_from_proto(req.temperature_class) {
            Ok(class) => class,
            Err(_) => {
                v.add(
                    "temperature_class",
                    format!("{} is not a temperature class", req.temperature_class),
                );
                None
            }
        };
        v.check(req.min_quantity >= 0, "min_quantity", || {
            format!("must not be negative, got {}", req.min_quantity)
        });
        check_site_ids(&mut v, "site_ids", &req.site_ids);
        v.finish()?;
        let selected = self.select_sites(&req.site_ids)?;

        let sites = &self.inner.sites;
        let answers = futures::future::join_all(selected.iter().map(|(_, site)| {
            let sku = req.sku.clone();
            async move {
                let result = match sites.inventory(&site.id) {
                    Ok(mut client) => {
                        let request = inv::GetStockRequest {
                            sku,
                            ..inv::GetStockRequest::default()
                        };
                        within(deadline, client.get_stock(timed(request, deadline))).await
                    }
                    Err(status) => Err(status),
                };
                (site, result)
            }
        }))
        .await;

        let mut response = pb::FindStockResponse {
            sku: req.sku.clone(),
            ..pb::FindStockResponse::default()
        };
        for (site, result) in answers {
            let stock = match result {
                Ok(stock) => stock,
                Err(status) if status.code() == tonic::Code::NotFound => {
                    inv::GetStockResponse::default()
                }
                Err(status) => {
                    response.failures.push(sites.site_error(
                        &site.id,
                        ServiceKind::Inventory,
                        &status,
                    ));
                    continue;
                }
            };
            let levels: Vec<Level> = stock
                .levels
                .iter()
                .map(|l| Level {
                    lot_id: l
                        .lot
                        .as_ref()
                        .map(|lot| lot.lot_id.clone())
                        .unwrap_or_default(),
                    zone_id: l.zone_id.clone(),
                    expiry: l
                        .lot
                        .as_ref()
                        .and_then(|lot| lot.expiry.as_ref())
                        .and_then(date_from_proto),
                    on_hand: l.on_hand,
                    allocated: l.allocated,
                    held: l.held,
                    available: l.available,
                })
                .collect();
            let rows = domain::zone_totals(
                &levels,
                |zone| site.zone(zone).map(|z| z.class),
                class,
                req.min_quantity,
            );
            response.sites.push(pb::SiteStock {
                site_id: site.id.clone(),
                zones: rows
                    .into_iter()
                    .map(|row| pb::ZoneStock {
                        zone_id: row.zone_id,
                        temperature_class: row
                            .class
                            .map_or(common::TemperatureClass::Unspecified, class_to_proto)
                            as i32,
                        unit: stock.unit.clone(),
                        on_hand: row.on_hand,
                        allocated: row.allocated,
                        held: row.held,
                        available: row.available,
                        earliest_expiry: row.earliest_expiry.map(date_to_proto),
                        lot_count: row.lot_count,
                    })
                    .collect(),
                inbound_in_transit: 0,
            });
        }

        let network = self.network();
        let involved = |t: &Transfer| {
            req.site_ids.is_empty()
                || req.site_ids.contains(&t.source_site_id)
                || req.site_ids.contains(&t.destination_site_id)
        };
        let mut travelling = self
            .inner
            .store
            .travelling_with_sku(&req.sku)
            .map_err(store_status)?;
        travelling
            .sort_by(|a, b| (a.shipped_ms, &a.transfer_id).cmp(&(b.shipped_ms, &b.transfer_id)));
        let mut inbound: BTreeMap<String, i64> = BTreeMap::new();
        for t in travelling.iter().filter(|t| involved(t)) {
            for line in t.lines.iter().filter(|l| l.sku == req.sku) {
                let line_class = network
                    .site(&t.source_site_id)
                    .and_then(|s| s.zone(&line.source_zone_id))
                    .map(|z| z.class);
                if class.is_some() && line_class != class {
                    continue;
                }
                let sum = inbound.entry(t.destination_site_id.clone()).or_insert(0);
                *sum = sum.saturating_add(line.quantity);
                response.in_transit.push(pb::InTransitStock {
                    transfer_id: t.transfer_id.clone(),
                    state: state_to_proto(t.state) as i32,
                    source_site_id: t.source_site_id.clone(),
                    destination_site_id: t.destination_site_id.clone(),
                    lot: Some(line.lot.as_ref().map(lot_to_proto).unwrap_or_else(|| {
                        inv::LotInfo {
                            lot_id: line.lot_id.clone(),
                            ..inv::LotInfo::default()
                        }
                    })),
                    quantity: line.quantity,
                    unit: line.unit.clone(),
                    train_or_route: t.train_or_route.clone(),
                    shipped_at: t.shipped_ms.map(timestamp),
                });
            }
        }
        for site in &mut response.sites {
            site.inbound_in_transit = inbound.get(&site.site_id).copied().unwrap_or(0);
        }
        Ok(Response::new(response))
    }

    async fn find_space(
        &self,
        request: Request<pb::FindSpaceRequest>,
    ) -> Result<Response<pb::FindSpaceResponse>, Status> {
        let deadline = self.fan_out_deadline(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let class = match class_from_proto(req.temperature_class) {
            Ok(Some(class)) => Some(class),
            Ok(None) => {
                v.add("temperature_class", "is required");
                None
            }
            Err(_) => {
                v.add(
                    "temperature_class",
                    format!("{} is not a temperature class", req.temperature_class),
                );
                None
            }
        };
        v.check(req.pallets > 0, "pallets", || {
            format!("must be positive, got {}", req.pallets)
        });
        let first = check_date(&mut v, "first_day", req.first_day.as_ref());
        let last = check_date(&mut v, "last_day", req.last_day.as_ref());
        if let (Some(first), Some(last)) = (first, last) {
            let days = domain::days_inclusive(first, last);
            if days < 1 {
                v.add("last_day", format!("{last} is before first_day {first}"));
            } else if days > domain::MAX_RANGE_DAYS {
                v.add(
                    "last_day",
                    format!(
                        "the range {first} to {last} has {days} days; at most {}",
                        domain::MAX_RANGE_DAYS
                    ),
                );
            }
        }
        check_site_ids(&mut v, "site_ids", &req.site_ids);
        v.finish()?;
        let (Some(class), Some(first), Some(last)) = (class, first, last) else {
            return Err(Status::internal("validated fields are missing"));
        };
        let selected = self.select_sites(&req.site_ids)?;
        let sites = &self.inner.sites;
        let answers = futures::future::join_all(
            selected
                .iter()
                .filter(|(_, site)| site.has_class(class))
                .map(|(index, site)| async move {
                    let result = match sites.booking(&site.id) {
                        Ok(mut client) => {
                            let request = book::GetAvailabilityRequest {
                                space: Some(
                                    book::get_availability_request::Space::TemperatureClass(
                                        class_to_proto(class) as i32,
                                    ),
                                ),
                                first_day: Some(date_to_proto(first)),
                                last_day: Some(date_to_proto(last)),
                            };
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
                Ok(availability) => {
                    let days: Vec<DayFree> = availability
                        .days
                        .iter()
                        .map(|d| DayFree {
                            zone_id: d.zone_id.clone(),
                            capacity: d.capacity,
                            free: d.free,
                        })
                        .collect();
                    offers.extend(domain::site_offers(index, &site.id, &days, req.pallets));
                }
                Err(status) => {
                    failures.push(sites.site_error(&site.id, ServiceKind::Booking, &status))
                }
            }
        }
        offers.sort_by(domain::compare_offers);
        Ok(Response::new(pb::FindSpaceResponse {
            offers: offers
                .into_iter()
                .map(|o| pb::SpaceOffer {
                    site_id: o.site_id,
                    zone_id: o.zone_id,
                    temperature_class: class_to_proto(class) as i32,
                    capacity_pallets: o.capacity,
                    min_free: o.min_free,
                    fits: o.fits,
                })
                .collect(),
            failures,
        }))
    }

    async fn list_alarms(
        &self,
        request: Request<pb::ListAlarmsRequest>,
    ) -> Result<Response<pb::ListAlarmsResponse>, Status> {
        let deadline = self.fan_out_deadline(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        check_site_ids(&mut v, "site_ids", &req.site_ids);
        for (i, state) in req.states.iter().enumerate() {
            let known =
                tel::AlarmState::try_from(*state).is_ok_and(|s| s != tel::AlarmState::Unspecified);
            v.check(known, format!("states[{i}]"), || {
                format!("{state} is not an alarm state")
            });
        }
        for (i, kind) in req.kinds.iter().enumerate() {
            let known =
                tel::AlarmKind::try_from(*kind).is_ok_and(|k| k != tel::AlarmKind::Unspecified);
            v.check(known, format!("kinds[{i}]"), || {
                format!("{kind} is not an alarm kind")
            });
        }
        let size = v.page_size(req.page_size);
        let query = list_query(
            "ListAlarms",
            &pb::ListAlarmsRequest {
                page_size: 0,
                page_token: String::new(),
                ..req.clone()
            }
            .encode_to_vec(),
        );
        let cursor: MergeCursor = match v.page_token(&query, &req.page_token) {
            None => MergeCursor::default(),
            Some(raw) => match postcard::from_bytes(&raw) {
                Ok(cursor) => cursor,
                Err(_) => {
                    v.add("page_token", "is not a token this query returned");
                    MergeCursor::default()
                }
            },
        };
        v.finish()?;
        let selected = self.select_sites(&req.site_ids)?;
        let sites = &self.inner.sites;
        let fetch = |site_id: String, token: String, page_size: usize| {
            let filter = tel::ListAlarmsRequest {
                states: req.states.clone(),
                kinds: req.kinds.clone(),
                active_only: req.active_only,
                page_size: i32::try_from(page_size.min(domain::MAX_PAGE_SIZE)).unwrap_or(1000),
                page_token: token,
                ..tel::ListAlarmsRequest::default()
            };
            async move {
                match sites.telemetry(&site_id) {
                    Ok(mut client) => {
                        within(deadline, client.list_alarms(timed(filter, deadline))).await
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
                (
                    site.id.clone(),
                    cursor.sites.get(&site.id).cloned().unwrap_or_default(),
                )
            })
            .filter(|(_, c)| !c.done)
            .collect();
        let firsts = futures::future::join_all(starting.iter().map(|(site_id, c)| {
            let skip = c.skip as usize;
            fetch(site_id.clone(), c.token.clone(), size.saturating_add(skip))
        }))
        .await;
        let mut failures = Vec::new();
        let mut sources: Vec<AlarmSource> = Vec::new();
        let mut next_cursor = MergeCursor::default();
        for (site, c) in cursor.sites.iter() {
            if c.done {
                next_cursor.sites.insert(site.clone(), c.clone());
            }
        }
        for ((site_id, c), result) in starting.into_iter().zip(firsts) {
            match result {
                Ok(page) => {
                    let mut buffer: std::collections::VecDeque<tel::Alarm> = page.alarms.into();
                    let skip = (c.skip as usize).min(buffer.len());
                    buffer.drain(..skip);
                    sources.push(AlarmSource {
                        site_id,
                        token: c.token,
                        consumed: skip as u32,
                        buffer,
                        next_token: page.next_page_token,
                        failed: false,
                    });
                }
                Err(status) => {
                    failures.push(sites.site_error(&site_id, ServiceKind::Telemetry, &status));
                    next_cursor.sites.insert(site_id, c);
                }
            }
        }

        // The k-way merge; a site whose buffer runs dry reads its next page before the
        // merge goes on (its next alarm may come before everyone else's).
        let mut alarms = Vec::new();
        while alarms.len() < size {
            for source in sources.iter_mut() {
                while source.buffer.is_empty() && !source.next_token.is_empty() && !source.failed {
                    match fetch(source.site_id.clone(), source.next_token.clone(), size).await {
                        Ok(page) => {
                            source.token = std::mem::take(&mut source.next_token);
                            source.consumed = 0;
                            source.buffer = page.alarms.into();
                            source.next_token = page.next_page_token;
                        }
                        Err(status) => {
                            failures.push(sites.site_error(
                                &source.site_id,
                                ServiceKind::Telemetry,
                                &status,
                            ));
                            source.failed = true;
                        }
                    }
                }
            }
            let best = sources
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.buffer.front().map(|a| (i, alarm_key(&s.site_id, a))))
                .min_by(|a, b| a.1.cmp(&b.1))
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            let source = &mut sources[i];
            if let Some(mut alarm) = source.buffer.pop_front() {
                source.consumed += 1;
                if alarm.site_id.is_empty() {
                    alarm.site_id = source.site_id.clone();
                }
                alarms.push(alarm);
            }
        }
        for source in sources {
            let c = if source.buffer.is_empty() && source.next_token.is_empty() {
                SiteCursor {
                    token: String::new(),
                    skip: 0,
                    done: true,
                }
            } else if source.buffer.is_empty() && !source.failed {
                SiteCursor {
                    token: source.next_token,
                    skip: 0,
                    done: false,
                }
            } else if source.buffer.is_empty() {
                // Its next page could not be read: resume from it next time.
                SiteCursor {
                    token: source.next_token,
                    skip: 0,
                    done: false,
                }
            } else {
                SiteCursor {
                    token: source.token,
                    skip: source.consumed,
                    done: false,
                }
            };
            next_cursor.sites.insert(source.site_id, c);
        }
        let failed: BTreeSet<&str> = failures.iter().map(|f| f.site_id.as_str()).collect();
        let more = selected.iter().any(|(_, site)| {
            !failed.contains(site.id.as_str())
                && next_cursor.sites.get(&site.id).is_none_or(|c| !c.done)
        });
        let next_page_token = if more {
            let raw =
                postcard::to_allocvec(&next_cursor).map_err(|e| Status::internal(e.to_string()))?;
            page_token::encode(&query, &raw)
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListAlarmsResponse {
            alarms,
            next_page_token,
            failures,
        }))
    }

    async fn watch_alarms(
        &self,
        request: Request<pb::WatchAlarmsRequest>,
    ) -> Result<Response<Self::WatchAlarmsStream>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        check_site_ids(&mut v, "site_ids", &req.site_ids);
        for site in req.from_sequences.keys() {
            v.id(&format!("from_sequences[{site:?}]"), site);
        }
        v.finish()?;
        let selected = self.select_sites(&req.site_ids)?;
        let unknown: Vec<&str> = req
            .from_sequences
            .keys()
            .filter(|id| self.network().site(id).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(unknown_sites(self.network(), &unknown));
        }
        let from: BTreeMap<String, u64> = req.from_sequences.into_iter().collect();
        let o = &self.inner.options;
        let options = WatchOptions {
            buffer: o.watch_buffer,
            stall: o.watch_stall,
            connect_timeout: o.site_deadline.max(Duration::from_secs(2)),
            backoff_initial: o.watch_backoff_initial,
            backoff_max: o.watch_backoff_max,
        };
        let stream = watch::merged(
            self.inner.sites.clone(),
            selected.into_iter().map(|(_, site)| site.id).collect(),
            from,
            options,
            self.inner.shutdown.clone(),
        );
        Ok(Response::new(stream))
    }

    async fn start_transfer(
        &self,
        request: Request<pb::StartTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let req = request.into_inner();
        tracing::Span::current().record("request_id", req.request_id.as_str());
        let spec = start_spec(self.network(), &req)?;
        let request_fingerprint = fingerprint(&req.request_id, &req.encode_to_vec());
        let written = self
            .inner
            .store
            .create(&request_fingerprint, spec)
            .await
            .map_err(write_status)?;
        let transfer = self.load(&written.value.transfer_id)?;
        let driven = self.drive(transfer, Step::Start).await?;
        let transfer = driven.transfer;
        if transfer.state == TransferState::Failed {
            let (code, message) = transfer
                .refusal
                .as_ref()
                .map(|r| (tonic::Code::from(r.code), r.message.clone()))
                .unwrap_or((tonic::Code::FailedPrecondition, transfer.last_error.clone()));
            let message = format!(
                "source {} refused the transfer out of transfer {}: {message}",
                transfer.source_site_id, transfer.transfer_id
            );
            return Err(match driven.refusal {
                Some(status) => Status::with_details(
                    code,
                    message,
                    tonic::codegen::Bytes::copy_from_slice(status.details()),
                ),
                None => Status::new(code, message),
            });
        }
        Ok(Response::new(transfer_to_proto(&transfer)))
    }

    async fn receive_transfer(
        &self,
        request: Request<pb::ReceiveTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let req = request.into_inner();
        tracing::Span::current().record("request_id", req.request_id.as_str());
        let mut v = Violations::new();
        v.request_id(&req.request_id);
        v.id("transfer_id", &req.transfer_id);
        v.finish()?;
        let request_fingerprint = fingerprint(&req.request_id, &req.encode_to_vec());
        self.inner
            .store
            .arrive(&request_fingerprint, &req.transfer_id)
            .await
            .map_err(write_status)?;
        let transfer = self.load(&req.transfer_id)?;
        let driven = self.drive(transfer, Step::Receive).await?;
        if let Some(status) = driven.refusal {
            let message = format!(
                "destination {} refused the transfer in of transfer {} (it stays RECEIVING and is retried): {}",
                driven.transfer.destination_site_id,
                driven.transfer.transfer_id,
                status.message()
            );
            return Err(Status::with_details(
                status.code(),
                message,
                tonic::codegen::Bytes::copy_from_slice(status.details()),
            ));
        }
        Ok(Response::new(transfer_to_proto(&driven.transfer)))
    }

    async fn get_transfer(
        &self,
        request: Request<pb::GetTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        v.id("transfer_id", &req.transfer_id);
        v.finish()?;
        Ok(Response::new(transfer_to_proto(
            &self.load(&req.transfer_id)?,
        )))
    }

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let mut states = Vec::new();
        for (i, state) in req.states.iter().enumerate() {
            match state_from_proto(*state) {
                Some(state) => states.push(state),
                None => v.add(
                    format!("states[{i}]"),
                    format!("{state} is not a transfer state"),
                ),
            }
        }
        v.optional_id("source_site_id", &req.source_site_id);
        v.optional_id("destination_site_id", &req.destination_site_id);
        let size = v.page_size(req.page_size);
        let query = list_query(
            "ListTransfers",
            &pb::ListTransfersRequest {
                page_size: 0,
                page_token: String::new(),
                ..req.clone()
            }
            .encode_to_vec(),
        );
        let after = v.page_token(&query, &req.page_token);
        v.finish()?;
        let unknown: Vec<&str> = [&req.source_site_id, &req.destination_site_id]
            .into_iter()
            .filter(|id| !id.is_empty() && self.network().site(id).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(unknown_sites(self.network(), &unknown));
        }
        let filter = ListFilter {
            states,
            source_site_id: req.source_site_id.clone(),
            destination_site_id: req.destination_site_id.clone(),
        };
        let page = self
            .inner
            .store
            .list(&filter, after.as_deref(), size)
            .map_err(store_status)?;
        Ok(Response::new(pb::ListTransfersResponse {
            transfers: page.transfers.iter().map(transfer_to_proto).collect(),
            next_page_token: page
                .last_key
                .map(|key| page_token::encode(&query, &key))
                .unwrap_or_default(),
        }))
    }
}
