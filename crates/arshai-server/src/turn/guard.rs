//! Middleware around every agent-turn route: admission, turn metrics, and holding the turn's
//! slot until its response body has been sent (so a stream counts as in flight, and graceful
//! shutdown waits for it, until its last byte).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::admission::TurnPermit;
use crate::error::error_response_for;
use crate::metrics::{AgentTypeLabels, Metrics, TurnLabels};
use crate::turn::TurnRecord;
use crate::{ApiError, AppState};

/// Observes the turn's metrics when the response body is finished or dropped.
struct TurnGuard {
    _permit: TurnPermit,
    /// The turn's span (`invoke_agent`): it ends with the body, so a stream's span covers
    /// the whole stream.
    _span: tracing::Span,
    metrics: Arc<Metrics>,
    labels: TurnLabels,
    start: Instant,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        let seconds = self.start.elapsed().as_secs_f64();
        self.metrics.requests.inc();
        self.metrics.request_duration.observe(seconds);
        self.metrics
            .agent_requests
            .get_or_create(&self.labels)
            .inc();
        self.metrics
            .agent_request_duration
            .get_or_create(&AgentTypeLabels {
                agent_type: self.labels.agent_type,
            })
            .observe(seconds);
    }
}

/// Middleware: admits the turn or answers 503, then measures it.
pub async fn admit(
    State(state): State<AppState>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let permit = match state.admission.admit().await {
        Ok(permit) => permit,
        Err(rejection) => {
            let error = ApiError::Overloaded {
                rejection,
                retry_after: state.admission.retry_after(),
            };
            return error_response_for(request.uri().path(), error);
        }
    };
    let path_agent_type = params.ok().and_then(|params| {
        let (_, name) = params.iter().find(|(key, _)| *key == "agent")?;
        state.agents.get(name).map(|agent| agent.agent_type())
    });
    let span = tracing::info_span!(
        target: "arshai::turn",
        "invoke_agent",
        otel.name = "invoke_agent",
        otel.kind = "internal",
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    if let Some(turn) = response.extensions().get::<TurnRecord>() {
        span.record("gen_ai.agent.name", turn.agent.as_str());
        if let Some(usage) = turn.usage {
            let int = |tokens: u64| i64::try_from(tokens).unwrap_or(i64::MAX);
            span.record("gen_ai.usage.input_tokens", int(usage.input_tokens));
            span.record("gen_ai.usage.output_tokens", int(usage.output_tokens));
        }
    }
    span.record("http.response.status_code", response.status().as_u16());
    let agent_type = response
        .extensions()
        .get::<TurnRecord>()
        .map(|turn| turn.agent_type)
        .or(path_agent_type)
        .unwrap_or("unknown");
    let guard = TurnGuard {
        _permit: permit,
        _span: span,
        metrics: Arc::clone(&state.metrics),
        labels: TurnLabels {
            agent_type,
            status: response.status().as_u16(),
        },
        start,
    };
    super::held_body::hold_until_sent(response, guard)
}
