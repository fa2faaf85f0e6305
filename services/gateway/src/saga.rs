//! The corridor-transfer saga: the calls to the two inventories and to the source's
//! telemetry, each idempotent by a request_id derived from the transfer id, and the
//! background resumer that drives every unfinished transfer forward.
//!
//! The steps, each recorded in the gateway's store after the site answered:
//! 1. REQUESTED: the source's `RecordMovements` TRANSFER_OUT (request_id
//!    `gateway:<id>:transfer-out`) → IN_TRANSIT with the lots' attributes, or FAILED when
//!    the source refuses (nothing moved). A crash after the source recorded but before the
//!    gateway did is harmless: the retry replays the source's stored answer.
//! 2. IN_TRANSIT with a reefer sensor: the source telemetry's `RegisterSensor` with a
//!    reefer binding naming the transfer (request_id `gateway:<id>:reefer-sensor`).
//! 3. RECEIVING (after ReceiveTransfer): the destination's `RecordMovements` TRANSFER_IN
//!    (request_id `gateway:<id>:transfer-in`; the destination also dedupes by transfer,
//!    sku and lot) → COMPLETED.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::Shutdown;
use coldchain_runtime::client::{ClientOptions, with_retry};
use futures::StreamExt;
use rand::Rng;

use crate::convert::{class_to_proto, lot_from_proto, lot_to_proto, millis};
use crate::domain::{self, Refusal, SensorBinding, Transfer, TransferState};
use crate::sites::{Sites, describe, is_transient, timed, within};
use crate::store::GatewayStore;

/// How the saga calls sites and retries.
#[derive(Debug, Clone)]
pub struct SagaOptions {
    /// Deadline of one call to a site.
    pub step_timeout: Duration,
    /// Attempts of one step within one drive (UNAVAILABLE is retried with backoff).
    pub step_attempts: u32,
    /// How often the resumer looks for unfinished transfers.
    pub resume_interval: Duration,
    /// The resumer's first backoff after a failed step of a transfer.
    pub resume_backoff: Duration,
    /// The resumer's longest backoff.
    pub resume_backoff_max: Duration,
}

/// What one drive of a transfer did.
#[derive(Debug)]
pub struct Driven {
    /// The transfer afterwards.
    pub transfer: Transfer,
    /// A step failed in a way that calls for a retry later.
    pub retry: bool,
    /// The refusal a site answered in this drive, if any (with its code and message).
    pub refusal: Option<tonic::Status>,
}

impl Driven {
    fn done(transfer: Transfer) -> Self {
        Self {
            transfer,
            retry: false,
            refusal: None,
        }
    }
}

/// The saga's machinery, shared by the handlers and the resumer.
pub struct Saga {
    store: GatewayStore,
    sites: Arc<Sites>,
    options: SagaOptions,
    retry: ClientOptions,
    busy: Mutex<HashMap<String, usize>>,
}

/// Marks a transfer as being driven by a handler while alive (the resumer leaves it alone).
pub struct Claim<'a> {
    saga: &'a Saga,
    transfer_id: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut busy = self.saga.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = busy.get_mut(&self.transfer_id) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.transfer_id);
            }
        }
    }
}

/// The TRANSFER_OUT batch of a transfer at its source: one movement per line. Built only
/// from the stored transfer, so every retry sends the same bytes under the same request_id.
pub fn transfer_out_request(t: &Transfer) -> inv::RecordMovementsRequest {
    inv::RecordMovementsRequest {
        request_id: domain::transfer_out_request_id(&t.transfer_id),
        movements: t
            .lines
            .iter()
            .map(|line| inv::Movement {
                kind: inv::MovementKind::TransferOut as i32,
                sku: line.sku.clone(),
                lot: Some(inv::LotInfo {
                    lot_id: line.lot_id.clone(),
                    ..inv::LotInfo::default()
                }),
                zone_id: line.source_zone_id.clone(),
                quantity: line.quantity,
                unit: line.unit.clone(),
                reason: format!(
                    "corridor transfer {} to {}",
                    t.transfer_id, t.destination_site_id
                ),
                other_site_id: t.destination_site_id.clone(),
                transfer_id: t.transfer_id.clone(),
                ..inv::Movement::default()
            })
            .collect(),
    }
}

/// The TRANSFER_IN batch of a transfer at its destination: one movement per (sku, lot),
/// carrying the lot's attributes as the source stored them.
pub fn transfer_in_request(t: &Transfer) -> inv::RecordMovementsRequest {
    inv::RecordMovementsRequest {
        request_id: domain::transfer_in_request_id(&t.transfer_id),
        movements: t
            .receipt_lines()
            .into_iter()
            .map(|line| inv::Movement {
                kind: inv::MovementKind::TransferIn as i32,
                sku: line.sku,
                lot: Some(match &line.lot {
                    Some(lot) => lot_to_proto(lot),
                    None => inv::LotInfo {
                        lot_id: line.lot_id.clone(),
                        ..inv::LotInfo::default()
                    },
                }),
                zone_id: line.zone_id,
                quantity: line.quantity,
                unit: line.unit,
                reason: format!(
                    "corridor transfer {} from {}",
                    t.transfer_id, t.source_site_id
                ),
                other_site_id: t.source_site_id.clone(),
                transfer_id: t.transfer_id.clone(),
                ..inv::Movement::default()
            })
            .collect(),
    }
}

/// The registration of a transfer's reefer sensor at the source's telemetry service.
pub fn sensor_request(t: &Transfer) -> tel::RegisterSensorRequest {
    tel::RegisterSensorRequest {
        request_id: domain::sensor_request_id(&t.transfer_id),
        sensor_id: t.reefer_sensor_id.clone(),
        binding: Some(tel::register_sensor_request::Binding::Reefer(
            tel::ReeferBinding {
                container_id: t.reefer_container_id.clone(),
                train_or_route: t.train_or_route.clone(),
                transfer_id: t.transfer_id.clone(),
                temperature_class: class_to_proto(t.reefer_class) as i32,
            },
        )),
        profile: None,
        description: format!(
            "reefer {} of corridor transfer {}",
            t.reefer_container_id, t.transfer_id
        ),
    }
}

type StepResult<T> = Result<T, tonic::Status>;

impl Saga {
    /// The saga over `store`, calling `sites`.
    pub fn new(
        store: GatewayStore,
        sites: Arc<Sites>,
        options: SagaOptions,
        client: &ClientOptions,
    ) -> Self {
        let retry = ClientOptions {
            call_timeout: options.step_timeout,
            max_attempts: options.step_attempts.max(1),
            ..client.clone()
        };
        Self {
            store,
            sites,
            options,
            retry,
            busy: Mutex::new(HashMap::new()),
        }
    }

    /// Marks `transfer_id` as driven by a handler until the claim is dropped.
    pub fn claim(&self, transfer_id: &str) -> Claim<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy.entry(transfer_id.to_string()).or_insert(0) += 1;
        Claim {
            saga: self,
            transfer_id: transfer_id.to_string(),
        }
    }

    fn is_busy(&self, transfer_id: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(transfer_id)
    }

    /// Does the step the transfer's state calls for: the TRANSFER_OUT (REQUESTED), the
    /// sensor binding (IN_TRANSIT with a pending sensor), the TRANSFER_IN (RECEIVING).
    pub async fn drive(&self, transfer: Transfer) -> StepResult<Driven> {
        match transfer.state {
            TransferState::Requested => self.ship(transfer).await,
            TransferState::InTransit if transfer.sensor == SensorBinding::Pending => {
                self.bind_sensor(transfer).await
            }
            TransferState::Receiving => self.receive(transfer).await,
            _ => Ok(Driven::done(transfer)),
        }
    }

    /// Step 1: the TRANSFER_OUT at the source (then step 2 if a sensor is to be bound).
    pub async fn ship(&self, transfer: Transfer) -> StepResult<Driven> {
        let request = transfer_out_request(&transfer);
        let id = transfer.transfer_id.clone();
        let answer = match self.sites.inventory(&transfer.source_site_id) {
            Ok(client) => {
                let timeout = self.options.step_timeout;
                with_retry(&self.retry, || {
                    let mut client = client.clone();
                    let request = request.clone();
                    async move {
                        within(timeout, client.record_movements(timed(request, timeout))).await
                    }
                })
                .await
            }
            Err(status) => Err(status),
        };
        match answer {
            Ok(response) if response.entries.len() == transfer.lines.len() => {
                let lots = response
                    .entries
                    .iter()
                    .zip(&transfer.lines)
                    .map(|(entry, line)| lot_from_proto(entry.lot.as_ref(), &line.lot_id))
                    .collect::<Vec<_>>();
                let shipped_ms = response
                    .entries
                    .iter()
                    .filter_map(|e| e.recorded_at.as_ref())
                    .map(millis)
                    .max();
                let shipped = self
                    .store
                    .update(&id, |t, now| {
                        t.shipped(lots, shipped_ms.unwrap_or(now), now)
                    })
                    .await
                    .map_err(crate::api::write_status)?;
                tracing::info!(transfer_id = %id, source = %shipped.source_site_id, "transfer out recorded at the source: in transit");
                if shipped.state == TransferState::InTransit
                    && shipped.sensor == SensorBinding::Pending
                {
                    self.bind_sensor(shipped).await
                } else {
                    Ok(Driven::done(shipped))
                }
            }
            Ok(response) => {
                let error = format!(
                    "INTERNAL: the source answered {} ledger entries for {} movements",
                    response.entries.len(),
                    transfer.lines.len()
                );
                self.failed_step(&id, TransferState::Requested, error).await
            }
            Err(status) if is_transient(status.code()) => {
                self.failed_step(&id, TransferState::Requested, describe(&status))
                    .await
            }
            Err(status) => {
                let refusal = Refusal {
                    code: status.code() as i32,
                    message: status.message().to_string(),
                };
                let error = describe(&status);
                let failed = self
                    .store
                    .update(&id, |t, now| Ok(t.refused(refusal, error, now)))
                    .await
                    .map_err(crate::api::write_status)?;
                tracing::info!(transfer_id = %id, error = %failed.last_error, "the source refused the transfer out: failed");
                Ok(Driven {
                    transfer: failed,
                    retry: false,
                    refusal: Some(status),
                })
            }
        }
    }

    /// Step 2: registers the reefer sensor with the source's telemetry, bound to the
    /// transfer.
    pub async fn bind_sensor(&self, transfer: Transfer) -> StepResult<Driven> {
        let request = sensor_request(&transfer);
        let id = transfer.transfer_id.clone();
        let answer = match self.sites.telemetry(&transfer.source_site_id) {
            Ok(client) => {
                let timeout = self.options.step_timeout;
                with_retry(&self.retry, || {
                    let mut client = client.clone();
                    let request = request.clone();
                    async move { within(timeout, client.register_sensor(timed(request, timeout))).await }
                })
                .await
            }
            Err(status) => Err(status),
        };
        match answer {
            Ok(_) => {
                let bound = self
                    .store
                    .update(&id, |t, now| Ok(t.sensor_bound(now)))
                    .await
                    .map_err(crate::api::write_status)?;
                Ok(Driven::done(bound))
            }
            Err(status) if is_transient(status.code()) => {
                let error = format!("binding reefer sensor: {}", describe(&status));
                self.failed_step(&id, TransferState::InTransit, error).await
            }
            Err(status) => {
                let error = format!("binding reefer sensor: {}", describe(&status));
                let refused = self
                    .store
                    .update(&id, |t, now| Ok(t.sensor_refused(error, now)))
                    .await
                    .map_err(crate::api::write_status)?;
                tracing::warn!(transfer_id = %id, error = %refused.last_error, "the reefer sensor could not be bound");
                Ok(Driven::done(refused))
            }
        }
    }

    /// Step 3: the TRANSFER_IN at the destination, then COMPLETED. A refusal keeps the
    /// transfer RECEIVING (the stock left the source; it must not vanish): it is retried
    /// like an outage until an operator fixes its cause.
    pub async fn receive(&self, transfer: Transfer) -> StepResult<Driven> {
        let request = transfer_in_request(&transfer);
        let id = transfer.transfer_id.clone();
        let answer = match self.sites.inventory(&transfer.destination_site_id) {
            Ok(client) => {
                let timeout = self.options.step_timeout;
                with_retry(&self.retry, || {
                    let mut client = client.clone();
                    let request = request.clone();
                    async move {
                        within(timeout, client.record_movements(timed(request, timeout))).await
                    }
                })
                .await
            }
            Err(status) => Err(status),
        };
        match answer {
            Ok(response) => {
                let completed_ms = response
                    .entries
                    .iter()
                    .filter_map(|e| e.recorded_at.as_ref())
                    .map(millis)
                    .max();
                let completed = self
                    .store
                    .update(&id, |t, now| t.completed(completed_ms.unwrap_or(now), now))
                    .await
                    .map_err(crate::api::write_status)?;
                tracing::info!(transfer_id = %id, destination = %completed.destination_site_id, "transfer in recorded at the destination: completed");
                Ok(Driven::done(completed))
            }
            Err(status) => {
                let refusal = (!is_transient(status.code())).then(|| status.clone());
                let mut driven = self
                    .failed_step(&id, TransferState::Receiving, describe(&status))
                    .await?;
                driven.refusal = refusal;
                Ok(driven)
            }
        }
    }

    async fn failed_step(
        &self,
        id: &str,
        during: TransferState,
        error: String,
    ) -> StepResult<Driven> {
        tracing::debug!(transfer_id = %id, %error, "transfer step failed; will retry");
        let transfer = self
            .store
            .update(id, |t, now| Ok(t.step_failed(during, error, now)))
            .await
            .map_err(crate::api::write_status)?;
        Ok(Driven {
            transfer,
            retry: true,
            refusal: None,
        })
    }

    /// Drives every unfinished transfer forward until `shutdown`: at start (after a
    /// restart), then every `resume_interval`; a transfer whose step failed waits a
    /// doubling backoff before its next attempt.
    pub fn spawn_resumer(self: Arc<Self>, shutdown: Shutdown) {
        tokio::spawn(async move {
            let mut backoffs: HashMap<String, (u32, tokio::time::Instant)> = HashMap::new();
            let mut ticker = tokio::time::interval(self.options.resume_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let stop = shutdown.wait();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => return,
                    _ = ticker.tick() => {}
                }
                let pending = match self.store.pending() {
                    Ok(pending) => pending,
                    Err(error) => {
                        tracing::warn!(%error, "resumer cannot read pending transfers");
                        continue;
                    }
                };
                let pending_set: HashSet<&String> = pending.iter().collect();
                backoffs.retain(|id, _| pending_set.contains(id));
                let now = tokio::time::Instant::now();
                let due: Vec<String> = pending
                    .iter()
                    .filter(|id| backoffs.get(*id).is_none_or(|(_, next)| *next <= now))
                    .filter(|id| !self.is_busy(id))
                    .cloned()
                    .collect();
                if due.is_empty() {
                    continue;
                }
                let round = futures::stream::iter(due)
                    .map(|id| {
                        let saga = self.clone();
                        async move {
                            let result = match saga.store.get(&id) {
                                Ok(Some(transfer)) => saga.drive(transfer).await,
                                Ok(None) => Err(tonic::Status::not_found(format!(
                                    "transfer {id:?} vanished"
                                ))),
                                Err(error) => Err(tonic::Status::internal(error.to_string())),
                            };
                            (id, result)
                        }
                    })
                    .buffer_unordered(8)
                    .collect::<Vec<_>>();
                let results = tokio::select! {
                    () = &mut stop => return,
                    results = round => results,
                };
                for (id, result) in results {
                    let retry = match &result {
                        Ok(driven) => driven.retry,
                        Err(status) => {
                            tracing::warn!(transfer_id = %id, error = %describe(status), "resuming a transfer failed");
                            true
                        }
                    };
                    if retry {
                        let attempts = backoffs.get(&id).map_or(1, |(n, _)| n.saturating_add(1));
                        let wait = domain::jittered(
                            domain::backoff(
                                attempts,
                                self.options.resume_backoff,
                                self.options.resume_backoff_max,
                            ),
                            rand::thread_rng().gen_range(0.0..=1.0),
                        );
                        backoffs.insert(id, (attempts, tokio::time::Instant::now() + wait));
                    } else {
                        backoffs.remove(&id);
                    }
                }
            }
        });
    }
}
