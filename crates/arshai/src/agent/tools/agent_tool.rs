//! Agents as tools: another agent called with one message, as a stateless turn of its own.
//!
//! The called agent gets only the message the model wrote (`{"message": …}`) — none of the
//! caller's conversation — and records nothing: its memory scope is that one turn, in the
//! caller's tenant, with the caller's request id ([`ToolContext`]). The tokens it used are
//! added to the calling turn's usage, so the caller's limits, budgets and metrics count
//! them. Its answer's text is the tool's result; its failure is a [`ToolError`] the calling
//! model reads. How deep agents may call each other is bounded where they are declared (see
//! [`crate::agent::MAX_AGENT_DEPTH`]), and a cycle of agent tools is refused at start-up.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{Tool, ToolContext, ToolError};
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

    /// A call outside a turn: in the default tenant, and its tokens counted nowhere.
    async fn call(&self, arguments: Value) -> Result<String, ToolError> {
        let context = ToolContext::new(crate::memory::ConversationKey::DEFAULT_TENANT, None);
        self.call_in(arguments, &context).await
    }

    async fn call_in(&self, arguments: Value, context: &ToolContext) -> Result<String, ToolError> {
        let arguments: AgentArguments = serde_json::from_value(arguments)
            .map_err(|e| ToolError::new(format!("the arguments do not match the schema: {e}")))?;
        if arguments.message.trim().is_empty() {
            return Err(ToolError::new("the message is empty"));
        }
        let input = AgentInput {
            tenant: context.tenant.clone(),
            request_id: context.request_id.clone(),
            ..AgentInput::stateless(vec![crate::llm::Message::user(arguments.message)])
        };
        match Arc::clone(&self.agent).respond(input).await {
            Ok(output) => {
                context.add_usage(output.usage);
                Ok(output.reply)
            }
            Err(error) => Err(ToolError::new(format!(
                "the agent {:?} failed: {error}",
                self.agent.name()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::agent::{AgentEventStream, AgentOutput, answer_once};
    use crate::llm::Usage;

    /// Records the tenant and request id of each turn it answers, and reports 7 tokens.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<(String, Option<String>, crate::agent::ConversationRef)>>,
    }

    impl Agent for Recorder {
        fn name(&self) -> &str {
            "recorder"
        }

        fn agent_type(&self) -> &'static str {
            "recorder"
        }

        fn turn(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
            self.seen.lock().unwrap().push((
                input.tenant.clone(),
                input.request_id.clone(),
                input.conversation.clone(),
            ));
            answer_once(async move {
                Ok(AgentOutput {
                    usage: Usage {
                        input_tokens: 5,
                        output_tokens: 2,
                        total_tokens: 7,
                        reasoning_tokens: None,
                    },
                    ..AgentOutput::text("noted", "recorder-1")
                })
            })
        }
    }

    #[tokio::test]
    async fn the_inner_turn_carries_the_callers_tenant_and_request_id_and_reports_its_usage() {
        let recorder = Arc::new(Recorder::default());
        let tool = AgentTool::new(Arc::clone(&recorder) as Arc<dyn Agent>, None);
        let acme = ToolContext::new("acme", Some("req-acme".to_owned()));
        let globex = ToolContext::new("globex", None);
        let arguments = serde_json::json!({"message": "note this"});
        assert_eq!(
            tool.call_in(arguments.clone(), &acme).await.unwrap(),
            "noted"
        );
        assert_eq!(
            tool.call_in(arguments.clone(), &acme).await.unwrap(),
            "noted"
        );
        assert_eq!(tool.call_in(arguments, &globex).await.unwrap(), "noted");
        let seen = recorder.seen.lock().unwrap().clone();
        let stateless = crate::agent::ConversationRef::Stateless;
        assert_eq!(
            seen,
            [
                (
                    "acme".to_owned(),
                    Some("req-acme".to_owned()),
                    stateless.clone()
                ),
                (
                    "acme".to_owned(),
                    Some("req-acme".to_owned()),
                    stateless.clone()
                ),
                ("globex".to_owned(), None, stateless),
            ]
        );
        assert_eq!(acme.take_usage().total_tokens, 14, "both calls counted");
        assert_eq!(acme.take_usage(), Usage::default(), "taken once");
        assert_eq!(globex.take_usage().input_tokens, 5);
    }
}
