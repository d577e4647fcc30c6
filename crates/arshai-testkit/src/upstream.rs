//! A fake LLM upstream over real HTTP.
//!
//! It answers in the provider's own wire format, chosen by the request path:
//! - `…/chat/completions` (OpenAI, OpenRouter and other gateways, Azure OpenAI's
//!   `/openai/deployments/{d}/chat/completions`): `chat.completion` JSON, or
//!   `chat.completion.chunk` server-sent events ending in `data: [DONE]` when the body says
//!   `"stream": true`.
//! - `…/models/{model}:generateContent` and `…:streamGenerateContent?alt=sse` (Gemini).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::scripted::ScriptedToolCall;
use crate::wire::{self, Answer, Wire};

/// How many received requests are kept for inspection (oldest dropped first).
const RECORDED_REQUESTS: usize = 10_000;

/// How long a [`StreamFault::Stall`] holds the connection without sending anything. Long
/// enough that only the client's own timeout ends it; bounded so a forgotten test ends.
const STALL: Duration = Duration::from_secs(600);

/// Pause before an injected disconnect, so the frames before it are delivered.
const FLUSH_PAUSE: Duration = Duration::from_millis(50);

/// How a streamed answer breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFault {
    /// The connection is closed without finishing the response.
    Disconnect,
    /// A chunk whose data is not valid JSON is sent, then the rest of the answer.
    MalformedChunk,
    /// Nothing more is sent, but the connection stays open.
    Stall,
}

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An answer with this text.
    Text(String),
    /// An answer that calls these tools (with optional text before the calls).
    ToolCalls {
        /// Text the model says before calling.
        text: String,
        /// The calls, in order.
        calls: Vec<ScriptedToolCall>,
    },
    /// An error status with the provider's error body and an optional `Retry-After`.
    Status {
        /// The HTTP status.
        status: u16,
        /// The error message in the body.
        message: String,
        /// The `Retry-After` header, verbatim.
        retry_after: Option<String>,
    },
    /// A 200 whose body is not valid JSON (or, when streaming, whose first chunk is not).
    Malformed,
    /// Waits this long before answering with the inner reply.
    Delay(Duration, Box<Reply>),
    /// When streaming, waits this long between chunks of the inner reply.
    ChunkDelay(Duration, Box<Reply>),
    /// The inner reply breaks after `after_chunks` stream chunks (a non-streamed answer
    /// breaks half-way through its body).
    Fault {
        /// How it breaks.
        fault: StreamFault,
        /// Chunks sent intact before the fault.
        after_chunks: usize,
        /// The answer that is broken.
        reply: Box<Reply>,
    },
}

impl Reply {
    /// A text reply.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// A reply that calls one tool.
    pub fn tool_call(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self::tool_calls([(name, arguments)])
    }

    /// A reply that calls several tools at once.
    pub fn tool_calls<N: Into<String>, A: Into<String>>(
        calls: impl IntoIterator<Item = (N, A)>,
    ) -> Self {
        Self::ToolCalls {
            text: String::new(),
            calls: calls
                .into_iter()
                .map(|(name, arguments)| ScriptedToolCall {
                    name: name.into(),
                    arguments: arguments.into(),
                })
                .collect(),
        }
    }

    /// An error status.
    pub fn status(status: u16) -> Self {
        Self::Status {
            status,
            message: format!("injected status {status}"),
            retry_after: None,
        }
    }

    /// An error status with a message (e.g. a context-length error).
    pub fn status_message(status: u16, message: impl Into<String>) -> Self {
        Self::Status {
            status,
            message: message.into(),
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

    /// This reply, streamed with `delay` between chunks.
    pub fn chunk_delay(self, delay: Duration) -> Self {
        Self::ChunkDelay(delay, Box::new(self))
    }

    /// This reply, with the connection closed after `after_chunks` chunks.
    pub fn disconnect_after(self, after_chunks: usize) -> Self {
        self.fault(StreamFault::Disconnect, after_chunks)
    }

    /// This reply, with a malformed chunk after `after_chunks` chunks.
    pub fn malformed_chunk_after(self, after_chunks: usize) -> Self {
        self.fault(StreamFault::MalformedChunk, after_chunks)
    }

    /// This reply, stalling after `after_chunks` chunks.
    pub fn stall_after(self, after_chunks: usize) -> Self {
        self.fault(StreamFault::Stall, after_chunks)
    }

    fn fault(self, fault: StreamFault, after_chunks: usize) -> Self {
        Self::Fault {
            fault,
            after_chunks,
            reply: Box::new(self),
        }
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
    /// When it arrived (to check the spacing of retries).
    pub at: Instant,
    /// The request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The query string, if any (`api-version=…`, `alt=sse`).
    pub query: Option<String>,
    /// The JSON body (or `Null` if it did not parse).
    pub body: Value,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `X-Request-Id` header.
    pub request_id: Option<String>,
    /// Every header.
    pub headers: HeaderMap,
}

impl Recorded {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
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
        let app = Router::new().fallback(answer).with_state(state);
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

    /// The base URL of the OpenAI-compatible API (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The root URL (`http://127.0.0.1:PORT`): Azure's endpoint, or Gemini's base URL
    /// with `/v1beta` appended.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
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

async fn answer(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((wire, streaming, model_in_path)) = wire::route(&uri) else {
        return (StatusCode::NOT_FOUND, "no such endpoint").into_response();
    };
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let streaming = streaming || parsed["stream"] == Value::Bool(true);
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
                at: Instant::now(),
                path: uri.path().to_owned(),
                query: uri.query().map(str::to_owned),
                body: parsed.clone(),
                authorization: header("authorization"),
                request_id: header("x-request-id"),
                headers: headers.clone(),
            });
        }
        shared.script.pop_front()
    };
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    let mut reply = scripted.unwrap_or_else(|| Reply::Text(wire::echo(wire, &parsed)));
    let mut chunk_delay = Duration::ZERO;
    let mut fault = None;
    loop {
        match reply {
            Reply::Delay(delay, inner) => {
                tokio::time::sleep(delay).await;
                reply = *inner;
            }
            Reply::ChunkDelay(delay, inner) => {
                chunk_delay = delay;
                reply = *inner;
            }
            Reply::Fault {
                fault: kind,
                after_chunks,
                reply: inner,
            } => {
                fault = Some((kind, after_chunks));
                reply = *inner;
            }
            _ => break,
        }
    }
    let model = model_in_path
        .or_else(|| parsed["model"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "fake-model".to_owned());
    let answer = match reply {
        Reply::Text(text) => Answer {
            text,
            calls: Vec::new(),
        },
        Reply::ToolCalls { text, calls } => Answer { text, calls },
        Reply::Status {
            status,
            message,
            retry_after,
        } => return error_status(wire, status, &message, retry_after),
        Reply::Malformed if streaming => {
            return sse_response(
                vec![Bytes::from_static(
                    b"data: {\"id\": \"broken\", \"choices\": [\n\n",
                )],
                Duration::ZERO,
                None,
            );
        }
        Reply::Malformed => {
            return (
                [("content-type", "application/json")],
                "{\"id\": \"chatcmpl-broken\", \"choices\": [",
            )
                .into_response();
        }
        Reply::Delay(..) | Reply::ChunkDelay(..) | Reply::Fault { .. } => {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if streaming {
        let frames = wire::stream_frames(wire, &model, &answer, &parsed);
        sse_response(frames, chunk_delay, fault)
    } else {
        let body = wire::complete(wire, &model, &answer, &parsed).to_string();
        match fault {
            None => ([("content-type", "application/json")], body).into_response(),
            Some((StreamFault::MalformedChunk, _)) => (
                [("content-type", "application/json")],
                body[..body.len() / 2].to_owned(),
            )
                .into_response(),
            Some((kind, _)) => {
                let half = Bytes::from(body[..body.len() / 2].to_owned());
                broken_body(
                    "application/json",
                    vec![half],
                    Duration::ZERO,
                    Some((kind, 1)),
                )
            }
        }
    }
}

fn error_status(wire: Wire, status: u16, message: &str, retry_after: Option<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = wire::error_body(wire, status, message);
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

fn sse_response(
    frames: Vec<Bytes>,
    chunk_delay: Duration,
    fault: Option<(StreamFault, usize)>,
) -> Response {
    broken_body("text/event-stream", frames, chunk_delay, fault)
}

/// A chunked body that sends `frames` one by one, `chunk_delay` apart, breaking as `fault`
/// says.
fn broken_body(
    content_type: &'static str,
    frames: Vec<Bytes>,
    chunk_delay: Duration,
    fault: Option<(StreamFault, usize)>,
) -> Response {
    enum Item {
        Frame(Bytes),
        Fail,
        Stall,
    }
    let mut items: Vec<Item> = Vec::with_capacity(frames.len() + 1);
    for (index, frame) in frames.into_iter().enumerate() {
        if let Some((kind, after)) = fault
            && after == index
        {
            match kind {
                StreamFault::Disconnect => {
                    items.push(Item::Fail);
                    break;
                }
                StreamFault::Stall => {
                    items.push(Item::Stall);
                    break;
                }
                StreamFault::MalformedChunk => items.push(Item::Frame(Bytes::from_static(
                    b"data: {\"choices\": [{\"delta\": \n\n",
                ))),
            }
        }
        items.push(Item::Frame(frame));
    }
    if let Some((kind, after)) = fault
        && after >= items.len()
    {
        items.push(match kind {
            StreamFault::Stall => Item::Stall,
            _ => Item::Fail,
        });
    }
    let body = stream::iter(items.into_iter().enumerate()).then(move |(index, item)| async move {
        if index > 0 && !chunk_delay.is_zero() {
            tokio::time::sleep(chunk_delay).await;
        }
        match item {
            Item::Frame(bytes) => Ok(bytes),
            Item::Fail => {
                // Let the frames already written reach the client first, as when a real
                // connection drops mid-answer (hyper would otherwise abort a buffered head).
                tokio::time::sleep(FLUSH_PAUSE).await;
                Err(std::io::Error::other("injected disconnect"))
            }
            Item::Stall => {
                tokio::time::sleep(STALL).await;
                Err(std::io::Error::other("injected stall ended"))
            }
        }
    });
    Response::builder()
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
