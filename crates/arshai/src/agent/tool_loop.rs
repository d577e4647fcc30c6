//! The one tool loop every turn runs: call the model, run the tools it asks for in
//! parallel, send the results back, and repeat until it answers in text.
//!
//! Each round is one model call, streamed ([`Delivery::Streamed`]: deltas forwarded as the
//! model writes them) or whole ([`Delivery::Whole`]: the provider's non-streaming API, its
//! text forwarded as one delta). Tool calls and their results are forwarded as events in
//! both cases. After `max_rounds` rounds the model is asked once more without tools, so the
//! loop always ends with an answer.

use futures::StreamExt;

use super::{AgentError, AgentEvent, Delivery, EventSender, ToolContext, ToolSet};
use crate::llm::{
    ChatRequest, FinishReason, LlmClient, Message, StreamEvent, ToolCall, ToolDefinition, Usage,
};

/// The model's complete answer to a turn (or to one call of it).
#[derive(Debug)]
pub(crate) struct Answer {
    /// The text of the last call.
    pub text: String,
    /// The calls the last call asked for; once the loop is over, only calls to the caller's
    /// own tools (the turn ends for the caller to run them).
    pub tool_calls: Vec<ToolCall>,
    /// Summed over every call of the turn.
    pub usage: Usage,
    /// The model that answered.
    pub model: String,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
    /// The last call's log probabilities, when asked for.
    pub logprobs: Option<serde_json::Value>,
}

/// Runs the loop over `chat`, offering the model the agent's `tools` and the caller's
/// `client_tools`; `Ok(None)` when the consumer went away before the end. The tools run
/// in `context` (the turn's tenant and request id), and the tokens they report there are
/// added to the turn's usage.
///
/// A round whose calls include a client tool ends the turn with those calls
/// ([`FinishReason::ToolCalls`]); the agent's own calls of that round are not run (the model
/// can ask again once the caller answered), so the history the caller echoes back stays
/// consistent.
pub(crate) async fn answer(
    llm: &dyn LlmClient,
    tools: Option<&ToolSet>,
    client_tools: &[ToolDefinition],
    mut chat: ChatRequest,
    delivery: Delivery,
    context: &ToolContext,
    events: &mut EventSender,
) -> Result<Option<Answer>, AgentError> {
    let server_tools = tools.map(ToolSet::definitions).unwrap_or_default();
    if let Some(clash) = client_tools
        .iter()
        .find(|client| server_tools.iter().any(|own| own.name == client.name))
    {
        return Err(AgentError::InvalidInput(format!(
            "the tool {:?} is one of the agent's own tools; give the client tool another name",
            clash.name
        )));
    }
    let max_rounds = tools.map_or(0, |tools| tools.max_rounds);
    let mut usage = Usage::default();
    for round in 0..=max_rounds {
        // The last round offers only the caller's tools, so the loop always ends.
        chat.tools = if round == max_rounds {
            client_tools.to_vec()
        } else {
            server_tools.iter().chain(client_tools).cloned().collect()
        };
        let Some(mut step) = call(llm, &chat, delivery, events).await? else {
            return Ok(None);
        };
        usage += step.usage;
        let calls = std::mem::take(&mut step.tool_calls);
        let (for_client, for_agent): (Vec<ToolCall>, Vec<ToolCall>) = calls
            .into_iter()
            .partition(|call| client_tools.iter().any(|tool| tool.name == call.name));
        let tools = match tools {
            _ if !for_client.is_empty() => {
                step.tool_calls = for_client;
                step.finish_reason = FinishReason::ToolCalls;
                step.usage = usage;
                return Ok(Some(step));
            }
            Some(tools) if !for_agent.is_empty() && round < max_rounds => tools,
            _ => {
                step.usage = usage;
                return Ok(Some(step));
            }
        };
        let results = tools.execute(&for_agent, context).await;
        usage += context.take_usage();
        for (call, result) in for_agent.iter().zip(&results) {
            let event = AgentEvent::ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                content: result.content.clone(),
            };
            if !events.send(Ok(event)).await {
                return Ok(None);
            }
        }
        chat.messages
            .push(Message::tool_calls(step.text, for_agent));
        chat.messages.extend(results);
    }
    // The last round offers none of the agent's tools, so it always returned above.
    Err(AgentError::Incomplete)
}

/// One model call, delivered as asked; `Ok(None)` when the consumer went away.
async fn call(
    llm: &dyn LlmClient,
    chat: &ChatRequest,
    delivery: Delivery,
    events: &mut EventSender,
) -> Result<Option<Answer>, AgentError> {
    match delivery {
        Delivery::Streamed => streamed_call(llm, chat, events).await,
        Delivery::Whole => {
            let response = llm.chat(chat).await?;
            if !response.text.is_empty()
                && !events
                    .send(Ok(AgentEvent::TextDelta(response.text.clone())))
                    .await
            {
                return Ok(None);
            }
            for call in &response.tool_calls {
                if !events.send(Ok(AgentEvent::ToolCall(call.clone()))).await {
                    return Ok(None);
                }
            }
            Ok(Some(Answer {
                text: response.text,
                tool_calls: response.tool_calls,
                usage: response.usage,
                model: response.model,
                finish_reason: response.finish_reason,
                logprobs: response.logprobs,
            }))
        }
    }
}

async fn streamed_call(
    llm: &dyn LlmClient,
    chat: &ChatRequest,
    events: &mut EventSender,
) -> Result<Option<Answer>, AgentError> {
    let mut upstream = llm.stream(chat);
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
        logprobs: None,
    }))
}
