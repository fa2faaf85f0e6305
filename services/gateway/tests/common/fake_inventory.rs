//! A site's inventory that records every RecordMovements request it receives (in
//! [`RECORDED`], by the test's data directory and the site) and answers one ledger entry per
//! movement, so a transfer's saga runs through; every other call is UNIMPLEMENTED.

use std::path::PathBuf;
use std::sync::Mutex;

use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::inventory::v1::inventory_service_server::{
    InventoryService, InventoryServiceServer,
};
use coldchain_runtime::host::ServiceContext;
use coldchain_runtime::proto_time::timestamp;
use coldchain_runtime::server::{ServiceSpec, always_healthy, never_fatal};
use tonic::{Request, Response, Status};

/// A RecordMovements request a fake inventory received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The data directory of the test's network (tests of one binary run at once).
    pub data_dir: PathBuf,
    /// The site whose inventory received it.
    pub site_id: String,
    /// The request.
    pub request: inv::RecordMovementsRequest,
}

/// Every RecordMovements request the fake inventories of this test binary received.
pub static RECORDED: Mutex<Vec<Recorded>> = Mutex::new(Vec::new());

/// The requests the inventory of `site_id` in the network at `data_dir` received.
pub fn recorded(data_dir: &std::path::Path, site_id: &str) -> Vec<inv::RecordMovementsRequest> {
    RECORDED
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.data_dir == data_dir && r.site_id == site_id)
        .map(|r| r.request.clone())
        .collect()
}

/// The fake's server, as the host runs it.
pub fn service(ctx: &ServiceContext) -> ServiceSpec {
    ServiceSpec {
        label: ctx.label(),
        service_name: coldchain_proto::INVENTORY_SERVICE,
        routes: tonic::service::Routes::new(InventoryServiceServer::new(Recording {
            data_dir: ctx.config.data_dir.clone(),
            site_id: ctx.site.id.clone(),
        })),
        probe: always_healthy(),
        fatal: never_fatal(),
        on_stopped: Box::new(|| {}),
    }
}

struct Recording {
    data_dir: PathBuf,
    site_id: String,
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in the fake inventory"))
}

#[tonic::async_trait]
impl InventoryService for Recording {
    async fn record_movements(
        &self,
        request: Request<inv::RecordMovementsRequest>,
    ) -> Result<Response<inv::RecordMovementsResponse>, Status> {
        let request = request.into_inner();
        let entries = request
            .movements
            .iter()
            .enumerate()
            .map(|(i, m)| inv::LedgerEntry {
                sequence: i as u64 + 1,
                recorded_at: Some(timestamp(1_780_000_000_000)),
                request_id: request.request_id.clone(),
                sku: m.sku.clone(),
                lot: m.lot.clone(),
                zone_id: m.zone_id.clone(),
                unit: m.unit.clone(),
                ..inv::LedgerEntry::default()
            })
            .collect();
        RECORDED.lock().unwrap().push(Recorded {
            data_dir: self.data_dir.clone(),
            site_id: self.site_id.clone(),
            request,
        });
        Ok(Response::new(inv::RecordMovementsResponse {
            entries,
            // The gateway records no relocations.
            relocation_arrivals: Vec::new(),
        }))
    }

    async fn get_stock(
        &self,
        _: Request<inv::GetStockRequest>,
    ) -> Result<Response<inv::GetStockResponse>, Status> {
        unimplemented()
    }

    async fn list_stock(
        &self,
        _: Request<inv::ListStockRequest>,
    ) -> Result<Response<inv::ListStockResponse>, Status> {
        unimplemented()
    }

    async fn list_expiring(
        &self,
        _: Request<inv::ListExpiringRequest>,
    ) -> Result<Response<inv::ListExpiringResponse>, Status> {
        unimplemented()
    }

    async fn allocate_stock(
        &self,
        _: Request<inv::AllocateStockRequest>,
    ) -> Result<Response<inv::Allocation>, Status> {
        unimplemented()
    }

    async fn release_allocation(
        &self,
        _: Request<inv::ReleaseAllocationRequest>,
    ) -> Result<Response<inv::ReleaseAllocationResponse>, Status> {
        unimplemented()
    }

    async fn place_hold(
        &self,
        _: Request<inv::PlaceHoldRequest>,
    ) -> Result<Response<inv::Hold>, Status> {
        unimplemented()
    }

    async fn release_hold(
        &self,
        _: Request<inv::ReleaseHoldRequest>,
    ) -> Result<Response<inv::Hold>, Status> {
        unimplemented()
    }

    type WatchLedgerStream = tokio_stream::Empty<Result<inv::WatchLedgerResponse, Status>>;

    async fn watch_ledger(
        &self,
        _: Request<inv::WatchLedgerRequest>,
    ) -> Result<Response<Self::WatchLedgerStream>, Status> {
        unimplemented()
    }

    async fn list_lot_entries(
        &self,
        _: Request<inv::ListLotEntriesRequest>,
    ) -> Result<Response<inv::ListLotEntriesResponse>, Status> {
        unimplemented()
    }

    async fn get_transformation(
        &self,
        _: Request<inv::GetTransformationRequest>,
    ) -> Result<Response<inv::TransformationRecord>, Status> {
        unimplemented()
    }
}
