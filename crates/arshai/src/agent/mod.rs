//! Layer 2: agents.
//!
//! An [`Agent`] has one turn method, [`Agent::turn`]: an [`AgentInput`] in, a stream of
//! [`AgentEvent`]s out (text deltas, tool calls and results, then [`AgentEvent::Done`]
//! with the [`AgentOutput`]). [`Agent::respond`] collects the stream for callers that want
//! the whole answer. [`ConversationAgent`] keeps the conversation in a
//! [`crate::memory::MemoryStore`] and runs the model through the one tool loop.
//!
//! - `io` — [`AgentInput`], [`AgentOutput`], [`ConversationRef`], [`Delivery`].
//! - `event` — [`AgentEvent`], the stream type, [`event_stream`], [`answer_once`].
//! - `conversation` — [`ConversationAgent`] and its builder.
//! - `tool_loop` — the tool loop every turn runs (streamed or whole calls).
//! - `tools` — [`Tool`], [`FnTool`], [`ToolSet`].
//! - `working_memory` — [`WorkingMemory`]: a running summary the model revises.
//! - `history` — [`HistoryWindow`]: how much of the stored conversation a turn sends.
//! - `registry` — agents by name, built from settings.
//! - `router` — [`RouterAgent`]: hands each turn to the agent a classifier picks.
//! - `route_classifier` — [`RouteClassifier`]: rules and a model choosing a route.
//! - `references` — agents that call agents: checked for unknown names, cycles, depth.
//! - `idempotency` — the fingerprint, keyed conversations, receipts.

mod conversation;
mod error;
mod event;
mod history;
mod idempotency;
mod io;
mod references;
mod registry;
mod route_classifier;
mod router;
mod settings;
mod tool_loop;
mod tools;
mod working_memory;

pub use conversation::{ConversationAgent, ConversationAgentBuilder, ConversationAgentConfig};
pub use error::AgentError;
pub use event::{
    AgentEvent, AgentEventStream, EventSender, answer_once, collect_turn, event_stream,
};
pub use history::{
    DEFAULT_MAX_MESSAGES, HistoryWindow, OpenAiEncoding, TokenCounter, estimated_tokens,
};
pub use idempotency::{conversation_for_key, fingerprint};
pub use io::{AgentInput, AgentOutput, ConversationRef, Delivery};
pub use references::{MAX_AGENT_DEPTH, check_references};
pub use registry::{AgentRegistry, DEFAULT_SYSTEM_PROMPT, RegistryError};
pub use route_classifier::{
    DEFAULT_ROUTER_INSTRUCTIONS, Route, RouteClassifier, RouteDecision, RouteError, RouteReason,
};
pub use router::{RouterAgent, RouterError};
pub use settings::{
    AgentSettings, AgentType, ClassifierKind, RouteSettings, Settings, validate_agents,
};
pub use tools::{
    AgentTool, CLOCK_TOOL_NAME, ClockTool, FnTool, HttpTool, HttpToolSettings, McpServer,
    McpServerSettings, McpStartError, McpTool, McpTools, Tool, ToolBuildError, ToolContext,
    ToolError, ToolSet, ToolSettings, ToolSource, declared_tools,
};
pub use working_memory::{DEFAULT_INSTRUCTIONS as DEFAULT_MEMORY_INSTRUCTIONS, WorkingMemory};

use std::sync::Arc;

use futures::FutureExt as _;
use futures::future::BoxFuture;

/// Something that answers messages.
pub trait Agent: Send + Sync + 'static {
    /// The agent's name, as it is addressed over HTTP.
    fn name(&self) -> &str;

    /// The agent's type name (`conversation`, …), used as a metrics label.
    fn agent_type(&self) -> &'static str;

    /// Runs one turn as a stream of events, ending with [`AgentEvent::Done`] (or an error).
    ///
    /// Dropping the stream cancels the turn; a conversation then records the whole turn or
    /// nothing. [`answer_once`] turns an async function into such a stream, for agents
    /// that compute the whole answer at once.
    fn turn(self: Arc<Self>, input: AgentInput) -> AgentEventStream;

    /// Runs one turn to its end with [`Delivery::Whole`] (the provider's non-streaming
    /// API) and returns its output.
    fn respond(
        self: Arc<Self>,
        mut input: AgentInput,
    ) -> BoxFuture<'static, Result<AgentOutput, AgentError>> {
        input.delivery = Delivery::Whole;
        collect_turn(self.turn(input)).boxed()
    }
}
