//! What the embedded model honours of a request, checked before it is queued: the
//! parameters it cannot honour are refused by name, the JSON schema is compiled and the
//! `logit_bias` keys are read as token ids.
//!
//! Honoured: `temperature`, `top_p`, `max_tokens`, `seed`, `stop`, `presence_penalty`,
//! `frequency_penalty`, `logit_bias`, `response_format` (`json_object`, and `json_schema`
//! within [`super::json_schema`]'s subset), `logprobs` / `top_logprobs` (non-streamed calls
//! only, as with OpenAI's provider). Refused: tools and `tool_choice`, image parts, `user`.

use std::sync::Arc;

use super::PROVIDER;
use super::json_schema::Shapes;
use super::sampler;
use crate::llm::{ChatRequest, LlmError, ResponseFormat};

/// How a checked request is decoded.
pub(crate) struct Decoding {
    /// The JSON shape the answer must take, when `response_format` asks for one.
    pub(crate) shapes: Option<Arc<Shapes>>,
    /// `logit_bias` as token ids.
    pub(crate) bias: Vec<(u32, f32)>,
}

/// Checks `request` against a vocabulary of `vocab_size` ids; refuses what the embedded
/// model cannot do, naming the parameter.
pub(crate) fn check(request: &ChatRequest, vocab_size: usize) -> Result<Decoding, LlmError> {
    refuse_unsupported(request)?;
    let bias = sampler::logit_bias(&request.sampling, vocab_size)
        .map_err(|error| LlmError::unsupported(PROVIDER, "logit_bias", error.to_string()))?;
    let shapes = match &request.response_format {
        None => None,
        Some(ResponseFormat::JsonObject) => Some(Arc::new(Shapes::any_object())),
        Some(ResponseFormat::JsonSchema(format)) => {
            Some(Arc::new(Shapes::compile(&format.schema).map_err(
                |error| LlmError::unsupported(PROVIDER, "response_format", error.to_string()),
            )?))
        }
    };
    Ok(Decoding { shapes, bias })
}

fn refuse_unsupported(request: &ChatRequest) -> Result<(), LlmError> {
    let refused = if !request.tools.is_empty() || request.tool_choice.is_some() {
        Some(("tools", "the local model cannot call tools"))
    } else if request
        .messages
        .iter()
        .any(|message| !message.images.is_empty())
    {
        Some(("messages", "the local model reads text only, not images"))
    } else if request.user.is_some() {
        Some(("user", "the local model has no end-user field"))
    } else {
        None
    };
    match refused {
        Some((param, message)) => Err(LlmError::unsupported(PROVIDER, param, message)),
        None => Ok(()),
    }
}
