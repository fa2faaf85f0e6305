//! The gateway's use cases: fan-out queries across the sites ([`queries`], [`alarms`]),
//! the merged alarm stream ([`watch`]), and corridor transfers ([`transfers`]) driven by
//! the [`saga`] from the handlers and the background drainer, one driver per transfer at a
//! time. Calls to the sites go through [`sites`]. Takes what [`crate::wire`] read
//! and returns domain answers (or, where a site's own message is passed on, its
//! protobuf).

pub mod alarms;
pub mod expiring;
pub mod genealogy;
mod metrics;
pub mod queries;
pub mod recalls;
pub mod saga;
pub mod sites;
pub mod trace;
pub mod transfers;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use coldchain_network::NetworkConfig;
use coldchain_runtime::Shutdown;
use coldchain_store::SharedClock;

use crate::Options;
use crate::store::GatewayStore;
use recalls::Recalls;
use saga::Saga;
use sites::Sites;

/// The gateway: its store, the site services, the saga.
pub struct GatewayApp {
    store: GatewayStore,
    sites: Arc<Sites>,
    saga: Arc<Saga>,
    recalls: Arc<Recalls>,
    clock: SharedClock,
    options: Options,
    shutdown: Shutdown,
}

impl GatewayApp {
    /// The gateway over `store`, calling `sites`, transfers driven by `saga`, recalls by
    /// `recalls`.
    pub fn new(
        store: GatewayStore,
        sites: Arc<Sites>,
        saga: Arc<Saga>,
        recalls: Arc<Recalls>,
        clock: SharedClock,
        options: Options,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            store,
            sites,
            saga,
            recalls,
            clock,
            options,
            shutdown,
        }
    }

    /// The network.
    pub fn network(&self) -> &NetworkConfig {
        self.sites.network()
    }

    /// The per-site deadline of a fan-out whose client set `client_deadline`.
    pub fn fan_out_deadline(&self, client_deadline: Option<Duration>) -> Duration {
        sites::fan_out_deadline(self.options.site_deadline, client_deadline)
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_millis()
    }
}
