//! HTTP handlers, one file per resource.

pub mod agents;
pub mod chat_completions;
pub mod conversations;
pub mod health;
pub mod message_stream;
pub mod messages;
pub mod metrics;

pub mod models;
pub mod sse;

use axum::http::Uri;

use crate::ApiError;

/// Answers unknown paths with a JSON 404.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}
