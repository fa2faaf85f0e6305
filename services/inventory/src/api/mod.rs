//! The gRPC face of the inventory service: handlers of a few lines, each reading the
//! request ([`crate::wire`]), calling the use case ([`crate::app`]) and rendering the
//! answer. WatchLedger is served from the stored entry bytes by [`InventoryRoutes`].

mod routes;

use std::sync::Arc;

use coldchain_proto::inventory::v1 as pb;
use coldchain_proto::inventory::v1::inventory_service_server::InventoryService;
use coldchain_runtime::auth::author;
use coldchain_runtime::feed::FeedStream;
use coldchain_runtime::idempotency::record_request_id;
use tonic::{Request, Response, Status};

use crate::app::InventoryApp;
use crate::wire;

pub use crate::app::check_in_request_id;
pub use crate::wire::feed::RawLedgerBatch;
pub use routes::InventoryRoutes;

/// The stream type of the typed WatchLedger.
pub type LedgerStream = FeedStream<pb::WatchLedgerResponse>;

/// The InventoryService implementation of one site.
#[derive(Clone)]
pub struct InventoryApi {
    app: Arc<InventoryApp>,
}

impl InventoryApi {
    /// The service over `app`.
    pub fn new(app: Arc<InventoryApp>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl InventoryService for InventoryApi {
    async fn record_movements(
        &self,
        request: Request<pb::RecordMovementsRequest>,
    ) -> Result<Response<pb::RecordMovementsResponse>, Status> {
        let by = author(&request, &request.get_ref().actor);
        let request = request.into_inner();
        record_request_id(&request.request_id);
        let call = wire::requests::record_movements(&request, self.app.site_id())?;
        let entries = self.app.record(&call.request, &call.command, &by).await?;
        Ok(Response::new(wire::recorded(entries)))
    }

    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::GetStockResponse>, Status> {
        let at = wire::requests::get_stock(request.get_ref())?;
        Ok(Response::new(wire::sku_stock(self.app.get_stock(&at)?)))
    }

    async fn list_stock(
        &self,
        request: Request<pb::ListStockRequest>,
    ) -> Result<Response<pb::ListStockResponse>, Status> {
        let list = wire::requests::list_stock(request.get_ref())?;
        let page = self.app.list_stock(
            &list.query,
            list.page_size,
            list.after.as_deref(),
            list.summarize,
        )?;
        Ok(Response::new(wire::stock_page(page, &list)))
    }

    async fn list_expiring(
        &self,
        request: Request<pb::ListExpiringRequest>,
    ) -> Result<Response<pb::ListExpiringResponse>, Status> {
        let list = wire::requests::list_expiring(request.get_ref())?;
        let page = self
            .app
            .list_expiring(&list.query, list.page_size, list.after.as_deref())?;
        Ok(Response::new(wire::expiring_page(page, &list)))
    }

    async fn allocate_stock(
        &self,
        request: Request<pb::AllocateStockRequest>,
    ) -> Result<Response<pb::Allocation>, Status> {
        let by = author(&request, &request.get_ref().actor);
        let request = request.into_inner();
        record_request_id(&request.request_id);
        let call = wire::requests::allocate_stock(&request)?;
        let allocation = self.app.allocate(&call.request, &call.command, &by).await?;
        Ok(Response::new(wire::allocation(allocation)))
    }

    async fn release_allocation(
        &self,
        request: Request<pb::ReleaseAllocationRequest>,
    ) -> Result<Response<pb::ReleaseAllocationResponse>, Status> {
        let by = author(&request, &request.get_ref().actor);
        let request = request.into_inner();
        record_request_id(&request.request_id);
        let call = wire::requests::release_allocation(&request)?;
        let released = self
            .app
            .release_allocation(&call.request, &call.command, &by)
            .await?;
        Ok(Response::new(wire::released(released)))
    }

    async fn place_hold(
        &self,
        request: Request<pb::PlaceHoldRequest>,
    ) -> Result<Response<pb::Hold>, Status> {
        let by = author(&request, &request.get_ref().actor);
        let request = request.into_inner();
        record_request_id(&request.request_id);
        let call = wire::requests::place_hold(&request)?;
        let hold = self
            .app
            .place_hold(&call.request, &call.command, &by)
            .await?;
        Ok(Response::new(wire::hold(hold)))
    }

    async fn release_hold(
        &self,
        request: Request<pb::ReleaseHoldRequest>,
    ) -> Result<Response<pb::Hold>, Status> {
        let by = author(&request, &request.get_ref().actor);
        let request = request.into_inner();
        record_request_id(&request.request_id);
        let call = wire::requests::release_hold(&request)?;
        let hold = self
            .app
            .release_hold(&call.request, &call.command, &by)
            .await?;
        Ok(Response::new(wire::hold(hold)))
    }

    async fn list_lot_entries(
        &self,
        request: Request<pb::ListLotEntriesRequest>,
    ) -> Result<Response<pb::ListLotEntriesResponse>, Status> {
        let list = wire::requests::list_lot_entries(request.get_ref())?;
        let (entries, more) =
            self.app
                .lot_entries(&list.sku, &list.lot_id, list.after, list.page_size)?;
        Ok(Response::new(wire::lot_entries_page(entries, more, &list)))
    }

    async fn get_transformation(
        &self,
        request: Request<pb::GetTransformationRequest>,
    ) -> Result<Response<pb::TransformationRecord>, Status> {
        let transformation_id = wire::requests::get_transformation(request.get_ref())?;
        let recorded = self.app.transformation(&transformation_id)?;
        Ok(Response::new(wire::transformation(recorded)))
    }

    type WatchLedgerStream = LedgerStream;

    async fn watch_ledger(
        &self,
        request: Request<pb::WatchLedgerRequest>,
    ) -> Result<Response<Self::WatchLedgerStream>, Status> {
        // Served by [`InventoryRoutes`] without decoding; this typed path is for callers
        // of the trait.
        let from = request.get_ref().from_sequence;
        Ok(Response::new(
            self.app.feed().watch(from, wire::feed::decoded_batch),
        ))
    }
}
