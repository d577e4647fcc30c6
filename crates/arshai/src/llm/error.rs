//! The one error type of the LLM layer.

use std::time::Duration;

/// Why an LLM call failed. Each variant keeps what a caller needs to decide what to do next:
/// whether to retry, after how long, and which status to answer with.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The provider asked us to slow down (HTTP 429).
    #[error("{provider} rate limited the request{}", retry_after_text(.retry_after))]
    RateLimited {
        /// Provider name.
        provider: &'static str,
        /// How long the provider asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The credentials were refused (HTTP 401/403). Never retried.
    #[error("{provider} refused the credentials (HTTP {status})")]
    Auth {
        /// Provider name.
        provider: &'static str,
        /// 401 or 403.
        status: u16,
    },
    /// The provider rejected the request as invalid (HTTP 400/404/422).
    #[error("{provider} rejected the request (HTTP {status}): {message}")]
    BadRequest {
        /// Provider name.
        provider: &'static str,
        /// The HTTP status.
        status: u16,
        /// The provider's message, shortened.
        message: String,
    },
    /// The prompt does not fit the model's context window.
    #[error("{provider}: the prompt exceeds the model's context window: {message}")]
    ContextLength {
        /// Provider name.
        provider: &'static str,
        /// Details.
        message: String,
    },
    /// Any other non-success status (mostly 5xx).
    #[error("{provider} answered HTTP {status}: {body_excerpt}")]
    UpstreamStatus {
        /// Provider name.
        provider: &'static str,
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body_excerpt: String,
        /// How long the provider asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The call did not finish within its deadline.
    #[error("{provider} did not answer within {after:?}")]
    Timeout {
        /// Provider name.
        provider: &'static str,
        /// The deadline that passed.
        after: Duration,
    },
    /// The connection could not be made or broke.
    #[error("cannot reach {provider}: {message}")]
    Connection {
        /// Provider name.
        provider: &'static str,
        /// Details.
        message: String,
    },
    /// The provider's answer could not be decoded.
    #[error("cannot decode the answer of {provider}: {message}")]
    Decode {
        /// Provider name.
        provider: &'static str,
        /// Details.
        message: String,
    },
    /// The provider's circuit breaker is open: calls fail fast until it probes again.
    #[error("{provider} is failing; calls are paused for {retry_after:?}")]
    CircuitOpen {
        /// Provider name.
        provider: &'static str,
        /// When the breaker will let a probe through.
        retry_after: Duration,
    },
    /// The request asks for something this provider cannot do (a parameter it has no
    /// equivalent for); refused before anything is sent. Never retried.
    #[error("{provider} does not support `{param}`: {message}")]
    Unsupported {
        /// Provider name.
        provider: &'static str,
        /// The request parameter, as OpenAI names it (`logprobs`, `seed`, …).
        param: &'static str,
        /// Why, or what to do instead.
        message: String,
    },
    /// The client is misconfigured (missing key, bad URL).
    #[error("{provider} is not configured: {message}")]
    Config {
        /// Provider name.
        provider: &'static str,
        /// Details.
        message: String,
    },
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (retry after {} s)", d.as_secs_f64()),
        None => String::new(),
    }
}

impl LlmError {
    /// The refusal of `param` by `provider`.
    pub fn unsupported(
        provider: &'static str,
        param: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::Unsupported {
            provider,
            param,
            message: message.into(),
        }
    }

    /// A short, stable name of the error class, for metrics labels and error bodies.
    pub fn class(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Auth { .. } => "auth",
            Self::BadRequest { .. } => "bad_request",
            Self::ContextLength { .. } => "context_length",
            Self::UpstreamStatus { .. } => "upstream_status",
            Self::Timeout { .. } => "timeout",
            Self::Connection { .. } => "connection",
            Self::Decode { .. } => "decode",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::Unsupported { .. } => "unsupported",
            Self::Config { .. } => "config",
        }
    }

    /// How long the upstream asked callers to wait before trying again, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::UpstreamStatus { retry_after, .. } => {
                *retry_after
            }
            Self::CircuitOpen { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}
