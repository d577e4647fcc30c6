//! The arshai server: agents over HTTP.
//!
//! [`app`] builds the whole HTTP surface from an [`AppState`]; binaries only bind and serve
//! (see [`serve`]), and tests drive [`app`] on real sockets.
//!
//! - `POST /v1/agents/{agent}/messages` — one agent turn ([`routes::messages`]).
//! - `POST /v1/agents/{agent}/messages` with `"stream": true` — the turn as server-sent events
//!   ([`routes::message_stream`]).
//! - `GET /v1/agents`; `GET|DELETE /v1/agents/{agent}/conversations/{id}`
//!   ([`routes::agents`], [`routes::conversations`]).
//! - `POST /v1/chat/completions`, `GET /v1/models[/{model}]` — the OpenAI-compatible API
//!   ([`routes::chat_completions`], [`routes::models`]).
//! - `GET /health` — the scaling guide's health check ([`routes::health`]).

pub mod cli;
pub mod error;
pub mod routes;
pub mod shutdown;
pub mod state;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use routes::{agents, chat_completions, conversations, models};
use tokio::net::TcpListener;

pub use error::ApiError;
pub use state::AppState;

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    let body_limit = state.settings.server.max_body_bytes;
    Router::new()
        .route(
            "/v1/agents/{agent}/messages",
            post(routes::messages::post_message),
        )
        .route("/v1/agents", get(agents::list_agents))
        .route(
            "/v1/agents/{agent}/conversations/{id}",
            get(conversations::get_conversation).delete(conversations::delete_conversation),
        )
        .route("/v1/chat/completions", post(chat_completions::create))
        .route("/v1/models", get(models::list_models))
        .route("/v1/models/{model}", get(models::get_model))
        .route("/health", get(routes::health::health))
        .route("/health/live", get(routes::health::live))
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(state).into_make_service_with_connect_info::<SocketAddr>();
    // Streamed frames are small writes: without TCP_NODELAY, Nagle holds each one until the
    // client acknowledges the previous one (up to the delayed-ACK timeout, 40 ms on Linux).
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
