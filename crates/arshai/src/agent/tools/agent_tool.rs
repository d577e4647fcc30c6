//! Agents as tools: another agent called with one message, as a stateless turn of its own.
//!
//! The called agent gets only the message the model wrote (`{"message": …}`) — none of the
//! caller's conversation — and records nothing: its memory scope is that one turn. Its
//! answer's text is the tool's result; its failure is a [`ToolError`] the calling model
//! reads. How deep agents may call each other is bounded where they are declared (see
//! [`crate::agent::MAX_AGENT_DEPTH`]), and a cycle of agent tools is refused at start-up.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{Tool, ToolError};
use crate::agent::{Agent, AgentInput};
use crate::llm::ToolDefinition;

/// Another agent, offered to a model as a tool named after it.
pub struct AgentTool {
    definition: ToolDefinition,
    agent: Arc<dyn Agent>,
}

impl std::fmt::Debug for AgentTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTool")
            .field("agent", &self.agent.name())
            .finish_non_exhaustive()
    }
}

/// The arguments the model sends.
#[derive(Debug, Deserialize, JsonSchema)]
struct AgentArguments {
    /// The whole request for the agent: it sees nothing else of this conversation.
    message: String,
}

impl AgentTool {
    /// `agent` as a tool. Its name is the agent's, with every character a tool name cannot
    /// hold (`.`) replaced by `_`; `description` tells the model what the agent is for
    /// (default: a sentence naming it).
    pub fn new(agent: Arc<dyn Agent>, description: Option<String>) -> Self {
        let name = tool_name(agent.name());
        let description = description.unwrap_or_else(|| {
            format!(
                "Asks the agent {:?} and returns its answer. Send the whole request in \
                 `message`: the agent sees nothing else of this conversation.",
                agent.name()
            )
        });
        Self {
            definition: ToolDefinition::of::<AgentArguments>(name, description),
            agent,
        }
    }
}

/// The tool name an agent is offered under.
pub(crate) fn tool_name(agent: &str) -> String {
    agent
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

#[async_trait]
impl Tool for AgentTool {
    fn definition(&self) -> ToolDefinition {
        self.definition.clone()
    }

    async fn call(&self, arguments: Value) -> Result<String, ToolError> {
        let arguments: AgentArguments = serde_json::from_value(arguments)
            .map_err(|e| ToolError::new(format!("the arguments do not match the schema: {e}")))?;
        if arguments.message.trim().is_empty() {
            return Err(ToolError::new("the message is empty"));
        }
        let input = AgentInput::stateless(vec![crate::llm::Message::user(arguments.message)]);
        match Arc::clone(&self.agent).respond(input).await {
            Ok(output) => Ok(output.reply),
            Err(error) => Err(ToolError::new(format!(
                "the agent {:?} failed: {error}",
                self.agent.name()
            ))),
        }
    }
}
