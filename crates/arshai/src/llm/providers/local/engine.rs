//! The shared model (weights loaded once, tokenizer) and the running of one request on it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use candle_transformers::models::quantized_llama::ModelWeights;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;

use super::PROVIDER;
use super::generate::{Outcome, Rules, generate};
use super::json_grammar::JsonPrefix;
use super::logprobs::Logprobs;
use super::model::load_weights;
use super::prompt::{self, PromptError};
use super::sampler::Sampler;
use super::stop::StopFilter;
use super::support::Decoding;
use super::tokenizer::ChatTokenizer;
use crate::llm::{ChatRequest, LlmError, StreamEvent, Usage};

/// The longest time a worker waits for a caller that holds a stream but stops reading it;
/// after that the generation is abandoned so the worker serves the queue again.
const CONSUMER_STALL_LIMIT: Duration = Duration::from_secs(60);
/// How often a worker retries handing an event to a caller whose buffer is full.
const CONSUMER_POLL: Duration = Duration::from_millis(2);

/// The events a request's stream receives.
pub(crate) type EventSender = Sender<Result<StreamEvent, LlmError>>;

/// One request waiting for, or running on, an inference thread.
pub(crate) struct Job {
    /// What to answer.
    pub(crate) request: ChatRequest,
    /// Where the answer goes; a closed channel means the caller is gone.
    pub(crate) events: EventSender,
    /// What the checks made of the request (its JSON shape, its logit bias).
    pub(crate) decoding: Decoding,
    /// Where the log probabilities go, for a non-streamed call that asked for them; they
    /// are sent before the finish event.
    pub(crate) logprobs: Option<oneshot::Sender<serde_json::Value>>,
}

/// The model every inference thread shares.
pub(crate) struct Engine {
    pub(crate) path: PathBuf,
    pub(crate) tokenizer: ChatTokenizer,
    pub(crate) model_name: String,
    pub(crate) context_tokens: usize,
    pub(crate) max_new_tokens: usize,
    pub(crate) requantize_q8_0: bool,
    pub(crate) weights: OnceLock<Result<ModelWeights, String>>,
}

impl Engine {
    /// The weights, loading them on first use (on the calling inference thread; other
    /// threads wait for that load).
    pub(crate) fn weights(&self) -> Result<&ModelWeights, LlmError> {
        self.weights
            .get_or_init(|| {
                let started = Instant::now();
                let loaded = load_weights(&self.path, self.requantize_q8_0)
                    .map_err(|error| error.to_string());
                match &loaded {
                    Ok(_) => tracing::info!(
                        path = %self.path.display(),
                        seconds = started.elapsed().as_secs_f64(),
                        requantized_q8_0 = self.requantize_q8_0,
                        "local model loaded"
                    ),
                    Err(error) => tracing::error!(%error, "local model failed to load"),
                }
                loaded
            })
            .as_ref()
            .map_err(|message| internal(format!("the model failed to load: {message}")))
    }

    /// Answers `job`, sending its events; every failure goes to the caller as an event.
    pub(crate) fn run(&self, mut job: Job) {
        if job.events.is_closed() {
            return;
        }
        let logprobs = job.logprobs.take();
        if let Err(error) = self.answer(&job, logprobs) {
            send(&job.events, Err(error));
        }
    }

    fn answer(
        &self,
        job: &Job,
        logprobs: Option<oneshot::Sender<serde_json::Value>>,
    ) -> Result<(), LlmError> {
        let request = &job.request;
        let max_new_tokens = request
            .sampling
            .max_tokens
            .map_or(self.max_new_tokens, |asked| {
                (asked as usize).clamp(1, self.max_new_tokens)
            });
        let prompt = prompt::build(
            &self.tokenizer,
            request,
            self.context_tokens,
            max_new_tokens,
        )
        .map_err(|error| match error {
            PromptError::TooLong { .. } | PromptError::Empty => LlmError::ContextLength {
                provider: PROVIDER,
                message: error.to_string(),
            },
            PromptError::Tokenizer(error) => internal(error.to_string()),
        })?;
        if prompt.dropped_messages > 0 {
            tracing::debug!(
                dropped = prompt.dropped_messages,
                "oldest messages left out to fit the local model's context"
            );
        }
        // The model object owns the KV cache: each request works on its own clone (the
        // weights themselves are shared, reference-counted).
        let mut model = self.weights()?.clone();
        // A caller's seed makes sampling reproducible; otherwise each answer draws its own.
        let seed = request
            .sampling
            .seed
            .map_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0, |seed| seed as u64);
        let mut sampler = Sampler::new(
            &request.sampling,
            seed,
            self.tokenizer.stop_ids(),
            job.decoding.bias.clone(),
        );
        let mut rules = Rules {
            max_new_tokens,
            stop: StopFilter::new(&request.sampling.stop),
            json: job.decoding.shapes.as_ref().map(|shapes| {
                (
                    JsonPrefix::new(Arc::clone(shapes)),
                    self.tokenizer.token_bytes(),
                )
            }),
            logprobs: logprobs
                .as_ref()
                .map(|_| Logprobs::new(usize::from(request.sampling.top_logprobs.unwrap_or(0)))),
        };
        let events = &job.events;
        let outcome = generate(
            &mut model,
            &self.tokenizer,
            &prompt.ids,
            &mut sampler,
            &mut rules,
            &|| events.is_closed(),
            &mut |delta| send(events, Ok(StreamEvent::TextDelta(delta))),
        )
        .map_err(|error| internal(error.to_string()))?;
        if let Outcome::Finished {
            reason,
            output_tokens,
        } = outcome
        {
            if let (Some(sink), Some(collected)) = (logprobs, rules.logprobs.take()) {
                let _ = sink.send(collected.into_value());
            }
            let input_tokens = prompt.ids.len() as u64;
            let output_tokens = output_tokens as u64;
            let usage = Usage {
                input_tokens,
                output_tokens,
                total_tokens: input_tokens + output_tokens,
                reasoning_tokens: None,
            };
            let _ = send(events, Ok(StreamEvent::Usage(usage)))
                && send(
                    events,
                    Ok(StreamEvent::Finish {
                        reason,
                        model: self.model_name.clone(),
                    }),
                );
        }
        Ok(())
    }
}

/// A failure inside the local model, reported like an upstream's internal error.
pub(crate) fn internal(message: String) -> LlmError {
    LlmError::UpstreamStatus {
        provider: PROVIDER,
        status: 500,
        body_excerpt: message,
        retry_after: None,
    }
}

/// Hands `event` to the caller, waiting a bounded time while its buffer is full. Returns
/// `false` when the caller is gone (or stalled past the limit): the generation stops.
fn send(events: &EventSender, event: Result<StreamEvent, LlmError>) -> bool {
    let deadline = Instant::now() + CONSUMER_STALL_LIMIT;
    let mut event = event;
    loop {
        match events.try_send(event) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(back)) => {
                if Instant::now() >= deadline {
                    tracing::warn!("a caller stopped reading its local-model stream; abandoned");
                    return false;
                }
                event = back;
                std::thread::sleep(CONSUMER_POLL);
            }
        }
    }
}
