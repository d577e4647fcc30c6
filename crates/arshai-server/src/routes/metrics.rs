//! `GET /metrics`: Prometheus exposition.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Bound on counting conversations during a scrape.
const COUNT_TIMEOUT: Duration = Duration::from_secs(1);

/// The Prometheus text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Encodes every metric. `arshai_active_conversations` is refreshed from the memory store
/// first, and the run backlog from the run queue (both bounded; the previous values are
/// kept if Redis does not answer).
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(Ok(count)) =
        tokio::time::timeout(COUNT_TIMEOUT, state.memory.conversation_count()).await
    {
        state
            .metrics
            .active_conversations
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    if let Some(runs) = &state.runs
        && let Ok(Err(error)) =
            tokio::time::timeout(COUNT_TIMEOUT, runs.refresh_gauges(&state.metrics.runs)).await
    {
        tracing::debug!(%error, "cannot read the run backlog");
    }
    match state.metrics.encode() {
        Ok(mut text) => {
            text.push_str(&crate::metrics::encode_controls(
                &state.cache_stats.snapshot(),
                &state.limits.stats().snapshot(),
            ));
            let mut response = text.into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
