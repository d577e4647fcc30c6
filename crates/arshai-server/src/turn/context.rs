//! [`TurnContext`]: what the turn runner needs of the request besides the turn itself —
//! who asks (for the limits) and whether the cache is bypassed.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// The caller of a turn and its cache directive.
#[derive(Debug, Clone)]
pub struct TurnContext {
    /// Who asks (tenant, key, the key's limits).
    pub caller: Caller,
    /// `Cache-Control: no-cache` (or `no-store`) on the request: the cache is bypassed.
    pub no_cache: bool,
}

impl FromRequestParts<AppState> for TurnContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let no_cache = parts
            .headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|directive| {
                let directive = directive.trim();
                directive.eq_ignore_ascii_case("no-cache")
                    || directive.eq_ignore_ascii_case("no-store")
            });
        Ok(Self { caller, no_cache })
    }
}
