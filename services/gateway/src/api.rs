//! The gRPC handlers of `coldchain.network.v1.NetworkService`, a few lines each: the
//! request read by [`crate::wire::requests`], the use case of [`crate::app`], the answer
//! rendered by [`crate::wire`]; refusals become statuses in [`crate::error`].

use std::sync::Arc;
use std::time::Duration;

use coldchain_proto::network::v1 as pb;
use coldchain_proto::network::v1::network_service_server::NetworkService;
use coldchain_runtime::auth;
use coldchain_runtime::idempotency::record_request_id;
use coldchain_runtime::retry::client_deadline;
use tonic::{Request, Response, Status};

use crate::app::GatewayApp;
use crate::app::watch::AlarmStream;
use crate::domain::TransferState;
use crate::error;
use crate::wire::recall::{self, RecallRefCodec};
use crate::wire::{self, TransferRefCodec, requests};

/// The handlers.
#[derive(Clone)]
pub struct GatewayApi {
    app: Arc<GatewayApp>,
}

impl GatewayApi {
    /// Handlers over `app`.
    pub fn new(app: Arc<GatewayApp>) -> Self {
        Self { app }
    }

    /// How long a call that asks the sites may wait for them: the configured site deadline,
    /// within the client's own deadline when it sent one.
    fn fan_out_deadline<T>(&self, request: &Request<T>) -> Duration {
        self.app
            .fan_out_deadline(client_deadline(request.metadata().as_ref()))
    }
}

#[tonic::async_trait]
impl NetworkService for GatewayApi {
    type WatchAlarmsStream = AlarmStream;

    async fn list_sites(
        &self,
        request: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        let query = requests::list_sites(request.get_ref())?;
        let page = self.app.list_sites(&query).await?;
        Ok(Response::new(wire::sites_page(
            page.sites,
            page.next,
            &query.query,
        )))
    }

    async fn find_stock(
        &self,
        request: Request<pb::FindStockRequest>,
    ) -> Result<Response<pb::FindStockResponse>, Status> {
        let deadline = self.fan_out_deadline(&request);
        let query = requests::find_stock(request.get_ref())?;
        let answer = self.app.find_stock(&query, deadline).await?;
        Ok(Response::new(wire::stock_answer(answer)))
    }

    async fn list_expiring(
        &self,
        request: Request<pb::NetworkListExpiringRequest>,
    ) -> Result<Response<pb::NetworkListExpiringResponse>, Status> {
        let deadline = self.fan_out_deadline(&request);
        let query = requests::list_expiring(request.get_ref())?;
        let answer = self.app.list_expiring(&query, deadline).await?;
        Ok(Response::new(wire::expiring_answer(
            answer.levels,
            answer.truncated,
            answer.failures,
        )))
    }

    async fn find_space(
        &self,
        request: Request<pb::FindSpaceRequest>,
    ) -> Result<Response<pb::FindSpaceResponse>, Status> {
        let deadline = self.fan_out_deadline(&request);
        let query = requests::find_space(request.get_ref())?;
        let answer = self.app.find_space(&query, deadline).await?;
        Ok(Response::new(wire::space_answer(answer)))
    }

    async fn list_alarms(
        &self,
        request: Request<pb::ListAlarmsRequest>,
    ) -> Result<Response<pb::ListAlarmsResponse>, Status> {
        let deadline = self.fan_out_deadline(&request);
        let query = requests::list_alarms(request.get_ref())?;
        let page = self.app.list_alarms(&query, deadline).await?;
        let response =
            wire::alarms_page(page.alarms, page.next.as_ref(), page.failures, &query.query)?;
        Ok(Response::new(response))
    }

    async fn watch_alarms(
        &self,
        request: Request<pb::WatchAlarmsRequest>,
    ) -> Result<Response<Self::WatchAlarmsStream>, Status> {
        let query = requests::watch_alarms(request.into_inner())?;
        Ok(Response::new(self.app.watch_alarms(query)?))
    }

    async fn start_transfer(
        &self,
        request: Request<pb::StartTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let author = auth::author(&request, &request.get_ref().actor);
        let req = request.into_inner();
        record_request_id(&req.request_id);
        let (fingerprint, spec) = requests::start_transfer(self.app.network(), &req)?;
        let driven = self
            .app
            .start_transfer(&fingerprint, &TransferRefCodec, spec, author)
            .await?;
        if driven.transfer.state == TransferState::Failed {
            return Err(error::source_refused(
                &driven.transfer,
                driven.refusal.as_ref(),
            ));
        }
        Ok(Response::new(wire::transfer_to_proto(&driven.transfer)))
    }

    async fn receive_transfer(
        &self,
        request: Request<pb::ReceiveTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let author = auth::author(&request, &request.get_ref().actor);
        let req = request.into_inner();
        record_request_id(&req.request_id);
        let (fingerprint, transfer_id) = requests::receive_transfer(&req)?;
        let driven = self
            .app
            .receive_transfer(&fingerprint, &TransferRefCodec, &transfer_id, author)
            .await?;
        if let Some(status) = &driven.refusal {
            return Err(error::destination_refused(&driven.transfer, status));
        }
        Ok(Response::new(wire::transfer_to_proto(&driven.transfer)))
    }

    async fn get_transfer(
        &self,
        request: Request<pb::GetTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let transfer_id = requests::get_transfer(request.get_ref())?;
        let transfer = self.app.get_transfer(&transfer_id)?;
        Ok(Response::new(wire::transfer_to_proto(&transfer)))
    }

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
        let query = requests::list_transfers(request.get_ref())?;
        let page = self.app.list_transfers(&query)?;
        Ok(Response::new(wire::transfers_page(
            &page.transfers,
            page.last_key,
            &query.query,
        )))
    }

    async fn trace_lot(
        &self,
        request: Request<pb::TraceLotRequest>,
    ) -> Result<Response<pb::TraceLotResponse>, Status> {
        let deadline = self.fan_out_deadline(&request);
        let query = requests::trace_lot(request.get_ref())?;
        Ok(Response::new(self.app.trace_lot(&query, deadline).await?))
    }

    async fn export_trace_epcis(
        &self,
        request: Request<pb::TraceLotRequest>,
    ) -> Result<Response<pb::EpcisDocument>, Status> {
        let deadline = self.fan_out_deadline(&request);
        let query = requests::trace_lot(request.get_ref())?;
        Ok(Response::new(
            self.app.export_trace_epcis(&query, deadline).await?,
        ))
    }

    async fn recall_lot(
        &self,
        request: Request<pb::RecallLotRequest>,
    ) -> Result<Response<pb::RecallAnswer>, Status> {
        let deadline = self.fan_out_deadline(&request);
        let by = auth::author(&request, &request.get_ref().actor);
        let req = request.into_inner();
        record_request_id(&req.request_id);
        let (fingerprint, spec) = recall::recall_lot(&req)?;
        let answer = self
            .app
            .recall_lot(&fingerprint, &RecallRefCodec, spec, by, deadline)
            .await?;
        Ok(Response::new(answer))
    }

    async fn release_recall(
        &self,
        request: Request<pb::ReleaseRecallRequest>,
    ) -> Result<Response<pb::RecallAnswer>, Status> {
        let deadline = self.fan_out_deadline(&request);
        let by = auth::author(&request, &request.get_ref().actor);
        let req = request.into_inner();
        record_request_id(&req.request_id);
        let (fingerprint, recall_id, reason) = recall::release_recall(&req)?;
        let answer = self
            .app
            .release_recall(
                &fingerprint,
                &RecallRefCodec,
                &recall_id,
                by,
                reason,
                deadline,
            )
            .await?;
        Ok(Response::new(answer))
    }

    async fn get_recall(
        &self,
        request: Request<pb::GetRecallRequest>,
    ) -> Result<Response<pb::RecallAnswer>, Status> {
        let deadline = self.fan_out_deadline(&request);
        let recall_id = recall::get_recall(request.get_ref())?;
        Ok(Response::new(
            self.app.get_recall(&recall_id, deadline).await?,
        ))
    }

    async fn list_recalls(
        &self,
        request: Request<pb::ListRecallsRequest>,
    ) -> Result<Response<pb::ListRecallsResponse>, Status> {
        let query = recall::list_recalls(request.get_ref())?;
        let (recalls, last_key) =
            self.app
                .list_recalls(query.active_only, query.after.as_deref(), query.size)?;
        Ok(Response::new(recall::recalls_page(
            &recalls,
            last_key,
            &query.query,
        )))
    }
}
