//! The workflow layer's errors: a definition refused when it is built, and a run that failed.

use std::time::Duration;

use super::checkpoint::CheckpointError;
use crate::agent::{AgentError, ToolError};

/// Why a workflow definition was refused (when it is built, so at start-up for the
/// workflows the settings declare). Each message names the workflow and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The workflow has no node.
    #[error("workflow {workflow:?} has no nodes")]
    Empty {
        /// The workflow.
        workflow: String,
    },
    /// A name is empty or not URL-safe.
    #[error(
        "workflow {workflow:?}: the name {name:?} must be non-empty ASCII letters, digits, '-', '_' or '.'"
    )]
    InvalidName {
        /// The workflow.
        workflow: String,
        /// The name.
        name: String,
    },
    /// Two nodes share a name.
    #[error("workflow {workflow:?} declares the node {node:?} twice")]
    DuplicateNode {
        /// The workflow.
        workflow: String,
        /// The node.
        node: String,
    },
    /// An edge, the entry or a fallback names a node that does not exist.
    #[error("workflow {workflow:?}: {referenced_by} names the unknown node {node:?}")]
    UnknownNode {
        /// The workflow.
        workflow: String,
        /// Who names it (`the entry`, `the edge from "a"`, `the fallback of "a"`).
        referenced_by: String,
        /// The unknown name.
        node: String,
    },
    /// No path from the entry reaches the node.
    #[error("workflow {workflow:?}: the node {node:?} is unreachable from the entry")]
    Unreachable {
        /// The workflow.
        workflow: String,
        /// The node.
        node: String,
    },
    /// The graph has a cycle and no step bound.
    #[error(
        "workflow {workflow:?} has the cycle {} but no step bound: set max_steps",
        cycle.join(" -> ")
    )]
    CycleWithoutBound {
        /// The workflow.
        workflow: String,
        /// The nodes of the cycle, its first node repeated at the end.
        cycle: Vec<String>,
    },
    /// A node names an agent, a workflow, a function, a tool or a router that is not
    /// there (or a workflow nests itself).
    #[error("workflow {workflow:?}: {referenced_by} names the unknown {kind} {name:?}")]
    UnknownReference {
        /// The workflow.
        workflow: String,
        /// Who names it (`node "a"`, `the edge from "a"`).
        referenced_by: String,
        /// `agent`, `workflow`, `function`, `tool` or `router`.
        kind: &'static str,
        /// The unknown name.
        name: String,
    },
    /// Workflows nest each other in a loop.
    #[error("workflow {workflow:?} nests itself: {}", path.join(" -> "))]
    Recursive {
        /// The workflow.
        workflow: String,
        /// The workflows of the loop.
        path: Vec<String>,
    },
    /// Anything else that is inconsistent; the message says what.
    #[error("workflow {workflow:?}: {reason}")]
    Invalid {
        /// The workflow.
        workflow: String,
        /// What is wrong.
        reason: String,
    },
}

impl DefinitionError {
    /// An [`DefinitionError::Invalid`] error.
    pub(crate) fn invalid(workflow: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            workflow: workflow.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Why one node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The agent's turn failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The tool failed.
    #[error("tool failed: {0}")]
    Tool(#[from] ToolError),
    /// The nested workflow failed.
    #[error("nested workflow failed: {0}")]
    Workflow(Box<RunError>),
    /// A function node failed; the message says why.
    #[error("{0}")]
    Function(String),
    /// The node's input pointer names nothing in the state.
    #[error("its input {pointer:?} is not in the state")]
    MissingInput {
        /// The pointer.
        pointer: String,
    },
    /// The node did not end within its timeout.
    #[error("it did not finish within {0:?}")]
    Timeout(Duration),
}

impl NodeError {
    /// A function node's failure with this message.
    pub fn function(message: impl Into<String>) -> Self {
        Self::Function(message.into())
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A node failed and had no fallback (or its fallbacks failed too).
    #[error("node {node:?} of workflow {workflow:?} failed: {error}")]
    Node {
        /// The workflow.
        workflow: String,
        /// The node that failed last.
        node: String,
        /// Why.
        error: NodeError,
    },
    /// The run needed more steps than `max_steps`.
    #[error("workflow {workflow:?} reached its bound of {max_steps} steps before node {node:?}")]
    StepLimit {
        /// The workflow.
        workflow: String,
        /// The bound.
        max_steps: usize,
        /// The node that would have run next.
        node: String,
    },
    /// The whole run did not end within its timeout.
    #[error("workflow {workflow:?} did not finish within {timeout:?}")]
    Timeout {
        /// The workflow.
        workflow: String,
        /// The bound.
        timeout: Duration,
    },
    /// A conditional edge had no matching branch and no default, or a chooser failed or
    /// chose a target it was not offered.
    #[error("workflow {workflow:?}: {from} found no route: {reason}")]
    NoRoute {
        /// The workflow.
        workflow: String,
        /// `the entry` or `node "a"`.
        from: String,
        /// Why.
        reason: String,
    },
    /// A node's checkpoint could not be read or written ([`super::RunOptions::checkpoints`]).
    #[error("workflow {workflow:?}: the checkpoint of {path:?}: {error}")]
    Checkpoint {
        /// The workflow.
        workflow: String,
        /// The node's checkpoint path.
        path: String,
        /// Why.
        error: CheckpointError,
    },
}

impl RunError {
    /// The node error at the root of this run error, if a node failed (inside nested
    /// workflows too).
    pub fn node_error(&self) -> Option<&NodeError> {
        match self {
            Self::Node {
                error: NodeError::Workflow(inner),
                ..
            } => inner.node_error(),
            Self::Node { error, .. } => Some(error),
            _ => None,
        }
    }

    /// A short class of the failure, for metrics: `node_failed`, `node_timeout`,
    /// `step_limit`, `timeout`, `no_route` or `checkpoint`.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Node { .. } => match self.node_error() {
                Some(NodeError::Timeout(_)) => "node_timeout",
                _ => "node_failed",
            },
            Self::StepLimit { .. } => "step_limit",
            Self::Timeout { .. } => "timeout",
            Self::NoRoute { .. } => "no_route",
            Self::Checkpoint { .. } => "checkpoint",
        }
    }
}
