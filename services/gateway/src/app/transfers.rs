//! The transfer use cases: StartTransfer and ReceiveTransfer record the change durably
//! (idempotently by request id), then drive the saga's step in its own task, under the
//! transfer's claim; GetTransfer reads. Also the merged WatchAlarms stream's start.

use coldchain_audit::Author;
use coldchain_runtime::ServiceError;
use coldchain_runtime::idempotency::Refusals;
use coldchain_store::{Idempotent, ReplyCodec, RequestFingerprint};

use super::GatewayApp;
use super::saga::Driven;
use super::watch::{self, AlarmStream, WatchOptions};
use crate::domain::{self, Transfer, TransferError, TransferRef, TransferSpec, TransferState};
use crate::error::{self, write_error};
use crate::wire::requests::WatchQuery;

/// Which step a handler drives.
#[derive(Clone, Copy)]
enum Step {
    Start,
    Receive,
}

impl GatewayApp {
    /// StartTransfer by `author`: records the transfer (REQUESTED), then tries the source.
    /// The answer is the transfer as it is afterwards, and the source's refusal if it
    /// refused.
    pub async fn start_transfer(
        &self,
        request: &RequestFingerprint,
        reply: &dyn ReplyCodec<TransferRef>,
        spec: TransferSpec,
        author: Author,
    ) -> Result<Driven, ServiceError> {
        let written = self
            .store
            .create(Idempotent::new(request, reply, &Refusals), spec, author)
            .await
            .map_err(write_error)?;
        self.drive(&written.value.transfer_id, Step::Start).await
    }

    /// ReceiveTransfer by `author`: records the arrival (RECEIVING), then tries the
    /// destination.
    pub async fn receive_transfer(
        &self,
        request: &RequestFingerprint,
        reply: &dyn ReplyCodec<TransferRef>,
        transfer_id: &str,
        author: Author,
    ) -> Result<Driven, ServiceError> {
        self.store
            .arrive(
                Idempotent::new(request, reply, &Refusals),
                transfer_id,
                author,
            )
            .await
            .map_err(write_error)?;
        self.drive(transfer_id, Step::Receive).await
    }

    /// GetTransfer.
    pub fn get_transfer(&self, transfer_id: &str) -> Result<Transfer, ServiceError> {
        Ok(self
            .store
            .get(transfer_id)?
            .ok_or_else(|| TransferError::NotFound(transfer_id.to_string()))?)
    }

    /// Runs a saga step in its own task, so a client that goes away mid-call does not cut
    /// a step between the site's answer and the gateway's record of it. The task waits for
    /// the transfer's claim (the drainer or another handler may be driving it) and reads
    /// the transfer under it: claim, read and step are one act.
    async fn drive(&self, transfer_id: &str, step: Step) -> Result<Driven, ServiceError> {
        let saga = self.saga.clone();
        let id = transfer_id.to_string();
        tokio::spawn(async move {
            let _claim = saga.claims().claim(&id).await;
            let transfer = saga
                .store()
                .get(&id)?
                .ok_or_else(|| TransferError::NotFound(id.clone()))?;
            match (step, transfer.state) {
                (Step::Start, TransferState::Requested | TransferState::InTransit) => {
                    saga.drive(transfer).await
                }
                (Step::Receive, TransferState::Receiving) => saga.receive(transfer).await,
                _ => Ok(Driven {
                    transfer,
                    retry: false,
                    refusal: None,
                }),
            }
        })
        .await
        .map_err(error::step_task_failed)?
    }

    /// WatchAlarms: the merged stream of the selected sites' alarm feeds.
    pub fn watch_alarms(&self, query: WatchQuery) -> Result<AlarmStream, ServiceError> {
        let selected = domain::select_sites(self.network(), &query.site_ids)?;
        domain::check_known(self.network(), query.from.keys())?;
        let o = &self.options;
        let options = WatchOptions {
            buffer: o.watch_buffer,
            stall: o.watch_stall,
            connect_timeout: o.site_deadline.max(std::time::Duration::from_secs(2)),
            backoff_initial: o.watch_backoff_initial,
            backoff_max: o.watch_backoff_max,
            keepalive: o.watch_keepalive,
        };
        Ok(watch::merged(
            self.sites.clone(),
            selected.into_iter().map(|(_, site)| site.id).collect(),
            query.from,
            options,
            self.shutdown.clone(),
        ))
    }
}
