//! The routes of the inventory service: the generated server for every unary RPC, and
//! WatchLedger served from the stored entry bytes (see [`RawLedgerBatch`]) through a
//! hand-written tonic route, so the feed never decodes and re-encodes an entry.

use std::sync::Arc;

use coldchain_proto::inventory::v1 as pb;
use coldchain_proto::inventory::v1::inventory_service_server::InventoryServiceServer;
use coldchain_runtime::feed::FeedStream;
use tonic::{Request, Response, Status};

use super::InventoryApi;
use crate::app::InventoryApp;
use crate::wire::feed::{RawLedgerBatch, raw_batch};

const WATCH_LEDGER_PATH: &str = "/coldchain.inventory.v1.InventoryService/WatchLedger";

/// The inventory service's routes.
#[derive(Clone)]
pub struct InventoryRoutes {
    server: InventoryServiceServer<InventoryApi>,
    feed: Arc<RawFeed>,
}

struct RawFeed {
    app: Arc<InventoryApp>,
    max_message_bytes: usize,
}

impl InventoryRoutes {
    /// Routes for `app`, with the message size limit of the process.
    pub fn new(app: Arc<InventoryApp>, max_message_bytes: usize) -> Self {
        let feed = Arc::new(RawFeed {
            app: app.clone(),
            max_message_bytes,
        });
        let server = InventoryServiceServer::new(InventoryApi::new(app))
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        Self { server, feed }
    }
}

impl tonic::server::NamedService for InventoryRoutes {
    const NAME: &'static str = coldchain_proto::INVENTORY_SERVICE;
}

struct RawWatch(Arc<RawFeed>);

impl tonic::server::ServerStreamingService<pb::WatchLedgerRequest> for RawWatch {
    type Response = RawLedgerBatch;
    type ResponseStream = FeedStream<RawLedgerBatch>;
    type Future = futures::future::Ready<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<pb::WatchLedgerRequest>) -> Self::Future {
        let from = request.get_ref().from_sequence;
        futures::future::ready(Ok(Response::new(self.0.app.feed().watch(from, raw_batch))))
    }
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for InventoryRoutes {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != WATCH_LEDGER_PATH {
            return self.server.call(request);
        }
        let feed = self.feed.clone();
        Box::pin(async move {
            let limit = Some(feed.max_message_bytes);
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                RawLedgerBatch,
                pb::WatchLedgerRequest,
            >::default())
            .apply_max_message_size_config(limit, limit);
            Ok(grpc.server_streaming(RawWatch(feed), request).await)
        })
    }
}
