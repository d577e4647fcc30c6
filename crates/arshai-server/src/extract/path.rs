//! [`PathParams`]: path segments, refused with a JSON 400 when they cannot be read.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// The route's path parameters as `T` (axum's [`Path`], with an [`ApiError`] rejection:
/// a segment that is not valid UTF-8 once percent-decoded, `%FF` say, is 400
/// `invalid_path` instead of axum's `text/plain` answer).
#[derive(Debug, Clone)]
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejected(&rejection)),
        }
    }
}

fn rejected(rejection: &PathRejection) -> ApiError {
    ApiError::InvalidPath(rejection.body_text())
}
