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
//! - `POST /v1/responses`, `GET /v1/responses/{id}` — the OpenAI Responses API
//!   ([`routes::responses`]).
//! - `GET /health`, `/health/live`, `/health/ready` — health ([`routes::health`]).
//! - `GET /metrics` — Prometheus metrics ([`routes::metrics`], [`metrics`]).
//!
//! The turn routes are codecs around one runner ([`turn::run`]) and sit behind [`auth`]
//! (API key → tenant) and [`turn::guard`] ([`admission`] control and turn metrics); every
//! other `/v1` route sits behind [`auth`]; every request gets a [`request_id`] and one log
//! line. Every rejection is a JSON error ([`error`], [`extract`]). [`serve`] runs the accept loop ([`server`]) and the drain sequence
//! ([`shutdown`]).

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
        .route("/v1/responses", post(routes::responses::create))
        .route_layer(from_fn_with_state(state.clone(), turn::guard::admit))
        .route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    // The rest of the API: authenticated (tenants see only their own conversations), not
    // admitted (cheap reads that must keep working under overload).
    let api = Router::new()
        .route("/v1/agents", get(agents::list_agents))
        .route(
            "/v1/agents/{agent}/conversations/{id}",
            get(conversations::get_conversation).delete(conversations::delete_conversation),
        )
        .route("/v1/models", get(models::list_models))
        .route("/v1/responses/{id}", get(routes::responses::retrieve))
        .route("/v1/models/{model}", get(models::get_model))
        .route("/v1/usage", get(routes::usage::get_usage))
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
    shutdown.await;
    let deadline = Instant::now() + shutdown::grace_period(&state);
    shutdown::drain_turns(&state, deadline).await;
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
    Ok(())
}
