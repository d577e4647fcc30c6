//! The generation loop: prefill the prompt, then sample one token at a time until a stop
//! token, a stop sequence, the end of a constrained JSON answer, the token limit or the
//! caller's cancellation.

#[cfg(test)]
use arshai_llama::{Llama, Rows};

use super::json_grammar::JsonPrefix;
use super::logprobs::Logprobs;
use super::sampler::Sampler;
use super::stop::StopFilter;
use super::text_stream::TextStream;
use super::token_bytes::TokenBytes;
use super::tokenizer::{ChatTokenizer, TokenizerError};
use crate::llm::FinishReason;

/// Prompt tokens fed to the model per forward pass: bounds the attention mask's memory on
/// long prompts and how long one prompt holds up the other members of a batch.
pub(crate) const PREFILL_CHUNK: usize = 128;

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

/// One generation in progress: the prompt still to read, then one token at a time. It runs
/// alone ([`generate`]) or as a member of a running batch (`batch`): either way the driver
/// feeds [`Generation::input`] to the model and hands the logits to [`Generation::advance`].
pub(crate) struct Generation<'a> {
    tokenizer: &'a ChatTokenizer,
    prompt: Vec<u32>,
    /// Prompt tokens read so far.
    fed: usize,
    /// The token generated last, to feed next.
    pending: Option<u32>,
    sampler: Sampler,
    /// The limits and shape of the answer.
    pub(crate) rules: Rules<'a>,
    text: TextStream,
}

impl<'a> Generation<'a> {
    /// A generation answering `prompt` (not empty).
    pub(crate) fn new(
        tokenizer: &'a ChatTokenizer,
        prompt: Vec<u32>,
        sampler: Sampler,
        rules: Rules<'a>,
    ) -> Self {
        Self {
            tokenizer,
            prompt,
            fed: 0,
            pending: None,
            sampler,
            rules,
            text: TextStream::default(),
        }
    }

    /// The tokens to run through the model next: the next chunk of the prompt, or the last
    /// generated token. Chunks start at multiples of [`PREFILL_CHUNK`] whatever else runs,
    /// so a sequence computes the same numbers alone or in a batch.
    pub(crate) fn input(&self) -> &[u32] {
        if self.fed < self.prompt.len() {
            let end = self.prompt.len().min(self.fed + PREFILL_CHUNK);
            return &self.prompt[self.fed..end];
        }
        self.pending.as_slice()
    }

    /// Positions the answer may need in the KV cache: the prompt and every token.
    pub(crate) fn positions(&self) -> usize {
        self.prompt.len() + self.rules.max_new_tokens + 1
    }

    /// Takes the logits the model computed after [`Self::input`]; picks the next token when
    /// the prompt is read. `emit` receives each piece of text as it becomes final and
    /// returns `false` when the caller is gone. `Some` when the generation has ended.
    pub(crate) fn advance(
        &mut self,
        logits: &[f32],
        emit: &mut dyn FnMut(String) -> bool,
    ) -> Result<Option<Outcome>, GenerateError> {
        if self.fed < self.prompt.len() {
            self.fed += self.input().len();
            if self.fed < self.prompt.len() {
                return Ok(None);
            }
        }
        let rules = &mut self.rules;
        let tokenizer = self.tokenizer;
        let next = match &mut rules.json {
            Some((prefix, tokens)) => {
                let next = self
                    .sampler
                    .sample_where(logits, &mut |id| {
                        tokens.get(id).is_some_and(|bytes| prefix.accepts(bytes))
                    })?
                    .ok_or(GenerateError::NoValidToken)?;
                prefix.feed_all(tokens.get(next).unwrap_or_default());
                next
            }
            None => {
                let next = self.sampler.sample(logits)?;
                if self.sampler.is_stop(next) {
                    return finish(tokenizer, &mut self.text, rules, FinishReason::Stop, emit)
                        .map(Some);
                }
                next
            }
        };
        if let Some(logprobs) = &mut rules.logprobs {
            logprobs.record(logits, next, tokenizer.token_bytes())?;
        }
        self.sampler.record(next);
        if let Some(delta) = self.text.push(tokenizer, next)? {
            let released = rules.stop.push(&delta);
            if !released.text.is_empty() && !emit(released.text) {
                return Ok(Some(Outcome::Cancelled));
            }
            if released.stopped {
                return Ok(Some(Outcome::Finished {
                    reason: FinishReason::Stop,
                    output_tokens: self.text.len(),
                }));
            }
        }
        if rules
            .json
            .as_ref()
            .is_some_and(|(prefix, _)| prefix.is_complete())
        {
            return finish(tokenizer, &mut self.text, rules, FinishReason::Stop, emit).map(Some);
        }
        if self.text.len() >= rules.max_new_tokens {
            return finish(tokenizer, &mut self.text, rules, FinishReason::Length, emit).map(Some);
        }
        self.pending = Some(next);
        Ok(None)
    }
}

/// Runs one generation alone on `model`, with a cache of its own.
///
/// `emit` receives each piece of text as it becomes final and returns `false` when the
/// caller is gone; `cancelled` is checked before each forward pass. With `rules.json`, only
/// tokens that keep the answer a valid prefix are sampled and the answer ends (`Stop`) as
/// soon as the JSON is complete; `Length` then means the JSON was cut unfinished.
#[cfg(test)]
pub(crate) fn generate(
    model: &Llama,
    generation: &mut Generation<'_>,
    cancelled: &dyn Fn() -> bool,
    emit: &mut dyn FnMut(String) -> bool,
) -> Result<Outcome, GenerateError> {
    if generation.input().is_empty() {
        return Ok(Outcome::Finished {
            reason: FinishReason::Stop,
            output_tokens: 0,
        });
    }
    let mut cache = model.cache(generation.positions())?;
    loop {
        if cancelled() {
            return Ok(Outcome::Cancelled);
        }
        let logits = model.forward(&mut [Rows {
            tokens: generation.input(),
            cache: &mut cache,
        }])?;
        if let Some(outcome) = generation.advance(&logits, emit)? {
            return Ok(outcome);
        }
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
