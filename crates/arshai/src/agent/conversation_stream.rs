//! The conversation agent's streamed turns: text deltas as the model writes them, and the
//! turn recorded whole or not at all.
//!
//! A turn is recorded only after the model's answer is complete, in one atomic append of
//! the new messages and the answer, before [`AgentEvent::Done`] is sent. Dropping the
//! stream (a client that disconnects) cancels the upstream call; if that happens before the
//! commit, nothing of the turn is recorded, not even the user's message. The turn's lease is
//! released on every path (explicitly, or by [`Turn`]'s drop when cancelled).

use std::sync::Arc;

use futures::StreamExt;

use super::super::idempotency::{conversation_for_key, key_for, receipt_body, recorded};
use super::ConversationAgent;
use crate::agent::{
    AgentError, AgentEvent, AgentEventStream, AgentInput, EventSender, TurnRequest, TurnSummary,
    event_stream,
};
use crate::llm::{ChatRequest, FinishReason, Message, Sampling, StreamEvent, ToolCall, Usage};
use crate::memory::{ConversationId, ConversationKey, IdempotencyKey, Turn, TurnStart};

/// [`crate::agent::Agent::process_stream`] for [`ConversationAgent`].
pub(super) fn process_stream(agent: Arc<ConversationAgent>, input: AgentInput) -> AgentEventStream {
    let conversation_id = input.conversation_id.unwrap_or_else(|| {
        input
            .idempotency_key
            .as_deref()
            .map_or_else(ConversationId::generate, conversation_for_key)
    });
    let request = TurnRequest {
        tenant: input.tenant,
        conversation_id: Some(conversation_id),
        messages: vec![Message::user(input.message)],
        sampling: Sampling::default(),
        request_id: input.request_id,
        idempotency_key: input.idempotency_key,
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
    let key = ConversationKey::new(request.tenant.clone(), id.clone());
    let idempotency = key_for(
        request.idempotency_key.as_ref(),
        &agent.config.name,
        &request.messages,
    );
    let turn = match Turn::begin(
        Arc::clone(&agent.memory),
        key,
        agent.config.lease,
        idempotency.as_ref(),
    )
    .await?
    {
        TurnStart::Open(turn) => turn,
        TurnStart::Recorded(receipt) => {
            // The turn was recorded by an earlier attempt: replay its answer.
            let summary = recorded(&receipt)?;
            if !summary.reply.is_empty()
                && !events
                    .send(Ok(AgentEvent::TextDelta(summary.reply.clone())))
                    .await
            {
                return Ok(None);
            }
            return Ok(Some(summary));
        }
    };
    recorded_turn(agent, turn, request, idempotency, events).await
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

/// A turn on a conversation, under its lease: answer, then commit whole (or release).
async fn recorded_turn(
    agent: &ConversationAgent,
    mut turn: Turn,
    request: TurnRequest,
    idempotency: Option<IdempotencyKey>,
    events: &mut EventSender,
) -> Result<Option<TurnSummary>, AgentError> {
    let stored = turn.take_conversation();
    let answered = answer(
        agent,
        stored.messages,
        stored.working_memory.as_deref(),
        &request,
        events,
    )
    .await;
    let answer = match answered {
        Ok(Some(answer)) => answer,
        Ok(None) => {
            turn.abort().await;
            return Ok(None);
        }
        Err(error) => {
            turn.abort().await;
            return Err(error);
        }
    };
    let id = turn.key().id.clone();
    let summary = summary(Some(id), answer);
    let body = match &idempotency {
        Some(_) => receipt_body(&summary)?,
        None => String::new(),
    };
    // As in the non-streamed turn, the tool exchange is not kept, only the answer.
    let mut messages = request.messages;
    messages.push(Message::assistant(summary.reply.clone()));
    turn.commit(&messages, idempotency.as_ref().map(|k| (k, body.as_str())))
        .await?;
    Ok(Some(summary))
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
