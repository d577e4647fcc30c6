//! Layer 2: agents.
//!
//! An [`Agent`] turns one input into one output. [`ConversationAgent`] keeps the
//! conversation in a [`crate::memory::MemoryStore`] and calls an LLM for each turn.
//! Turns can also be streamed ([`Agent::process_stream`]) and run over caller-given
//! messages, with or without a conversation ([`Agent::turn_stream`]).

mod conversation;
mod error;
mod event;
mod idempotency;
mod io;
mod registry;
mod settings;
mod tools;
mod turn_request;

pub use conversation::{ConversationAgent, ConversationAgentConfig};
pub use error::AgentError;
pub use event::{
    AgentEvent, AgentEventStream, EventSender, TurnSummary, collect_turn, event_stream,
};
pub use idempotency::{conversation_for_key, fingerprint};
pub use io::{AgentInput, AgentOutput};
pub use registry::{AgentRegistry, DEFAULT_SYSTEM_PROMPT, RegistryError};
pub use settings::{AgentSettings, AgentType, Settings, validate_agents};
pub use tools::{FnTool, Tool, ToolError, ToolSet, ToolTurn};
pub use turn_request::TurnRequest;

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt as _;

use crate::llm::{FinishReason, Message, Role};

/// Something that answers messages.
#[async_trait]
pub trait Agent: Send + Sync + 'static {
    /// The agent's name, as it is addressed over HTTP.
    fn name(&self) -> &str;

    /// The agent's type name (`conversation`, …), used as a metrics label.
    fn agent_type(&self) -> &'static str;

    /// Processes one turn.
    async fn process(&self, input: AgentInput) -> Result<AgentOutput, AgentError>;

    /// Processes one turn as a stream of events, ending with [`AgentEvent::Done`].
    ///
    /// Dropping the stream cancels the turn; a conversation then records the whole turn or
    /// nothing. The default implementation runs [`Agent::process`] and replays its answer as
    /// one text delta; agents that can stream override it.
    fn process_stream(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
        event_stream(move |mut events| async move {
            match self.process(input).await {
                Ok(output) => {
                    if !output.reply.is_empty()
                        && !events
                            .send(Ok(AgentEvent::TextDelta(output.reply.clone())))
                            .await
                    {
                        return;
                    }
                    let summary = TurnSummary {
                        conversation_id: Some(output.conversation_id),
                        reply: output.reply,
                        usage: output.usage,
                        model: output.model,
                        finish_reason: FinishReason::Stop,
                    };
                    events.send(Ok(AgentEvent::Done(summary))).await;
                }
                Err(error) => {
                    events.send(Err(error)).await;
                }
            }
        })
    }

    /// Runs a turn over caller-given messages (see [`TurnRequest`]) as a stream of events.
    ///
    /// The default implementation handles the one case [`Agent::process_stream`] covers (a
    /// conversation and a single new user message) and refuses the others with
    /// [`AgentError::Unsupported`].
    fn turn_stream(self: Arc<Self>, request: TurnRequest) -> AgentEventStream {
        match (request.conversation_id, request.messages.as_slice()) {
            (
                Some(id),
                [
                    Message {
                        role: Role::User,
                        content,
                        tool_calls,
                        ..
                    },
                ],
            ) if tool_calls.is_empty() => {
                let input = AgentInput {
                    tenant: request.tenant,
                    conversation_id: Some(id),
                    message: content.clone(),
                    request_id: request.request_id,
                    idempotency_key: request.idempotency_key,
                };
                self.process_stream(input)
            }
            (None, _) => refuse("stateless turns"),
            (Some(_), _) => refuse("turns with several or non-user messages"),
        }
    }
}

fn refuse(what: &str) -> AgentEventStream {
    let error = AgentError::Unsupported(what.to_owned());
    futures::stream::once(async move { Err(error) }).boxed()
}

#[cfg(test)]
mod trait_tests;
