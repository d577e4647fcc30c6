//! The generation loop: prefill the prompt, then sample one token at a time until a stop
//! token, the token limit or the caller's cancellation.

use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;

use super::sampler::Sampler;
use super::text_stream::TextStream;
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
/// caller is gone; `cancelled` is checked before each forward pass.
pub(crate) fn generate(
    model: &mut ModelWeights,
    tokenizer: &ChatTokenizer,
    prompt: &[u32],
    max_new_tokens: usize,
    sampler: &mut Sampler,
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
        let next = sampler.sample(&logits)?;
        if sampler.is_stop(next) {
            return finish(tokenizer, &mut text, FinishReason::Stop, emit);
        }
        if let Some(delta) = text.push(tokenizer, next)?
            && !emit(delta)
        {
            return Ok(Outcome::Cancelled);
        }
        if text.len() >= max_new_tokens {
            return finish(tokenizer, &mut text, FinishReason::Length, emit);
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
    reason: FinishReason,
    emit: &mut dyn FnMut(String) -> bool,
) -> Result<Outcome, GenerateError> {
    if let Some(rest) = text.finish(tokenizer)?
        && !emit(rest)
    {
        return Ok(Outcome::Cancelled);
    }
    Ok(Outcome::Finished {
        reason,
        output_tokens: text.len(),
    })
}
