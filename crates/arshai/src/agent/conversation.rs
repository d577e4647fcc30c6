//! The conversation agent: system prompt + history from memory + the model, with tools.
//!
//! A turn is recorded only after the model's answer is complete, in one atomic append of
//! the new messages and the answer, before [`AgentEvent::Done`] is sent. Dropping the
//! turn's stream (a client that disconnects) cancels the upstream call; if that happens
//! before the commit, nothing of the turn is recorded, not even the user's message. The
//! turn's lease is released on every path (explicitly, or by [`Turn`]'s drop when
//! cancelled).

use std::sync::Arc;

use super::idempotency::{key_for, receipt_body, recorded};
use super::tool_loop::{self, Answer};
use super::{
    Agent, AgentError, AgentEvent, AgentEventStream, AgentInput, AgentOutput, EventSender,
    HistoryWindow, TokenCounter, ToolContext, ToolSet, WorkingMemory, event_stream,
};
use crate::llm::{ChatRequest, LlmClient, Message, Role, Sampling};
use crate::memory::{
    ConversationId, ConversationKey, IdempotencyKey, LeaseSettings, MemoryStore, Turn, TurnStart,
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
    /// How much of the stored conversation each turn sends to the model.
    pub history: HistoryWindow,
    /// Keep a working memory of each conversation (the `working_memory` agent type).
    pub working_memory: Option<WorkingMemory>,
}

/// An agent that remembers: each turn loads the conversation, calls the LLM with the whole
/// history (running the tools it asks for), and appends the new messages and the answer
/// atomically.
///
/// Turns on one conversation are serialized by a [`Turn`]'s lease, across instances when
/// the store is shared, so every turn sees the previous one.
///
/// ```
/// use std::sync::Arc;
///
/// use arshai::agent::{Agent, AgentInput, ConversationAgent};
/// use arshai::memory::InMemoryStore;
/// # use arshai::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, FinishReason, Usage};
/// # struct Hello;
/// # #[async_trait::async_trait]
/// # impl LlmClient for Hello {
/// #     fn provider(&self) -> &'static str { "hello" }
/// #     fn default_model(&self) -> &str { "m" }
/// #     async fn chat(&self, _: &ChatRequest) -> Result<ChatResponse, LlmError> {
/// #         Ok(ChatResponse { text: "Hello, Ada.".into(), tool_calls: vec![],
/// #             usage: Usage::default(), model: "m".into(), finish_reason: FinishReason::Stop,
/// #             request_id: None, logprobs: None })
/// #     }
/// # }
/// # let llm: Arc<dyn LlmClient> = Arc::new(Hello);
///
/// let agent = Arc::new(
///     ConversationAgent::builder("assistant", llm, Arc::new(InMemoryStore::default()))
///         .system_prompt("You are brief.")
///         .build(),
/// );
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let output = agent.respond(AgentInput::new(None, "I am Ada.")).await.unwrap();
/// assert_eq!(output.reply, "Hello, Ada.");
/// # });
/// ```
pub struct ConversationAgent {
    config: ConversationAgentConfig,
    llm: Arc<dyn LlmClient>,
    memory: Arc<dyn MemoryStore>,
    tools: Option<Arc<ToolSet>>,
    /// How the history window counts tokens.
    token_counter: TokenCounter,
}

/// Builds a [`ConversationAgent`]; see [`ConversationAgent::builder`].
pub struct ConversationAgentBuilder {
    agent: ConversationAgent,
}

impl ConversationAgentBuilder {
    /// The model to ask for (default: the client's default model).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.agent.config.model = Some(model.into());
        self
    }

    /// The system prompt (default: none).
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.agent.config.system_prompt = prompt.into();
        self
    }

    /// Sampling settings (default: the provider's).
    pub fn sampling(mut self, sampling: Sampling) -> Self {
        self.agent.config.sampling = sampling;
        self
    }

    /// How turns on one conversation wait for each other (default: [`LeaseSettings`]'s).
    pub fn lease(mut self, lease: LeaseSettings) -> Self {
        self.agent.config.lease = lease;
        self
    }

    /// How much of the stored conversation each turn sends (default: [`HistoryWindow`]'s).
    pub fn history(mut self, window: HistoryWindow) -> Self {
        self.agent.config.history = window;
        self
    }

    /// Keeps a working memory of each conversation, revised by the model (the agent's type
    /// becomes `working_memory`).
    pub fn working_memory(mut self, memory: WorkingMemory) -> Self {
        self.agent.config.working_memory = Some(memory);
        self
    }

    /// Tools the model may call.
    pub fn tools(mut self, tools: ToolSet) -> Self {
        self.agent = self.agent.with_tools(tools);
        self
    }

    /// How the history window counts tokens (default: the conservative estimate).
    pub fn token_counter(mut self, counter: TokenCounter) -> Self {
        self.agent = self.agent.with_token_counter(counter);
        self
    }

    /// The agent.
    pub fn build(self) -> ConversationAgent {
        self.agent
    }
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
            token_counter: TokenCounter::Estimate,
        }
    }

    /// A builder of an agent called `name` over `llm` and `memory`, with defaults for the
    /// rest.
    pub fn builder(
        name: impl Into<String>,
        llm: Arc<dyn LlmClient>,
        memory: Arc<dyn MemoryStore>,
    ) -> ConversationAgentBuilder {
        let config = ConversationAgentConfig {
            name: name.into(),
            ..ConversationAgentConfig::default()
        };
        ConversationAgentBuilder {
            agent: Self::new(config, llm, memory),
        }
    }

    /// This agent, letting its model call `tools` (run in parallel, in bounded rounds).
    pub fn with_tools(mut self, tools: ToolSet) -> Self {
        self.tools = (!tools.is_empty()).then(|| Arc::new(tools));
        self
    }

    /// Counts the history window's tokens with `counter` (default: the conservative
    /// estimate; [`TokenCounter::for_model`] picks the provider's tokenizer).
    pub fn with_token_counter(mut self, counter: TokenCounter) -> Self {
        self.token_counter = counter;
        self
    }

    /// Runs the turn; `Ok(None)` when the consumer went away before the end.
    async fn run(
        &self,
        mut input: AgentInput,
        events: &mut EventSender,
    ) -> Result<Option<AgentOutput>, AgentError> {
        validate(&input.messages)?;
        let Some(id) = input.pin_conversation() else {
            let Some(answer) = self.answer(Vec::new(), None, &input, events).await? else {
                return Ok(None);
            };
            return Ok(Some(output(None, answer)));
        };
        let key = ConversationKey::new(input.tenant.clone(), id);
        let idempotency = key_for(
            input.idempotency_key.as_ref(),
            &self.config.name,
            &input.messages,
        );
        let turn = match Turn::begin_with_history(
            Arc::clone(&self.memory),
            key,
            self.config.lease,
            idempotency.as_ref(),
            self.config.history.max_messages,
        )
        .await?
        {
            TurnStart::Open(turn) => turn,
            TurnStart::Recorded(receipt) => {
                // The turn was recorded by an earlier attempt: replay its answer.
                let output = recorded(&receipt)?;
                if !output.reply.is_empty()
                    && !events
                        .send(Ok(AgentEvent::TextDelta(output.reply.clone())))
                        .await
                {
                    return Ok(None);
                }
                return Ok(Some(output));
            }
        };
        self.recorded_turn(turn, input, idempotency, events).await
    }

    /// A turn on a conversation, under its lease: answer, then commit whole (or release).
    async fn recorded_turn(
        &self,
        mut turn: Turn,
        input: AgentInput,
        idempotency: Option<IdempotencyKey>,
        events: &mut EventSender,
    ) -> Result<Option<AgentOutput>, AgentError> {
        let stored = turn.take_conversation();
        if let Err(error) = answers_pending_calls(&stored.messages, &input.messages) {
            turn.abort().await;
            return Err(error);
        }
        let next_version = stored.version + 1;
        let previous_memory = stored.working_memory;
        let answered = self
            .answer(
                self.config
                    .history
                    .apply_counted(stored.messages, &self.token_counter),
                previous_memory.as_deref(),
                &input,
                events,
            )
            .await;
        let answer = match answered {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                turn.abort().await;
                return Ok(None);
            }
            Err(error) => {
                turn.abort().await;
                return Err(error);
            }
        };
        let mut output = output(Some(turn.key().id.clone()), answer);
        // The agent's own tool exchange is not kept, only the new messages and the answer
        // (with the calls to the caller's tools it ended with, which the next turn answers).
        let mut messages = input.messages;
        messages.push(Message::tool_calls(
            output.reply.clone(),
            output.tool_calls.clone(),
        ));
        let revised = match &self.config.working_memory {
            Some(memory) if memory.is_due(next_version) => {
                let revision = memory
                    .revise(
                        self.llm.as_ref(),
                        self.config.model.clone(),
                        previous_memory.as_deref(),
                        &messages,
                        input.request_id.clone(),
                    )
                    .await;
                match revision {
                    Ok((text, usage)) => {
                        output.usage += usage;
                        Some(text)
                    }
                    Err(error) => {
                        tracing::warn!(conversation = %turn.key().id, %error,
                            "the working memory was not revised; the turn is recorded without");
                        None
                    }
                }
            }
            _ => None,
        };
        let body = match &idempotency {
            Some(_) => receipt_body(&output)?,
            None => String::new(),
        };
        turn.commit_with_memory(
            &messages,
            idempotency.as_ref().map(|k| (k, body.as_str())),
            revised.as_deref(),
        )
        .await?;
        Ok(Some(output))
    }

    /// The model's answer over `history` + the input's messages, through the tool loop.
    async fn answer(
        &self,
        mut history: Vec<Message>,
        working_memory: Option<&str>,
        input: &AgentInput,
        events: &mut EventSender,
    ) -> Result<Option<Answer>, AgentError> {
        history.extend(input.messages.iter().cloned());
        let config = &self.config;
        let system = system_prompt(&config.system_prompt, working_memory);
        let chat = ChatRequest {
            model: config.model.clone(),
            system: (!system.is_empty()).then_some(system),
            messages: history,
            sampling: config.sampling.overridden_by(&input.sampling),
            request_id: input.request_id.clone(),
            response_format: input.response_format.clone(),
            tool_choice: input.tool_choice.clone(),
            parallel_tool_calls: input.parallel_tool_calls,
            user: input.user.clone(),
            ..ChatRequest::default()
        };
        tool_loop::answer(
            self.llm.as_ref(),
            self.tools.as_deref(),
            &input.client_tools,
            chat,
            input.delivery,
            &ToolContext::new(input.tenant.clone(), input.request_id.clone()),
            events,
        )
        .await
    }
}

impl Agent for ConversationAgent {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn agent_type(&self) -> &'static str {
        if self.config.working_memory.is_some() {
            "working_memory"
        } else {
            "conversation"
        }
    }

    fn turn(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
        event_stream(move |mut events| async move {
            match self.run(input, &mut events).await {
                Ok(Some(output)) => {
                    events.send(Ok(AgentEvent::Done(output))).await;
                }
                // The consumer is gone; there is nobody to tell.
                Ok(None) => {}
                Err(error) => {
                    events.send(Err(error)).await;
                }
            }
        })
    }
}

fn validate(messages: &[Message]) -> Result<(), AgentError> {
    match messages.last() {
        None => Err(AgentError::InvalidInput("there are no messages".to_owned())),
        Some(last)
            if last.content.trim().is_empty()
                && last.tool_calls.is_empty()
                && last.tool_call_id.is_none() =>
        {
            Err(AgentError::InvalidInput("the message is empty".to_owned()))
        }
        Some(_) => Ok(()),
    }
}

/// Checks that a turn on a conversation answers the calls to the caller's tools the last
/// turn ended with, and only those: `tool` messages first, one per pending call.
fn answers_pending_calls(stored: &[Message], input: &[Message]) -> Result<(), AgentError> {
    let pending: &[crate::llm::ToolCall] = match stored.last() {
        Some(last) if last.role == Role::Assistant => &last.tool_calls,
        _ => &[],
    };
    let answers: Vec<(usize, &Message)> = input
        .iter()
        .enumerate()
        .take_while(|(_, message)| message.role == Role::Tool)
        .collect();
    for (index, answer) in &answers {
        let id = answer.tool_call_id.as_deref().unwrap_or_default();
        if !pending.iter().any(|call| call.id == id) {
            return Err(AgentError::InvalidInput(format!(
                "messages[{index}]: tool_call_id {id:?} does not answer a pending tool call of this conversation"
            )));
        }
    }
    let unanswered: Vec<&str> = pending
        .iter()
        .filter(|call| {
            !answers
                .iter()
                .any(|(_, answer)| answer.tool_call_id.as_deref() == Some(call.id.as_str()))
        })
        .map(|call| call.id.as_str())
        .collect();
    if !unanswered.is_empty() {
        return Err(AgentError::InvalidInput(format!(
            "the conversation is waiting for the results of the tool calls {unanswered:?}: send one `tool` message per call first"
        )));
    }
    Ok(())
}

/// The system prompt, followed by the conversation's working memory when it has one.
fn system_prompt(prompt: &str, working_memory: Option<&str>) -> String {
    match working_memory {
        Some(notes) if !notes.is_empty() => {
            format!("{prompt}\n\nWhat you know about this conversation:\n{notes}")
        }
        _ => prompt.to_owned(),
    }
}

fn output(conversation_id: Option<ConversationId>, answer: Answer) -> AgentOutput {
    AgentOutput {
        conversation_id,
        reply: answer.text,
        usage: answer.usage,
        model: answer.model,
        finish_reason: answer.finish_reason,
        tool_calls: answer.tool_calls,
        logprobs: answer.logprobs,
    }
}
