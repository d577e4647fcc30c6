//! The [`LlmClient`] trait.

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};

use super::{ChatRequest, ChatResponse, FinishReason, LlmError, Role, ToolCall, Usage};

/// One event of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The next piece of the answer's text.
    TextDelta(String),
    /// A complete tool call (deltas are assembled before this is emitted).
    ToolCall(ToolCall),
    /// Token accounting, usually near the end.
    Usage(Usage),
    /// The model stopped; always the last event of a successful stream.
    Finish {
        /// Why it stopped.
        reason: FinishReason,
        /// The model that answered.
        model: String,
    },
}

/// A client of one LLM provider.
///
/// Implementations hold a pooled HTTP client (or a local model) and are shared behind an
/// `Arc` by every agent that uses them; all methods take `&self`.
#[async_trait]
pub trait LlmClient: Send + Sync + 'static {
    /// The provider's name, used in errors, logs and metric labels.
    fn provider(&self) -> &'static str;

    /// The model used when a request names none.
    fn default_model(&self) -> &str;

    /// The tokens one message of `role` with `content` takes in this client's prompt,
    /// framing included, when the client knows its model's tokenizer (the embedded model);
    /// `None` otherwise (the default), and then a history window estimates.
    fn count_tokens(&self, role: Role, content: &str) -> Option<usize> {
        let _ = (role, content);
        None
    }

    /// Sends one request and waits for the complete answer.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;

    /// Streams the answer as it is generated.
    ///
    /// The default implementation calls [`LlmClient::chat`] and replays the complete answer
    /// as events; providers with native streaming override it.
    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        stream::once(async move { self.chat(request).await })
            .flat_map(|result| {
                let events: Vec<Result<StreamEvent, LlmError>> = match result {
                    Ok(response) => replay(response).into_iter().map(Ok).collect(),
                    Err(error) => vec![Err(error)],
                };
                stream::iter(events)
            })
            .boxed()
    }
}

/// The events a complete answer would have produced when streamed.
pub(super) fn replay(response: ChatResponse) -> Vec<StreamEvent> {
    let mut events = Vec::with_capacity(3 + response.tool_calls.len());
    if !response.text.is_empty() {
        events.push(StreamEvent::TextDelta(response.text));
    }
    events.extend(response.tool_calls.into_iter().map(StreamEvent::ToolCall));
    events.push(StreamEvent::Usage(response.usage));
    events.push(StreamEvent::Finish {
        reason: response.finish_reason,
        model: response.model,
    });
    events
}
