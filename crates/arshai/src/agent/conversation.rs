//! The conversation agent: system prompt + history from memory + one LLM call per turn.

use std::sync::Arc;

use async_trait::async_trait;

use super::idempotency::{conversation_for_key, key_for, receipt_body, recorded};
use super::{
    Agent, AgentError, AgentEventStream, AgentInput, AgentOutput, ToolSet, TurnRequest, TurnSummary,
};
use crate::llm::{ChatRequest, ChatResponse, LlmClient, Message, Sampling};
// Streamed turns live in their own file; as a child module they share this one's fields.
#[path = "conversation_stream.rs"]
mod stream;

use crate::memory::{
    Conversation, ConversationId, ConversationKey, LeaseSettings, MemoryStore, Turn, TurnStart,
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
/// Turns on one conversation are serialized by a [`Turn`]'s lease, across instances when
/// the store is shared, so every turn sees the previous one.
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

    /// The turn's work under its lease: the model's answer over the stored history.
    async fn answer(
        &self,
        stored: Conversation,
        user: &Message,
        request_id: Option<String>,
    ) -> Result<ChatResponse, AgentError> {
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
            request_id,
            ..ChatRequest::default()
        };
        Ok(match &self.tools {
            Some(tools) => tools.run(self.llm.as_ref(), &request).await?.response,
            None => self.llm.chat(&request).await?,
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
        let id = input.conversation_id.clone().unwrap_or_else(|| {
            input
                .idempotency_key
                .as_deref()
                .map_or_else(ConversationId::generate, conversation_for_key)
        });
        let key = ConversationKey::new(input.tenant.clone(), id.clone());
        let user = Message::user(input.message);
        let idempotency = key_for(
            input.idempotency_key.as_ref(),
            &self.config.name,
            std::slice::from_ref(&user),
        );
        let mut turn = match Turn::begin(
            Arc::clone(&self.memory),
            key,
            self.config.lease,
            idempotency.as_ref(),
        )
        .await?
        {
            TurnStart::Open(turn) => turn,
            TurnStart::Recorded(receipt) => {
                let summary = recorded(&receipt)?;
                return Ok(AgentOutput {
                    conversation_id: id,
                    reply: summary.reply,
                    usage: summary.usage,
                    model: summary.model,
                });
            }
        };
        let stored = turn.take_conversation();
        let response = match self.answer(stored, &user, input.request_id).await {
            Ok(response) => response,
            Err(error) => {
                turn.abort().await;
                return Err(error);
            }
        };
        let summary = TurnSummary {
            conversation_id: Some(id.clone()),
            reply: response.text,
            usage: response.usage,
            model: response.model,
            finish_reason: response.finish_reason,
        };
        let body = match &idempotency {
            Some(_) => receipt_body(&summary)?,
            None => String::new(),
        };
        let messages = [user, Message::assistant(summary.reply.clone())];
        turn.commit(&messages, idempotency.as_ref().map(|k| (k, body.as_str())))
            .await?;
        Ok(AgentOutput {
            conversation_id: id,
            reply: summary.reply,
            usage: summary.usage,
            model: summary.model,
        })
    }
    fn process_stream(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
        stream::process_stream(self, input)
    }

    fn turn_stream(self: Arc<Self>, request: TurnRequest) -> AgentEventStream {
        stream::turn_stream(self, request)
    }
}
