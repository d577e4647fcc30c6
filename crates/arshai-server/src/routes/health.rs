//! Health checks.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;

/// Bound on the memory store's round trip during a health check.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /health`: the scaling guide's check. Tests the memory store (Redis) with a round
/// trip; `{"status":"healthy"}`, or 503 `{"status":"unhealthy","error":"…"}`.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let check = tokio::time::timeout(HEALTH_CHECK_TIMEOUT, state.memory.health_check()).await;
    let error = match check {
        Ok(Ok(_)) => return (StatusCode::OK, Json(json!({"status": "healthy"}))),
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!(
            "the {} memory store did not answer within {:?}",
            state.memory.backend(),
            HEALTH_CHECK_TIMEOUT
        ),
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "unhealthy", "error": error})),
    )
}

/// `GET /health/live`: the process is up and serving HTTP; checks nothing else.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "alive"}))
}
