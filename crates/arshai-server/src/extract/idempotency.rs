//! The `Idempotency-Key` request header: makes a turn safe to retry.
//!
//! A turn sent with a key is recorded with a receipt; a retry with the same key (after a
//! timeout, a dropped connection or an ambiguous 503) answers with the recorded reply
//! instead of running and recording the turn again. The same key on a different request is
//! refused with 422 `idempotency_key_reused`. Keys are kept per conversation, as long as
//! the conversation (its TTL), for its 64 most recent keyed turns.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};

use crate::ApiError;

/// The header, as the IETF draft and most HTTP APIs name it.
pub const IDEMPOTENCY_KEY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// The request's idempotency key, if it sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    /// Validates the header: 1 to 255 visible ASCII characters.
    pub fn from_header(value: Option<&HeaderValue>) -> Result<Self, ApiError> {
        let Some(value) = value else {
            return Ok(Self(None));
        };
        match value.to_str() {
            Ok(key)
                if !key.is_empty()
                    && key.len() <= MAX_KEY_LEN
                    && key.bytes().all(|byte| byte.is_ascii_graphic()) =>
            {
                Ok(Self(Some(key.to_owned())))
            }
            _ => Err(ApiError::InvalidHeader(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::from_header(parts.headers.get(IDEMPOTENCY_KEY_HEADER))
    }
}
