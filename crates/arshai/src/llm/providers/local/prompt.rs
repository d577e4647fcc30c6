//! Building the prompt's token ids from a request, in ChatML, fitted to the context window.

use super::tokenizer::{ChatTokenizer, TokenizerError};
use crate::llm::{ChatRequest, Role};

/// The system prompt used when a request has none. The GGUF template's own default makes
/// this small model ramble; a short, plain instruction keeps answers on topic.
pub(crate) const FALLBACK_SYSTEM_PROMPT: &str = "You are a helpful assistant.";

/// Why no prompt could be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PromptError {
    /// Even the system prompt and the newest message do not fit.
    #[error(
        "the system prompt and the newest message need {needed} tokens, but the local \
         model's context of {context} tokens leaves {budget} for the prompt after reserving \
         {reserved} for the answer (providers.local.context_tokens / max_new_tokens)"
    )]
    TooLong {
        /// Tokens the smallest acceptable prompt needs.
        needed: usize,
        /// The context window.
        context: usize,
        /// Tokens available to the prompt.
        budget: usize,
        /// Tokens reserved for the answer.
        reserved: usize,
    },
    /// The request has no message.
    #[error("the request has no message")]
    Empty,
    /// Tokenization failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// A prompt ready for the model.
#[derive(Debug)]
pub(crate) struct Prompt {
    /// The token ids, ending with `<|im_start|>assistant\n`.
    pub(crate) ids: Vec<u32>,
    /// How many of the oldest history messages were left out to fit.
    pub(crate) dropped_messages: usize,
}

/// Renders `request` as ChatML ids: the system turn, as many of the newest messages as fit
/// in `context - reserved` tokens (oldest dropped first), then the answer prefix.
pub(crate) fn build(
    tokenizer: &ChatTokenizer,
    request: &ChatRequest,
    context: usize,
    reserved: usize,
) -> Result<Prompt, PromptError> {
    if request.messages.is_empty() {
        return Err(PromptError::Empty);
    }
    let system = match request.system.as_deref() {
        Some(text) if !text.trim().is_empty() => text,
        _ => FALLBACK_SYSTEM_PROMPT,
    };
    let head = tokenizer.turn(Role::System, system)?;
    let tail = tokenizer.answer_prefix()?;
    let budget = context.saturating_sub(reserved);
    let mut used = head.len() + tail.len();
    let mut kept: Vec<Vec<u32>> = Vec::new();
    for message in request.messages.iter().rev() {
        let turn = tokenizer.turn(message.role, &message.content)?;
        if used + turn.len() > budget {
            if kept.is_empty() {
                return Err(PromptError::TooLong {
                    needed: used + turn.len(),
                    context,
                    budget,
                    reserved,
                });
            }
            break;
        }
        used += turn.len();
        kept.push(turn);
    }
    let dropped_messages = request.messages.len() - kept.len();
    let mut ids = Vec::with_capacity(used);
    ids.extend(head);
    for turn in kept.into_iter().rev() {
        ids.extend(turn);
    }
    ids.extend(tail);
    Ok(Prompt {
        ids,
        dropped_messages,
    })
}
