//! [`JsonBody`]: a JSON request body, refused with a specific status for each way it can be
//! wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::{ApiError, AppState};

/// The request body parsed as `T`.
///
/// - a `Content-Type` other than JSON (`application/json`, `application/*+json`) → 415
///   (a request without one is read as JSON, as curl-style clients send it);
/// - larger than `server.max_body_bytes` → 413; unreadable → 400;
/// - not JSON → 400 `invalid_json`; JSON of the wrong shape → 422 `invalid_request`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        check_media_type(request.headers().get(header::CONTENT_TYPE))?;
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::BodyTooLarge(state.settings.server.max_body_bytes)
                } else {
                    ApiError::BodyUnreadable(rejection.body_text())
                }
            })?;
        parse(&body).map(Self)
    }
}

/// Refuses a declared media type that is not JSON.
fn check_media_type(value: Option<&axum::http::HeaderValue>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Ok(());
    };
    let declared = value.to_str().unwrap_or_default();
    let essence = declared
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(declared.to_owned()))
    }
}

/// Parses a JSON body: syntax errors are 400, well-formed but wrong shapes are 422.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::InvalidRequest(error.to_string()),
        _ => ApiError::MalformedJson(error.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn json_media_types_are_accepted_and_others_refused() {
        for accepted in [
            None,
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("Application/JSON"),
            Some("application/merge-patch+json"),
        ] {
            let value = accepted.map(HeaderValue::from_static);
            assert!(check_media_type(value.as_ref()).is_ok(), "{accepted:?}");
        }
        for refused in ["text/plain", "application/x-www-form-urlencoded", "json"] {
            let value = HeaderValue::from_static(refused);
            assert!(
                matches!(
                    check_media_type(Some(&value)),
                    Err(ApiError::UnsupportedMediaType(_))
                ),
                "{refused}"
            );
        }
    }

    #[test]
    fn syntax_errors_and_shape_errors_are_told_apart() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Shape {
            message: String,
        }
        assert!(matches!(
            parse::<Shape>(b"{\"message\": "),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse::<Shape>(b"{\"message\": 1}"),
            Err(ApiError::InvalidRequest(_))
        ));
    }
}
