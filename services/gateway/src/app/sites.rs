//! The gateway's connections to every site service: one lazy channel per endpoint, created
//! once at start and reused by every call (tonic channels multiplex and reconnect), calls
//! bounded by a deadline, and failures turned into per-site errors.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coldchain_network::{NetworkConfig, ServiceKind};
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::client::Channel;
use coldchain_runtime::client::{ClientOptions, lazy_channel};
use coldchain_runtime::retry::{describe, is_transient};

use crate::domain::SiteFailure;
use crate::error;
use crate::wire::sites::EndpointProbe;

/// Every site service's channel.
pub struct Sites {
    network: Arc<NetworkConfig>,
    channels: HashMap<(String, ServiceKind), Result<Channel, String>>,
}

impl Sites {
    /// A lazy channel for every site service of `network` (nothing connects yet).
    pub fn new(network: Arc<NetworkConfig>, options: &ClientOptions) -> Self {
        let mut channels = HashMap::new();
        for site in &network.sites {
            for kind in ServiceKind::SITE_SERVICES {
                let channel = match site.endpoint(kind) {
                    Some(endpoint) => lazy_channel(&endpoint, options).map_err(|e| e.message),
                    None => Err(format!("site {} has no {kind} endpoint", site.id)),
                };
                channels.insert((site.id.clone(), kind), channel);
            }
        }
        Self { network, channels }
    }

    /// The network.
    pub fn network(&self) -> &NetworkConfig {
        &self.network
    }

    /// The endpoint of a site service, as configured.
    pub fn endpoint(&self, site: &str, kind: ServiceKind) -> String {
        self.network.endpoint(site, kind).unwrap_or_default()
    }

    /// The channel of a site service.
    pub fn channel(&self, site: &str, kind: ServiceKind) -> Result<Channel, tonic::Status> {
        match self.channels.get(&(site.to_string(), kind)) {
            Some(Ok(channel)) => Ok(channel.clone()),
            Some(Err(problem)) => Err(error::site_unreachable(problem.clone())),
            None => Err(error::site_unreachable(format!(
                "site {site:?} is not in the network"
            ))),
        }
    }

    /// A client of a site's inventory.
    pub fn inventory(&self, site: &str) -> Result<InventoryServiceClient<Channel>, tonic::Status> {
        Ok(InventoryServiceClient::new(
            self.channel(site, ServiceKind::Inventory)?,
        ))
    }

    /// A client of a site's telemetry.
    pub fn telemetry(&self, site: &str) -> Result<TelemetryServiceClient<Channel>, tonic::Status> {
        Ok(TelemetryServiceClient::new(
            self.channel(site, ServiceKind::Telemetry)?,
        ))
    }

    /// A client of a site's booking service.
    pub fn booking(&self, site: &str) -> Result<BookingServiceClient<Channel>, tonic::Status> {
        Ok(BookingServiceClient::new(
            self.channel(site, ServiceKind::Booking)?,
        ))
    }

    /// The failure of a call to a site service, as the answer shows it.
    pub fn site_error(&self, site: &str, kind: ServiceKind, status: &tonic::Status) -> SiteFailure {
        error::site_failure(site, kind, &self.endpoint(site, kind), status)
    }
}

/// A request with a deadline (sent as `grpc-timeout`, so the site stops working on it too).
pub fn timed<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    request
}

/// Runs one call to a site with a hard local deadline (a site whose TCP connection hangs
/// never stalls the caller): DEADLINE_EXCEEDED when it passes.
pub async fn within<T, F>(deadline: Duration, call: F) -> Result<T, tonic::Status>
where
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let expired = || error::no_answer_within(deadline);
    let started = Instant::now();
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        // The channel's own timer (grpc-timeout) may fire first: tonic calls it CANCELLED.
        Ok(Err(status))
            if status.code() == tonic::Code::Cancelled
                && started.elapsed() >= deadline.mul_f64(0.9) =>
        {
            Err(expired())
        }
        Ok(Err(status)) => Err(status),
        Err(_) => Err(expired()),
    }
}

/// Runs an idempotent read, and once more when it fails UNAVAILABLE within the first half
/// of `deadline`: the first call after a site restarted may still meet the connection to
/// the process that died, and fail at once although the new process serves. The second
/// call gets what is left of the deadline.
pub async fn retry_once_if_unavailable<T, F, Fut>(
    deadline: Duration,
    mut call: F,
) -> Result<T, tonic::Status>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let started = Instant::now();
    match call(deadline).await {
        Err(status)
            if status.code() == tonic::Code::Unavailable && started.elapsed() < deadline / 2 =>
        {
            call(deadline.saturating_sub(started.elapsed())).await
        }
        other => other,
    }
}

/// The per-site deadline of a fan-out: the configured one, shortened to leave room for the
/// gateway's own answer within the client's deadline.
pub fn fan_out_deadline(configured: Duration, client: Option<Duration>) -> Duration {
    match client {
        Some(client) => configured
            .min(client.mul_f64(0.8))
            .max(Duration::from_millis(1)),
        None => configured,
    }
}

/// Asks a site service's grpc.health.v1 how the server as a whole is, within `deadline`.
pub async fn probe(
    sites: &Sites,
    site: &str,
    kind: ServiceKind,
    deadline: Duration,
) -> EndpointProbe {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Serving;
    use tonic_health::pb::health_client::HealthClient;

    let endpoint = sites.endpoint(site, kind);

    let channel = match sites.channel(site, kind) {
        Ok(channel) => channel,
        Err(status) => {
            return EndpointProbe {
                kind,
                endpoint: endpoint.clone(),
                health: pb::EndpointHealth::Unreachable,
                latency: None,
                error: status.message().to_string(),
            };
        }
    };
    let client = HealthClient::new(channel);
    let started = Instant::now();
    let result = retry_once_if_unavailable(deadline, |left| {
        let mut client = client.clone();
        async move {
            let request = timed(
                HealthCheckRequest {
                    service: String::new(),
                },
                left,
            );
            within(left, client.check(request)).await
        }
    })
    .await;
    let latency = started.elapsed();
    match result {
        Ok(answer) if answer.status == Serving::Serving as i32 => EndpointProbe {
            kind,
            endpoint,
            health: pb::EndpointHealth::Serving,
            latency: Some(latency),
            error: String::new(),
        },
        Ok(answer) => EndpointProbe {
            kind,
            endpoint,
            health: pb::EndpointHealth::NotServing,
            latency: Some(latency),
            error: format!(
                "health check answered {}",
                Serving::try_from(answer.status)
                    .map(|s| s.as_str_name())
                    .unwrap_or("an unknown status")
            )
            .to_lowercase(),
        },
        Err(status)
            if is_transient(status.code()) && status.code() != tonic::Code::Unimplemented =>
        {
            EndpointProbe {
                kind,
                endpoint,
                health: pb::EndpointHealth::Unreachable,
                latency: None,
                error: sites.site_error(site, kind, &status).message,
            }
        }
        Err(status) => EndpointProbe {
            kind,
            endpoint,
            health: pb::EndpointHealth::NotServing,
            latency: Some(latency),
            error: format!("health check failed: {}", describe(&status)).to_lowercase(),
        },
    }
}

#[cfg(test)]
mod tests;
