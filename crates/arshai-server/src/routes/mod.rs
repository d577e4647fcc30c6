//! HTTP handlers, one file per resource.

pub mod agents;
pub mod chat_completions;
pub mod conversations;
pub mod health;
pub mod messages;
pub mod metrics;
pub mod models;
pub mod responses;
pub mod runs;
pub mod usage;
pub mod workflows;

use axum::http::{Method, Uri};

use crate::ApiError;

/// Answers unknown paths with a JSON 404.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}

/// Answers a known path asked with the wrong method with a JSON 405.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
