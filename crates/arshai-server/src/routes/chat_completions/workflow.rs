//! A workflow called by name through `/v1/chat/completions`: `model` names a workflow
//! (when no agent has that name), its input is the text of the last user message, and its
//! output is the assistant's message (a string as it is, any other JSON serialized).
//!
//! The run is the one `POST /v1/workflows/{name}/runs` makes: the same admission, rate
//! limits and budgets (settled with the tokens of every agent node), request deadline and
//! stream bounds, `arshai_workflow_runs_total` and the node durations; with
//! `X-Conversation-Id`, the agent nodes continue that conversation.
//!
//! Streamed, the content is the same text as the non-streamed answer: only the text of agent
//! nodes that end the run and produce its output ([`answering_nodes`]) is streamed as it is
//! produced; whatever of the answer was not streamed that way (the output of a
//! function node, an `output` pointer, a fallback's answer) is sent as one chunk when the run
//! ends. A triage or drafting node's text is never part of the answer.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arshai::agent::{AgentEvent, AgentInput, AgentOutput, Delivery};
use arshai::cache::CacheControl;
use arshai::llm::{FinishReason, Message};
use arshai::memory::ConversationId;
use arshai::workflow::{
    NodeKind, Route, RunOptions, RunOutput, StepObserver, Workflow, WorkflowEvent,
};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::request::ChatCompletionRequest;
use super::response::{self, ChunkWriter};
use crate::error::OpenAiError;
use crate::metrics::WorkflowStepMetrics;
use crate::routes::workflows::{RunCounter, next_step, next_within, status_of};
use crate::turn::sse::{self, StreamBounds};
use crate::turn::{self, TurnContext, TurnRecord, limits};
use crate::{ApiError, AppState};

/// Who calls the workflow, and for which conversation.
pub(super) struct WorkflowCaller<'a> {
    /// The caller's tenant (the agent nodes' conversations belong to it).
    pub(super) tenant: String,
    /// The caller and its cache directive.
    pub(super) context: &'a TurnContext,
    /// The request's id, passed to upstream calls.
    pub(super) request_id: String,
    /// The conversation of `X-Conversation-Id`.
    pub(super) conversation_id: Option<ConversationId>,
}

/// Runs `workflow` for `request` and answers in the Chat Completions format.
pub(super) async fn complete(
    state: &AppState,
    workflow: Arc<Workflow>,
    request: &ChatCompletionRequest,
    caller: WorkflowCaller<'_>,
) -> Result<Response, OpenAiError> {
    let text = request.workflow_input()?;
    let estimate = limits::estimate(&AgentInput::stateless(vec![Message::user(text.clone())]));
    let admitted = match state.limits.admit(&caller.context.caller, estimate).await {
        Ok(admitted) => admitted,
        Err(refused) => {
            let mut response = OpenAiError::from(refused.error).into_response();
            refused.quotas.write(response.headers_mut());
            return Ok(response);
        }
    };
    let streams = request.streams();
    let usage = Arc::new(limits::TurnUsage::default());
    let observer: Arc<dyn StepObserver> = Arc::new(WorkflowStepMetrics(Arc::clone(&state.metrics)));
    let options = RunOptions {
        tenant: caller.tenant,
        conversation: caller.conversation_id.clone(),
        request_id: Some(caller.request_id),
        delivery: Delivery::streamed_if(streams),
        observer: Some(observer),
        ..RunOptions::default()
    };
    let control = CacheControl::new(Some(&caller.context.caller.tenant), caller.context.no_cache);
    let runs = RunCounter::new(Arc::clone(&state.metrics), workflow.name().to_owned());
    let model = request.model.clone();
    let conversation_id = caller.conversation_id;
    let mut record = TurnRecord {
        agent: workflow.name().to_owned(),
        agent_type: "workflow",
        usage: None,
    };
    let input = Value::String(text);
    let mut response = if streams {
        let bounds = StreamBounds::from_settings(&state.settings);
        let mut events = Arc::clone(&workflow).run(input, options);
        match control.scope(next_within(&mut events, &bounds)).await {
            Ok(Some(first)) => {
                let end = Arc::new(RunEnd {
                    runs,
                    usage: Arc::clone(&usage),
                    ended: AtomicBool::new(false),
                    answering: answering_nodes(&workflow),
                    streamed: Mutex::new(String::new()),
                });
                let writer = Arc::new(ChunkWriter::new(model.clone(), request.includes_usage()));
                let opening = writer.opening();
                let conversation = conversation_id.clone();
                let first_end = Arc::clone(&end);
                let first = stream::iter(chat_event(Ok(first), &model, &conversation, &first_end));
                let rest_model = model.clone();
                let rest = stream::unfold((events, false, end), move |(mut events, ended, end)| {
                    let model = rest_model.clone();
                    let conversation = conversation.clone();
                    async move {
                        if ended {
                            return None;
                        }
                        let (item, ended) = next_step(&mut events, &bounds).await?;
                        let items = chat_event(item, &model, &conversation, &end);
                        Some((stream::iter(items), (events, ended, end)))
                    }
                })
                .flatten();
                let frames = stream::once(async move { opening })
                    .chain(
                        first
                            .chain(rest)
                            .flat_map(move |item| stream::iter(writer.frames(item))),
                    )
                    .map(Ok::<_, Infallible>);
                sse::response(frames, &bounds)
            }
            Ok(None) => {
                usage.record(0);
                runs.count("failed");
                OpenAiError::from(ApiError::Agent(arshai::agent::AgentError::Incomplete))
                    .into_response()
            }
            Err(error) => {
                usage.record(0);
                runs.count(status_of(&error));
                OpenAiError::from(error).into_response()
            }
        }
    } else {
        let deadline = Duration::from_secs_f64(state.settings.server.request_timeout_seconds);
        let run = workflow.run_to_end(input, options);
        match control.scope(tokio::time::timeout(deadline, run)).await {
            Ok(Ok(output)) => {
                usage.record(output.usage.total_tokens);
                runs.count("ok");
                record.usage = Some(output.usage);
                let output = answer(output, &model, &conversation_id);
                let total = output.usage;
                response::completion(&model, &[output], total)
            }
            Ok(Err(error)) => {
                usage.record(0);
                runs.count(error.class());
                OpenAiError::from(ApiError::Workflow(Box::new(error))).into_response()
            }
            Err(_) => {
                runs.count("request_timeout");
                OpenAiError::from(ApiError::RequestTimeout(deadline)).into_response()
            }
        }
    };
    if let Some(id) = &conversation_id {
        turn::name_conversation(&mut response, id);
    }
    response.extensions_mut().insert(record);
    Ok(admitted.settle_with_body(response, usage))
}

/// The chat answer of a finished run: its output as the assistant's text.
fn answer(output: RunOutput, model: &str, conversation_id: &Option<ConversationId>) -> AgentOutput {
    let reply = match output.output {
        Value::String(text) => text,
        other => other.to_string(),
    };
    AgentOutput {
        conversation_id: conversation_id.clone(),
        usage: output.usage,
        finish_reason: FinishReason::Stop,
        ..AgentOutput::text(reply, model)
    }
}

/// The agent nodes whose text is the run's answer as it is produced: those that end the
/// run and whose output is the run's — the last node's (no `output` pointer), or the state
/// key a one-level pointer (`/reply`) names. Any other pointer: none (the answer is sent
/// whole at the end).
fn answering_nodes(workflow: &Workflow) -> HashSet<String> {
    let key = match workflow.output_pointer() {
        None => None,
        Some(pointer) => match pointer.strip_prefix('/') {
            Some(key) if !key.is_empty() && !key.contains(['/', '~']) => Some(key),
            _ => return HashSet::new(),
        },
    };
    workflow
        .nodes()
        .iter()
        .filter(|node| {
            matches!(node.kind(), NodeKind::Agent(_))
                && matches!(node.route(), Route::End)
                && key.is_none_or(|key| node.output_key() == key)
        })
        .map(|node| node.name().to_owned())
        .collect()
}

/// The turn events one workflow event becomes: an answering node's text delta; when the
/// run is done, the part of the answer not streamed yet and the answer; the error; nothing
/// for the other events.
fn chat_event(
    item: Result<WorkflowEvent, ApiError>,
    model: &str,
    conversation_id: &Option<ConversationId>,
    end: &RunEnd,
) -> Vec<Result<AgentEvent, ApiError>> {
    match item {
        Ok(WorkflowEvent::Agent {
            node,
            event: AgentEvent::TextDelta(text),
        }) if end.answering.contains(&node) => {
            end.streamed_text().push_str(&text);
            vec![Ok(AgentEvent::TextDelta(text))]
        }
        Ok(WorkflowEvent::Done(output)) => {
            end.end("ok", output.usage.total_tokens);
            let answer = answer(output, model, conversation_id);
            let mut events = Vec::with_capacity(2);
            let streamed = std::mem::take(&mut *end.streamed_text());
            match answer.reply.strip_prefix(streamed.as_str()) {
                Some("") => {}
                Some(rest) => events.push(Ok(AgentEvent::TextDelta(rest.to_owned()))),
                // A node that ends the run streamed text that is not the answer (it failed
                // and its fallback answered): what was sent cannot be taken back.
                None => tracing::warn!(
                    "a workflow's streamed text differs from its answer; the answer is not resent"
                ),
            }
            events.push(Ok(AgentEvent::Done(answer)));
            events
        }
        Ok(_) => Vec::new(),
        Err(error) => {
            end.end(status_of(&error), 0);
            vec![Err(error)]
        }
    }
}

/// Counts a streamed run once, when it ends (or when the client leaves: `cancelled`), and
/// records its tokens for the settle.
struct RunEnd {
    runs: RunCounter,
    usage: Arc<limits::TurnUsage>,
    ended: AtomicBool,
    /// The nodes whose deltas are streamed ([`answering_nodes`]).
    answering: HashSet<String>,
    /// The answer's text streamed so far.
    streamed: Mutex<String>,
}

impl RunEnd {
    fn streamed_text(&self) -> std::sync::MutexGuard<'_, String> {
        // A poisoned lock only means a panic elsewhere; the text is still whole.
        self.streamed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn end(&self, status: &'static str, tokens: u64) {
        if !self.ended.swap(true, Ordering::Relaxed) {
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
