//! Calling the gateway and the site services as the person logged in.
//!
//! One HTTP/2 connection per service endpoint is shared by every session; each call carries
//! the key of the session that makes it (`coldchain_runtime::client::Channel::new` over a
//! shared transport), so authorization stays in the services: the console decides nothing
//! a service would not.

use std::collections::HashMap;
use std::sync::Arc;

use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::auth::ApiKey;
use coldchain_runtime::client::{Channel, ClientOptions};
use coldchain_runtime::network::{NetworkConfig, ServiceKind, SiteConfig};
use tokio::sync::Mutex;

use crate::error::PageError;

/// The shared connections of the console, and how it reaches every service.
pub struct Backend {
    /// The network file: sites, zones, endpoints, time zones.
    pub network: Arc<NetworkConfig>,
    options: ClientOptions,
    transports: Mutex<HashMap<String, tonic::transport::Channel>>,
}

impl Backend {
    /// A backend calling with `options` (TLS, deadlines; the key is each session's).
    pub fn new(network: Arc<NetworkConfig>, options: ClientOptions) -> Self {
        Self {
            network,
            options: ClientOptions {
                key: None,
                ..options
            },
            transports: Mutex::new(HashMap::new()),
        }
    }

    /// The shared connection to `endpoint`, made on first use (and again after a failed
    /// first attempt; tonic reconnects an established one by itself).
    async fn transport(&self, endpoint: &str) -> Result<tonic::transport::Channel, PageError> {
        if let Some(channel) = self.transports.lock().await.get(endpoint) {
            return Ok(channel.clone());
        }
        // Connect without holding the map: a site that is down must not stall the others.
        let channel = coldchain_runtime::client::transport(endpoint, &self.options)
            .await
            .map_err(|e| PageError::Unavailable(e.message))?;
        let mut transports = self.transports.lock().await;
        Ok(transports
            .entry(endpoint.to_owned())
            .or_insert(channel)
            .clone())
    }

    /// The per-call deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        coldchain_runtime::client::request(message, &self.options)
    }
}

/// One person's way to the services: the shared backend and their key.
#[derive(Clone)]
pub struct Caller {
    backend: Arc<Backend>,
    key: Option<ApiKey>,
}

impl Caller {
    /// Calls as `key` (`None`: no key, for a network without authentication).
    pub fn new(backend: Arc<Backend>, key: Option<ApiKey>) -> Self {
        Self { backend, key }
    }

    /// The network file.
    pub fn network(&self) -> &NetworkConfig {
        &self.backend.network
    }

    /// A site of the network file; `NotFound` for an unknown id.
    pub fn site(&self, id: &str) -> Result<&SiteConfig, PageError> {
        self.backend
            .network
            .site(id)
            .ok_or_else(|| PageError::NotFound(format!("no site {id:?} in the network")))
    }

    /// A request with the console's deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.backend.request(message)
    }

    async fn channel(&self, endpoint: &str) -> Result<Channel, PageError> {
        let transport = self.backend.transport(endpoint).await?;
        Ok(Channel::new(transport, self.key.as_ref()))
    }

    async fn site_channel(&self, site: &str, kind: ServiceKind) -> Result<Channel, PageError> {
        let endpoint = self
            .site(site)?
            .endpoint(kind)
            .ok_or_else(|| PageError::NotFound(format!("site {site:?} has no {kind} service")))?;
        self.channel(&endpoint).await
    }

    /// The gateway.
    pub async fn gateway(&self) -> Result<NetworkServiceClient<Channel>, PageError> {
        let endpoint = self.backend.network.gateway_endpoint();
        Ok(NetworkServiceClient::new(self.channel(&endpoint).await?))
    }

    /// A site's telemetry service.
    pub async fn telemetry(
        &self,
        site: &str,
    ) -> Result<TelemetryServiceClient<Channel>, PageError> {
        Ok(TelemetryServiceClient::new(
            self.site_channel(site, ServiceKind::Telemetry).await?,
        ))
    }

    /// A site's inventory service.
    pub async fn inventory(
        &self,
        site: &str,
    ) -> Result<InventoryServiceClient<Channel>, PageError> {
        Ok(InventoryServiceClient::new(
            self.site_channel(site, ServiceKind::Inventory).await?,
        ))
    }

    /// A site's booking service.
    pub async fn booking(&self, site: &str) -> Result<BookingServiceClient<Channel>, PageError> {
        Ok(BookingServiceClient::new(
            self.site_channel(site, ServiceKind::Booking).await?,
        ))
    }
}
