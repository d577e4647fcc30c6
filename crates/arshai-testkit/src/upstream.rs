//! A fake OpenAI-compatible upstream over real HTTP.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How many received requests are kept for inspection (oldest dropped first).
const RECORDED_REQUESTS: usize = 10_000;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A `chat.completion` whose message has this text.
    Text(String),
    /// An error status with an OpenAI-style error body and an optional `Retry-After`.
    Status {
        /// The HTTP status.
        status: u16,
        /// The error message in the body.
        message: String,
        /// The `Retry-After` header, verbatim.
        retry_after: Option<String>,
    },
    /// A 200 whose body is not valid JSON.
    Malformed,
    /// Waits this long before answering with the next reply (or the default).
    Delay(Duration, Box<Reply>),
}

impl Reply {
    /// A text reply.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// An error status.
    pub fn status(status: u16) -> Self {
        Self::Status {
            status,
            message: format!("injected status {status}"),
            retry_after: None,
        }
    }

    /// An error status with `Retry-After`.
    pub fn status_retry_after(status: u16, retry_after: impl Into<String>) -> Self {
        Self::Status {
            status,
            message: format!("injected status {status}"),
            retry_after: Some(retry_after.into()),
        }
    }

    /// This reply, after `delay`.
    pub fn delayed(self, delay: Duration) -> Self {
        Self::Delay(delay, Box::new(self))
    }
}

/// Options of a [`FakeUpstream`].
#[derive(Debug, Clone, Default)]
pub struct UpstreamOptions {
    /// Delay before every answer.
    pub latency: Duration,
    /// The port to bind on 127.0.0.1; `0` picks a free one.
    pub port: u16,
    /// Keep received request bodies for [`FakeUpstream::requests`] (off for load tests).
    pub record: bool,
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Reply>,
    requests: VecDeque<Recorded>,
    count: u64,
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Mutex<Shared>>,
    latency: Duration,
    record: bool,
}

/// A request the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The JSON body (or `Null` if it did not parse).
    pub body: Value,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `X-Request-Id` header.
    pub request_id: Option<String>,
}

/// A running fake upstream. Stops when dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Option<oneshot::Sender<()>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeUpstream {
    /// Starts an upstream on an ephemeral port that records requests.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(UpstreamOptions {
            record: true,
            ..UpstreamOptions::default()
        })
        .await
    }

    /// Starts an upstream with `options`.
    pub async fn start_with(options: UpstreamOptions) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", options.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = AppState {
            shared: Arc::clone(&shared),
            latency: options.latency,
            record: options.record,
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(state);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "fake upstream stopped");
            }
        });
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
        })
    }

    /// The base URL to configure a client with (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a scripted reply; once the script is empty, the upstream echoes.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared).script.push_back(reply);
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).requests.iter().cloned().collect()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> u64 {
        lock(&self.shared).count
    }

    /// Waits until the upstream is stopped (for the standalone binary).
    pub async fn wait_forever(self) {
        std::future::pending::<()>().await;
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The default answer: `echo: <last user message>`, so tests can see what was sent.
fn echo(body: &Value) -> String {
    let last_user = body["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    format!("echo: {last_user}")
}

async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let scripted = {
        let mut shared = lock(&state.shared);
        shared.count += 1;
        if state.record {
            if shared.requests.len() == RECORDED_REQUESTS {
                shared.requests.pop_front();
            }
            shared.requests.push_back(Recorded {
                body: parsed.clone(),
                authorization: header("authorization"),
                request_id: header("x-request-id"),
            });
        }
        shared.script.pop_front()
    };
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    let mut reply = scripted.unwrap_or_else(|| Reply::Text(echo(&parsed)));
    while let Reply::Delay(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    let model = parsed["model"].as_str().unwrap_or("fake-model").to_owned();
    match reply {
        Reply::Text(text) => completion(&model, &text, &parsed).into_response(),
        Reply::Status {
            status,
            message,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let kind = if status == StatusCode::TOO_MANY_REQUESTS {
                "rate_limit_exceeded"
            } else if status.is_server_error() {
                "server_error"
            } else {
                "invalid_request_error"
            };
            let body =
                json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
            let mut response = (status, axum::Json(body)).into_response();
            if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                response.headers_mut().insert("retry-after", value);
            }
            response
        }
        Reply::Malformed => (
            [("content-type", "application/json")],
            "{\"id\": \"chatcmpl-broken\", \"choices\": [",
        )
            .into_response(),
        Reply::Delay(..) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A `chat.completion` object exactly as OpenAI sends it.
fn completion(model: &str, text: &str, request: &Value) -> axum::Json<Value> {
    let prompt_tokens = approximate_tokens(&request["messages"].to_string());
    let completion_tokens = approximate_tokens(text);
    axum::Json(json!({
        "id": format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        "object": "chat.completion",
        "created": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake"
    }))
}

/// A stable stand-in for a tokenizer: one token per 4 bytes, at least 1.
fn approximate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4).max(1)
}
