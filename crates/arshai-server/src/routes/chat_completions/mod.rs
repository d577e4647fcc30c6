//! `POST /v1/chat/completions`: the OpenAI Chat Completions API over our agents, so OpenAI
//! clients and SDKs work unchanged.
//!
//! `model` names an agent; the agent's system prompt (and tools) apply. When no agent has
//! that name and a workflow has, the request runs the workflow (see [`workflow`]): its
//! input is the last user message's text, its output the assistant's message. Without an
//! `X-Conversation-Id` header the turn is stateless over the given messages. With one, the
//! conversation's stored history comes first, and the given messages (send only the new
//! ones) and the answer are appended when the turn completes. Streaming follows OpenAI:
//! `chat.completion.chunk` frames, `stream_options.include_usage`, `data: [DONE]`. Errors use
//! OpenAI's error object ([`OpenAiError`]); a failure after the stream started is sent as a
//! `data: {"error":{…}}` frame and the stream ends without `[DONE]`.

mod choices;
mod request;
mod response;
mod workflow;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use arshai::agent::AgentOutput;
use arshai::memory::ConversationId;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};

use choices::Choices;
pub use request::{
    ChatCompletionRequest, ChatMessage, ContentPart, MessageContent, NamedFunction, StopSequences,
    StreamOptions, WireFunction, WireFunctionDefinition, WireImageUrl, WireJsonSchema,
    WireResponseFormat, WireTool, WireToolCall, WireToolChoice,
};
use response::ChunkWriter;

use crate::auth::Tenant;
use crate::error::OpenAiError;
use crate::extract::{IdempotencyKey, JsonBody};
use crate::request_id::RequestId;
use crate::turn::sse::{self, StartedTurn, StreamBounds};
use crate::turn::{self, CONVERSATION_ID_HEADER, TurnCodec, TurnContext};
use crate::{ApiError, AppState};

/// `POST /v1/chat/completions`.
pub async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    context: TurnContext,
    request_id: RequestId,
    idempotency: IdempotencyKey,
    headers: HeaderMap,
    body: Result<JsonBody<ChatCompletionRequest>, ApiError>,
) -> Result<Response, OpenAiError> {
    let JsonBody(request) = body?;
    if state.agents.get(&request.model).is_none()
        && let Some(workflow) = state.workflows.get(&request.model).cloned()
    {
        if !context.caller.may_use(&request.model) {
            return Err(OpenAiError::with_param(
                ApiError::Forbidden(format!(
                    "this API key may not use the workflow {:?}",
                    request.model
                )),
                "model",
            ));
        }
        let caller = workflow::WorkflowCaller {
            tenant: tenant.0,
            context: &context,
            request_id: request_id.0,
            conversation_id: conversation_header(&headers)?,
        };
        return workflow::complete(&state, workflow, &request, caller).await;
    }
    let agent = turn::model_agent(&state, &context.caller, &request.model)?;
    let conversation_id = conversation_header(&headers)?;
    let mut input = request.to_input(tenant.0, conversation_id.clone(), request_id.0)?;
    // Stateless turns record nothing, so only a conversation's turn needs the key.
    if conversation_id.is_some() {
        input.idempotency_key = idempotency.0;
    }
    let others = Arc::new(Mutex::new(Vec::new()));
    let agent = match request.choices() {
        1 => agent,
        n => Arc::new(Choices::new(agent, n, Arc::clone(&others))),
    };
    let codec = OpenAi {
        model: request.model.clone(),
        include_usage: request.includes_usage(),
        conversation_id,
        others,
    };
    Ok(turn::run(&state, agent, input, &context, codec).await)
}

/// The conversation the `X-Conversation-Id` header names, if it is sent.
fn conversation_header(headers: &HeaderMap) -> Result<Option<ConversationId>, ApiError> {
    let Some(value) = headers.get(CONVERSATION_ID_HEADER) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::InvalidRequest("X-Conversation-Id is not visible ASCII".to_owned())
    })?;
    ConversationId::parse(text)
        .map(Some)
        .map_err(|error| ApiError::InvalidRequest(format!("X-Conversation-Id: {error}")))
}

/// OpenAI's wire format of a turn.
struct OpenAi {
    /// The agent, as the request named it.
    model: String,
    include_usage: bool,
    conversation_id: Option<ConversationId>,
    /// The answers after the first of an `n > 1` request.
    others: Arc<Mutex<Vec<AgentOutput>>>,
}

impl OpenAi {
    fn named(&self, mut response: Response) -> Response {
        if let Some(id) = &self.conversation_id {
            turn::name_conversation(&mut response, id);
        }
        response
    }
}

impl TurnCodec for OpenAi {
    fn complete(self, output: AgentOutput) -> Response {
        // The first output carries the usage of every choice.
        let usage = output.usage;
        let mut outputs = vec![output];
        outputs.extend(Choices::take(&self.others));
        self.named(response::completion(&self.model, &outputs, usage))
    }

    fn stream(self, events: StartedTurn, bounds: &StreamBounds) -> Response {
        let writer = ChunkWriter::new(self.model.clone(), self.include_usage);
        let opening = writer.opening();
        let frames = stream::once(async move { opening })
            .chain(events.flat_map(move |item| stream::iter(writer.frames(item))))
            .map(Ok::<_, Infallible>);
        self.named(sse::response(frames, bounds))
    }

    fn fail(self, error: ApiError) -> Response {
        OpenAiError::from(error).into_response()
    }
}
