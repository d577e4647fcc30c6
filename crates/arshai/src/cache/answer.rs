//! [`CachedAnswer`]: what the cache stores for one request, and how it replays.

use serde::{Deserialize, Serialize};

use crate::llm::{ChatResponse, FinishReason, StreamEvent, Usage};

/// A cached model answer (text only: answers with tool calls are never cached).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAnswer {
    /// The answer's text.
    pub text: String,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
    /// The usage of the call that produced it (the tokens a hit saves).
    pub usage: Usage,
    /// The model that answered.
    pub model: String,
}

impl CachedAnswer {
    /// The answer of `response`, or `None` when it must not be cached (it calls tools).
    pub fn from_response(response: &ChatResponse) -> Option<Self> {
        if !response.tool_calls.is_empty() || response.finish_reason == FinishReason::ToolCalls {
            return None;
        }
        Some(Self {
            text: response.text.clone(),
            finish_reason: response.finish_reason.clone(),
            usage: response.usage,
            model: response.model.clone(),
        })
    }

    /// The answer as a response (no provider request id: no provider was called).
    pub fn to_response(&self) -> ChatResponse {
        ChatResponse {
            text: self.text.clone(),
            tool_calls: Vec::new(),
            finish_reason: self.finish_reason.clone(),
            usage: self.usage,
            model: self.model.clone(),
            request_id: None,
            logprobs: None,
        }
    }

    /// The events the answer replays as when streamed: its text, usage and finish.
    pub fn events(&self) -> Vec<StreamEvent> {
        let mut events = Vec::with_capacity(3);
        if !self.text.is_empty() {
            events.push(StreamEvent::TextDelta(self.text.clone()));
        }
        events.push(StreamEvent::Usage(self.usage));
        events.push(StreamEvent::Finish {
            reason: self.finish_reason.clone(),
            model: self.model.clone(),
        });
        events
    }

    /// The stored form.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Parses the stored form.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
