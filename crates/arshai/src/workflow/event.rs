//! What a run reports: its [`Step`]s, its events as they happen ([`WorkflowEvent`]), and
//! its [`RunOutput`]; [`RunOptions`] is what a caller gives it besides the input.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use serde_json::Value;

use super::checkpoint::Checkpoints;
use super::error::RunError;
use crate::agent::{AgentEvent, Delivery};
use crate::llm::Usage;
use crate::memory::{ConversationId, ConversationKey};

/// How one node execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// It produced its output.
    Ok,
    /// It failed (the run took its fallback edge, or failed).
    Failed,
    /// It passed its timeout (the run took its fallback edge, or failed).
    TimedOut,
    /// It was not run: an earlier attempt of the run finished it, and its recorded output
    /// was used ([`RunOptions::checkpoints`]).
    Restored,
}

impl StepStatus {
    /// `ok`, `failed`, `timed_out` or `restored`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Restored => "restored",
        }
    }
}

/// One node execution of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The node (`outer/inner` for a node of a nested workflow).
    pub node: String,
    /// How it ended.
    pub status: StepStatus,
    /// How long it ran.
    pub duration: Duration,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// One event of a streamed run, in order: per node `NodeStarted`, its agent's events,
/// `NodeFinished`; then exactly one `Done` when the run succeeded (or an `Err` item).
/// Nodes of a fan-out interleave their events.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowEvent {
    /// A node started.
    NodeStarted {
        /// The node.
        node: String,
    },
    /// An event of an agent node's turn: a text delta, a tool call or a tool result
    /// (never its `Done`: the node's output is in `NodeFinished` and the state).
    Agent {
        /// The node.
        node: String,
        /// The agent's event.
        event: AgentEvent,
    },
    /// A node ended.
    NodeFinished(Step),
    /// The run ended.
    Done(RunOutput),
}

/// A streamed run: events in order; an `Err` item ends it. Dropping it cancels the run.
pub type WorkflowEventStream = BoxStream<'static, Result<WorkflowEvent, RunError>>;

/// What a finished run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutput {
    /// The run's id.
    pub run_id: String,
    /// The workflow's output: the value at its `output` pointer, or the output of the
    /// node that ran last.
    pub output: Value,
    /// The whole state at the end.
    pub state: Value,
    /// Every node execution in run order (the branches of a fan-out in declared order, a
    /// nested workflow's steps before its own).
    pub steps: Vec<Step>,
    /// Tokens used by every agent node.
    pub usage: Usage,
}

/// Sees every step of every run as it ends (metrics, traces); set on [`RunOptions`].
pub trait StepObserver: Send + Sync + 'static {
    /// `step` of `workflow` ended.
    fn step_finished(&self, workflow: &str, step: &Step);
}

/// What a run needs besides its input.
#[derive(Clone)]
pub struct RunOptions {
    /// The run's id (a generated UUID by default).
    pub run_id: String,
    /// The tenant of the agents' conversations.
    pub tenant: String,
    /// The conversation agent nodes use (see [`super::NodeMemory`]); `None`: every agent
    /// turn is stateless.
    pub conversation: Option<ConversationId>,
    /// Correlation id passed to upstream calls.
    pub request_id: Option<String>,
    /// How agent nodes call their models.
    pub delivery: Delivery,
    /// Sees each step as it ends.
    pub observer: Option<Arc<dyn StepObserver>>,
    /// Where each finished node is recorded, so that a retried run with the same store
    /// (and the same `run_id`) resumes from its last checkpoint instead of running
    /// finished nodes again (`super::checkpoint` describes the paths). `None`: nothing is
    /// recorded.
    ///
    /// Agent nodes' turns on a conversation carry the idempotency key
    /// `<run_id>:<node path>`, so a node that committed its turn but whose run died before
    /// the checkpoint was saved is answered from the turn's receipt on the retry instead
    /// of recording the turn twice.
    pub checkpoints: Option<Arc<dyn Checkpoints>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            run_id: uuid::Uuid::new_v4().to_string(),
            tenant: ConversationKey::DEFAULT_TENANT.to_owned(),
            conversation: None,
            request_id: None,
            delivery: Delivery::Whole,
            observer: None,
            checkpoints: None,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("run_id", &self.run_id)
            .field("tenant", &self.tenant)
            .field("conversation", &self.conversation)
            .field("request_id", &self.request_id)
            .field("delivery", &self.delivery)
            .field("checkpoints", &self.checkpoints.is_some())
            .finish_non_exhaustive()
    }
}
