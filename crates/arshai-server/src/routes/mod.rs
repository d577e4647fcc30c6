//! HTTP handlers, one file per resource.

pub mod health;
pub mod messages;
pub mod metrics;

use axum::http::Uri;

use crate::ApiError;

/// Answers unknown paths with a JSON 404.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}
