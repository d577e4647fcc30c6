//! OpenAI Chat Completions, and every OpenAI-compatible endpoint (OpenRouter, vLLM, Ollama,
//! LiteLLM, …) by base URL.

use async_trait::async_trait;
use futures::future;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::header::HeaderMap;

mod builder;
#[doc(hidden)] // The benchmark decodes streams directly; clients do it for an application.
pub mod stream_decoder;
mod wire;

pub use builder::{DEFAULT_MODEL, OpenAiClientBuilder};

use self::stream_decoder::OpenAiStreamDecoder;
use self::wire::{WireRequest, decode_response};
use crate::llm::client::replay;
pub use crate::llm::status::parse_retry_after;
use crate::llm::status::{check_status, transport_error};
use crate::llm::transport::endpoint::{checked_base_url, header_map, secret_header};
use crate::llm::transport::{propagation, sse};
use crate::llm::{
    ChatRequest, ChatResponse, HttpPoolSettings, LlmClient, LlmError, StreamEvent,
    build_http_client,
};

/// The public OpenAI endpoint, used when no base URL is configured.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Settings of an OpenAI-compatible client.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The provider's name in errors and metrics (`openai`, `openrouter`, …).
    pub provider: &'static str,
    /// Base URL up to and including the version segment, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Bearer token; `None` sends no `Authorization` header (local gateways).
    pub api_key: Option<String>,
    /// Model used when a request names none.
    pub default_model: String,
    /// Headers sent with every request (OpenRouter's `HTTP-Referer` and `X-Title`, a
    /// gateway's routing or tenant headers).
    pub extra_headers: Vec<(String, String)>,
    /// Pool and timeout settings.
    pub http: HttpPoolSettings,
}

/// A client of an OpenAI-compatible Chat Completions endpoint.
///
/// [`OpenAiClient::builder`] starts from the defaults (the public OpenAI API, pooled
/// connections, the timeouts of [`HttpPoolSettings::default`]):
///
/// ```no_run
/// use arshai::llm::openai::OpenAiClient;
/// use arshai::llm::{ChatRequest, LlmClient, Message};
///
/// # async fn run() -> Result<(), arshai::LlmError> {
/// let client = OpenAiClient::builder()
///     .api_key(std::env::var("OPENAI_API_KEY").unwrap_or_default())
///     .model("gpt-4o-mini")
///     .request_timeout(std::time::Duration::from_secs(30))
///     .build()?;
/// let request = ChatRequest {
///     messages: vec![Message::user("Say hello.")],
///     ..Default::default()
/// };
/// let answer = client.chat(&request).await?;
/// println!("{}", answer.text);
/// # Ok(())
/// # }
/// ```
///
/// Any OpenAI-compatible endpoint works by base URL:
/// `OpenAiClient::builder().base_url("http://127.0.0.1:11434/v1").build()`.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    endpoint: String,
    headers: HeaderMap,
    provider: &'static str,
    default_model: String,
    settings: HttpPoolSettings,
}

impl OpenAiClient {
    /// A builder with every setting at its default; see [`OpenAiClientBuilder`].
    pub fn builder() -> OpenAiClientBuilder {
        OpenAiClientBuilder::default()
    }

    /// Builds the client and its connection pool.
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        let base = checked_base_url(config.provider, &config.base_url)?;
        let mut headers = header_map(config.provider, &config.extra_headers)?;
        if let Some(key) = &config.api_key {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                secret_header(config.provider, &format!("Bearer {key}"))?,
            );
        }
        Self::with_endpoint(
            config.provider,
            format!("{base}/chat/completions"),
            headers,
            config.default_model,
            config.http,
        )
    }

    /// A client that posts to `endpoint` (a full URL, query included) with `headers`: for
    /// providers that speak Chat Completions under another URL scheme and auth (Azure).
    pub(crate) fn with_endpoint(
        provider: &'static str,
        endpoint: String,
        headers: HeaderMap,
        default_model: String,
        settings: HttpPoolSettings,
    ) -> Result<Self, LlmError> {
        Ok(Self {
            http: build_http_client(provider, &settings)?,
            endpoint,
            headers,
            provider,
            default_model,
            settings,
        })
    }

    fn post(&self, body: &WireRequest<'_>, request: &ChatRequest) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .post(&self.endpoint)
            .headers(self.headers.clone())
            .json(body);
        if let Some(id) = &request.request_id {
            builder = builder.header("x-request-id", id);
        }
        propagation::propagate(builder)
    }

    async fn send(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let provider = self.provider;
        let body = WireRequest::from_request(request, &self.default_model, false);
        let response = self
            .post(&body, request)
            .send()
            .await
            .map_err(|e| transport_error(provider, &e, self.settings.request_timeout()))?;
        let response = check_status(provider, response).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(provider, &e, self.settings.request_timeout()))?;
        decode_response(provider, &bytes)
    }

    /// Sends a streaming request and, once the upstream accepted it, returns its events.
    async fn open_stream(
        &self,
        request: &ChatRequest,
    ) -> Result<BoxStream<'static, Result<StreamEvent, LlmError>>, LlmError> {
        let provider = self.provider;
        if request.sampling.logprobs == Some(true) || request.sampling.top_logprobs.is_some() {
            return Err(LlmError::unsupported(
                provider,
                "logprobs",
                "log probabilities are returned on non-streamed requests only",
            ));
        }
        let deadline = self.settings.request_timeout();
        let body = WireRequest::from_request(request, &self.default_model, true);
        // The total deadline bounds the wait for the response head; after that each read is
        // bounded by the read timeout, so a long answer is never cut while it still flows.
        let response = match tokio::time::timeout(deadline, self.post(&body, request).send()).await
        {
            Ok(sent) => sent.map_err(|e| transport_error(provider, &e, deadline))?,
            Err(_) => {
                return Err(LlmError::Timeout {
                    provider,
                    after: deadline,
                });
            }
        };
        let response = check_status(provider, response).await?;
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            // A gateway that ignores `stream: true` answers with one JSON body: replay it.
            let bytes = response
                .bytes()
                .await
                .map_err(|e| transport_error(provider, &e, deadline))?;
            let events = replay(decode_response(provider, &bytes)?);
            return Ok(stream::iter(events.into_iter().map(Ok)).boxed());
        }
        let bytes = sse::response_bytes(provider, response, self.settings.read_timeout());
        let data = sse::event_data(provider, bytes);
        Ok(sse::decode(data, OpenAiStreamDecoder::new(provider)).boxed())
    }
}

#[async_trait]
impl LlmClient for OpenAiClient {
    fn provider(&self) -> &'static str {
        self.provider
    }

    fn default_model(&self) -> &str {
        &self.default_model
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let deadline = self.settings.request_timeout();
        match tokio::time::timeout(deadline, self.send(request)).await {
            Ok(result) => result,
            Err(_) => Err(LlmError::Timeout {
                provider: self.provider,
                after: deadline,
            }),
        }
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        stream::once(self.open_stream(request))
            .flat_map(|opened| match opened {
                Ok(events) => events,
                Err(error) => stream::once(future::ready(Err(error))).boxed(),
            })
            .boxed()
    }
}
