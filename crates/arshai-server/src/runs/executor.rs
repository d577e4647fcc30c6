//! What a run executes: [`RunExecutor`], and [`TargetExecutor`], which executes each
//! [`RunTarget`] (an agent turn today; a workflow is one more match arm and one more
//! function beside [`TargetExecutor::agent_turn`]).

use std::sync::Arc;

use arshai::agent::{AgentEvent, AgentInput, AgentRegistry, ConversationRef, Delivery};
use arshai::llm::Message;
use arshai::memory::ConversationId;
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
}

impl TargetExecutor {
    /// Executes targets with `agents`.
    pub fn new(agents: Arc<AgentRegistry>) -> Self {
        Self { agents }
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
        }
    }
}
