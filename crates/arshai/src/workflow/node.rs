//! [`Node`]: one step of a workflow — an agent turn, a tool call, another workflow, or a
//! function in code — with where it reads its input, where its output goes, its timeout
//! and its fallback.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::definition::Workflow;
use super::error::NodeError;
use super::route::Route;
use super::state::WorkflowState;
use crate::agent::{Agent, Tool};

/// A node in code: an async function of the node's input and the state.
#[async_trait]
pub trait NodeFunction: Send + Sync + 'static {
    /// Runs the node; the value returned is merged into the state under the node's output
    /// key. CPU-heavy work belongs in `tokio::task::spawn_blocking`.
    async fn call(&self, input: Value, state: &WorkflowState) -> Result<Value, NodeError>;
}

/// A [`NodeFunction`] from an async function of the node's input alone.
pub struct FnNode<F>(pub F);

#[async_trait]
impl<F, Fut> NodeFunction for FnNode<F>
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, NodeError>> + Send + 'static,
{
    async fn call(&self, input: Value, _state: &WorkflowState) -> Result<Value, NodeError> {
        (self.0)(input).await
    }
}

/// What a node runs.
#[derive(Clone)]
pub enum NodeKind {
    /// One turn of an agent: the input (text, or JSON written as text) is the user's
    /// message; the reply's text is the output. Text deltas and tool calls are forwarded
    /// as the run's events.
    Agent(Arc<dyn Agent>),
    /// One call of a tool with the input as its arguments; the result's text is the output.
    Tool(Arc<dyn Tool>),
    /// A run of another workflow with the input as its input; its output is the output.
    Workflow(Arc<Workflow>),
    /// A function in code.
    Function(Arc<dyn NodeFunction>),
}

impl NodeKind {
    /// `agent`, `tool`, `workflow` or `function`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Agent(_) => "agent",
            Self::Tool(_) => "tool",
            Self::Workflow(_) => "workflow",
            Self::Function(_) => "function",
        }
    }
}

impl std::fmt::Debug for NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Agent(agent) => write!(f, "Agent({:?})", agent.name()),
            Self::Tool(tool) => write!(f, "Tool({:?})", tool.definition().name),
            Self::Workflow(workflow) => write!(f, "Workflow({:?})", workflow.name()),
            Self::Function(_) => f.write_str("Function"),
        }
    }
}

/// Whether an agent node's turn belongs to the run's conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeMemory {
    /// The run's conversation when the run has one (the turn is recorded in it and sees
    /// its history); a stateless turn otherwise.
    #[default]
    Run,
    /// Always a stateless turn: nothing is loaded or recorded.
    None,
}

/// One node of a workflow.
#[derive(Debug, Clone)]
pub struct Node {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) input: String,
    pub(crate) output: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) fallback: Option<String>,
    pub(crate) memory: NodeMemory,
    pub(crate) route: Route,
}

impl Node {
    /// A node running `kind`, reading `/input`, writing under its own name.
    pub fn new(name: impl Into<String>, kind: NodeKind) -> Self {
        Self {
            name: name.into(),
            kind,
            input: "/input".to_owned(),
            output: None,
            timeout: None,
            fallback: None,
            memory: NodeMemory::Run,
            route: Route::End,
        }
    }

    /// An agent node.
    pub fn agent(name: impl Into<String>, agent: Arc<dyn Agent>) -> Self {
        Self::new(name, NodeKind::Agent(agent))
    }

    /// A tool node.
    pub fn tool(name: impl Into<String>, tool: Arc<dyn Tool>) -> Self {
        Self::new(name, NodeKind::Tool(tool))
    }

    /// A node running another workflow.
    pub fn workflow(name: impl Into<String>, workflow: Arc<Workflow>) -> Self {
        Self::new(name, NodeKind::Workflow(workflow))
    }

    /// A function node.
    pub fn function(name: impl Into<String>, function: impl NodeFunction) -> Self {
        Self::new(name, NodeKind::Function(Arc::new(function)))
    }

    /// A function node from an async function of its input.
    ///
    /// ```
    /// use arshai::workflow::Node;
    /// use serde_json::{Value, json};
    ///
    /// let shout = Node::from_fn("shout", |input: Value| async move {
    ///     Ok(json!(input.as_str().unwrap_or_default().to_uppercase()))
    /// });
    /// assert_eq!(shout.name(), "shout");
    /// ```
    pub fn from_fn<F, Fut>(name: impl Into<String>, function: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, NodeError>> + Send + 'static,
    {
        Self::function(name, FnNode(function))
    }

    /// Reads the node's input at this JSON pointer of the state (default `/input`; `""`
    /// is the whole state).
    pub fn input(mut self, pointer: impl Into<String>) -> Self {
        self.input = pointer.into();
        self
    }

    /// Merges the node's output under this key (default: the node's name).
    pub fn output(mut self, key: impl Into<String>) -> Self {
        self.output = Some(key.into());
        self
    }

    /// Bounds the node's time (overrides the workflow's `node_timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Runs `node` instead when this node fails (an error or a timeout); the run goes on
    /// from the fallback node's edges.
    pub fn fallback(mut self, node: impl Into<String>) -> Self {
        self.fallback = Some(node.into());
        self
    }

    /// Whether an agent node's turn uses the run's conversation.
    pub fn memory(mut self, memory: NodeMemory) -> Self {
        self.memory = memory;
        self
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the node runs.
    pub fn kind(&self) -> &NodeKind {
        &self.kind
    }

    /// The key its output is merged under.
    pub fn output_key(&self) -> &str {
        self.output.as_deref().unwrap_or(&self.name)
    }

    /// Where the run goes after this node.
    pub fn route(&self) -> &Route {
        &self.route
    }
}
