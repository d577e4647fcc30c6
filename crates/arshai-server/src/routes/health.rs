//! Health checks: `/health` (the scaling guide's), `/health/live`, `/health/ready`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;

/// Bound on the memory store's round trip during a health check.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks the memory store (Redis) with a bounded round trip; the error text on failure.
async fn check_memory(state: &AppState) -> Result<(), String> {
    match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, state.memory.health_check()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!(
            "the {} memory store did not answer within {:?}",
            state.memory.backend(),
            HEALTH_CHECK_TIMEOUT
        )),
    }
}

/// `GET /health`: the scaling guide's check. Tests the memory store (Redis) with a round
/// trip; `{"status":"healthy"}`, or 503 `{"status":"unhealthy","error":"…"}`.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match check_memory(&state).await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "healthy"}))),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "error": error})),
        ),
    }
}

/// `GET /health/live`: the process is up and serving HTTP; checks nothing else.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

/// `GET /health/ready`: 200 when the dependencies answer and the server is not draining;
/// 503 from the moment draining starts, so load balancers stop routing here.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.readiness.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        );
    }
    match check_memory(&state).await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "error": error})),
        ),
    }
}
