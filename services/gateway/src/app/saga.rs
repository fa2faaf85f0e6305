//! The corridor-transfer saga: the calls to the two inventories and to the source's
//! telemetry, each idempotent by a request_id derived from the transfer id.
//!
//! Who drives: a request handler drives its transfer at once; the network's one durable
//! drainer (`coldchain_runtime::drainer`, with the saga as its [`Outbox`]) drives every
//! unfinished transfer forward, at start (after a restart), every `resume_interval`, and
//! after a failed step once its backoff has passed. Every driver holds the transfer's
//! exclusive claim ([`Claims`]) from before it reads the transfer's state until the step is
//! recorded, so a handler and the drainer never drive one transfer at once: a handler
//! waits for the claim, the drainer skips a claimed transfer.
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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use coldchain_proto::inventory::v1::{RecordMovementsRequest, RecordMovementsResponse};
use coldchain_runtime::ServiceError;
use coldchain_runtime::client::{ClientOptions, with_retry};
use coldchain_runtime::drainer::{Attempt, Claims, Drainer, DrainerOptions, Outbox};
use coldchain_runtime::retry::{Backoff, describe, is_transient};
use tokio::sync::Notify;

use super::sites::{Sites, timed, within};
use crate::domain::{Refusal, SensorBinding, Transfer, TransferState};
use crate::error::write_error;
use crate::store::GatewayStore;
use crate::wire::sites::{
    recorded_ms, sensor_request, shipped_lots, transfer_in_request, transfer_out_request,
};

/// How the saga calls sites and retries.
#[derive(Debug, Clone)]
pub struct SagaOptions {
    /// Deadline of one call to a site.
    pub step_timeout: Duration,
    /// Attempts of one step within one drive (UNAVAILABLE is retried with backoff).
    pub step_attempts: u32,
    /// How often the drainer looks for unfinished transfers.
    pub resume_interval: Duration,
    /// The drainer's first backoff after a failed step of a transfer.
    pub resume_backoff: Duration,
    /// The drainer's longest backoff.
    pub resume_backoff_max: Duration,
    /// A test seam: awaited by every driver after it claimed a transfer and before it
    /// calls a site.
    #[doc(hidden)]
    pub before_call: StepHook,
}

impl SagaOptions {
    /// How one step's call to a site is retried: the step timeout per attempt, at most
    /// `step_attempts` attempts, the rest as `client`.
    pub fn step_retry(&self, client: &ClientOptions) -> ClientOptions {
        ClientOptions {
            call_timeout: self.step_timeout,
            max_attempts: self.step_attempts.max(1),
            ..client.clone()
        }
    }

    /// How a durable drainer of steps paces itself: a poll every `resume_interval`, the
    /// resume backoff after a failure, `concurrency` items at once.
    pub fn drainer(&self, concurrency: usize) -> DrainerOptions {
        let backoff = Backoff::new(self.resume_backoff, self.resume_backoff_max);
        DrainerOptions {
            poll: Some(self.resume_interval),
            backoff,
            refused_backoff: backoff,
            concurrency,
        }
    }
}

/// What a [`StepHook`] runs: given the transfer id and the step (`transfer-out`,
/// `reefer-sensor`, `transfer-in`), a future the driver awaits.
type HookFn = dyn Fn(&str, &'static str) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// A test seam between a driver's claim and its call to a site (none by default), so a
/// test can hold a driver there and watch what the others do meanwhile.
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct StepHook(Option<Arc<HookFn>>);

impl StepHook {
    /// A hook running `hook`.
    pub fn new<F>(hook: impl Fn(&str, &'static str) -> F + Send + Sync + 'static) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        Self(Some(Arc::new(move |id, step| Box::pin(hook(id, step)))))
    }

    async fn run(&self, transfer_id: &str, step: &'static str) {
        if let Some(hook) = &self.0 {
            hook(transfer_id, step).await;
        }
    }
}

impl fmt::Debug for StepHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "StepHook(set)"
        } else {
            "StepHook(none)"
        })
    }
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

/// The saga's machinery, shared by the handlers and the drainer.
pub struct Saga {
    store: GatewayStore,
    sites: Arc<Sites>,
    options: SagaOptions,
    retry: ClientOptions,
    claims: Arc<Claims>,
}

type StepResult<T> = Result<T, ServiceError>;

impl Saga {
    /// The saga over `store`, calling `sites`.
    pub fn new(
        store: GatewayStore,
        sites: Arc<Sites>,
        options: SagaOptions,
        client: &ClientOptions,
    ) -> Self {
        Self {
            store,
            sites,
            retry: options.step_retry(client),
            options,
            claims: Claims::new(),
        }
    }

    /// The transfers.
    pub fn store(&self) -> &GatewayStore {
        &self.store
    }

    /// How it calls sites and retries.
    pub fn options(&self) -> &SagaOptions {
        &self.options
    }

    /// Who drives which transfer: a driver holds the transfer's claim from before it reads
    /// the transfer until its step is recorded.
    pub fn claims(&self) -> &Arc<Claims> {
        &self.claims
    }

    /// The background driver of every unfinished transfer (run it until shutdown).
    pub fn drainer(self: &Arc<Self>) -> Drainer<Saga> {
        // Nothing wakes it: a handler drives a new step itself; the poll finds the rest.
        Drainer::new(
            self.clone(),
            self.claims.clone(),
            Arc::new(Notify::new()),
            self.options.drainer(8),
        )
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
        self.options.before_call.run(&id, "transfer-out").await;
        let answer = self
            .record_movements(&transfer.source_site_id, request)
            .await;
        match answer {
            Ok(response) if response.entries.len() == transfer.lines.len() => {
                let lots = shipped_lots(&transfer, &response);
                let shipped_ms = recorded_ms(&response);
                let shipped = self
                    .store
                    .update(&id, |t, now| {
                        t.shipped(lots, shipped_ms.unwrap_or(now), now)
                    })
                    .await
                    .map_err(write_error)?;
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
                    .map_err(write_error)?;
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
        self.options.before_call.run(&id, "reefer-sensor").await;
        let client = self.sites.telemetry(&transfer.source_site_id);
        let answer = self
            .call(client, request, |mut client, request| async move {
                client.register_sensor(request).await
            })
            .await;
        match answer {
            Ok(_) => {
                let bound = self
                    .store
                    .update(&id, |t, now| Ok(t.sensor_bound(now)))
                    .await
                    .map_err(write_error)?;
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
                    .map_err(write_error)?;
                tracing::warn!(transfer_id = %id, error = %refused.last_error, "the reefer sensor could not be bound");
                Ok(Driven::done(refused))
            }
        }
    }

    /// Step 3: the TRANSFER_IN at the destination, then COMPLETED. A refusal keeps the
    /// transfer RECEIVING (the stock left the source; it must not vanish): it is retried
    /// like an outage until an operator fixes its cause.
    pub async fn receive(&self, transfer: Transfer) -> StepResult<Driven> {
        let id = transfer.transfer_id.clone();
        let request = match transfer_in_request(&transfer) {
            Ok(request) => request,
            // Cannot happen for a transfer StartTransfer checked; recorded, never sent
            // with a clipped quantity.
            Err(error) => {
                let error = format!("INTERNAL: {error}");
                return self.failed_step(&id, TransferState::Receiving, error).await;
            }
        };
        self.options.before_call.run(&id, "transfer-in").await;
        let answer = self
            .record_movements(&transfer.destination_site_id, request)
            .await;
        match answer {
            Ok(response) => {
                let completed_ms = recorded_ms(&response);
                let completed = self
                    .store
                    .update(&id, |t, now| t.completed(completed_ms.unwrap_or(now), now))
                    .await
                    .map_err(write_error)?;
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

    /// The movements of `request` recorded at `site`'s inventory (see [`Self::call`]).
    async fn record_movements(
        &self,
        site: &str,
        request: RecordMovementsRequest,
    ) -> Result<RecordMovementsResponse, tonic::Status> {
        let client = self.sites.inventory(site);
        self.call(client, request, |mut client, request| async move {
            client.record_movements(request).await
        })
        .await
    }

    /// One step's call to a site: `send` with the step timeout (as `grpc-timeout` and as a
    /// local deadline), retried by the saga's policy. A client that could not be made is
    /// the answer.
    async fn call<C, Q, T, F, Fut>(
        &self,
        client: Result<C, tonic::Status>,
        request: Q,
        send: F,
    ) -> Result<T, tonic::Status>
    where
        C: Clone,
        Q: Clone,
        F: Fn(C, tonic::Request<Q>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = client?;
        let timeout = self.options.step_timeout;
        with_retry(&self.retry, || {
            within(
                timeout,
                send(client.clone(), timed(request.clone(), timeout)),
            )
        })
        .await
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
            .map_err(write_error)?;
        Ok(Driven {
            transfer,
            retry: true,
            refusal: None,
        })
    }
}

/// The drainer's view of the saga: the pending transfers, each attempted by one drive under
/// the claim the drainer took for it.
impl Outbox for Saga {
    type Item = String;

    fn key(transfer_id: &String) -> String {
        transfer_id.clone()
    }

    fn pending(&self) -> Result<Vec<String>, String> {
        self.store.pending().map_err(|error| error.to_string())
    }

    async fn attempt(&self, transfer_id: String) -> Attempt {
        // Read under the claim: the state a handler recorded before releasing it.
        let driven = match self.store.get(&transfer_id) {
            Ok(Some(transfer)) => self.drive(transfer).await,
            Ok(None) => return Attempt::Done,
            Err(error) => Err(ServiceError::from(error)),
        };
        match driven {
            Ok(driven) if driven.retry && driven.transfer.needs_work() => Attempt::Retry {
                transient: driven.refusal.is_none(),
            },
            Ok(_) => Attempt::Done,
            Err(failure) => {
                let status: tonic::Status = failure.into();
                tracing::warn!(%transfer_id, error = %describe(&status), "resuming a transfer failed");
                Attempt::Retry { transient: true }
            }
        }
    }
}
