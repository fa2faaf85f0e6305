//! Per-call RPC metrics, named after OpenTelemetry's RPC conventions, for both sides: the
//! server bootstrap observes every call it answers, `client::Channel` every call it makes.
//!
//! Everything a call's series needs is resolved before the first call: one entry per method
//! of the contracts (from the descriptor sets), holding its labels and, per gRPC code, the
//! histogram handle (registered on the code's first use). A call costs a map lookup by its
//! path, a clock read and the histogram's record: no label is built, nothing allocated.
//!
//! A unary call is over when its response's headers are out: its answer is already encoded,
//! and a refusal is a trailers-only response carrying `grpc-status` in those headers. A
//! streaming answer is observed until its trailers (or until it is dropped: `CANCELLED`).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use metrics::{Gauge, Histogram, Label};
use tonic::body::Body;

use super::ServiceLabels;

/// Which side of a call a table observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Calls this server answers.
    Server,
    /// Calls this service makes to others.
    Client,
}

impl Side {
    fn metric(self) -> &'static str {
        match self {
            Side::Server => super::RPC_SERVER_DURATION,
            Side::Client => super::RPC_CLIENT_DURATION,
        }
    }
}

/// The label value of every path no contract names.
pub const OTHER: &str = "other";

/// The RPC series of one service instance on one side. Cheap to share (`Arc`).
pub struct RpcMetrics {
    labels: ServiceLabels,
    methods: HashMap<&'static str, Arc<MethodSeries>>,
    other: Arc<MethodSeries>,
}

impl std::fmt::Debug for RpcMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcMetrics")
            .field("labels", &self.labels)
            .field("methods", &self.methods.len())
            .finish()
    }
}

impl RpcMetrics {
    /// The table of `labels`' instance on `side`, or `None` while metrics are off (the
    /// callers then skip observing altogether).
    pub fn new(side: Side, labels: ServiceLabels) -> Option<Arc<Self>> {
        super::enabled().then(|| Arc::new(Self::build(side, labels)))
    }

    fn build(side: Side, labels: ServiceLabels) -> Self {
        let series = |service: &str, method: &str, streaming: bool| {
            Arc::new(MethodSeries {
                name: side.metric(),
                labels: labels.with(&[
                    ("rpc_system", "grpc".to_owned()),
                    ("rpc_service", service.to_owned()),
                    ("rpc_method", method.to_owned()),
                ]),
                streaming,
                by_code: Default::default(),
            })
        };
        let methods = methods()
            .iter()
            .map(|m| {
                let streaming = match side {
                    Side::Server => m.server_streaming,
                    Side::Client => m.server_streaming || m.client_streaming,
                };
                (m.path.as_str(), series(&m.service, &m.method, streaming))
            })
            .collect();
        Self {
            other: series(OTHER, OTHER, true),
            labels,
            methods,
        }
    }

    /// Starts observing a call of `path` (`/package.Service/Method`).
    pub fn start(&self, path: &str) -> CallObserver {
        CallObserver {
            series: self.methods.get(path).unwrap_or(&self.other).clone(),
            started: Instant::now(),
        }
    }

    /// The gauge mirroring grpc.health's status of `rpc_service` on this instance.
    pub fn health(&self, rpc_service: &'static str) -> Gauge {
        self.labels.gauge(
            super::HEALTH_SERVING,
            &[("rpc_service", rpc_service.to_owned())],
        )
    }
}

/// The series of one method.
struct MethodSeries {
    name: &'static str,
    labels: Vec<Label>,
    /// Observed until the end of the response body.
    streaming: bool,
    /// By `tonic::Code as usize` (0..=16).
    by_code: [OnceLock<Histogram>; 17],
}

impl MethodSeries {
    fn record(&self, code: tonic::Code, started: Instant) {
        let elapsed = started.elapsed().as_secs_f64();
        let Some(slot) = self.by_code.get(code as usize) else {
            return;
        };
        slot.get_or_init(|| {
            let mut labels = self.labels.clone();
            labels.push(Label::new(
                "rpc_response_status_code",
                crate::retry::code_name(code),
            ));
            metrics::histogram!(self.name, labels)
        })
        .record(elapsed);
    }
}

/// One call being observed; records once, when it ends.
pub struct CallObserver {
    series: Arc<MethodSeries>,
    started: Instant,
}

impl CallObserver {
    /// The call ended in `code` before any response (a transport failure, a deadline).
    pub fn failed(self, code: tonic::Code) {
        self.series.record(code, self.started);
    }

    /// The response's headers are out: records a unary call now, a streaming one at the
    /// end of its body.
    pub fn finish(self, response: http::Response<Body>) -> http::Response<Body> {
        if let Some(code) = status_in(response.headers()) {
            self.series.record(code, self.started);
            return response;
        }
        if !self.series.streaming {
            self.series.record(tonic::Code::Ok, self.started);
            return response;
        }
        response.map(|body| {
            Body::new(ObservedBody {
                inner: body,
                call: Some(self),
            })
        })
    }
}

/// The `grpc-status` of a header map (or trailers), if it has one.
fn status_in(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|value| tonic::Code::from_bytes(value.as_bytes()))
}

/// A streaming response's body, recording its call at the trailers (or when dropped).
struct ObservedBody {
    inner: Body,
    call: Option<CallObserver>,
}

impl ObservedBody {
    fn end(&mut self, code: tonic::Code) {
        if let Some(call) = self.call.take() {
            call.series.record(code, call.started);
        }
    }
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.end(status_in(trailers).unwrap_or(tonic::Code::Unknown));
                }
            }
            Poll::Ready(Some(Err(status))) => this.end(status.code()),
            // A body that ends without trailers never said how the call went.
            Poll::Ready(None) => this.end(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // The stream was abandoned before its end (the client went away, or stopped
        // reading).
        self.end(tonic::Code::Cancelled);
    }
}

/// One method of a contract this network serves or calls.
struct Method {
    path: String,
    service: String,
    method: String,
    client_streaming: bool,
    server_streaming: bool,
}

/// Every method of the network's contracts, health and reflection, read once from the
/// embedded descriptor sets.
fn methods() -> &'static [Method] {
    static METHODS: OnceLock<Vec<Method>> = OnceLock::new();
    METHODS.get_or_init(|| {
        use prost::Message;
        let sets = [
            coldchain_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut out = Vec::new();
        for bytes in sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(bytes) else {
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    let qualified = format!("{}.{}", file.package(), service.name());
                    for method in &service.method {
                        out.push(Method {
                            path: format!("/{qualified}/{}", method.name()),
                            service: qualified.clone(),
                            method: method.name().to_owned(),
                            client_streaming: method.client_streaming(),
                            server_streaming: method.server_streaming(),
                        });
                    }
                }
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_method_has_its_own_series_and_unknown_paths_share_one() {
        let table = RpcMetrics::build(
            Side::Server,
            ServiceLabels::new("la-vientiane", "inventory"),
        );
        let record = table
            .methods
            .get("/coldchain.inventory.v1.InventoryService/RecordMovements")
            .expect("a contract method");
        assert!(!record.streaming);
        let labels: Vec<(&str, &str)> =
            record.labels.iter().map(|l| (l.key(), l.value())).collect();
        assert_eq!(
            labels,
            [
                ("site", "la-vientiane"),
                ("service", "inventory"),
                ("rpc_system", "grpc"),
                ("rpc_service", "coldchain.inventory.v1.InventoryService"),
                ("rpc_method", "RecordMovements"),
            ]
        );
        assert!(table.methods["/coldchain.inventory.v1.InventoryService/WatchLedger"].streaming);
        assert!(table.methods.contains_key("/grpc.health.v1.Health/Check"));
        assert!(
            table
                .methods
                .contains_key("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
        );
        let unknown = table.start("/coldchain.inventory.v1.InventoryService/Nope");
        assert!(Arc::ptr_eq(&unknown.series, &table.other));
        assert_eq!(table.other.labels[3].value(), OTHER);
    }
}
