//! `POST /v1/agents/{agent}/messages`: one agent turn, in the native wire format — a JSON
//! answer, or with `"stream": true` server-sent events ([`events`]).

pub mod events;

use std::convert::Infallible;

use arshai::agent::{AgentInput, AgentOutput, ConversationRef, Delivery};
use arshai::llm::{Message, Usage};
use arshai::memory::ConversationId;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::auth::Tenant;
use crate::extract::{IdempotencyKey, JsonBody, PathParams};
use crate::request_id::RequestId;
use crate::turn::sse::{self, StartedTurn, StreamBounds};
use crate::turn::{self, TurnCodec, TurnContext};
use crate::{ApiError, AppState};

/// The request body.
#[derive(Debug, Deserialize)]
pub struct MessageRequest {
    /// The conversation to continue; a new one is started when absent.
    #[serde(default)]
    pub conversation_id: Option<ConversationId>,
    /// The user's message.
    pub message: String,
    /// Answer with server-sent events as the reply is generated (see [`events`]).
    #[serde(default)]
    pub stream: bool,
}

/// The response body.
#[derive(Debug, Serialize, Deserialize)]
pub struct MessageResponse {
    /// The conversation the turn belongs to.
    pub conversation_id: ConversationId,
    /// The agent's answer.
    pub reply: String,
    /// Tokens used by the turn.
    pub usage: Usage,
}

/// Handles one turn.
pub async fn post_message(
    State(state): State<AppState>,
    PathParams(agent_name): PathParams<String>,
    tenant: Tenant,
    context: TurnContext,
    request_id: RequestId,
    idempotency: IdempotencyKey,
    body: Result<JsonBody<MessageRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let agent = state
        .agents
        .get(&agent_name)
        .cloned()
        .ok_or(ApiError::UnknownAgent(agent_name))?;
    let JsonBody(request) = body?;
    if request.message.trim().is_empty() {
        return Err(ApiError::InvalidRequest(
            "`message` must not be empty".to_owned(),
        ));
    }
    let mut input = AgentInput {
        tenant: tenant.0,
        request_id: Some(request_id.0),
        idempotency_key: idempotency.0,
        delivery: if request.stream {
            Delivery::Streamed
        } else {
            Delivery::Whole
        },
        ..AgentInput::with_messages(
            request
                .conversation_id
                .map_or(ConversationRef::New, ConversationRef::Id),
            vec![Message::user(request.message)],
        )
    };
    // Chosen here rather than by the agent so a stream names it before its first event.
    let conversation_id = input.pin_conversation();
    Ok(turn::run(&state, agent, input, &context, Native { conversation_id }).await)
}

/// The native wire format of a turn.
struct Native {
    conversation_id: Option<ConversationId>,
}

impl TurnCodec for Native {
    fn complete(self, output: AgentOutput) -> Response {
        match output.conversation_id.or(self.conversation_id) {
            Some(conversation_id) => Json(MessageResponse {
                conversation_id,
                reply: output.reply,
                usage: output.usage,
            })
            .into_response(),
            // The turn was pinned to a conversation; an agent that answered without one
            // broke its contract.
            None => ApiError::Agent(arshai::AgentError::Incomplete).into_response(),
        }
    }

    fn stream(self, events: StartedTurn, bounds: &StreamBounds) -> Response {
        let frames = events.map(|item| Ok::<_, Infallible>(events::frame(item)));
        let mut response = sse::response(frames, bounds);
        if let Some(id) = &self.conversation_id {
            turn::name_conversation(&mut response, id);
        }
        response
    }

    fn fail(self, error: ApiError) -> Response {
        error.into_response()
    }
}
