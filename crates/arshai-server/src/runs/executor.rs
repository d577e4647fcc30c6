//! What a run executes: [`RunExecutor`], and [`TargetExecutor`], which executes each
//! [`RunTarget`]: an agent turn, or a workflow run that checkpoints each node in Redis.

use std::sync::Arc;

use arshai::agent::{AgentEvent, AgentInput, AgentRegistry, ConversationRef, Delivery};
use arshai::llm::Message;
use arshai::memory::ConversationId;
use arshai::workflow::{RunOptions, Step, WorkflowEvent, WorkflowRegistry};
use async_trait::async_trait;
use axum::http::StatusCode;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use super::Runs;
use super::record::{RunRecord, RunTarget};
use crate::ApiError;

/// Why an execution failed: the run's `error`, `{"type","message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunFailure {
    /// The error class (the turn routes' error `type`s: `upstream_timeout`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened.
    pub message: String,
    /// Whether another attempt may succeed (a dependency was unavailable or busy): the
    /// worker hands the run back instead of failing it, within `runs.max_attempts`.
    #[serde(skip)]
    pub retryable: bool,
}

impl RunFailure {
    /// A failure of class `kind`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
            retryable: false,
        }
    }
}

impl From<ApiError> for RunFailure {
    /// The error's type and message; retryable when the turn routes would answer it 503
    /// (memory or upstream unavailable, rate limited upstream) or 409 (conversation busy,
    /// lease lost).
    fn from(error: ApiError) -> Self {
        let (status, kind, _) = error.parts();
        Self {
            retryable: status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::CONFLICT,
            ..Self::new(kind, error.to_string())
        }
    }
}

/// Executes runs. The worker calls it once per attempt, and drops the future to cancel
/// (a cancellation, a timeout, or a drain deadline): an implementation must be
/// cancellation-safe, and should be idempotent by the run id (a run whose worker died is
/// executed again).
#[async_trait]
pub trait RunExecutor: Send + Sync {
    /// Executes `run` (attempt `attempt`), appending its progress to `runs`' event stream;
    /// returns its output.
    async fn execute(
        &self,
        run: &RunRecord,
        attempt: u32,
        runs: &Runs,
    ) -> Result<Value, RunFailure>;
}

/// The executor of every [`RunTarget`].
#[derive(Clone)]
pub struct TargetExecutor {
    agents: Arc<AgentRegistry>,
    workflows: Arc<WorkflowRegistry>,
}

impl TargetExecutor {
    /// Executes targets with `agents` and `workflows`.
    pub fn new(agents: Arc<AgentRegistry>, workflows: Arc<WorkflowRegistry>) -> Self {
        Self { agents, workflows }
    }

    /// One run of workflow `name` over the run's input, on the run's conversation; each
    /// node's end is appended to the run's events. Each finished node is checkpointed in
    /// Redis ([`Runs::checkpoints`]): an attempt after a crash (or a retryable failure)
    /// restores the finished nodes instead of running them again, and resumes at the node
    /// that was running; its agent turn is keyed by the run id and node path, so a turn
    /// committed just before the crash is answered from its receipt.
    async fn workflow_run(
        &self,
        name: &str,
        run: &RunRecord,
        runs: &Runs,
    ) -> Result<Value, RunFailure> {
        let workflow = self
            .workflows
            .get(name)
            .cloned()
            .ok_or_else(|| RunFailure::from(ApiError::UnknownWorkflow(name.to_owned())))?;
        let conversation = run
            .conversation_id
            .as_ref()
            .map(|id| {
                ConversationId::parse(id.clone())
                    .map_err(|error| RunFailure::new("invalid_request", error.to_string()))
            })
            .transpose()?;
        let options = RunOptions {
            run_id: run.id.clone(),
            tenant: run.tenant.clone(),
            conversation,
            request_id: Some(run.id.clone()),
            delivery: Delivery::Whole,
            checkpoints: Some(Arc::new(runs.checkpoints(&run.id))),
            ..RunOptions::default()
        };
        let mut events = workflow.run(Value::String(run.input.clone()), options);
        while let Some(event) = events.next().await {
            let event =
                event.map_err(|error| RunFailure::from(ApiError::Workflow(Box::new(error))))?;
            let (kind, data) = match event {
                WorkflowEvent::Done(output) => {
                    let steps: Vec<Value> = output.steps.iter().map(step_json).collect();
                    return Ok(json!({
                        "conversation_id": run.conversation_id,
                        "output": output.output,
                        "state": output.state,
                        "steps": steps,
                        "usage": output.usage,
                    }));
                }
                WorkflowEvent::NodeStarted { node } => ("node_started", json!({"node": node})),
                WorkflowEvent::NodeFinished(step) => ("node_finished", step_json(&step)),
                // Whole delivery: agent nodes' events are not forwarded one by one.
                WorkflowEvent::Agent { .. } => continue,
            };
            if let Err(error) = runs.append_event(&run.id, kind, &data).await {
                tracing::debug!(%error, run = %run.id, "cannot append a run event");
            }
        }
        Err(RunFailure::from(ApiError::Agent(
            arshai::AgentError::Incomplete,
        )))
    }

    /// One turn of agent `name` on the run's conversation, keyed by the run id: a second
    /// execution of the same run is answered from the first one's receipt, so the turn is
    /// recorded in the conversation once.
    async fn agent_turn(
        &self,
        name: &str,
        run: &RunRecord,
        runs: &Runs,
    ) -> Result<Value, RunFailure> {
        let agent = self
            .agents
            .get(name)
            .cloned()
            .ok_or_else(|| RunFailure::from(ApiError::UnknownAgent(name.to_owned())))?;
        let conversation = match &run.conversation_id {
            Some(id) => ConversationRef::Id(
                ConversationId::parse(id.clone())
                    .map_err(|error| RunFailure::new("invalid_request", error.to_string()))?,
            ),
            None => ConversationRef::New,
        };
        let input = AgentInput {
            tenant: run.tenant.clone(),
            request_id: Some(run.id.clone()),
            idempotency_key: Some(run.id.clone()),
            delivery: Delivery::Streamed,
            ..AgentInput::with_messages(conversation, vec![Message::user(run.input.clone())])
        };
        let mut events = agent.turn(input);
        while let Some(event) = events.next().await {
            let (kind, data) =
                match event.map_err(|error| RunFailure::from(ApiError::from(error)))? {
                    AgentEvent::TextDelta(text) => ("delta", json!({"text": text})),
                    AgentEvent::ToolCall(call) => (
                        "tool_call",
                        json!({"id": call.id, "name": call.name, "arguments": call.arguments}),
                    ),
                    AgentEvent::ToolResult {
                        call_id,
                        name,
                        content,
                    } => (
                        "tool_result",
                        json!({"id": call_id, "name": name, "content": content}),
                    ),
                    AgentEvent::Done(output) => {
                        return Ok(json!({
                            "conversation_id": output.conversation_id,
                            "reply": output.reply,
                            "usage": output.usage,
                            "model": output.model,
                            "finish_reason": output.finish_reason.as_wire(),
                        }));
                    }
                };
            if let Err(error) = runs.append_event(&run.id, kind, &data).await {
                // Progress events are best effort; the outcome is recorded by the worker.
                tracing::debug!(%error, run = %run.id, "cannot append a run event");
            }
        }
        Err(RunFailure::from(ApiError::Agent(
            arshai::AgentError::Incomplete,
        )))
    }
}

/// A workflow step as the run's events and output show it.
fn step_json(step: &Step) -> Value {
    json!({
        "node": step.node,
        "status": step.status.as_str(),
        "duration_ms": step.duration.as_secs_f64() * 1000.0,
        "error": step.error,
    })
}

#[async_trait]
impl RunExecutor for TargetExecutor {
    async fn execute(
        &self,
        run: &RunRecord,
        _attempt: u32,
        runs: &Runs,
    ) -> Result<Value, RunFailure> {
        match &run.target {
            RunTarget::Agent { name } => self.agent_turn(name, run, runs).await,
            RunTarget::Workflow { name } => self.workflow_run(name, run, runs).await,
        }
    }
}
