//! The generation loop: prefill the prompt, then sample one token at a time until a stop
//! token, a stop sequence, the end of a constrained JSON answer, the token limit or the
//! caller's cancellation.

use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;

use super::json_grammar::JsonPrefix;
use super::logprobs::Logprobs;
use super::sampler::Sampler;
use super::stop::StopFilter;
use super::text_stream::TextStream;
use super::token_bytes::TokenBytes;
use super::tokenizer::{ChatTokenizer, TokenizerError};
use crate::llm::FinishReason;

/// Prompt tokens fed to the model per forward pass: bounds the attention mask's memory
/// (its size grows with the square of the chunk) on long prompts.
const PREFILL_CHUNK: usize = 512;

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GenerateError {
    /// candle failed.
    #[error("inference failed: {0}")]
    Model(#[from] candle_core::Error),
    /// Decoding the generated ids failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// No token of the vocabulary continues the constrained JSON (cannot happen with a
    /// byte-level vocabulary, which has every single byte).
    #[error("no token continues the JSON answer")]
    NoValidToken,
}

/// What bounds and shapes the answer besides the sampler.
pub(crate) struct Rules<'a> {
    /// The most tokens to generate.
    pub(crate) max_new_tokens: usize,
    /// The caller's stop sequences.
    pub(crate) stop: StopFilter,
    /// The JSON the answer must be, with the vocabulary's bytes to test tokens against it.
    pub(crate) json: Option<(JsonPrefix, &'a TokenBytes)>,
    /// The log probabilities of the generated tokens, when asked for.
    pub(crate) logprobs: Option<Logprobs>,
}

/// How a generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The model finished (`Stop`) or reached the token limit (`Length`).
    Finished {
        /// Why it stopped.
        reason: FinishReason,
        /// Tokens generated, without the stop token.
        output_tokens: usize,
    },
    /// The caller went away; generation stopped early.
    Cancelled,
}

/// Runs one generation on `model` (a per-request clone: it owns the KV cache).
///
/// `emit` receives each piece of text as it becomes final and returns `false` when the
/// caller is gone; `cancelled` is checked before each forward pass. With `rules.json`, only
/// tokens that keep the answer a valid prefix are sampled and the answer ends (`Stop`) as
/// soon as the JSON is complete; `Length` then means the JSON was cut unfinished.
pub(crate) fn generate(
    model: &mut ModelWeights,
    tokenizer: &ChatTokenizer,
    prompt: &[u32],
    sampler: &mut Sampler,
    rules: &mut Rules<'_>,
    cancelled: &dyn Fn() -> bool,
    emit: &mut dyn FnMut(String) -> bool,
) -> Result<Outcome, GenerateError> {
    let device = Device::Cpu;
    let mut logits = None;
    let mut position = 0;
    for chunk in prompt.chunks(PREFILL_CHUNK) {
        if cancelled() {
            return Ok(Outcome::Cancelled);
        }
        let input = Tensor::new(chunk, &device)?.unsqueeze(0)?;
        logits = Some(model.forward(&input, position)?.squeeze(0)?);
        position += chunk.len();
    }
    let Some(mut logits) = logits else {
        return Ok(Outcome::Finished {
            reason: FinishReason::Stop,
            output_tokens: 0,
        });
    };
    let mut text = TextStream::default();
    loop {
        let next = match &mut rules.json {
            Some((prefix, tokens)) => {
                let next = sampler
                    .sample_where(&logits, &mut |id| {
                        tokens.get(id).is_some_and(|bytes| prefix.accepts(bytes))
                    })?
                    .ok_or(GenerateError::NoValidToken)?;
                prefix.feed_all(tokens.get(next).unwrap_or_default());
                next
            }
            None => {
                let next = sampler.sample(&logits)?;
                if sampler.is_stop(next) {
                    return finish(tokenizer, &mut text, rules, FinishReason::Stop, emit);
                }
                next
            }
        };
        if let Some(logprobs) = &mut rules.logprobs {
            logprobs.record(&logits, next, tokenizer.token_bytes())?;
        }
        sampler.record(next);
        if let Some(delta) = text.push(tokenizer, next)? {
            let released = rules.stop.push(&delta);
            if !released.text.is_empty() && !emit(released.text) {
                return Ok(Outcome::Cancelled);
            }
            if released.stopped {
                return Ok(Outcome::Finished {
                    reason: FinishReason::Stop,
                    output_tokens: text.len(),
                });
            }
        }
        if rules
            .json
            .as_ref()
            .is_some_and(|(prefix, _)| prefix.is_complete())
        {
            return finish(tokenizer, &mut text, rules, FinishReason::Stop, emit);
        }
        if text.len() >= rules.max_new_tokens {
            return finish(tokenizer, &mut text, rules, FinishReason::Length, emit);
        }
        if cancelled() {
            return Ok(Outcome::Cancelled);
        }
        let input = Tensor::new(&[next], &device)?.unsqueeze(0)?;
        logits = model.forward(&input, position)?.squeeze(0)?;
        position += 1;
    }
}

fn finish(
    tokenizer: &ChatTokenizer,
    text: &mut TextStream,
    rules: &mut Rules<'_>,
    reason: FinishReason,
    emit: &mut dyn FnMut(String) -> bool,
) -> Result<Outcome, GenerateError> {
    let released = rules
        .stop
        .push(&text.finish(tokenizer)?.unwrap_or_default());
    let (rest, reason) = if released.stopped {
        (released.text, FinishReason::Stop)
    } else {
        (released.text + &rules.stop.finish(), reason)
    };
    if !rest.is_empty() && !emit(rest) {
        return Ok(Outcome::Cancelled);
    }
    Ok(Outcome::Finished {
        reason,
        output_tokens: text.len(),
    })
}
