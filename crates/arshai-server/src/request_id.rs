//! `X-Request-Id`: accepted from the client when well formed, generated otherwise, returned
//! on the response, passed to the upstream call, and written on the request's log line.
//! The log line itself is written here too: one per request, when its response head is
//! ready.

use std::time::Instant;

use arshai::llm::Usage;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header's name.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest accepted client-supplied id; longer ones are replaced.
const MAX_LEN: usize = 128;

/// The id of the current request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// Takes the client's id if it is 1 to 128 visible ASCII characters, else a new one.
    fn from_header(value: Option<&HeaderValue>) -> Self {
        match value.and_then(|value| value.to_str().ok()) {
            Some(id)
                if !id.is_empty()
                    && id.len() <= MAX_LEN
                    && id.bytes().all(|byte| byte.is_ascii_graphic()) =>
            {
                Self(id.to_owned())
            }
            _ => Self(uuid::Uuid::new_v4().simple().to_string()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId::from_header(None)))
    }
}

/// What a turn handler reports about its turn, as a response extension, for the log line
/// and the metrics.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    /// The agent's name.
    pub agent: String,
    /// The agent's type (a metrics label).
    pub agent_type: &'static str,
    /// Tokens used, when the turn finished.
    pub usage: Option<Usage>,
}

/// Middleware: assigns the request id and writes the request's log line.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = RequestId::from_header(request.headers().get(&REQUEST_ID_HEADER));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    request.extensions_mut().insert(id.clone());
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    let turn = response.extensions().get::<TurnRecord>();
    let usage = turn.and_then(|turn| turn.usage);
    let status = response.status();
    // Probes and scrapes arrive every few seconds from every kubelet and Prometheus: their
    // successful lines are debug, so they do not drown the turns (a failing one stays info).
    let routine = status.is_success() && is_probe_or_scrape(&path);
    macro_rules! request_line {
        ($level:expr) => {
            tracing::event!(
                target: "arshai::request",
                $level,
                request_id = %id.0,
                method = %method,
                path = %path,
                status = status.as_u16(),
                duration_ms = start.elapsed().as_secs_f64() * 1000.0,
                agent = turn.map(|turn| turn.agent.as_str()),
                input_tokens = usage.map(|usage| usage.input_tokens),
                output_tokens = usage.map(|usage| usage.output_tokens),
                "request"
            )
        };
    }
    if routine {
        request_line!(tracing::Level::DEBUG);
    } else {
        request_line!(tracing::Level::INFO);
    }
    response
}

/// Whether `path` is a health probe or a metrics scrape.
fn is_probe_or_scrape(path: &str) -> bool {
    matches!(
        path,
        "/health" | "/health/live" | "/health/ready" | "/metrics"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_scrapes_are_routine_and_turns_are_not() {
        for path in ["/health", "/health/live", "/health/ready", "/metrics"] {
            assert!(is_probe_or_scrape(path), "{path}");
        }
        for path in [
            "/v1/agents/assistant/messages",
            "/v1/chat/completions",
            "/healthz",
        ] {
            assert!(!is_probe_or_scrape(path), "{path}");
        }
    }

    #[test]
    fn client_ids_are_kept_only_when_well_formed() {
        let keep = HeaderValue::from_static("abc-123_XYZ");
        assert_eq!(RequestId::from_header(Some(&keep)).0, "abc-123_XYZ");
        let long = HeaderValue::from_str(&"x".repeat(129)).unwrap();
        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_static("a b"),
            long,
        ] {
            let id = RequestId::from_header(Some(&bad)).0;
            assert_eq!(id.len(), 32, "{id}");
        }
    }
}
