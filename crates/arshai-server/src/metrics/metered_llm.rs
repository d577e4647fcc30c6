//! An [`LlmClient`] decorator that records upstream latency, time to first token, errors
//! and tokens, so that providers stay free of metrics code.

use std::sync::Arc;
use std::time::Instant;

use arshai::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, StreamEvent, Usage};
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tracing::Instrument;

use super::{Metrics, TokenLabels, UpstreamClassLabels, UpstreamLabels};

/// Wraps a client; every call is measured.
pub struct MeteredLlm {
    inner: Arc<dyn LlmClient>,
    metrics: Arc<Metrics>,
}

impl MeteredLlm {
    /// Measures `inner` into `metrics`.
    pub fn wrap(inner: Arc<dyn LlmClient>, metrics: Arc<Metrics>) -> Arc<dyn LlmClient> {
        Arc::new(Self { inner, metrics })
    }

    /// The model label: the requested model (configured per agent, so bounded).
    fn labels(&self, request: &ChatRequest) -> UpstreamLabels {
        UpstreamLabels {
            provider: self.inner.provider(),
            model: request
                .model
                .clone()
                .unwrap_or_else(|| self.inner.default_model().to_owned()),
        }
    }

    fn error(&self, error: &LlmError) {
        self.metrics
            .upstream_errors
            .get_or_create(&UpstreamClassLabels {
                provider: self.inner.provider(),
                class: error.class(),
            })
            .inc();
    }
}

/// The provider call's span, with the GenAI semantic conventions' attributes; usage and
/// the error class are recorded when known.
fn call_span(labels: &UpstreamLabels, stream: bool) -> tracing::Span {
    tracing::info_span!(
        target: "arshai::llm",
        "chat",
        otel.name = %format!("chat {}", labels.model),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = labels.provider,
        gen_ai.request.model = %labels.model,
        gen_ai.request.stream = stream,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// Token counts as OpenTelemetry integers (a `u64` field would be exported as text).
fn record_usage(span: &tracing::Span, usage: &Usage) {
    let int = |tokens: u64| i64::try_from(tokens).unwrap_or(i64::MAX);
    span.record("gen_ai.usage.input_tokens", int(usage.input_tokens));
    span.record("gen_ai.usage.output_tokens", int(usage.output_tokens));
}

fn record_error(span: &tracing::Span, error: &LlmError) {
    span.record("error.type", error.class());
    span.record("otel.status_code", "ERROR");
}

/// Adds a call's tokens to `arshai_tokens_used_total` and to the request's log line.
fn count_tokens(metrics: &Metrics, model: &str, usage: &Usage) {
    crate::usage_tally::UsageTally::add(usage);
    for (kind, tokens) in [
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
    ] {
        metrics
            .tokens
            .get_or_create(&TokenLabels {
                model: model.to_owned(),
                r#type: kind,
            })
            .inc_by(tokens);
    }
}

/// Observes a stream's duration when it ends or is dropped (a client that went away).
struct StreamTimer {
    metrics: Arc<Metrics>,
    labels: UpstreamLabels,
    start: Instant,
}

impl Drop for StreamTimer {
    fn drop(&mut self) {
        self.metrics
            .upstream_duration
            .get_or_create(&self.labels)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl LlmClient for MeteredLlm {
    fn provider(&self) -> &'static str {
        self.inner.provider()
    }

    fn default_model(&self) -> &str {
        self.inner.default_model()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let labels = self.labels(request);
        let span = call_span(&labels, false);
        let start = Instant::now();
        let result = self.inner.chat(request).instrument(span.clone()).await;
        self.metrics
            .upstream_duration
            .get_or_create(&labels)
            .observe(start.elapsed().as_secs_f64());
        match &result {
            Ok(response) => {
                count_tokens(&self.metrics, &labels.model, &response.usage);
                record_usage(&span, &response.usage);
                span.record("gen_ai.response.model", response.model.as_str());
            }
            Err(error) => {
                self.error(error);
                record_error(&span, error);
            }
        }
        result
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        let labels = self.labels(request);
        let span = call_span(&labels, true);
        let recorder = span.clone();
        let timer = StreamTimer {
            metrics: Arc::clone(&self.metrics),
            labels: labels.clone(),
            start: Instant::now(),
        };
        let mut first_token = true;
        // The provider stream is polled inside the span, so its HTTP request (built on the
        // first poll) carries this span's `traceparent`; the span ends with the stream.
        let mut inner = self.inner.stream(request);
        futures::stream::poll_fn(move |cx| {
            let _entered = span.enter();
            inner.poll_next_unpin(cx)
        })
        .map(move |event| {
            match &event {
                Ok(StreamEvent::TextDelta(_) | StreamEvent::ToolCall(_)) if first_token => {
                    first_token = false;
                    timer
                        .metrics
                        .upstream_ttft
                        .get_or_create(&timer.labels)
                        .observe(timer.start.elapsed().as_secs_f64());
                }
                Ok(StreamEvent::Usage(usage)) => {
                    count_tokens(&timer.metrics, &timer.labels.model, usage);
                    record_usage(&recorder, usage);
                }
                Err(error) => {
                    self.error(error);
                    record_error(&recorder, error);
                }
                Ok(_) => {}
            }
            event
        })
        .boxed()
    }
}
