//! `POST /v1/agents/{agent}/messages`: one agent turn.

use std::sync::Arc;
use std::time::Duration;

use arshai::agent::{Agent, AgentInput};
use arshai::llm::Usage;
use arshai::memory::ConversationId;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::auth::Tenant;
use crate::idempotency::IdempotencyKey;
use crate::request_id::{RequestId, TurnRecord};
use crate::{ApiError, AppState};

/// The request body.
#[derive(Debug, Deserialize)]
pub struct MessageRequest {
    /// The conversation to continue; a new one is started when absent.
    #[serde(default)]
    pub conversation_id: Option<ConversationId>,
    /// The user's message.
    pub message: String,
    /// Answer with server-sent events as the reply is generated (see [`super::message_stream`]).
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
    Path(agent_name): Path<String>,
    tenant: Tenant,
    request_id: RequestId,
    idempotency: IdempotencyKey,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let agent = state
        .agents
        .get(&agent_name)
        .cloned()
        .ok_or(ApiError::UnknownAgent(agent_name))?;
    let mut record = TurnRecord {
        agent: agent.name().to_owned(),
        agent_type: agent.agent_type(),
        usage: None,
    };
    let mut response = match turn(&state, agent, tenant, request_id, idempotency, body).await {
        Ok(Answer::Complete(answer)) => {
            record.usage = Some(answer.usage);
            Json(answer).into_response()
        }
        Ok(Answer::Streaming(response)) => response,
        Err(error) => error.into_response(),
    };
    response.extensions_mut().insert(record);
    Ok(response)
}

async fn turn(
    state: &AppState,
    agent: Arc<dyn Agent>,
    tenant: Tenant,
    request_id: RequestId,
    idempotency: IdempotencyKey,
    body: Result<Bytes, BytesRejection>,
) -> Result<Answer, ApiError> {
    let body = body.map_err(|rejection| body_error(&rejection, state))?;
    let request = parse_json::<MessageRequest>(&body)?;
    if request.message.trim().is_empty() {
        return Err(ApiError::InvalidRequest(
            "`message` must not be empty".to_owned(),
        ));
    }
    let input = AgentInput {
        tenant: tenant.0,
        conversation_id: request.conversation_id,
        message: request.message,
        request_id: Some(request_id.0),
        idempotency_key: idempotency.0,
    };
    if request.stream {
        return super::message_stream::respond(state, agent, input)
            .await
            .map(Answer::Streaming);
    }
    let deadline = Duration::from_secs_f64(state.settings.server.request_timeout_seconds);
    let output = tokio::time::timeout(deadline, agent.process(input))
        .await
        .map_err(|_| ApiError::RequestTimeout(deadline))??;
    Ok(Answer::Complete(MessageResponse {
        conversation_id: output.conversation_id,
        reply: output.reply,
        usage: output.usage,
    }))
}

/// A turn's answer: complete JSON, or a stream already under way.
enum Answer {
    Complete(MessageResponse),
    Streaming(Response),
}

/// Maps a body that could not be buffered to 413 or 400.
pub fn body_error(rejection: &BytesRejection, state: &AppState) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::BodyTooLarge(state.settings.server.max_body_bytes)
    } else {
        ApiError::BodyUnreadable(rejection.body_text())
    }
}

/// Parses a JSON body: syntax errors are 400, well-formed but wrong shapes are 422.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::InvalidRequest(error.to_string()),
        _ => ApiError::MalformedJson(error.to_string()),
    })
}
