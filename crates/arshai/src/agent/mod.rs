//! Layer 2: agents.
//!
//! An [`Agent`] turns one input into one output. [`ConversationAgent`] keeps the
//! conversation in a [`crate::memory::MemoryStore`] and calls an LLM for each turn.

mod conversation;
mod error;
mod io;
mod registry;
mod tools;

pub use conversation::{ConversationAgent, ConversationAgentConfig};
pub use error::AgentError;
pub use io::{AgentInput, AgentOutput};
pub use registry::{AgentRegistry, DEFAULT_SYSTEM_PROMPT, RegistryError};
pub use tools::{FnTool, Tool, ToolError, ToolSet, ToolTurn};

use async_trait::async_trait;

/// Something that answers messages.
#[async_trait]
pub trait Agent: Send + Sync + 'static {
    /// The agent's name, as it is addressed over HTTP.
    fn name(&self) -> &str;

    /// The agent's type name (`conversation`, …), used as a metrics label.
    fn agent_type(&self) -> &'static str;

    /// Processes one turn.
    async fn process(&self, input: AgentInput) -> Result<AgentOutput, AgentError>;
}
