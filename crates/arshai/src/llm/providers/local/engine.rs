//! The shared model (weights loaded once, tokenizer) and the running of one request on it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;

use super::PROVIDER;
use super::batch::Member;
use super::generate::{Generation, Outcome, Rules};
use super::json_grammar::JsonPrefix;
use super::logprobs::Logprobs;
use super::model::load_weights;
use super::prompt::{self, PromptError};
use super::sampler::Sampler;
use super::stop::StopFilter;
use super::support::Decoding;
use super::tokenizer::ChatTokenizer;
use crate::llm::{ChatRequest, LlmError, StreamEvent, Usage};
use arshai_llama::Llama;

/// The most events one step of a member sends (a text delta, then at the end the rest of
/// the text, usage and finish): a member runs a step only with this much room in its buffer.
pub(crate) const EVENTS_PER_STEP: usize = 4;

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
    /// Threads per forward pass (resolved, at least 1).
    pub(crate) kernel_threads: usize,
    pub(crate) weights: OnceLock<Result<Llama, String>>,
}

impl Engine {
    /// The weights, loading them on first use (on the calling inference thread; other
    /// threads wait for that load).
    pub(crate) fn weights(&self) -> Result<&Llama, LlmError> {
        self.weights
            .get_or_init(|| {
                let started = Instant::now();
                let loaded = load_weights(&self.path, self.requantize_q8_0)
                    .map(|model| model.with_threads(self.kernel_threads))
                    .map_err(|error| error.to_string());
                match &loaded {
                    Ok(model) => tracing::info!(
                        path = %self.path.display(),
                        seconds = started.elapsed().as_secs_f64(),
                        requantized_q8_0 = self.requantize_q8_0,
                        kernels = model.kernels(),
                        kernel_threads = model.threads(),
                        "local model loaded"
                    ),
                    Err(error) => tracing::error!(%error, "local model failed to load"),
                }
                loaded
            })
            .as_ref()
            .map_err(|message| internal(format!("the model failed to load: {message}")))
    }

    /// Turns `job` into a batch member: its prompt, sampler, rules and an empty KV cache
    /// sized for its answer. A failure (a prompt over the context, weights that failed to
    /// load) goes to the caller as an event, and `None` comes back.
    pub(crate) fn admit(&self, mut job: Job) -> Option<Member<'_>> {
        if job.events.is_closed() {
            return None;
        }
        let logprobs = job.logprobs.take();
        match self.member(&job, logprobs) {
            Ok(member) => Some(member),
            Err(error) => {
                send(&job.events, Err(error));
                None
            }
        }
    }

    fn member(
        &self,
        job: &Job,
        logprobs: Option<oneshot::Sender<serde_json::Value>>,
    ) -> Result<Member<'_>, LlmError> {
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
        // A caller's seed makes sampling reproducible; otherwise each answer draws its own.
        let seed = request
            .sampling
            .seed
            .map_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0, |seed| seed as u64);
        let sampler = Sampler::new(
            &request.sampling,
            seed,
            self.tokenizer.stop_ids(),
            job.decoding.bias.clone(),
        );
        let rules = Rules {
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
        let input_tokens = prompt.ids.len();
        let generation = Generation::new(&self.tokenizer, prompt.ids, sampler, rules);
        let cache = self
            .weights()?
            .cache(generation.positions())
            .map_err(|error| internal(error.to_string()))?;
        Ok(Member {
            generation,
            cache,
            events: job.events.clone(),
            logprobs,
            input_tokens,
            stalled_since: None,
        })
    }

    /// Reports the end of `member`'s answer: its log probabilities, usage and finish reason
    /// (nothing when it was cancelled).
    pub(crate) fn finish(&self, member: Member<'_>, outcome: Outcome) {
        let Outcome::Finished {
            reason,
            output_tokens,
        } = outcome
        else {
            return;
        };
        let Member {
            mut generation,
            events,
            logprobs,
            input_tokens,
            ..
        } = member;
        if let (Some(sink), Some(collected)) = (logprobs, generation.rules.logprobs.take()) {
            let _ = sink.send(collected.into_value());
        }
        let input_tokens = input_tokens as u64;
        let output_tokens = output_tokens as u64;
        let usage = Usage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
            reasoning_tokens: None,
        };
        let _ = send(&events, Ok(StreamEvent::Usage(usage)))
            && send(
                &events,
                Ok(StreamEvent::Finish {
                    reason,
                    model: self.model_name.clone(),
                }),
            );
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

/// Hands `event` to the caller. Returns `false` when the caller is gone. Never waits: the
/// batch only runs a member whose buffer has room for a step's events
/// ([`EVENTS_PER_STEP`]), so a full buffer here is a caller gone quiet, dropped like one.
pub(crate) fn send(events: &EventSender, event: Result<StreamEvent, LlmError>) -> bool {
    match events.try_send(event) {
        Ok(()) => true,
        Err(TrySendError::Closed(_)) => false,
        Err(TrySendError::Full(_)) => {
            tracing::warn!("a caller's local-model stream buffer is full; abandoned");
            false
        }
    }
}
