//! The arshai server: agents over HTTP.
//!
//! [`app`] builds the whole HTTP surface from an [`AppState`]; binaries only bind and serve
//! (see [`serve`]), and tests drive [`app`] on real sockets.
//!
//! - `POST /v1/agents/{agent}/messages` — one agent turn, as JSON or (`"stream": true`)
//!   server-sent events ([`routes::messages`]).
//! - `GET /v1/agents`; `GET|DELETE /v1/agents/{agent}/conversations/{id}`
//!   ([`routes::agents`], [`routes::conversations`]).
//! - `POST /v1/chat/completions`, `GET /v1/models[/{model}]` — the OpenAI-compatible API
//!   ([`routes::chat_completions`], [`routes::models`]).
//! - `GET /v1/workflows`, `POST /v1/workflows/{workflow}/runs` — workflow runs, as JSON or
//!   server-sent events per node ([`routes::workflows`]).
//! - `POST /v1/responses`, `GET /v1/responses/{id}` — the OpenAI Responses API
//!   ([`routes::responses`]).
//! - `GET /health`, `/health/live`, `/health/ready` — health ([`routes::health`]).
//! - `GET /metrics` — Prometheus metrics ([`routes::metrics`], [`metrics`]).
//! - `POST|GET /v1/runs`, `GET /v1/runs/{id}[/events]`, `POST /v1/runs/{id}/cancel` —
//!   durable background runs on Redis Streams ([`routes::runs`], [`runs`]), executed by the
//!   run worker inside [`serve`] or by `arshai worker`.
//!
//! The turn routes are codecs around one runner ([`turn::run`]) and sit behind [`auth`]
//! (API key → tenant) and [`turn::guard`] ([`admission`] control and turn metrics); every
//! other `/v1` route sits behind [`auth`]; every request gets a [`request_id`] and one log
//! line. Every rejection is a JSON error ([`error`], [`extract`]). [`serve`] runs the accept loop ([`server`]) and the drain sequence
//! ([`shutdown`]).
// The turn routes' futures nest deeply (auth, admission, limits, cache, the agent, the
// provider, the Redis link); rustc's default query depth of 128 is too shallow for them.
#![recursion_limit = "256"]

pub mod admission;
pub mod auth;
pub mod bench;
mod builder;
pub mod cli;
pub mod error;
pub mod extract;
pub mod logging;
pub mod metrics;
pub mod probe;
pub mod readiness;
pub mod request_id;
pub mod routes;
pub mod runs;
mod server;
pub mod settings;
pub mod shutdown;
pub mod state;
pub mod telemetry;
pub mod turn;
pub mod usage_tally;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use routes::{agents, chat_completions, conversations, models};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

pub use builder::{ServeError, Server, ServerBuilder};
pub use error::ApiError;
pub use state::AppState;

/// How long an exiting instance waits for its queued limit settles.
const SETTLE_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    let body_limit = state.settings.server.max_body_bytes;
    // Agent turns: authenticated first (route layers added last run first), then admitted.
    let turns = Router::new()
        .route(
            "/v1/agents/{agent}/messages",
            post(routes::messages::post_message),
        )
        .route("/v1/chat/completions", post(chat_completions::create))
        .route(
            "/v1/workflows/{workflow}/runs",
            post(routes::workflows::post_run),
        )
        .route("/v1/responses", post(routes::responses::create))
        .route_layer(from_fn_with_state(state.clone(), turn::guard::admit))
        .route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    // The rest of the API: authenticated (tenants see only their own conversations), not
    // admitted (cheap reads that must keep working under overload).
    let api = Router::new()
        .route("/v1/agents", get(agents::list_agents))
        .route("/v1/workflows", get(routes::workflows::list_workflows))
        .route(
            "/v1/agents/{agent}/conversations/{id}",
            get(conversations::get_conversation).delete(conversations::delete_conversation),
        )
        .route("/v1/models", get(models::list_models))
        .route("/v1/responses/{id}", get(routes::responses::retrieve))
        .route("/v1/models/{model}", get(models::get_model))
        .route("/v1/usage", get(routes::usage::get_usage))
        .route(
            "/v1/runs",
            post(routes::runs::submit).get(routes::runs::list_runs),
        )
        .route("/v1/runs/{id}", get(routes::runs::get_run))
        .route("/v1/runs/{id}/events", get(routes::runs::run_events))
        .route("/v1/runs/{id}/cancel", post(routes::runs::cancel_run))
        .route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    Router::new()
        .merge(turns)
        .merge(api)
        .route("/health", get(routes::health::health))
        .route("/health/live", get(routes::health::live))
        .route("/health/ready", get(routes::health::ready))
        .route("/metrics", get(routes::metrics::metrics))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn(request_id::assign))
        .with_state(state)
}

/// The HTTP surface of `arshai worker`: health and metrics only.
pub fn worker_app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(routes::health::health))
        .route("/health/live", get(routes::health::live))
        .route("/health/ready", get(routes::health::ready))
        .route("/metrics", get(routes::metrics::metrics))
        .fallback(routes::not_found)
        .layer(from_fn(request_id::assign))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then drains: new turns get 503
/// and readiness fails at once, in-flight turns and streams finish within
/// `shutdown.grace_seconds`, connections close, and whatever is left at the deadline is
/// cancelled (and logged).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let accept = tokio::spawn(server::accept_loop(
        listener,
        app(state.clone()),
        state.settings.admission.clone(),
        std::sync::Arc::clone(&state.metrics),
        stopped,
    ));
    let worker = runs::worker::WorkerHandle::spawn(
        &state,
        state.settings.runs.workers,
        shutdown::grace_period(&state),
    );
    shutdown.await;
    let deadline = Instant::now() + shutdown::grace_period(&state);
    // The run worker drains beside the turns: it stops taking runs at once and hands back
    // what it still runs at the deadline.
    let drained = async {
        if let Some(worker) = worker {
            worker.stop().await;
        }
    };
    tokio::join!(shutdown::drain_turns(&state, deadline), drained);
    let _ = stop.send(true);
    let connections = accept.await.map_err(std::io::Error::other)?;
    // Give responses written just now a moment to flush even when the grace period is spent.
    let close_by = deadline.max(Instant::now() + Duration::from_millis(200));
    if tokio::time::timeout_at(close_by, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("closing the connections still open at the shutdown deadline");
    }
    // The last turns' limit settles are queued: apply them before the process exits.
    if !state.limits.flush(SETTLE_FLUSH_LIMIT).await {
        tracing::warn!("limit settles still queued at exit; their reservations will expire");
    }
    Ok(())
}
