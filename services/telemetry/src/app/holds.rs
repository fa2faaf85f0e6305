//! The hold outbox: the holds excursion alarms require, placed in the inventory service
//! by the network's one durable drainer (`coldchain_runtime::drainer`), retried with
//! backoff until they succeed.
//!
//! Each outbox entry is written in the same write that raises its alarm, so an inventory
//! outage (or a crash of this process) delays a hold but never loses it; the store wakes
//! the drainer when it queues one. Every PlaceHold call of an entry carries the request_id
//! fixed in the entry, so a retry after a lost answer never places a second hold. Transient
//! failures (`retry::is_transient`: UNAVAILABLE, UNIMPLEMENTED, DEADLINE_EXCEEDED,
//! DATA_LOSS, …) back off up to the transient ceiling; refusals (NOT_FOUND,
//! INVALID_ARGUMENT, …) are retried too, but only up to the refused ceiling, and the alarm
//! shows the last error while it is pending.
//!
//! A refused PlaceHold placed nothing, and the inventory remembers the refusal under its
//! request_id (README, Guarantees): a retry under the same id would be refused again even
//! once the hold could be placed (a transfer's lots at a destination that has not received
//! them yet). So after a refusal the next attempt sends a new id, the entry's id with the
//! number of refusals seen (`<id>~<n>`). The count lives in memory: after a restart the
//! remembered refusals are met again one by one and counted anew, each of which placed
//! nothing, so no hold is ever placed twice.
//!
//! [`HoldPlacer`] is the drainer's [`Outbox`]: an attempt at an entry makes the calls to
//! other services and records the outcome in the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use coldchain_network::{NetworkConfig, ServiceKind};
use coldchain_proto::common::v1::{Reference, ReferenceKind};
use coldchain_proto::inventory::v1::PlaceHoldRequest;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_proto::network::v1::{GetTransferRequest, TransferState};
use coldchain_runtime::client::{Channel, ClientOptions, lazy_channel, request};
use coldchain_runtime::drainer::{Attempt, Outbox};
use coldchain_runtime::idempotency::is_remembered_status;
use coldchain_runtime::retry::{code_name, is_transient};
use tonic::Code;

use crate::store::{HoldTarget, OutboxEntry, TelemetryStore};

/// Why an attempt did not place the hold.
#[derive(Debug, Clone)]
pub struct Failure {
    /// "unavailable: …", lowercase code and message (as alarms have always shown it).
    pub message: String,
    /// Worth retrying soon.
    pub transient: bool,
    /// A service refused the request after executing it (and remembers the refusal):
    /// the next attempt needs a new request id.
    pub refused: bool,
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
        refused: is_remembered_status(status.code()),
    }
}

/// Places the holds of a site's outbox: one attempt at an entry is the calls to the site's
/// inventory (and, for a transfer's lots, to the gateway and the destination's inventory),
/// and its outcome recorded in the store.
pub struct HoldPlacer {
    store: TelemetryStore,
    network: Arc<NetworkConfig>,
    client: ClientOptions,
    max_message_bytes: usize,
    /// Channels by endpoint, made once (the lock is never held across a call).
    channels: Mutex<HashMap<String, Channel>>,
    /// Refusals seen per alarm since this process started (see the module's comment).
    refusals: Mutex<HashMap<String, u32>>,
}

impl HoldPlacer {
    /// A placer for the holds queued in `store` (of its site), calling through `client`.
    pub fn new(
        store: TelemetryStore,
        network: Arc<NetworkConfig>,
        client: ClientOptions,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            store,
            network,
            client,
            max_message_bytes,
            channels: Mutex::default(),
            refusals: Mutex::default(),
        }
    }

    fn channel(&self, endpoint: &str) -> Result<Channel, Failure> {
        // A panic while holding this lock leaves the map consistent (one insert).
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(channel) = channels.get(endpoint) {
            return Ok(channel.clone());
        }
        let channel = lazy_channel(endpoint, &self.client).map_err(|e| Failure {
            message: format!(
                "{}: endpoint {endpoint:?}: {}",
                lowercase(Code::InvalidArgument),
                e.message
            ),
            transient: false,
            refused: false,
        })?;
        channels.insert(endpoint.to_string(), channel.clone());
        Ok(channel)
    }

    fn inventory(&self, site_id: &str) -> Result<InventoryServiceClient<Channel>, Failure> {
        let endpoint = self
            .network
            .endpoint(site_id, ServiceKind::Inventory)
            .ok_or_else(|| Failure {
                message: format!(
                    "{}: site {site_id:?} is not in the network",
                    lowercase(Code::NotFound)
                ),
                transient: false,
                refused: false,
            })?;
        Ok(InventoryServiceClient::new(self.channel(&endpoint)?)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes))
    }

    /// The request id of the next attempt at `entry`: the one it fixed, then a new one
    /// after each refusal.
    fn request_id(&self, entry: &OutboxEntry) -> String {
        let refusals = self.refusals_of(&entry.alarm_id, |_| {});
        match refusals {
            0 => entry.request_id.clone(),
            n => format!("{}~{n}", entry.request_id),
        }
    }

    /// The refusals counted for `alarm_id`, after `change` to its count.
    fn refusals_of(&self, alarm_id: &str, change: impl FnOnce(&mut u32)) -> u32 {
        // A panic while holding this lock leaves the map consistent (one update).
        let mut refusals = self
            .refusals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = refusals.entry(alarm_id.to_string()).or_default();
        change(count);
        let count = *count;
        if count == 0 {
            refusals.remove(alarm_id);
        }
        count
    }

    /// One attempt at placing the hold(s) of `entry`, every call with the attempt's request
    /// id (see [`Self::request_id`]).
    pub async fn place(&self, entry: &OutboxEntry) -> Result<Placed, Failure> {
        let request_id = self.request_id(entry);
        let reference = Some(Reference {
            kind: ReferenceKind::Alarm as i32,
            id: entry.alarm_id.clone(),
        });
        match &entry.target {
            HoldTarget::Zone { zone_id } => {
                let site_id = self.store.site().id.clone();
                let mut client = self.inventory(&site_id)?;
                let message = PlaceHoldRequest {
                    request_id: request_id.clone(),
                    zone_id: zone_id.clone(),
                    sku: String::new(),
                    lot_id: String::new(),
                    reason: entry.reason.clone(),
                    reference,
                    actor: entry.actor.clone(),
                    // An excursion holds a zone: stock that moved out would leave it.
                    allow_relocation: false,
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
                            refused: false,
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
                        request_id: format!("{request_id}:{i}"),
                        zone_id: String::new(),
                        sku,
                        lot_id,
                        reason: entry.reason.clone(),
                        reference: reference.clone(),
                        actor: entry.actor.clone(),
                        allow_relocation: false,
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

impl Outbox for HoldPlacer {
    type Item = OutboxEntry;

    fn key(entry: &OutboxEntry) -> String {
        entry.alarm_id.clone()
    }

    fn pending(&self) -> Result<Vec<OutboxEntry>, String> {
        self.store.outbox().map_err(|error| error.to_string())
    }

    async fn attempt(&self, entry: OutboxEntry) -> Attempt {
        let alarm_id = entry.alarm_id.clone();
        let (recorded, outcome) = match self.place(&entry).await {
            Ok(Placed::Holds(hold_ids)) => {
                self.refusals_of(&alarm_id, |count| *count = 0);
                tracing::info!(%alarm_id, ?hold_ids, "hold placed");
                let recorded = self.store.hold_placed(alarm_id.clone(), hold_ids).await;
                (recorded, Attempt::Done)
            }
            Ok(Placed::NotRequired(why)) => {
                self.refusals_of(&alarm_id, |count| *count = 0);
                tracing::info!(%alarm_id, %why, "no hold required");
                let recorded = self.store.hold_not_required(alarm_id.clone(), why).await;
                (recorded, Attempt::Done)
            }
            Err(failure) => {
                if failure.refused {
                    self.refusals_of(&alarm_id, |count| *count += 1);
                }
                tracing::warn!(%alarm_id, error = %failure.message, "placing the hold failed; will retry");
                let recorded = self
                    .store
                    .hold_failed(alarm_id.clone(), failure.message)
                    .await;
                let transient = failure.transient;
                (recorded, Attempt::Retry { transient })
            }
        };
        match recorded {
            Ok(()) => outcome,
            Err(error) => {
                // The entry stays in the outbox; the next attempt repeats the same request.
                tracing::error!(%alarm_id, %error, "cannot record the hold outcome");
                Attempt::Retry { transient: true }
            }
        }
    }
}
