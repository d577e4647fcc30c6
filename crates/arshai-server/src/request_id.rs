//! `X-Request-Id`: accepted from the client when well formed, generated otherwise, returned
//! on the response, passed to the upstream call, and written on the request's log line.
//! The log line itself is written here too: one per request, when its response body is done
//! (so a stream's line covers the whole stream, with its tokens), with the trace id.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tracing::Instrument;

use crate::turn::TurnRecord;
use crate::usage_tally::UsageTally;

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

/// Middleware: assigns the request id and writes the request's log line.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = RequestId::from_header(request.headers().get(&REQUEST_ID_HEADER));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    request.extensions_mut().insert(id.clone());
    // The server span of the request, child of the caller's `traceparent` when it sent one.
    let span = tracing::info_span!(
        target: "arshai::request",
        "request",
        otel.name = %method,
        otel.kind = "server",
        http.request.method = %method,
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
        request_id = %id.0,
    );
    let trace_id = crate::telemetry::adopt_parent(&span, request.headers());
    let tally = Arc::new(UsageTally::default());
    let mut response = tally
        .scope(next.run(request).instrument(span.clone()))
        .await;
    span.record(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    let turn = response.extensions().get::<TurnRecord>().cloned();
    let line = RequestLine {
        start,
        id,
        trace_id,
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
        turn,
        tally: Arc::clone(&tally),
    };
    // The line is written when the body is done (or dropped), so a stream's line covers the
    // whole stream and its tokens.
    response.map(|inner| {
        Body::new(LoggedBody {
            inner,
            _line: line,
            tally,
        })
    })
}

/// What the request's log line says, written on drop.
struct RequestLine {
    start: Instant,
    id: RequestId,
    trace_id: Option<String>,
    method: String,
    path: String,
    status: u16,
    turn: Option<TurnRecord>,
    tally: Arc<UsageTally>,
}

impl Drop for RequestLine {
    fn drop(&mut self) {
        let turn = self.turn.as_ref();
        let usage = turn
            .and_then(|turn| turn.usage)
            .or_else(|| self.tally.total());
        // Probes and scrapes arrive every few seconds from every kubelet and Prometheus:
        // their successful lines are debug, so they do not drown the turns (a failing one
        // stays info).
        let routine = (200..300).contains(&self.status) && is_probe_or_scrape(&self.path);
        macro_rules! request_line {
            ($level:expr) => {
                tracing::event!(
                    target: "arshai::request",
                    $level,
                    request_id = %self.id.0,
                    trace_id = self.trace_id.as_deref(),
                    method = %self.method,
                    path = %self.path,
                    status = self.status,
                    duration_ms = self.start.elapsed().as_secs_f64() * 1000.0,
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
    }
}

/// A response body polled with the request's [`UsageTally`] in scope, that writes the
/// request's log line when dropped.
struct LoggedBody {
    inner: Body,
    /// Written when the body is dropped.
    _line: RequestLine,
    tally: Arc<UsageTally>,
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        this.tally
            .sync_scope(|| Pin::new(&mut this.inner).poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
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
