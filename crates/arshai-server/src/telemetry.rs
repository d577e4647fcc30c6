//! Traces: OpenTelemetry spans exported over OTLP/HTTP, off by default.
//!
//! On when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and
//! neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`). Everything else is the
//! standard `OTEL_*` configuration, read by the OpenTelemetry SDK and exporter themselves:
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `http/json`),
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_SERVICE_NAME` (default
//! `arshai`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`.
//!
//! The spans: `request` (server, parent taken from an incoming W3C `traceparent`),
//! `invoke_agent` (the turn), `chat {model}` (the provider call, with the GenAI semantic
//! conventions' attributes), and one per memory-store operation. The provider call sends
//! `traceparent` upstream ([`arshai::llm::set_propagator`]).

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{Bytes, HeaderExtractor, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::WithHttpConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

/// The variables that turn traces on, most specific first.
pub const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The service name when `OTEL_SERVICE_NAME` is unset.
const SERVICE_NAME: &str = "arshai";

/// Bound on one export request.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter's HTTP client could not be built.
    #[error("cannot build the OTLP HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The exporter rejected its configuration (an `OTEL_*` value, say).
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Whether the environment asks for traces.
pub fn enabled() -> bool {
    let is = |name: &str, value: &str| {
        std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    let endpoint = ENDPOINT_VARIABLES
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
    endpoint && !is("OTEL_SDK_DISABLED", "true") && !is("OTEL_TRACES_EXPORTER", "none")
}

/// The running trace pipeline; [`Traces::shutdown`] flushes it.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Starts the pipeline when [`enabled`]; `runtime` runs the export requests (the batch
    /// processor's own thread hands them over).
    pub fn start(runtime: tokio::runtime::Handle) -> Result<Option<Self>, TelemetryError> {
        if !enabled() {
            return Ok(None);
        }
        let client = RuntimeHttpClient {
            http: reqwest::Client::builder().timeout(EXPORT_TIMEOUT).build()?,
            runtime,
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .build()?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(SERVICE_NAME);
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        arshai::llm::set_propagator(Arc::new(TraceparentPropagator));
        Ok(Some(Self { provider }))
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, Tracer>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("arshai"))
    }

    /// Exports what is buffered and stops (bounded by the exporter's timeout).
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "traces were not all exported");
        }
    }
}

/// Sets `span`'s parent from an incoming `traceparent` (when valid), and returns the trace id
/// the request belongs to: the span's when traces are on, else the incoming one.
pub fn adopt_parent(span: &tracing::Span, headers: &axum::http::HeaderMap) -> Option<String> {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let incoming = parent.span().span_context().clone();
    if incoming.is_valid() {
        let _ = span.set_parent(parent);
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    [own, incoming]
        .into_iter()
        .find(|c| c.is_valid())
        .map(|c| c.trace_id().to_string())
}

/// Sends the current span's context upstream as `traceparent` (and `tracestate`).
struct TraceparentPropagator;

impl arshai::llm::HeaderPropagator for TraceparentPropagator {
    fn headers(&self) -> Vec<(String, String)> {
        let context = tracing::Span::current().context();
        let mut headers = std::collections::HashMap::new();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut headers);
        });
        headers.into_iter().collect()
    }
}

/// The exporter's HTTP client: requests run on the server's runtime (the batch processor's
/// thread has none), with a bounded timeout.
#[derive(Debug)]
struct RuntimeHttpClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for RuntimeHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let http = self.http.clone();
        let call = async move {
            let (parts, body) = request.into_parts();
            let response = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            let mut out = Response::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok::<_, HttpError>(out)
        };
        self.runtime.spawn(call).await?
    }
}
