//! The gateway's connections to every site service: one lazy channel per endpoint, created
//! once at start and reused by every call (tonic channels multiplex and reconnect), calls
//! bounded by a deadline, and failures turned into per-site errors.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::client::Channel;
use coldchain_runtime::client::{ClientOptions, lazy_channel};
use coldchain_runtime::network::{NetworkConfig, ServiceKind};

/// The upper-case name of a gRPC code, as `SiteError.code` and `last_error` show it.
pub fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// True when a status means the call may have to be repeated later (the service could not
/// be reached, was overloaded, timed out, or failed on its side); false when the service
/// answered with a definite refusal (bad request, unknown thing, rule broken, not allowed),
/// so the call did nothing and repeating it will not help.
pub fn is_transient(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::ResourceExhausted
            | tonic::Code::Aborted
            | tonic::Code::Internal
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DataLoss
            | tonic::Code::Unimplemented
    )
}

/// "CODE: message", as `last_error` shows a failed step.
pub fn describe(status: &tonic::Status) -> String {
    format!("{}: {}", code_name(status.code()), status.message())
}

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
            Some(Err(problem)) => Err(tonic::Status::unavailable(problem.clone())),
            None => Err(tonic::Status::unavailable(format!(
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

    /// The site error of a failed call to a site service: the site's own message when it
    /// answered, the gateway's (naming the endpoint) when it could not be reached.
    pub fn site_error(
        &self,
        site: &str,
        kind: ServiceKind,
        status: &tonic::Status,
    ) -> pb::SiteError {
        let answered = !matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
        );
        let message = if answered {
            status.message().to_string()
        } else {
            format!(
                "{kind} at {} unreachable: {}",
                self.endpoint(site, kind),
                status.message()
            )
            .to_lowercase()
        };
        pb::SiteError {
            site_id: site.to_string(),
            code: code_name(status.code()).to_string(),
            message,
        }
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
    let expired = || {
        tonic::Status::deadline_exceeded(format!("no answer within {} ms", deadline.as_millis()))
    };
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

/// The client's deadline of an incoming call (`grpc-timeout`), if any.
pub fn client_deadline<T>(request: &tonic::Request<T>) -> Option<Duration> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
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

/// The result of a health probe of one endpoint.
pub struct Probe {
    /// SERVING, NOT_SERVING or UNREACHABLE.
    pub health: pb::EndpointHealth,
    /// The round trip, when it answered.
    pub latency: Option<Duration>,
    /// Why not SERVING.
    pub error: String,
}

/// Asks a site service's grpc.health.v1 how the server as a whole is, within `deadline`.
pub async fn probe(sites: &Sites, site: &str, kind: ServiceKind, deadline: Duration) -> Probe {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let channel = match sites.channel(site, kind) {
        Ok(channel) => channel,
        Err(status) => {
            return Probe {
                health: pb::EndpointHealth::Unreachable,
                latency: None,
                error: status.message().to_string(),
            };
        }
    };
    let mut client = HealthClient::new(channel);
    let started = Instant::now();
    let result = within(
        deadline,
        client.check(timed(
            HealthCheckRequest {
                service: String::new(),
            },
            deadline,
        )),
    )
    .await;
    let latency = started.elapsed();
    match result {
        Ok(answer) if answer.status == ServingStatus::Serving as i32 => Probe {
            health: pb::EndpointHealth::Serving,
            latency: Some(latency),
            error: String::new(),
        },
        Ok(answer) => Probe {
            health: pb::EndpointHealth::NotServing,
            latency: Some(latency),
            error: format!(
                "health check answered {}",
                ServingStatus::try_from(answer.status)
                    .map(|s| s.as_str_name())
                    .unwrap_or("an unknown status")
            )
            .to_lowercase(),
        },
        Err(status)
            if is_transient(status.code()) && status.code() != tonic::Code::Unimplemented =>
        {
            Probe {
                health: pb::EndpointHealth::Unreachable,
                latency: None,
                error: sites.site_error(site, kind, &status).message,
            }
        }
        Err(status) => Probe {
            health: pb::EndpointHealth::NotServing,
            latency: Some(latency),
            error: format!("health check failed: {}", describe(&status)).to_lowercase(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_transient_failures_are_told_apart() {
        for code in [
            tonic::Code::InvalidArgument,
            tonic::Code::NotFound,
            tonic::Code::FailedPrecondition,
            tonic::Code::AlreadyExists,
            tonic::Code::PermissionDenied,
            tonic::Code::Unauthenticated,
            tonic::Code::OutOfRange,
        ] {
            assert!(!is_transient(code), "{code:?}");
        }
        for code in [
            tonic::Code::Unavailable,
            tonic::Code::DeadlineExceeded,
            tonic::Code::ResourceExhausted,
            tonic::Code::Aborted,
            tonic::Code::Internal,
        ] {
            assert!(is_transient(code), "{code:?}");
        }
    }

    #[test]
    fn fan_out_deadline_leaves_room_within_the_clients() {
        let configured = Duration::from_millis(1500);
        assert_eq!(fan_out_deadline(configured, None), configured);
        assert_eq!(
            fan_out_deadline(configured, Some(Duration::from_secs(10))),
            configured
        );
        assert_eq!(
            fan_out_deadline(configured, Some(Duration::from_millis(500))),
            Duration::from_millis(400)
        );
    }

    #[test]
    fn code_names_are_the_canonical_ones() {
        assert_eq!(
            code_name(tonic::Code::DeadlineExceeded),
            "DEADLINE_EXCEEDED"
        );
        assert_eq!(
            describe(&tonic::Status::unavailable("down")),
            "UNAVAILABLE: down"
        );
    }
}
