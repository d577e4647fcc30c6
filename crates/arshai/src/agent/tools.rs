//! Tools an agent lets its model call: the [`Tool`] trait, typed tools from async functions,
//! and a [`ToolSet`] that runs a turn's tool calls in parallel (the agent's tool loop calls
//! it once per round, for a bounded number of rounds).
//!
//! The tools settings can declare (`tools = [ … ]` on an agent) each have their own file:
//! `http` and `clock` (built in), `mcp` (MCP servers), `agent_tool` (agents as tools);
//! `settings` is their configuration and `declared` builds an agent's [`ToolSet`] from it.

mod agent_tool;
mod clock;
mod declared;
mod http;
mod mcp;
mod settings;

pub use agent_tool::AgentTool;
pub use clock::{CLOCK_TOOL_NAME, ClockTool};
pub use declared::{ToolBuildError, declared_tools};
pub use http::HttpTool;
pub use mcp::{McpServer, McpStartError, McpTool, McpTools};
pub use settings::{HttpToolSettings, McpServerSettings, ToolSettings};

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::llm::{Message, ToolCall, ToolDefinition, Usage};

/// Why a tool call failed. The message is sent back to the model as the call's result, so
/// it can correct itself; it never ends the turn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

impl ToolError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// What a tool call knows of the turn that makes it: the caller's tenant and request id,
/// and where a tool that calls a model (an agent as a tool) adds the tokens it used, so
/// that they count in the calling turn's usage (its limits, budgets and metrics).
///
/// ```
/// use arshai::agent::ToolContext;
/// use arshai::llm::Usage;
///
/// let context = ToolContext::new("acme", Some("req-1".to_owned()));
/// context.add_usage(Usage { input_tokens: 3, output_tokens: 2, total_tokens: 5, ..Usage::default() });
/// assert_eq!(context.take_usage().total_tokens, 5);
/// assert_eq!(context.take_usage().total_tokens, 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ToolContext {
    /// The tenant of the calling turn.
    pub tenant: String,
    /// The calling turn's correlation id.
    pub request_id: Option<String>,
    /// Tokens the tools used since the last [`ToolContext::take_usage`].
    usage: Arc<Mutex<Usage>>,
}

impl ToolContext {
    /// The context of a turn of `tenant` with `request_id`.
    pub fn new(tenant: impl Into<String>, request_id: Option<String>) -> Self {
        Self {
            tenant: tenant.into(),
            request_id,
            usage: Arc::default(),
        }
    }

    /// Adds tokens a tool used to the calling turn's usage.
    pub fn add_usage(&self, usage: Usage) {
        *self.usage.lock().unwrap_or_else(PoisonError::into_inner) += usage;
    }

    /// The tokens added since the last call, resetting them.
    pub fn take_usage(&self) -> Usage {
        std::mem::take(&mut *self.usage.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Something the model can call.
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// Name, description and argument schema, as offered to the model.
    fn definition(&self) -> ToolDefinition;

    /// Runs the tool with arguments already parsed as JSON. The text returned is what the
    /// model sees.
    async fn call(&self, arguments: Value) -> Result<String, ToolError>;

    /// Runs the tool for a turn: what the tool loop calls. A tool that needs the calling
    /// turn's tenant or request id, or that uses tokens the turn should count, implements
    /// this; the default ignores `context` and runs [`Tool::call`].
    async fn call_in(&self, arguments: Value, context: &ToolContext) -> Result<String, ToolError> {
        let _ = context;
        self.call(arguments).await
    }
}

/// A tool made from an async function of typed arguments `A`, whose JSON Schema is derived
/// from the type.
pub struct FnTool<A, F> {
    definition: ToolDefinition,
    function: F,
    arguments: PhantomData<fn(A)>,
}

impl<A, F, Fut> FnTool<A, F>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, ToolError>> + Send + 'static,
{
    /// A tool named `name` that runs `function`.
    pub fn new(name: impl Into<String>, description: impl Into<String>, function: F) -> Self {
        Self {
            definition: ToolDefinition::of::<A>(name, description),
            function,
            arguments: PhantomData,
        }
    }
}

#[async_trait]
impl<A, F, Fut> Tool for FnTool<A, F>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, ToolError>> + Send + 'static,
{
    fn definition(&self) -> ToolDefinition {
        self.definition.clone()
    }

    async fn call(&self, arguments: Value) -> Result<String, ToolError> {
        let arguments: A = serde_json::from_value(arguments)
            .map_err(|e| ToolError::new(format!("the arguments do not match the schema: {e}")))?;
        (self.function)(arguments).await
    }
}

/// Tools whose list can change while the agent runs: an MCP server's ([`McpTools`]), listed
/// again when it reconnects or says its list changed. A [`ToolSet`] asks at every turn.
pub trait ToolSource: Send + Sync + 'static {
    /// The tools offered now.
    fn tools(&self) -> Vec<Arc<dyn Tool>>;
}

/// The tools of an agent, and how their calls are run.
#[derive(Clone)]
pub struct ToolSet {
    tools: BTreeMap<String, Arc<dyn Tool>>,
    /// Lists that may change; a fixed tool of the same name comes first, then the earlier
    /// source.
    sources: Vec<Arc<dyn ToolSource>>,
    /// Rounds of tool calls allowed in one turn before the model must answer in text.
    pub max_rounds: usize,
    /// Bound on one tool call; a slower call is reported to the model as failed.
    pub call_timeout: Duration,
}

impl std::fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolSet")
            .field("tools", &self.tools.keys().collect::<Vec<_>>())
            .field("sources", &self.sources.len())
            .field("max_rounds", &self.max_rounds)
            .field("call_timeout", &self.call_timeout)
            .finish()
    }
}

impl Default for ToolSet {
    fn default() -> Self {
        Self {
            tools: BTreeMap::new(),
            sources: Vec::new(),
            max_rounds: 8,
            call_timeout: Duration::from_secs(30),
        }
    }
}

impl ToolSet {
    /// An empty set with default bounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a tool under its name.
    pub fn with(mut self, tool: impl Tool) -> Self {
        let tool: Arc<dyn Tool> = Arc::new(tool);
        self.tools.insert(tool.definition().name, tool);
        self
    }

    /// Adds (or replaces) a shared tool under its name.
    pub fn with_shared(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.insert(tool.definition().name, tool);
        self
    }

    /// Adds a list of tools that may change (an MCP server's): asked at every turn.
    pub fn with_source(mut self, source: Arc<dyn ToolSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// Whether the set has a tool named `name` now.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether the set has no tool and no source (a source may list tools later).
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty() && self.sources.is_empty()
    }

    /// The definitions offered to the model now, by name: the fixed tools and each
    /// source's, a name offered once (a fixed tool first, then the earlier source).
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        let mut definitions: Vec<ToolDefinition> =
            self.tools.values().map(|tool| tool.definition()).collect();
        for source in &self.sources {
            for tool in source.tools() {
                let definition = tool.definition();
                if !definitions
                    .iter()
                    .any(|known| known.name == definition.name)
                {
                    definitions.push(definition);
                }
            }
        }
        definitions.sort_by(|a, b| a.name.cmp(&b.name));
        definitions
    }

    /// The tool named `name` now.
    fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        if let Some(tool) = self.tools.get(name) {
            return Some(Arc::clone(tool));
        }
        self.sources.iter().find_map(|source| {
            source
                .tools()
                .into_iter()
                .find(|tool| tool.definition().name == name)
        })
    }

    /// Runs `calls` concurrently for the turn `context` describes; each yields one
    /// [`Message::tool_result`], in call order. Unknown tools, invalid JSON arguments,
    /// failures and timeouts become error results the model can read.
    pub async fn execute(&self, calls: &[ToolCall], context: &ToolContext) -> Vec<Message> {
        let runs = calls.iter().map(|call| async move {
            let content = match self.run_one(call, context).await {
                Ok(output) => output,
                Err(error) => serde_json::json!({ "error": error.0 }).to_string(),
            };
            Message::tool_result(call.id.clone(), content)
        });
        futures::future::join_all(runs).await
    }

    async fn run_one(&self, call: &ToolCall, context: &ToolContext) -> Result<String, ToolError> {
        let tool = self
            .get(&call.name)
            .ok_or_else(|| ToolError::new(format!("there is no tool named {:?}", call.name)))?;
        let text = if call.arguments.trim().is_empty() {
            "{}"
        } else {
            call.arguments.as_str()
        };
        let arguments: Value = serde_json::from_str(text)
            .map_err(|e| ToolError::new(format!("the arguments are not valid JSON: {e}")))?;
        match tokio::time::timeout(self.call_timeout, tool.call_in(arguments, context)).await {
            Ok(result) => result,
            Err(_) => Err(ToolError::new(format!(
                "the tool did not finish within {:?}",
                self.call_timeout
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_tool_is_reported_failed_at_its_timeout_and_the_others_still_answer() {
        let tools = ToolSet::new()
            .with(FnTool::new("slow", "Takes an hour", |_: Value| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, ToolError>("late".to_owned())
            }))
            .with(FnTool::new("quick", "Answers at once", |_: Value| async {
                Ok::<_, ToolError>("now".to_owned())
            }));
        let call = |id: &str, name: &str| ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: "{}".into(),
        };
        let started = tokio::time::Instant::now();
        let results = tools
            .execute(
                &[call("1", "slow"), call("2", "quick")],
                &ToolContext::default(),
            )
            .await;
        assert_eq!(started.elapsed(), tools.call_timeout);
        assert!(
            results[0].content.contains("did not finish within"),
            "{results:?}"
        );
        assert_eq!(results[1].content, "now");
    }
}
