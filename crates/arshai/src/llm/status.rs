//! HTTP failures of a provider call, mapped to [`LlmError`]: statuses (with their error
//! bodies and `Retry-After`) and transport errors.

use std::time::Duration;

use serde::Deserialize;

use super::LlmError;

/// How much of an error body is kept in [`LlmError::UpstreamStatus`].
const BODY_EXCERPT_CHARS: usize = 512;

/// Turns a non-success response into its typed error; passes a success through.
pub(super) async fn check_status(
    provider: &'static str,
    response: reqwest::Response,
) -> Result<reqwest::Response, LlmError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = response.text().await.unwrap_or_default();
    Err(status_error(provider, status.as_u16(), &body, retry_after))
}

/// Parses `Retry-After` as delay-seconds or as an HTTP-date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

pub(super) fn transport_error(
    provider: &'static str,
    error: &reqwest::Error,
    deadline: Duration,
) -> LlmError {
    if error.is_timeout() {
        LlmError::Timeout {
            provider,
            after: deadline,
        }
    } else if error.is_decode() || error.is_body() {
        LlmError::Decode {
            provider,
            message: error.to_string(),
        }
    } else {
        LlmError::Connection {
            provider,
            message: error_chain(error),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Maps a non-success status and its body to the matching error class.
pub(super) fn status_error(
    provider: &'static str,
    status: u16,
    body: &str,
    retry_after: Option<Duration>,
) -> LlmError {
    let wire: Option<WireErrorBody> = serde_json::from_str(body).ok();
    let (message, code) = match wire {
        Some(WireErrorBody { error }) => {
            let code = match error.code {
                Some(serde_json::Value::String(code)) => Some(code),
                _ => error.status.or(error.kind),
            };
            (error.message, code)
        }
        None => (excerpt(body), None),
    };
    let context_length = code.as_deref() == Some("context_length_exceeded")
        || message.contains("maximum context length")
        || message.contains("exceeds the maximum number of tokens");
    // Gemini answers a bad key with 400 INVALID_ARGUMENT "API key not valid".
    let bad_key = message.contains("API key not valid");
    match status {
        401 | 403 => LlmError::Auth { provider, status },
        400 if bad_key => LlmError::Auth { provider, status },
        429 => LlmError::RateLimited {
            provider,
            retry_after,
        },
        400 | 404 | 413 | 422 if context_length => LlmError::ContextLength { provider, message },
        400 | 404 | 413 | 422 => LlmError::BadRequest {
            provider,
            status,
            message,
        },
        _ => LlmError::UpstreamStatus {
            provider,
            status,
            body_excerpt: excerpt(body),
            retry_after,
        },
    }
}

/// The start of `body`, at most [`BODY_EXCERPT_CHARS`] characters.
pub(super) fn excerpt(body: &str) -> String {
    match body.char_indices().nth(BODY_EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &body[..end]),
        None => body.to_owned(),
    }
}

#[derive(Deserialize)]
struct WireErrorBody {
    error: WireError,
}

#[derive(Deserialize)]
pub(super) struct WireError {
    #[serde(default)]
    pub(super) message: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// A string on OpenAI, a number on Gemini (which names the class in `status`).
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn statuses_map_to_error_classes() {
        let ctx = r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
        assert_eq!(
            status_error("openai", 400, ctx, None).class(),
            "context_length"
        );
        assert_eq!(status_error("openai", 401, "", None).class(), "auth");
        assert_eq!(
            status_error("openai", 429, "", None).class(),
            "rate_limited"
        );
        assert_eq!(
            status_error("openai", 503, "busy", None).class(),
            "upstream_status"
        );
        assert_eq!(
            status_error("openai", 400, "{}", None).class(),
            "bad_request"
        );
        let gemini = r#"{"error":{"code":400,"message":"The input token count (9000) exceeds the maximum number of tokens allowed (8192).","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(
            status_error("gemini", 400, gemini, None).class(),
            "context_length"
        );
        let key = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(status_error("gemini", 400, key, None).class(), "auth");
    }
}
