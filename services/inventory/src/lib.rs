#![forbid(unsafe_code)]
//! Placeholder until the inventory service lands: the server starts, opens its database and
//! answers health and reflection; its RPCs are not registered yet, so they answer
//! UNIMPLEMENTED.

use coldchain_runtime::host::{ServiceContext, StartError, store_probe};
use coldchain_runtime::server::ServiceSpec;

/// Builds the inventory server of `ctx`'s site.
pub fn service(ctx: &ServiceContext) -> Result<ServiceSpec, StartError> {
    let store = ctx.open_store()?;
    let closing = store.clone();
    Ok(ServiceSpec {
        label: ctx.label(),
        service_name: "",
        routes: tonic::service::Routes::default(),
        probe: store_probe(store),
        on_stopped: Box::new(move || closing.close()),
    })
}
