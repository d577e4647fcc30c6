//! The conversation agent: system prompt + history from memory + one LLM call per turn.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Agent, AgentError, AgentEventStream, AgentInput, AgentOutput, ToolSet, TurnRequest};
use crate::llm::{ChatRequest, LlmClient, Message, Sampling};
// Streamed turns live in their own file; as a child module they share this one's fields.
#[path = "conversation_stream.rs"]
mod stream;

use crate::memory::{
    ConversationId, ConversationKey, LeaseSettings, MemoryError, MemoryStore, TurnLease,
};

/// How a [`ConversationAgent`] behaves.
#[derive(Debug, Clone, Default)]
pub struct ConversationAgentConfig {
    /// The agent's name.
    pub name: String,
    /// The model; `None` uses the client's default.
    pub model: Option<String>,
    /// Sent before the history on every call.
    pub system_prompt: String,
    /// Sampling settings.
    pub sampling: Sampling,
    /// How turns on one conversation are serialized.
    pub lease: LeaseSettings,
}

/// An agent that remembers: each turn loads the conversation, calls the LLM with the whole
/// history, and appends the user's message and the answer atomically.
///
/// Turns on one conversation are serialized by a [`TurnLease`], across instances when the
/// store is shared, so every turn sees the previous one.
pub struct ConversationAgent {
    config: ConversationAgentConfig,
    llm: Arc<dyn LlmClient>,
    memory: Arc<dyn MemoryStore>,
    tools: Option<Arc<ToolSet>>,
}

impl ConversationAgent {
    /// An agent over `llm` and `memory`.
    pub fn new(
        config: ConversationAgentConfig,
        llm: Arc<dyn LlmClient>,
        memory: Arc<dyn MemoryStore>,
    ) -> Self {
        Self {
            config,
            llm,
            memory,
            tools: None,
        }
    }

    /// This agent, letting its model call `tools` (run in parallel, in bounded rounds).
    pub fn with_tools(mut self, tools: ToolSet) -> Self {
        self.tools = (!tools.is_empty()).then(|| Arc::new(tools));
        self
    }

    async fn turn(
        &self,
        key: &ConversationKey,
        input: AgentInput,
    ) -> Result<AgentOutput, AgentError> {
        let stored = self.memory.load(key).await?.unwrap_or_default();
        let user = Message::user(input.message);
        let mut messages = stored.messages;
        messages.push(user.clone());
        let system = match &stored.working_memory {
            Some(notes) if !notes.is_empty() => {
                format!(
                    "{}\n\nWhat you know about this conversation:\n{notes}",
                    self.config.system_prompt
                )
            }
            _ => self.config.system_prompt.clone(),
        };
        let request = ChatRequest {
            model: self.config.model.clone(),
            system: (!system.is_empty()).then_some(system),
            messages,
            sampling: self.config.sampling.clone(),
            request_id: input.request_id,
            ..ChatRequest::default()
        };
        let response = match &self.tools {
            Some(tools) => tools.run(self.llm.as_ref(), &request).await?.response,
            None => self.llm.chat(&request).await?,
        };
        let turn = [user, Message::assistant(response.text.clone())];
        match self.memory.append(key, &turn, Some(stored.version)).await {
            Ok(_) => {}
            Err(MemoryError::Conflict { expected, actual }) => {
                // The lease was lost (it expired during a very long turn): keep the turn
                // anyway; an atomic append never loses the other writer's messages either.
                tracing::warn!(conversation = %key.id, expected, actual,
                    "conversation changed during the turn; appending after the other writer");
                self.memory.append(key, &turn, None).await?;
            }
            Err(error) => return Err(error.into()),
        }
        Ok(AgentOutput {
            conversation_id: key.id.clone(),
            reply: response.text,
            usage: response.usage,
            model: response.model,
        })
    }
}

#[async_trait]
impl Agent for ConversationAgent {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn agent_type(&self) -> &'static str {
        "conversation"
    }

    async fn process(&self, input: AgentInput) -> Result<AgentOutput, AgentError> {
        if input.message.trim().is_empty() {
            return Err(AgentError::InvalidInput("the message is empty".to_owned()));
        }
        let id = input
            .conversation_id
            .clone()
            .unwrap_or_else(ConversationId::generate);
        let key = ConversationKey::new(input.tenant.clone(), id);
        let lease =
            TurnLease::acquire(Arc::clone(&self.memory), key.clone(), self.config.lease).await?;
        let result = self.turn(&key, input).await;
        if let Err(error) = lease.release().await {
            tracing::warn!(%error, "could not release a turn lease; it expires on its own");
        }
        result
    }
    fn process_stream(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
        stream::process_stream(self, input)
    }

    fn turn_stream(self: Arc<Self>, request: TurnRequest) -> AgentEventStream {
        stream::turn_stream(self, request)
    }
}
