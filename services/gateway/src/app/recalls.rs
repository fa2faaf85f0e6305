//! Recalls: RecallLot records the recall, then its holds are placed at the sites' inventories
//! — at once by the handler, and by the recalls' durable drainer for those that could not be
//! (a site down, a transfer still on its way), after a restart too. ReleaseRecall releases
//! them the same way. One driver per recall at a time (its claim), and every call to a site
//! carries a request id fixed by the recall, so a crash between a site's answer and the
//! gateway's record of it places or releases nothing twice.

use std::sync::Arc;
use std::time::Duration;

use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::network::v1 as pb;
use coldchain_runtime::ServiceError;
use coldchain_runtime::client::{ClientOptions, with_retry};
use coldchain_runtime::drainer::{Attempt, Claims, Drainer, Outbox};
use coldchain_runtime::idempotency::Refusals;
use coldchain_runtime::retry::describe;
use coldchain_store::{Idempotent, ReplyCodec, RequestFingerprint};
use tokio::sync::Notify;

use super::GatewayApp;
use super::genealogy::Reading;
use super::saga::SagaOptions;
use super::sites::{Sites, timed, within};
use crate::domain::genealogy::{Direction, Link, LotRef};
use crate::domain::{
    HoldStep, Recall, RecallError, RecallHold, RecallRef, RecallSpec, RecallState,
};
use crate::domain::{SiteFailure, trace};
use crate::error::{self, write_error};
use crate::store::GatewayStore;
use coldchain_audit::Author;

/// The outcome of one call about one hold.
enum HoldOutcome {
    Placed(String),
    NotPresent {
        travelling_there: bool,
        error: String,
    },
    Released,
    Failed {
        error: String,
    },
    /// A transfer carrying the lot still travels to the site: nothing to try yet.
    StillTravelling,
}

/// The recalls' machinery, shared by the handlers and the drainer.
pub struct Recalls {
    store: GatewayStore,
    sites: Arc<Sites>,
    options: SagaOptions,
    retry: ClientOptions,
    claims: Arc<Claims>,
}

impl Recalls {
    /// Recalls over `store`, calling `sites`, paced like the transfer saga.
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

    /// The background driver of every recall with a hold to place or release.
    pub fn drainer(self: &Arc<Self>) -> Drainer<Recalls> {
        Drainer::new(
            self.clone(),
            self.claims.clone(),
            Arc::new(Notify::new()),
            self.options.drainer(4),
        )
    }

    /// Works every open hold of the recall once (concurrently), records each outcome, and
    /// answers the recall afterwards and whether work is left for later.
    pub async fn drive(&self, recall: Recall) -> Result<(Recall, bool), ServiceError> {
        let open = recall.open_holds();
        let outcomes =
            futures::future::join_all(open.iter().map(|hold| self.attempt_hold(&recall, hold)))
                .await;
        let mut after = recall;
        for (hold, outcome) in open.iter().zip(outcomes) {
            let key = hold.key();
            let (site, lot) = (&key.site_id, &key.lot_id);
            let id = after.recall_id.clone();
            after = match outcome {
                HoldOutcome::StillTravelling => continue,
                HoldOutcome::Placed(hold_id) => {
                    tracing::info!(recall_id = %id, site = %site, sku = %key.sku, lot = %lot, %hold_id, "recall hold placed");
                    self.record(&id, |r, now| r.hold_placed(&key, &hold_id, now))
                        .await?
                }
                HoldOutcome::NotPresent {
                    travelling_there,
                    error,
                } => {
                    self.record(&id, |r, now| {
                        r.not_present(&key, travelling_there, error, now)
                    })
                    .await?
                }
                HoldOutcome::Released => {
                    self.record(&id, |r, now| r.hold_released(&key, now))
                        .await?
                }
                HoldOutcome::Failed { error } => {
                    tracing::debug!(recall_id = %id, site = %site, %error, "recall hold attempt failed; will retry");
                    self.record(&id, |r, now| r.attempt_failed(&key, error, now))
                        .await?
                }
            };
        }
        let more = after.needs_work();
        Ok((after, more))
    }

    async fn record(
        &self,
        recall_id: &str,
        change: impl FnOnce(&mut Recall, i64) -> Result<bool, RecallError>,
    ) -> Result<Recall, ServiceError> {
        self.store
            .update_recall(recall_id, change)
            .await
            .map_err(write_error)
    }

    /// One call about one hold: place it (ACTIVE) or release it (RELEASING).
    async fn attempt_hold(&self, recall: &Recall, hold: &RecallHold) -> HoldOutcome {
        if recall.state == RecallState::Releasing {
            return self.release_hold(recall, hold).await;
        }
        if hold.step == HoldStep::AwaitingArrival {
            match self.travelling_to(hold) {
                Ok(true) => return HoldOutcome::StillTravelling,
                Ok(false) => {}
                Err(error) => {
                    return HoldOutcome::Failed {
                        error: error.to_string(),
                    };
                }
            }
        }
        let request = inv::PlaceHoldRequest {
            request_id: recall.place_request_id(hold),
            zone_id: String::new(),
            sku: hold.sku.clone(),
            lot_id: hold.lot_id.clone(),
            reason: recall.hold_reason(),
            reference: Some(common::Reference {
                kind: common::ReferenceKind::Recall as i32,
                id: recall.recall_id.clone(),
            }),
            actor: recall.started_by.on_behalf(),
            // Scoped to the lot, the hold covers it in every zone of the site: the site may
            // move recalled stock to a quarantine room and it stays held there.
            allow_relocation: true,
        };
        let answer = self
            .call(&hold.site_id, request, |mut client, request| async move {
                client.place_hold(request).await
            })
            .await;
        match answer {
            Ok(placed) => HoldOutcome::Placed(placed.hold_id),
            Err(status) if status.code() == tonic::Code::NotFound => {
                match self.travelling_to(hold) {
                    Ok(travelling_there) => HoldOutcome::NotPresent {
                        travelling_there,
                        error: describe(&status),
                    },
                    Err(error) => HoldOutcome::Failed {
                        error: error.to_string(),
                    },
                }
            }
            Err(status) => HoldOutcome::Failed {
                error: describe(&status),
            },
        }
    }

    async fn release_hold(&self, recall: &Recall, hold: &RecallHold) -> HoldOutcome {
        let by = recall.released_by.clone().unwrap_or_else(Author::unknown);
        let request = inv::ReleaseHoldRequest {
            request_id: recall.release_request_id(hold),
            hold_id: hold.hold_id.clone(),
            reason: format!(
                "recall {} lifted: {}",
                recall.recall_id, recall.release_reason
            ),
            actor: by.on_behalf(),
        };
        let answer = self
            .call(&hold.site_id, request, |mut client, request| async move {
                client.release_hold(request).await
            })
            .await;
        match answer {
            Ok(_) => HoldOutcome::Released,
            // Released by someone else meanwhile: the recall's part is done.
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                HoldOutcome::Released
            }
            Err(status) => HoldOutcome::Failed {
                error: describe(&status),
            },
        }
    }

    /// True while a transfer carrying the hold's lot (any lot of the sku for a recall of
    /// every lot) travels to the hold's site.
    fn travelling_to(&self, hold: &RecallHold) -> Result<bool, ServiceError> {
        Ok(self.store.travelling_with_sku(&hold.sku)?.iter().any(|t| {
            t.destination_site_id == hold.site_id
                && (hold.lot_id.is_empty() || trace::carried(t, &hold.sku, &hold.lot_id) > 0)
        }))
    }

    /// A call to a site's inventory with the step timeout, retried by the saga's policy.
    async fn call<Q, T, F, Fut>(&self, site: &str, request: Q, send: F) -> Result<T, tonic::Status>
    where
        Q: Clone,
        F: Fn(
            coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient<
                coldchain_runtime::client::Channel,
            >,
            tonic::Request<Q>,
        ) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.sites.inventory(site)?;
        let timeout = self.options.step_timeout;
        with_retry(&self.retry, || {
            within(
                timeout,
                send(client.clone(), timed(request.clone(), timeout)),
            )
        })
        .await
    }
}

/// The drainer's view: the recalls with work, each driven once under the claim it took.
impl Outbox for Recalls {
    type Item = String;

    fn key(recall_id: &String) -> String {
        format!("recall:{recall_id}")
    }

    fn pending(&self) -> Result<Vec<String>, String> {
        self.store
            .pending_recalls()
            .map_err(|error| error.to_string())
    }

    async fn attempt(&self, recall_id: String) -> Attempt {
        let driven = match self.store.get_recall(&recall_id) {
            Ok(Some(recall)) => self.drive(recall).await,
            Ok(None) => return Attempt::Done,
            Err(error) => Err(ServiceError::from(error)),
        };
        match driven {
            Ok((_, true)) => Attempt::Retry { transient: true },
            Ok((_, false)) => Attempt::Done,
            Err(failure) => {
                let status: tonic::Status = failure.into();
                tracing::warn!(%recall_id, error = %describe(&status), "driving a recall failed");
                Attempt::Retry { transient: true }
            }
        }
    }
}

impl GatewayApp {
    /// RecallLot: with include_derived, first the lots made from the recalled ones (the
    /// downstream genealogy, as TraceLot finds it); then records the recall (a pending hold
    /// per site and lot), drives its holds once, and answers what it covers.
    pub async fn recall_lot(
        &self,
        request: &RequestFingerprint,
        reply: &dyn ReplyCodec<RecallRef>,
        spec: RecallSpec,
        by: Author,
        deadline: Duration,
    ) -> Result<pb::RecallAnswer, ServiceError> {
        let sites: Vec<String> = self.network().sites.iter().map(|s| s.id.clone()).collect();
        let (derived, derivation_failures) = if spec.include_derived {
            self.derived_links(&spec, deadline).await?
        } else {
            (Vec::new(), Vec::new())
        };
        let written = self
            .store
            .create_recall(
                Idempotent::new(request, reply, &Refusals),
                spec,
                sites,
                derived,
                by,
            )
            .await
            .map_err(write_error)?;
        let recall = self.drive_recall(&written.value.recall_id).await?;
        let mut answer = self.recall_answer(recall, deadline).await?;
        // The caller learns which sites could not say what was made from the lots: their
        // derived lots are not held, and a trace later shows them.
        answer
            .errors
            .extend(derivation_failures.into_iter().map(|failure| {
                crate::wire::site_error(SiteFailure {
                    message: format!(
                        "finding the lots made from the recalled ones: {}",
                        failure.message
                    ),
                    ..failure
                })
            }));
        Ok(answer)
    }

    /// ReleaseRecall: records the release, drives it once, and answers the recall.
    pub async fn release_recall(
        &self,
        request: &RequestFingerprint,
        reply: &dyn ReplyCodec<RecallRef>,
        recall_id: &str,
        by: Author,
        reason: String,
        deadline: Duration,
    ) -> Result<pb::RecallAnswer, ServiceError> {
        self.store
            .release_recall(
                Idempotent::new(request, reply, &Refusals),
                recall_id,
                by,
                reason,
            )
            .await
            .map_err(write_error)?;
        let recall = self.drive_recall(recall_id).await?;
        self.recall_answer(recall, deadline).await
    }

    /// GetRecall.
    pub async fn get_recall(
        &self,
        recall_id: &str,
        deadline: Duration,
    ) -> Result<pb::RecallAnswer, ServiceError> {
        let recall = self
            .store
            .get_recall(recall_id)?
            .ok_or_else(|| RecallError::NotFound(recall_id.to_string()))?;
        self.recall_answer(recall, deadline).await
    }

    /// ListRecalls: newest first.
    pub fn list_recalls(
        &self,
        active_only: bool,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<Recall>, Option<Vec<u8>>), ServiceError> {
        Ok(self.store.list_recalls(
            |r| !active_only || r.state != RecallState::Released,
            after,
            limit,
        )?)
    }

    /// The downstream genealogy of the lots `spec` recalls (every lot of the sku the sites
    /// have, when it names none), and the sites that did not answer: their part is left out
    /// and the recall holds what could be found.
    async fn derived_links(
        &self,
        spec: &RecallSpec,
        deadline: Duration,
    ) -> Result<(Vec<Link>, Vec<SiteFailure>), ServiceError> {
        let started = std::time::Instant::now();
        let mut failures = Vec::new();
        let lot_ids = if spec.lot_ids.is_empty() {
            let (lots, lot_failures) = self.lots_of_sku(&spec.sku, deadline).await;
            failures.extend(lot_failures);
            lots
        } else {
            spec.lot_ids.clone()
        };
        let read = futures::future::join_all(lot_ids.iter().map(|lot_id| async move {
            let lot = LotRef::new(spec.sku.clone(), lot_id.clone());
            let (entries, failures) = self.transformation_entries_of(&lot, deadline).await;
            ((lot, entries), failures)
        }))
        .await;
        let mut roots = Vec::with_capacity(read.len());
        for (root, root_failures) in read {
            roots.push(root);
            failures.extend(root_failures);
        }
        let walked = self
            .walk_genealogy(
                roots,
                &[Direction::Downstream],
                Reading::EntriesOnly,
                started + deadline,
            )
            .await?;
        failures.extend(walked.failures);
        failures.sort_by(|a, b| a.site_id.cmp(&b.site_id));
        failures.dedup();
        for failure in &failures {
            tracing::warn!(site = %failure.site_id, code = %failure.code, "a site did not answer for a recall's derived lots");
        }
        Ok((walked.links, failures))
    }

    /// Drives a recall once in its own task (a client that goes away does not cut a call
    /// between a site's answer and its record), under the recall's claim.
    async fn drive_recall(&self, recall_id: &str) -> Result<Recall, ServiceError> {
        let recalls = self.recalls.clone();
        let id = recall_id.to_string();
        tokio::spawn(async move {
            let _claim = recalls.claims.claim(&format!("recall:{id}")).await;
            let recall = recalls
                .store
                .get_recall(&id)?
                .ok_or_else(|| RecallError::NotFound(id.clone()))?;
            recalls.drive(recall).await.map(|(recall, _)| recall)
        })
        .await
        .map_err(error::step_task_failed)?
    }

    /// The recall with the positions of its lots now, what is in transit and what went out.
    async fn recall_answer(
        &self,
        recall: Recall,
        deadline: Duration,
    ) -> Result<pb::RecallAnswer, ServiceError> {
        let covers = super::trace::LotsQuery {
            sku: recall.sku.clone(),
            lot_ids: recall.lot_ids.clone(),
            derived: recall.derived_lots(),
        };
        let state = self.lots_state(&covers, deadline).await?;
        Ok(pb::RecallAnswer {
            recall: Some(crate::wire::recall::recall_to_proto(&recall)),
            positions: state.positions,
            in_transit: state.in_transit,
            shipped: state.shipped,
            errors: state.errors,
        })
    }
}
