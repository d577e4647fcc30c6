//! `GET` and `DELETE /v1/agents/{agent}/conversations/{id}`: read or forget a conversation.
//!
//! Memory is shared by every agent of a tenant: the agent in the path must exist, but the
//! conversation is the same whichever agent names it.

use std::collections::BTreeMap;

use arshai::llm::Message;
use arshai::memory::{ConversationId, ConversationKey};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::auth::Tenant;
use crate::extract::PathParams;
use crate::{ApiError, AppState};

/// A conversation as the API shows it.
#[derive(Debug, Serialize)]
pub struct ConversationView {
    /// Its id.
    pub conversation_id: ConversationId,
    /// The kept messages, oldest first.
    pub messages: Vec<Message>,
    /// The agent's working memory (a running summary), when it keeps one.
    pub working_memory: Option<String>,
    /// Application metadata.
    pub metadata: BTreeMap<String, String>,
    /// Incremented by every write.
    pub version: u64,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Last write, milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
}

/// The conversation's key, after checking that the agent exists and the id is valid.
fn key(
    state: &AppState,
    tenant: Tenant,
    agent: &str,
    id: String,
) -> Result<ConversationKey, ApiError> {
    if state.agents.get(agent).is_none() {
        return Err(ApiError::UnknownAgent(agent.to_owned()));
    }
    let id =
        ConversationId::parse(id).map_err(|error| ApiError::InvalidRequest(error.to_string()))?;
    // The caller's tenant: another tenant's conversation with the same id is simply absent.
    Ok(ConversationKey::new(tenant.0, id))
}

/// `GET /v1/agents/{agent}/conversations/{id}`.
pub async fn get_conversation(
    State(state): State<AppState>,
    tenant: Tenant,
    PathParams((agent, id)): PathParams<(String, String)>,
) -> Result<Json<ConversationView>, ApiError> {
    let key = key(&state, tenant, &agent, id)?;
    let conversation = state
        .memory
        .load(&key)
        .await
        .map_err(arshai::AgentError::from)?
        .ok_or_else(|| ApiError::ConversationNotFound(key.id.clone()))?;
    Ok(Json(ConversationView {
        conversation_id: key.id,
        messages: conversation.messages,
        working_memory: conversation.working_memory,
        metadata: conversation.metadata,
        version: conversation.version,
        created_at_ms: conversation.created_at_ms,
        updated_at_ms: conversation.updated_at_ms,
    }))
}

/// `DELETE /v1/agents/{agent}/conversations/{id}`: 204, or 404 when there is none.
pub async fn delete_conversation(
    State(state): State<AppState>,
    tenant: Tenant,
    PathParams((agent, id)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let key = key(&state, tenant, &agent, id)?;
    let existed = state
        .memory
        .delete(&key)
        .await
        .map_err(arshai::AgentError::from)?;
    if existed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::ConversationNotFound(key.id))
    }
}
