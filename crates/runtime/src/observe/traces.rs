//! OpenTelemetry traces over OTLP/gRPC, off unless the standard variables turn them on.
//!
//! On when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! (and neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says otherwise).
//! The other standard variables are read by the OpenTelemetry SDK and exporter themselves:
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (the resource),
//! `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` (default: parent-based, always on),
//! `OTEL_EXPORTER_OTLP_HEADERS`/`_TRACES_HEADERS` and `_TIMEOUT`. Only the gRPC protocol is
//! built in: `OTEL_EXPORTER_OTLP_PROTOCOL` other than `grpc` is refused at start.
//!
//! Every RPC is a span on both sides: the server bootstrap's per-call `rpc` span (kind
//! server, its parent taken from the incoming `traceparent`) and, in `client::Channel`, an
//! `rpc.client` span whose context goes out as `traceparent` on the call. One call at the
//! gateway is then one trace across every process it reaches. The server span records the
//! trace id as its `trace_id` field, so every log line of the call carries it.
//!
//! While traces are off none of this runs: no client span, no header parsed or written.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ON: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces (and so propagates `traceparent`).
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Where and as whom spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSettings {
    /// The OTLP/gRPC endpoint, e.g. `http://otel-collector:4317`.
    pub endpoint: String,
    /// `service.name` of the resource when `OTEL_SERVICE_NAME` does not name one.
    pub service_name: Option<String>,
    /// More attributes of the resource (`OTEL_RESOURCE_ATTRIBUTES` adds its own).
    pub attributes: Vec<(String, String)>,
}

impl TraceSettings {
    /// The settings the standard variables of `env` ask for: `Ok(None)` when traces are off,
    /// an error naming the variable when they ask for what this build cannot do.
    pub fn from_env(
        env: &BTreeMap<String, String>,
        default_service_name: &str,
    ) -> Result<Option<Self>, String> {
        let var = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        let Some(endpoint) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        else {
            return Ok(None);
        };
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(protocol) = var(name)
                && protocol != "grpc"
            {
                return Err(format!(
                    "{name}: only \"grpc\" (OTLP over gRPC) is built in, got {protocol:?}"
                ));
            }
        }
        if let Some(exporter) = var("OTEL_TRACES_EXPORTER")
            && exporter != "otlp"
        {
            return Err(format!(
                "OTEL_TRACES_EXPORTER: only \"otlp\" or \"none\" are built in, got {exporter:?}"
            ));
        }
        Ok(Some(Self {
            endpoint: endpoint.to_owned(),
            service_name: var("OTEL_SERVICE_NAME")
                .is_none()
                .then(|| default_service_name.to_owned()),
            attributes: Vec::new(),
        }))
    }

    /// The standard `OTEL_*` variables of this process.
    pub fn env_from_process() -> BTreeMap<String, String> {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let k = k.to_string_lossy().into_owned();
                k.starts_with("OTEL_")
                    .then(|| (k, v.to_string_lossy().into_owned()))
            })
            .collect()
    }
}

/// A running trace exporter. Hand [`Traces::layer`] to the log subscriber
/// (`logging::init_with_traces`), and call [`Traces::shutdown`] before the process exits
/// so the last spans are sent.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Traces {
    /// Starts exporting to `settings.endpoint` (in a tokio runtime: the exporter's
    /// connection runs on it) and turns propagation on.
    pub fn start(settings: &TraceSettings) -> Result<Self, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(settings.endpoint.clone())
            .build()
            .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT {:?}: {e}", settings.endpoint))?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if let Some(name) = &settings.service_name {
            resource = resource.with_service_name(name.clone());
        }
        resource = resource.with_attributes(
            settings
                .attributes
                .iter()
                .map(|(key, value)| opentelemetry::KeyValue::new(key.clone(), value.clone())),
        );
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("coldchain");
        ON.store(true, Ordering::Relaxed);
        Ok(Self { provider, tracer })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.tracer.clone())
    }

    /// Sends every span ended so far (blocks: call it off the async runtime's threads).
    pub fn flush(&self) -> Result<(), String> {
        self.provider.force_flush().map_err(|e| e.to_string())
    }

    /// Sends what is left and stops exporting.
    pub async fn shutdown(self) {
        ON.store(false, Ordering::Relaxed);
        let provider = self.provider;
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "traces: the last spans could not be sent");
            }
        })
        .await;
    }
}

/// The span of one call a server answers: `label` (`la-vientiane/inventory`) and the
/// method's path, with the caller's trace as its parent when traces are on.
pub fn server_span(label: &str, method: &str, headers: &http::HeaderMap) -> tracing::Span {
    use tracing::field::Empty;
    if !enabled() {
        return tracing::info_span!(
            "rpc",
            service = %label,
            method = %method,
            caller = Empty,
            request_id = Empty,
        );
    }
    let span = tracing::info_span!(
        "rpc",
        service = %label,
        method = %method,
        caller = Empty,
        request_id = Empty,
        trace_id = Empty,
        otel.name = method.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
    );
    let parent = TraceContextPropagator::new()
        .extract_with_context(&opentelemetry::Context::new(), &HeaderExtractor(headers));
    let _ = span.set_parent(parent);
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
    span
}

/// The span of one call this process makes, its context written into the request's headers
/// as `traceparent`; `None` while traces are off.
pub fn client_span<B>(request: &mut http::Request<B>) -> Option<tracing::Span> {
    if !enabled() {
        return None;
    }
    let path = request.uri().path();
    let span = tracing::info_span!(
        "rpc.client",
        method = %path,
        otel.name = path.trim_start_matches('/'),
        otel.kind = "client",
        rpc.system = "grpc",
    );
    TraceContextPropagator::new()
        .inject_context(&span.context(), &mut HeaderInjector(request.headers_mut()));
    Some(span)
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn off_unless_an_endpoint_is_set() {
        assert_eq!(TraceSettings::from_env(&env(&[]), "coldchain"), Ok(None));
        let on = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
        assert_eq!(
            TraceSettings::from_env(&on, "coldchain-inventory"),
            Ok(Some(TraceSettings {
                endpoint: "http://collector:4317".into(),
                service_name: Some("coldchain-inventory".into()),
                attributes: Vec::new(),
            }))
        );
        let named = env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SERVICE_NAME", "vte-inventory"),
        ]);
        let settings = TraceSettings::from_env(&named, "coldchain")
            .unwrap()
            .unwrap();
        assert_eq!(settings.endpoint, "http://traces:4317");
        assert_eq!(
            settings.service_name, None,
            "the SDK reads OTEL_SERVICE_NAME"
        );
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            let mut vars = on.clone();
            vars.insert(off.0.into(), off.1.into());
            assert_eq!(TraceSettings::from_env(&vars, "coldchain"), Ok(None));
        }
    }

    #[test]
    fn protocols_other_than_grpc_are_refused_by_name() {
        let vars = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ]);
        let error = TraceSettings::from_env(&vars, "coldchain").unwrap_err();
        assert!(
            error.starts_with("OTEL_EXPORTER_OTLP_PROTOCOL: only \"grpc\""),
            "{error}"
        );
    }
}
