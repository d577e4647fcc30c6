//! The one place where errors become HTTP responses.

use std::borrow::Cow;
use std::time::Duration;

use arshai::agent::AgentError;
use arshai::llm::LlmError;
use arshai::memory::{ConversationId, MemoryError};
use arshai::workflow::{NodeError, RunError};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything a request can fail with. Each variant has one status and one error `type`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The JSON is well formed but does not describe a valid request.
    #[error("{0}")]
    InvalidRequest(String),
    /// The body is larger than `server.max_body_bytes`.
    #[error("the request body is larger than the limit of {0} bytes")]
    BodyTooLarge(usize),
    /// The body declares a media type other than JSON.
    #[error("the request body must be JSON (application/json), not {0:?}")]
    UnsupportedMediaType(String),
    /// A path segment cannot be read (not UTF-8 once percent-decoded).
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// The path exists but not with this method.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
    },
    /// A request header has an invalid value.
    #[error("{0}")]
    InvalidHeader(String),
    /// The body could not be read.
    #[error("the request body could not be read: {0}")]
    BodyUnreadable(String),
    /// No agent has this name.
    #[error("no agent is named {0:?}")]
    UnknownAgent(String),
    /// No workflow has this name.
    #[error("no workflow is named {0:?}")]
    UnknownWorkflow(String),
    /// A workflow run failed (boxed: a run's error is larger than the others).
    #[error(transparent)]
    Workflow(Box<arshai::workflow::RunError>),
    /// The conversation does not exist (or expired, or belongs to another tenant).
    #[error("no conversation has the id \"{0}\"")]
    ConversationNotFound(ConversationId),
    /// No stored response has this id (never stored, expired, or another tenant's).
    #[error("no response has the id {0:?}")]
    ResponseNotFound(String),
    /// No route matches.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// The request took longer than `server.request_timeout_seconds`.
    #[error("the request did not complete within {0:?}")]
    RequestTimeout(Duration),
    /// A stream produced no event for `stream.idle_timeout_seconds`.
    #[error("the stream produced nothing for {0:?}")]
    StreamIdle(Duration),
    /// The agent failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// Admission control refused the turn (at capacity, or draining).
    #[error("{rejection}; retry after {} s", retry_after.as_secs())]
    Overloaded {
        /// Why.
        rejection: crate::admission::Rejection,
        /// When to retry.
        retry_after: Duration,
    },
    /// No valid API key.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The key is valid but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A rate limit of the key or its tenant refused the turn (429 `rate_limited`).
    #[error("rate limit reached ({limit}); retry after {} ms", retry_after.as_millis())]
    RateLimited {
        /// When the same turn would be admitted.
        retry_after: Duration,
        /// `requests per minute` or `tokens per minute`.
        limit: &'static str,
    },
    /// A token budget of the key or its tenant is spent (429 `budget_exceeded`).
    #[error("{0}")]
    BudgetExceeded(arshai::limits::BudgetRefusal),
    /// The rate-limit or budget backend is unreachable under `fail_closed` (503).
    #[error("{0}")]
    LimitsUnavailable(String),
    /// A durable-run operation failed (`docs/runs.md`).
    #[error(transparent)]
    Run(#[from] crate::runs::RunError),
}

impl ApiError {
    /// The status, the error `type`, and the `Retry-After` to send.
    pub(crate) fn parts(&self) -> (StatusCode, &'static str, Option<Duration>) {
        match self {
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "invalid_json", None),
            Self::InvalidRequest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", None),
            Self::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", None),
            Self::BodyUnreadable(_) => (StatusCode::BAD_REQUEST, "body_unreadable", None),
            Self::InvalidHeader(_) => (StatusCode::BAD_REQUEST, "invalid_header", None),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
            ),
            Self::InvalidPath(_) => (StatusCode::BAD_REQUEST, "invalid_path", None),
            Self::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None)
            }
            Self::UnknownAgent(_) => (StatusCode::NOT_FOUND, "unknown_agent", None),
            Self::UnknownWorkflow(_) => (StatusCode::NOT_FOUND, "unknown_workflow", None),
            Self::Workflow(error) => workflow_parts(error),
            Self::ConversationNotFound(_) => {
                (StatusCode::NOT_FOUND, "conversation_not_found", None)
            }
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            Self::ResponseNotFound(_) => (StatusCode::NOT_FOUND, "response_not_found", None),
            Self::RequestTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "request_timeout", None),
            Self::StreamIdle(_) => (StatusCode::GATEWAY_TIMEOUT, "stream_idle_timeout", None),
            Self::Agent(AgentError::InvalidInput(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", None)
            }
            Self::Agent(AgentError::Unsupported(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unsupported", None)
            }
            Self::Agent(AgentError::Incomplete) => {
                (StatusCode::BAD_GATEWAY, "upstream_incomplete", None)
            }
            Self::Agent(AgentError::Memory(error)) => memory_parts(error),
            Self::Agent(AgentError::Llm(error)) => llm_parts(error),
            Self::Overloaded {
                rejection,
                retry_after,
            } => (
                StatusCode::SERVICE_UNAVAILABLE,
                match rejection {
                    crate::admission::Rejection::Draining => "shutting_down",
                    _ => "overloaded",
                },
                Some(*retry_after),
            ),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            Self::RateLimited { retry_after, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                Some(*retry_after),
            ),
            Self::BudgetExceeded(refusal) => (
                StatusCode::TOO_MANY_REQUESTS,
                "budget_exceeded",
                Some(refusal.retry_after()),
            ),
            Self::LimitsUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "limits_unavailable",
                Some(Duration::from_secs(1)),
            ),
            Self::Run(error) => error.parts(),
        }
    }
}

impl ApiError {
    /// The JSON error body, `{"error":{"type","message"}}` (also the data of an SSE `error`
    /// event when a stream fails after it started).
    pub(crate) fn body(&self) -> serde_json::Value {
        let mut body = json!({"error": {"type": self.parts().1, "message": self.to_string()}});
        if let Self::Run(crate::runs::RunError::BadParameter { param, .. }) = self {
            body["error"]["param"] = json!(param);
        }
        body
    }
}

/// A failed run: a node's agent error keeps its own status and type; the engine's own
/// bounds are 504 (time) and 508 (steps); a route that found no target is 500.
fn workflow_parts(error: &RunError) -> (StatusCode, &'static str, Option<Duration>) {
    match error {
        RunError::Node { .. } => match error.node_error() {
            Some(NodeError::Agent(AgentError::Memory(error))) => memory_parts(error),
            Some(NodeError::Agent(AgentError::Llm(error))) => llm_parts(error),
            Some(NodeError::Timeout(_)) => {
                (StatusCode::GATEWAY_TIMEOUT, "workflow_node_timeout", None)
            }
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "workflow_node_failed",
                None,
            ),
        },
        RunError::StepLimit { .. } => (StatusCode::LOOP_DETECTED, "workflow_step_limit", None),
        RunError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "workflow_timeout", None),
        RunError::NoRoute { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "workflow_no_route", None),
        RunError::Checkpoint { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "workflow_checkpoint_unavailable",
            None,
        ),
    }
}

fn memory_parts(error: &MemoryError) -> (StatusCode, &'static str, Option<Duration>) {
    match error {
        MemoryError::Busy => (StatusCode::CONFLICT, "conversation_busy", None),
        MemoryError::LeaseLost => (StatusCode::CONFLICT, "lease_lost", None),
        MemoryError::IdempotencyMismatch => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            None,
        ),
        MemoryError::Conflict { .. } => (StatusCode::CONFLICT, "version_conflict", None),
        MemoryError::Unavailable { .. } | MemoryError::Timeout { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "memory_unavailable",
            Some(Duration::from_secs(1)),
        ),
        MemoryError::Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "memory_corrupt", None),
    }
}

fn llm_parts(error: &LlmError) -> (StatusCode, &'static str, Option<Duration>) {
    let retry_after = error.retry_after();
    match error {
        LlmError::RateLimited { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_rate_limited",
            Some(retry_after.unwrap_or(Duration::from_secs(1))),
        ),
        LlmError::CircuitOpen { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            retry_after,
        ),
        LlmError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", None),
        LlmError::ContextLength { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "context_length_exceeded",
            None,
        ),
        LlmError::Auth { .. } => (StatusCode::BAD_GATEWAY, "upstream_auth", None),
        // The request can never succeed as sent: a client error, never retried.
        LlmError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "upstream_bad_request", None),
        LlmError::Unsupported { .. } => (StatusCode::BAD_REQUEST, "unsupported_parameter", None),
        LlmError::UpstreamStatus { .. } => (StatusCode::BAD_GATEWAY, "upstream_error", retry_after),
        LlmError::Connection { .. } => (StatusCode::BAD_GATEWAY, "upstream_unreachable", None),
        LlmError::Decode { .. } => (StatusCode::BAD_GATEWAY, "upstream_decode", None),
        LlmError::Config { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "misconfigured", None),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, retry_after) = self.parts();
        if status.is_server_error() && !matches!(self, Self::Overloaded { .. }) {
            tracing::warn!(error = %self, status = status.as_u16(), "request failed");
        }
        let mut response =
            with_retry_after((status, Json(self.body())).into_response(), retry_after);
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// An [`ApiError`] in OpenAI's error shape, for the OpenAI-compatible endpoints
/// (`/v1/chat/completions`, `/v1/models`), so that OpenAI clients and SDKs raise their own
/// typed errors: `{"error":{"message","type","param","code"}}`.
///
/// The status is the native one, except that a well-formed body of the wrong shape is 400
/// (OpenAI never answers 422). `code` is the native error `type` (`model_not_found` for an
/// unknown agent), and `type` is OpenAI's class of the status.
#[derive(Debug)]
pub struct OpenAiError {
    /// The error.
    pub error: ApiError,
    /// The request parameter at fault, when one is.
    pub param: Option<Cow<'static, str>>,
}

impl OpenAiError {
    /// `error`, blamed on the request parameter `param`.
    pub fn with_param(error: ApiError, param: &'static str) -> Self {
        Self {
            error,
            param: Some(Cow::Borrowed(param)),
        }
    }

    /// `error`, blamed on the request parameter `param`, named at run time (a parameter the
    /// caller sent that we do not know).
    pub fn with_dynamic_param(error: ApiError, param: String) -> Self {
        Self {
            error,
            param: Some(Cow::Owned(param)),
        }
    }

    /// The status and the body's `error` object (also sent as an SSE `data:` frame when a
    /// stream fails after it started).
    pub fn parts(&self) -> (StatusCode, Option<Duration>, serde_json::Value) {
        let (mut status, code, retry_after) = self.error.parts();
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            status = StatusCode::BAD_REQUEST;
        }
        let param = self.param.as_deref();
        let (code, param) = match &self.error {
            ApiError::UnknownAgent(_) => ("model_not_found", param.or(Some("model"))),
            ApiError::Agent(AgentError::Llm(LlmError::Unsupported { param: named, .. })) => {
                (code, param.or(Some(*named)))
            }
            _ => (code, param),
        };
        let kind = match status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_exceeded",
            status if status.is_server_error() => "server_error",
            _ => "invalid_request_error",
        };
        let body = json!({"error": {
            "message": self.error.to_string(),
            "type": kind,
            "param": param,
            "code": code,
        }});
        (status, retry_after, body)
    }
}

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> Self {
        Self { error, param: None }
    }
}

impl From<AgentError> for OpenAiError {
    fn from(error: AgentError) -> Self {
        ApiError::Agent(error).into()
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let (status, retry_after, body) = self.parts();
        if status.is_server_error() {
            tracing::warn!(error = %self.error, status = status.as_u16(), "request failed");
        }
        with_retry_after((status, Json(body)).into_response(), retry_after)
    }
}

/// Whether `path` is one of the OpenAI-compatible endpoints, whose errors use OpenAI's shape.
pub fn is_openai_route(path: &str) -> bool {
    path == "/v1/chat/completions"
        || path == "/v1/models"
        || path.starts_with("/v1/models/")
        || path == "/v1/responses"
        || path.starts_with("/v1/responses/")
}

/// `error` as the response of a request to `path`: in OpenAI's shape on the
/// OpenAI-compatible endpoints ([`is_openai_route`]), in the native shape elsewhere. For
/// middleware that answers before any route runs (auth, admission).
pub fn error_response_for(path: &str, error: ApiError) -> Response {
    if is_openai_route(path) {
        let unauthorized = matches!(error, ApiError::Unauthorized(_));
        let mut response = OpenAiError::from(error).into_response();
        if unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    } else {
        error.into_response()
    }
}

fn with_retry_after(mut response: Response, retry_after: Option<Duration>) -> Response {
    if let Some(after) = retry_after {
        let seconds = after.as_secs_f64().ceil().max(1.0) as u64;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
