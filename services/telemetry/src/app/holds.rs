//! The hold outbox drainer: a background worker that places the holds excursion alarms
//! require in the inventory service, retrying with backoff until they succeed.
//!
//! Each outbox entry is written in the same write that raises its alarm, so an inventory
//! outage (or a crash of this process) delays a hold but never loses it. Every PlaceHold
//! call of an entry carries the request_id fixed in the entry, so a retry after a lost
//! answer never places a second hold. Transient failures (`retry::is_transient`:
//! UNAVAILABLE, UNIMPLEMENTED, DEADLINE_EXCEEDED, DATA_LOSS, …) back off up to the
//! transient ceiling; refusals (NOT_FOUND, INVALID_ARGUMENT, …) are retried too, but
//! only up to the refused ceiling, and the alarm shows the last error while it is pending.
//!
//! Two parts: [`HoldPlacer`] makes one attempt at an entry (the calls to other services),
//! [`HoldDrainer`] schedules attempts and records their outcomes in the store. (A shared
//! durable drainer may later replace the latter.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use coldchain_network::{NetworkConfig, ServiceKind};
use coldchain_proto::common::v1::{Reference, ReferenceKind};
use coldchain_proto::inventory::v1::PlaceHoldRequest;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_proto::network::v1::{GetTransferRequest, TransferState};
use coldchain_runtime::Shutdown;
use coldchain_runtime::client::{Channel, ClientOptions, lazy_channel, request};
use coldchain_runtime::retry::{Backoff, code_name, is_transient};
use tokio::time::Instant;
use tonic::Code;

use crate::store::{HoldTarget, OutboxEntry, TelemetryStore};

/// Why an attempt did not place the hold.
#[derive(Debug, Clone)]
pub struct Failure {
    /// "unavailable: …", lowercase code and message (as alarms have always shown it).
    pub message: String,
    /// Worth retrying soon.
    pub transient: bool,
}

/// What an attempt did.
#[derive(Debug, Clone)]
pub enum Placed {
    /// Holds placed, by id.
    Holds(Vec<String>),
    /// No hold is needed after all, and why.
    NotRequired(String),
}

/// A code's name as a pending hold's error shows it: lowercase.
fn lowercase(code: Code) -> String {
    code_name(code).to_ascii_lowercase()
}

fn failure(what: &str, status: &tonic::Status) -> Failure {
    let mut message = status.message().to_string();
    if message.len() > 300 {
        let mut cut = 300;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    Failure {
        message: format!("{}: {what}: {message}", lowercase(status.code())),
        transient: is_transient(status.code()),
    }
}

/// Makes one attempt at an outbox entry: the calls to the site's inventory (and, for a
/// transfer's lots, to the gateway and the destination's inventory).
pub struct HoldPlacer {
    site_id: String,
    network: Arc<NetworkConfig>,
    client: ClientOptions,
    max_message_bytes: usize,
    channels: HashMap<String, Channel>,
}

impl HoldPlacer {
    /// A placer for the holds of site `site_id`, calling through `client`.
    pub fn new(
        site_id: String,
        network: Arc<NetworkConfig>,
        client: ClientOptions,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            site_id,
            network,
            client,
            max_message_bytes,
            channels: HashMap::new(),
        }
    }

    fn channel(&mut self, endpoint: &str) -> Result<Channel, Failure> {
        if let Some(channel) = self.channels.get(endpoint) {
            return Ok(channel.clone());
        }
        let channel = lazy_channel(endpoint, &self.client).map_err(|e| Failure {
            message: format!(
                "{}: endpoint {endpoint:?}: {}",
                lowercase(Code::InvalidArgument),
                e.message
            ),
            transient: false,
        })?;
        self.channels.insert(endpoint.to_string(), channel.clone());
        Ok(channel)
    }

    fn inventory(&mut self, site_id: &str) -> Result<InventoryServiceClient<Channel>, Failure> {
        let endpoint = self
            .network
            .endpoint(site_id, ServiceKind::Inventory)
            .ok_or_else(|| Failure {
                message: format!(
                    "{}: site {site_id:?} is not in the network",
                    lowercase(Code::NotFound)
                ),
                transient: false,
            })?;
        Ok(InventoryServiceClient::new(self.channel(&endpoint)?)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes))
    }

    /// One attempt at placing the hold(s) of `entry`, every call with the request id the
    /// entry fixed.
    pub async fn place(&mut self, entry: &OutboxEntry) -> Result<Placed, Failure> {
        let reference = Some(Reference {
            kind: ReferenceKind::Alarm as i32,
            id: entry.alarm_id.clone(),
        });
        match &entry.target {
            HoldTarget::Zone { zone_id } => {
                let site_id = self.site_id.clone();
                let mut client = self.inventory(&site_id)?;
                let message = PlaceHoldRequest {
                    request_id: entry.request_id.clone(),
                    zone_id: zone_id.clone(),
                    sku: String::new(),
                    lot_id: String::new(),
                    reason: entry.reason.clone(),
                    reference,
                };
                let hold = client
                    .place_hold(request(message, &self.client))
                    .await
                    .map_err(|s| failure(&format!("inventory of {site_id}"), &s))?
                    .into_inner();
                Ok(Placed::Holds(vec![hold.hold_id]))
            }
            HoldTarget::TransferLots { transfer_id } => {
                let gateway = self.network.gateway_endpoint();
                let channel = self.channel(&gateway)?;
                let mut client = NetworkServiceClient::new(channel)
                    .max_decoding_message_size(self.max_message_bytes)
                    .max_encoding_message_size(self.max_message_bytes);
                let transfer = client
                    .get_transfer(request(
                        GetTransferRequest {
                            transfer_id: transfer_id.clone(),
                        },
                        &self.client,
                    ))
                    .await
                    .map_err(|s| failure("gateway", &s))?
                    .into_inner();
                let state =
                    TransferState::try_from(transfer.state).unwrap_or(TransferState::Unspecified);
                match state {
                    TransferState::Failed => {
                        return Ok(Placed::NotRequired(format!(
                            "transfer {transfer_id} failed: nothing left the source"
                        )));
                    }
                    TransferState::InTransit
                    | TransferState::Receiving
                    | TransferState::Completed => {}
                    TransferState::Requested | TransferState::Unspecified => {
                        return Err(Failure {
                            message: format!(
                                "{}: transfer {transfer_id} has not shipped yet",
                                lowercase(Code::FailedPrecondition)
                            ),
                            transient: true,
                        });
                    }
                }
                // The goods travel to (or are at) the destination: hold their lots there,
                // which also holds them when they arrive later.
                let mut lots: Vec<(String, String)> = transfer
                    .lines
                    .iter()
                    .map(|line| (line.sku.clone(), line.lot_id.clone()))
                    .collect();
                lots.sort();
                lots.dedup();
                if lots.is_empty() {
                    return Ok(Placed::NotRequired(format!(
                        "transfer {transfer_id} carries no lots"
                    )));
                }
                let destination = transfer.destination_site_id.clone();
                let mut client = self.inventory(&destination)?;
                let mut hold_ids = Vec::with_capacity(lots.len());
                for (i, (sku, lot_id)) in lots.into_iter().enumerate() {
                    let message = PlaceHoldRequest {
                        request_id: format!("{}:{i}", entry.request_id),
                        zone_id: String::new(),
                        sku,
                        lot_id,
                        reason: entry.reason.clone(),
                        reference: reference.clone(),
                    };
                    let hold = client
                        .place_hold(request(message, &self.client))
                        .await
                        .map_err(|s| failure(&format!("inventory of {destination}"), &s))?
                        .into_inner();
                    hold_ids.push(hold.hold_id);
                }
                Ok(Placed::Holds(hold_ids))
            }
        }
    }
}

/// Drains a site's hold outbox: every entry is attempted when queued, and after a failure
/// again after a jittered, doubling backoff.
pub struct HoldDrainer {
    store: TelemetryStore,
    placer: HoldPlacer,
    transient: Backoff,
    refused: Backoff,
}

/// When an entry is next due, and how many attempts at it failed.
struct Retry {
    at: Instant,
    failures: u32,
}

impl HoldDrainer {
    /// A drainer of `store`'s outbox placing through `placer`: `transient` paces retries
    /// after transient failures, `refused` after refusals.
    pub fn new(
        store: TelemetryStore,
        placer: HoldPlacer,
        transient: Backoff,
        refused: Backoff,
    ) -> Self {
        Self {
            store,
            placer,
            transient,
            refused,
        }
    }

    /// Drains the outbox until `shutdown`.
    pub async fn run(mut self, shutdown: Shutdown) {
        let signal = self.store.outbox_signal();
        let mut schedule: HashMap<String, Retry> = HashMap::new();
        loop {
            if shutdown.is_triggered() {
                return;
            }
            let entries = match self.store.outbox() {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::error!(%error, "cannot read the hold outbox");
                    Vec::new()
                }
            };
            schedule.retain(|alarm_id, _| entries.iter().any(|e| &e.alarm_id == alarm_id));
            let mut next_wake: Option<Instant> = None;
            for entry in entries {
                if shutdown.is_triggered() {
                    return;
                }
                if let Some(retry) = schedule.get(&entry.alarm_id)
                    && retry.at > Instant::now()
                {
                    next_wake = Some(next_wake.map_or(retry.at, |w| w.min(retry.at)));
                    continue;
                }
                let attempt = tokio::select! {
                    result = self.placer.place(&entry) => result,
                    () = shutdown.wait() => return,
                };
                let recorded = match attempt {
                    Ok(Placed::Holds(hold_ids)) => {
                        tracing::info!(alarm_id = %entry.alarm_id, ?hold_ids, "hold placed");
                        schedule.remove(&entry.alarm_id);
                        self.store
                            .hold_placed(entry.alarm_id.clone(), hold_ids)
                            .await
                    }
                    Ok(Placed::NotRequired(why)) => {
                        tracing::info!(alarm_id = %entry.alarm_id, %why, "no hold required");
                        schedule.remove(&entry.alarm_id);
                        self.store
                            .hold_not_required(entry.alarm_id.clone(), why)
                            .await
                    }
                    Err(failure) => {
                        let failures = schedule
                            .get(&entry.alarm_id)
                            .map_or(1, |r| r.failures.saturating_add(1));
                        let backoff = if failure.transient {
                            self.transient
                        } else {
                            self.refused
                        };
                        // Equal jitter: retries spread but still back off.
                        let wait = backoff.next(failures).max(Duration::from_millis(1));
                        let at = Instant::now() + wait;
                        schedule.insert(entry.alarm_id.clone(), Retry { at, failures });
                        next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
                        tracing::warn!(
                            alarm_id = %entry.alarm_id,
                            error = %failure.message,
                            retry_in_ms = wait.as_millis() as u64,
                            "placing the hold failed; will retry"
                        );
                        self.store
                            .hold_failed(entry.alarm_id.clone(), failure.message)
                            .await
                    }
                };
                if let Err(error) = recorded {
                    tracing::error!(alarm_id = %entry.alarm_id, %error, "cannot record the hold outcome");
                    let at = Instant::now() + self.transient.max;
                    next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
                }
            }
            let sleep = async {
                match next_wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = signal.notified() => {}
                () = sleep => {}
                () = shutdown.wait() => return,
            }
        }
    }
}
