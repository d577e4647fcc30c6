//! `GET /v1/workflows` and `POST /v1/workflows/{workflow}/runs`: the workflows the settings
//! declare (`[[workflows]]`), run over HTTP.
//!
//! A run answers `{"run_id","output","state","steps":[{"node","status","duration_ms"}]}`,
//! or with `"stream": true` server-sent events:
//!
//! ```text
//! event: node_started   data: {"node":"triage"}
//! event: delta          data: {"node":"triage","text":"bill"}
//! event: tool_call      data: {"node":"answer","id":"call_1","name":"lookup","arguments":"{}"}
//! event: tool_result    data: {"node":"answer","id":"call_1","name":"lookup","content":"…"}
//! event: node_finished  data: {"node":"triage","status":"ok","duration_ms":412}
//! event: done           data: {"run_id":"…","output":…,"state":{…},"steps":[…]}
//! event: error          data: {"error":{"type":"workflow_step_limit","message":"…"}}
//! ```
//!
//! A run is a turn to the server: it sits behind the same auth (a key's `agents` list
//! names the workflows it may run, too), admission, rate limits and budgets (settled with
//! the tokens of every agent node), request deadline (`server.request_timeout_seconds`)
//! and, streamed, the same idle timeout. `arshai_workflow_runs_total{workflow,status}` and
//! `arshai_workflow_node_duration_seconds` measure it, besides the turn metrics
//! (`agent_type="workflow"`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arshai::agent::{AgentInput, Delivery};
use arshai::cache::CacheControl;
use arshai::llm::Message;
use arshai::memory::ConversationId;
use arshai::workflow::{
    RunError, RunOptions, RunOutput, Step, StepObserver, WorkflowEvent, WorkflowEventStream,
};
use axum::Json;
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::auth::Tenant;
use crate::extract::{JsonBody, PathParams};
use crate::metrics::{Metrics, WorkflowRunLabels, WorkflowStepMetrics};
use crate::request_id::RequestId;
use crate::turn::sse::{self, StreamBounds};
use crate::turn::{self, TurnContext, TurnRecord, limits};
use crate::{ApiError, AppState};

/// One workflow in the listing.
#[derive(Debug, Serialize)]
pub struct WorkflowInfo {
    /// Its name, as used in `/v1/workflows/{workflow}/runs`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its nodes, in declaration order.
    pub nodes: Vec<NodeInfo>,
}

/// One node of a listed workflow.
#[derive(Debug, Serialize)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// `agent`, `tool`, `workflow` or `function`.
    pub kind: &'static str,
}

/// The listing.
#[derive(Debug, Serialize)]
pub struct WorkflowList {
    /// Every workflow, by name.
    pub workflows: Vec<WorkflowInfo>,
}

/// `GET /v1/workflows`.
pub async fn list_workflows(State(state): State<AppState>) -> Json<WorkflowList> {
    Json(WorkflowList {
        workflows: state
            .workflows
            .iter()
            .map(|workflow| WorkflowInfo {
                name: workflow.name().to_owned(),
                description: workflow.description().to_owned(),
                nodes: workflow
                    .nodes()
                    .iter()
                    .map(|node| NodeInfo {
                        name: node.name().to_owned(),
                        kind: node.kind().as_str(),
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// The request body of a run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The run's input: any JSON value (`state.input`).
    pub input: Value,
    /// The conversation agent nodes continue (their turns are recorded in it).
    #[serde(default)]
    pub conversation_id: Option<ConversationId>,
    /// Answer with server-sent events per node.
    #[serde(default)]
    pub stream: bool,
}

/// One step in a run's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct StepBody {
    /// The node.
    pub node: String,
    /// `ok`, `failed` or `timed_out`.
    pub status: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<&Step> for StepBody {
    fn from(step: &Step) -> Self {
        Self {
            node: step.node.clone(),
            status: step.status.as_str().to_owned(),
            duration_ms: u64::try_from(step.duration.as_millis()).unwrap_or(u64::MAX),
            error: step.error.clone(),
        }
    }
}

/// The answer to a run.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunResponse {
    /// The run's id.
    pub run_id: String,
    /// The workflow's output.
    pub output: Value,
    /// The final state.
    pub state: Value,
    /// Each node execution, in run order.
    pub steps: Vec<StepBody>,
    /// The conversation the agent nodes used, when the request named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
}

impl RunResponse {
    fn new(output: RunOutput, conversation_id: Option<ConversationId>) -> Self {
        Self {
            run_id: output.run_id,
            output: output.output,
            state: output.state,
            steps: output.steps.iter().map(StepBody::from).collect(),
            conversation_id,
        }
    }
}

/// `POST /v1/workflows/{workflow}/runs`.
pub async fn post_run(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    tenant: Tenant,
    context: TurnContext,
    request_id: RequestId,
    body: Result<JsonBody<RunRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let workflow = state
        .workflows
        .get(&name)
        .cloned()
        .ok_or_else(|| ApiError::UnknownWorkflow(name.clone()))?;
    if !context.caller.may_use(&name) {
        return Err(ApiError::Forbidden(format!(
            "this API key may not use the workflow {name:?}"
        )));
    }
    let JsonBody(request) = body?;
    let estimate = limits::estimate(&AgentInput::stateless(vec![Message::user(
        request.input.to_string(),
    )]));
    let admitted = match state.limits.admit(&context.caller, estimate).await {
        Ok(admitted) => admitted,
        Err(refused) => {
            let mut response = refused.error.into_response();
            refused.quotas.write(response.headers_mut());
            return Ok(response);
        }
    };
    let usage = Arc::new(limits::TurnUsage::default());
    let observer: Arc<dyn StepObserver> = Arc::new(WorkflowStepMetrics(Arc::clone(&state.metrics)));
    let options = RunOptions {
        tenant: tenant.0,
        conversation: request.conversation_id.clone(),
        request_id: Some(request_id.0),
        delivery: if request.stream {
            Delivery::Streamed
        } else {
            Delivery::Whole
        },
        observer: Some(observer),
        ..RunOptions::default()
    };
    let control = CacheControl::new(Some(&context.caller.tenant), context.no_cache);
    let runs = RunCounter {
        metrics: Arc::clone(&state.metrics),
        workflow: name.clone(),
    };
    let mut response = if request.stream {
        let bounds = StreamBounds::from_settings(&state.settings);
        let events = Arc::clone(&workflow).run(request.input, options);
        match control.scope(first_event(events, bounds)).await {
            Ok(started) => {
                let end = RunEnd {
                    runs,
                    usage: Arc::clone(&usage),
                    conversation_id: request.conversation_id.clone(),
                    ended: std::sync::atomic::AtomicBool::new(false),
                };
                stream_response(started, bounds, end)
            }
            Err(error) => {
                usage.record(0);
                runs.count(status_of(&error));
                error.into_response()
            }
        }
    } else {
        let deadline = Duration::from_secs_f64(state.settings.server.request_timeout_seconds);
        let run = workflow.run_to_end(request.input, options);
        match control.scope(tokio::time::timeout(deadline, run)).await {
            Ok(Ok(output)) => {
                usage.record(output.usage.total_tokens);
                runs.count("ok");
                Json(RunResponse::new(output, request.conversation_id.clone())).into_response()
            }
            Ok(Err(error)) => {
                usage.record(0);
                runs.count(error.class());
                ApiError::Workflow(Box::new(error)).into_response()
            }
            Err(_) => {
                runs.count("request_timeout");
                ApiError::RequestTimeout(deadline).into_response()
            }
        }
    };
    if let Some(id) = &request.conversation_id {
        turn::name_conversation(&mut response, id);
    }
    response.extensions_mut().insert(TurnRecord {
        agent: workflow.name().to_owned(),
        agent_type: "workflow",
        usage: None,
    });
    Ok(admitted.settle_with_body(response, usage))
}

/// Counts one run in `arshai_workflow_runs_total` (also for a workflow called through
/// `/v1/chat/completions`).
pub(crate) struct RunCounter {
    metrics: Arc<Metrics>,
    workflow: String,
}

impl RunCounter {
    /// The counter of `workflow`'s runs.
    pub(crate) fn new(metrics: Arc<Metrics>, workflow: String) -> Self {
        Self { metrics, workflow }
    }

    /// Counts one run that ended with `status`.
    pub(crate) fn count(&self, status: &'static str) {
        self.metrics
            .workflow_runs
            .get_or_create(&WorkflowRunLabels {
                workflow: self.workflow.clone(),
                status,
            })
            .inc();
    }
}

/// The metrics status of a run that failed with `error`.
pub(crate) fn status_of(error: &ApiError) -> &'static str {
    match error {
        ApiError::Workflow(error) => error.class(),
        ApiError::RequestTimeout(_) => "request_timeout",
        ApiError::StreamIdle(_) => "stream_idle",
        _ => "failed",
    }
}

/// The next event of `events` within the stream's idle timeout and deadline.
pub(crate) async fn next_within(
    events: &mut WorkflowEventStream,
    bounds: &StreamBounds,
) -> Result<Option<WorkflowEvent>, ApiError> {
    let idle_at = Instant::now() + bounds.idle;
    match tokio::time::timeout_at(idle_at.min(bounds.deadline), events.next()).await {
        Ok(Some(Ok(event))) => Ok(Some(event)),
        Ok(Some(Err(error))) => Err(ApiError::Workflow(Box::new(error))),
        Ok(None) => Ok(None),
        Err(_) if bounds.deadline <= idle_at => Err(ApiError::RequestTimeout(bounds.total)),
        Err(_) => Err(ApiError::StreamIdle(bounds.idle)),
    }
}

/// The next event of a streamed run within the bounds, and whether it is the run's last
/// (its `Done`, or an error); `None` when the run's events ended.
pub(crate) async fn next_step(
    events: &mut WorkflowEventStream,
    bounds: &StreamBounds,
) -> Option<(Result<WorkflowEvent, ApiError>, bool)> {
    match next_within(events, bounds).await {
        Ok(Some(event)) => {
            let done = matches!(event, WorkflowEvent::Done(_));
            Some((Ok(event), done))
        }
        Ok(None) => None,
        Err(error) => Some((Err(error), true)),
    }
}

/// A run's events once its first one arrived.
struct Started {
    first: WorkflowEvent,
    rest: WorkflowEventStream,
}

/// Waits for the run's first event: a run that fails before it (its entry router, say)
/// answers with a plain JSON error and its real status.
async fn first_event(
    mut events: WorkflowEventStream,
    bounds: StreamBounds,
) -> Result<Started, ApiError> {
    match next_within(&mut events, &bounds).await? {
        Some(first) => Ok(Started {
            first,
            rest: events,
        }),
        None => Err(ApiError::Workflow(Box::new(RunError::NoRoute {
            workflow: String::new(),
            from: "the entry".to_owned(),
            reason: "the run ended without an answer".to_owned(),
        }))),
    }
}

/// The SSE response of a started run: its events, then `done` or `error`, under `bounds`.
fn stream_response(started: Started, bounds: StreamBounds, end: RunEnd) -> Response {
    let Started { first, rest } = started;
    let first_done = matches!(first, WorkflowEvent::Done(_));
    let counted = Arc::new(end);
    let on_first = Arc::clone(&counted);
    let first = stream::once(async move { Ok::<_, Infallible>(frame(Ok(first), &on_first)) });
    let rest = stream::unfold(
        (rest, first_done, counted),
        move |(mut events, ended, counted)| async move {
            if ended {
                return None;
            }
            let (item, ended) = next_step(&mut events, &bounds).await?;
            let frame = frame(item, &counted);
            Some((Ok::<_, Infallible>(frame), (events, ended, counted)))
        },
    );
    sse::response(first.chain(rest), &bounds)
}

/// Counts a streamed run once, when it ends (or when the client leaves: `cancelled`).
struct RunEnd {
    runs: RunCounter,
    usage: Arc<limits::TurnUsage>,
    conversation_id: Option<ConversationId>,
    ended: std::sync::atomic::AtomicBool,
}

impl RunEnd {
    fn end(&self, status: &'static str, tokens: u64) {
        if !self.ended.swap(true, std::sync::atomic::Ordering::Relaxed) {
            self.usage.record(tokens);
            self.runs.count(status);
        }
    }
}

impl Drop for RunEnd {
    fn drop(&mut self) {
        self.end("cancelled", 0);
    }
}

/// The SSE frame of one event (or of the run's error).
fn frame(item: Result<WorkflowEvent, ApiError>, end: &RunEnd) -> Event {
    use arshai::agent::AgentEvent;
    let (name, data) = match item {
        Ok(WorkflowEvent::NodeStarted { node }) => ("node_started", json!({"node": node})),
        Ok(WorkflowEvent::Agent { node, event }) => match event {
            AgentEvent::TextDelta(text) => ("delta", json!({"node": node, "text": text})),
            AgentEvent::ToolCall(call) => (
                "tool_call",
                json!({"node": node, "id": call.id, "name": call.name, "arguments": call.arguments}),
            ),
            AgentEvent::ToolResult {
                call_id,
                name,
                content,
            } => (
                "tool_result",
                json!({"node": node, "id": call_id, "name": name, "content": content}),
            ),
            AgentEvent::Done(_) => ("node_output", json!({"node": node})),
        },
        Ok(WorkflowEvent::NodeFinished(step)) => ("node_finished", json!(StepBody::from(&step))),
        Ok(WorkflowEvent::Done(output)) => {
            end.end("ok", output.usage.total_tokens);
            (
                "done",
                json!(RunResponse::new(output, end.conversation_id.clone())),
            )
        }
        Err(error) => {
            tracing::warn!(%error, "a streamed workflow run failed after it started");
            end.end(status_of(&error), 0);
            ("error", error.body())
        }
    };
    Event::default().event(name).data(data.to_string())
}
