//! The conversation agent's streamed turns: text deltas as the model writes them, and the
//! turn recorded whole or not at all.
//!
//! A turn is recorded only after the model's answer is complete, in one atomic append of
//! the new messages and the answer, before [`AgentEvent::Done`] is sent. Dropping the
//! stream (a client that disconnects) cancels the upstream call; if that happens before the
//! append, nothing of the turn is recorded, not even the user's message. The turn lease is
//! released on every path (explicitly, or by [`TurnLease`]'s drop when cancelled).

use std::sync::Arc;

use futures::StreamExt;

use super::ConversationAgent;
use crate::agent::{
    AgentError, AgentEvent, AgentEventStream, AgentInput, EventSender, TurnRequest, TurnSummary,
    event_stream,
};
use crate::llm::{ChatRequest, FinishReason, Message, Sampling, StreamEvent, ToolCall, Usage};
use crate::memory::{ConversationId, ConversationKey, MemoryError, TurnLease};

/// [`crate::agent::Agent::process_stream`] for [`ConversationAgent`].
pub(super) fn process_stream(agent: Arc<ConversationAgent>, input: AgentInput) -> AgentEventStream {
    let request = TurnRequest {
        tenant: input.tenant,
        conversation_id: Some(
            input
                .conversation_id
                .unwrap_or_else(ConversationId::generate),
        ),
        messages: vec![Message::user(input.message)],
        sampling: Sampling::default(),
        request_id: input.request_id,
    };
    turn_stream(agent, request)
}

/// [`crate::agent::Agent::turn_stream`] for [`ConversationAgent`].
pub(super) fn turn_stream(agent: Arc<ConversationAgent>, request: TurnRequest) -> AgentEventStream {
    event_stream(move |mut events| async move {
        match run(&agent, request, &mut events).await {
            Ok(Some(summary)) => {
                events.send(Ok(AgentEvent::Done(summary))).await;
            }
            // The consumer is gone; there is nobody to tell.
            Ok(None) => {}
            Err(error) => {
                events.send(Err(error)).await;
            }
        }
    })
}

/// The model's complete answer to one call.
struct Answer {
    text: String,
    tool_calls: Vec<ToolCall>,
    usage: Usage,
    model: String,
    finish_reason: FinishReason,
}

/// Runs the turn; `Ok(None)` when the consumer went away before the end.
async fn run(
    agent: &ConversationAgent,
    request: TurnRequest,
    events: &mut EventSender,
) -> Result<Option<TurnSummary>, AgentError> {
    validate(&request.messages)?;
    let Some(id) = request.conversation_id.clone() else {
        let Some(answer) = answer(agent, Vec::new(), None, &request, events).await? else {
            return Ok(None);
        };
        return Ok(Some(summary(None, answer)));
    };
    let key = ConversationKey::new(request.tenant.clone(), id);
    let lease =
        TurnLease::acquire(Arc::clone(&agent.memory), key.clone(), agent.config.lease).await?;
    let result = recorded_turn(agent, &key, request, events).await;
    if let Err(error) = lease.release().await {
        tracing::warn!(%error, "could not release a turn lease; it expires on its own");
    }
    result
}

fn validate(messages: &[Message]) -> Result<(), AgentError> {
    match messages.last() {
        None => Err(AgentError::InvalidInput("there are no messages".to_owned())),
        Some(last)
            if last.content.trim().is_empty()
                && last.tool_calls.is_empty()
                && last.tool_call_id.is_none() =>
        {
            Err(AgentError::InvalidInput("the message is empty".to_owned()))
        }
        Some(_) => Ok(()),
    }
}

/// A turn on a conversation, under its lease: load, answer, append whole.
async fn recorded_turn(
    agent: &ConversationAgent,
    key: &ConversationKey,
    request: TurnRequest,
    events: &mut EventSender,
) -> Result<Option<TurnSummary>, AgentError> {
    let stored = agent.memory.load(key).await?.unwrap_or_default();
    let Some(answer) = answer(
        agent,
        stored.messages,
        stored.working_memory.as_deref(),
        &request,
        events,
    )
    .await?
    else {
        return Ok(None);
    };
    // As in the non-streamed turn, the tool exchange is not kept, only the answer.
    let mut turn = request.messages;
    turn.push(Message::assistant(answer.text.clone()));
    match agent.memory.append(key, &turn, Some(stored.version)).await {
        Ok(_) => {}
        Err(MemoryError::Conflict { expected, actual }) => {
            // The lease expired during a very long turn and another writer got in: keep the
            // turn anyway, after theirs (the append is still atomic).
            tracing::warn!(conversation = %key.id, expected, actual,
                "conversation changed during the streamed turn; appending after the other writer");
            agent.memory.append(key, &turn, None).await?;
        }
        Err(error) => return Err(error.into()),
    }
    Ok(Some(summary(Some(key.id.clone()), answer)))
}

/// Streams the model's answer over `history` + the request's messages, forwarding deltas.
///
/// With tools, this is [`crate::agent::ToolSet::run`]'s loop, streamed: the calls of each
/// round are forwarded as they complete, run in parallel, their results forwarded and sent
/// back, until the model answers in text (after `max_rounds`, once more without tools).
/// The answer's text is the last round's, as in the non-streamed turn; the deltas of every
/// round are forwarded.
async fn answer(
    agent: &ConversationAgent,
    mut history: Vec<Message>,
    working_memory: Option<&str>,
    request: &TurnRequest,
    events: &mut EventSender,
) -> Result<Option<Answer>, AgentError> {
    history.extend(request.messages.iter().cloned());
    let config = &agent.config;
    let system = system_prompt(&config.system_prompt, working_memory);
    let mut chat = ChatRequest {
        model: config.model.clone(),
        system: (!system.is_empty()).then_some(system),
        messages: history,
        sampling: Sampling {
            temperature: request.sampling.temperature.or(config.sampling.temperature),
            top_p: request.sampling.top_p.or(config.sampling.top_p),
            max_tokens: request.sampling.max_tokens.or(config.sampling.max_tokens),
        },
        request_id: request.request_id.clone(),
        tools: agent
            .tools
            .as_ref()
            .map(|tools| tools.definitions())
            .unwrap_or_default(),
        ..ChatRequest::default()
    };
    let max_rounds = agent.tools.as_ref().map_or(0, |tools| tools.max_rounds);
    let mut usage = Usage::default();
    for round in 0..=max_rounds {
        if round == max_rounds {
            chat.tools.clear();
        }
        let Some(mut step) = stream_call(agent, &chat, events).await? else {
            return Ok(None);
        };
        usage += step.usage;
        let tools = match &agent.tools {
            Some(tools) if !step.tool_calls.is_empty() && !chat.tools.is_empty() => tools,
            _ => {
                step.usage = usage;
                return Ok(Some(step));
            }
        };
        let calls = std::mem::take(&mut step.tool_calls);
        let results = tools.execute(&calls).await;
        for (call, result) in calls.iter().zip(&results) {
            let event = AgentEvent::ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                content: result.content.clone(),
            };
            if !events.send(Ok(event)).await {
                return Ok(None);
            }
        }
        chat.messages.push(Message::tool_calls(step.text, calls));
        chat.messages.extend(results);
    }
    // The last round offers no tools, so it always returned above.
    Err(AgentError::Incomplete)
}

/// One streamed model call; `Ok(None)` when the consumer went away.
async fn stream_call(
    agent: &ConversationAgent,
    chat: &ChatRequest,
    events: &mut EventSender,
) -> Result<Option<Answer>, AgentError> {
    let mut upstream = agent.llm.stream(chat);
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let mut usage = Usage::default();
    let mut finish = None;
    while let Some(event) = upstream.next().await {
        let forwarded = match event? {
            StreamEvent::TextDelta(delta) => {
                text.push_str(&delta);
                AgentEvent::TextDelta(delta)
            }
            StreamEvent::ToolCall(call) => {
                tool_calls.push(call.clone());
                AgentEvent::ToolCall(call)
            }
            StreamEvent::Usage(used) => {
                usage += used;
                continue;
            }
            StreamEvent::Finish { reason, model } => {
                finish = Some((reason, model));
                continue;
            }
        };
        if !events.send(Ok(forwarded)).await {
            return Ok(None);
        }
    }
    let (finish_reason, model) = finish.ok_or(AgentError::Incomplete)?;
    Ok(Some(Answer {
        text,
        tool_calls,
        usage,
        model,
        finish_reason,
    }))
}

/// The system prompt, followed by the conversation's working memory when it has one.
fn system_prompt(prompt: &str, working_memory: Option<&str>) -> String {
    match working_memory {
        Some(notes) if !notes.is_empty() => {
            format!("{prompt}\n\nWhat you know about this conversation:\n{notes}")
        }
        _ => prompt.to_owned(),
    }
}

fn summary(conversation_id: Option<ConversationId>, answer: Answer) -> TurnSummary {
    TurnSummary {
        conversation_id,
        reply: answer.text,
        usage: answer.usage,
        model: answer.model,
        finish_reason: answer.finish_reason,
    }
}
