//! The gRPC ceiling: a no-op unary call through the same server stack, and the durable
//! no-op (one ledger entry a call).

use coldchain_proto::bench::v1 as bench;

use crate::host::{Caller, Host};
use crate::load::{self, LoadResult, LoadSpec};

/// The gRPC ceiling: a no-op unary call through the same server stack; with `durable`, the
/// durable no-op (see [`Host::noop`]).
pub async fn ceiling(
    spec: &LoadSpec,
    connections: usize,
    durable: bool,
) -> Result<LoadResult, String> {
    let host = Host::noop(durable).await?;
    let channels = host.channels_as(connections, Caller::Operations).await?;
    let name = if durable { "durable no-op" } else { "ceiling" };
    let result = load::run(name, spec, move |worker, _| {
        let mut client = bench::bench_service_client::BenchServiceClient::new(
            channels[worker % channels.len()].clone(),
        );
        async move { client.noop(bench::NoopRequest::default()).await.map(|_| ()) }
    })
    .await;
    host.stop().await;
    Ok(result)
}
