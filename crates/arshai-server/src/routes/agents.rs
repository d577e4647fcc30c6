//! `GET /v1/agents`: the agents this server exposes.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::AppState;

/// One agent in the listing.
#[derive(Debug, Serialize)]
pub struct AgentInfo {
    /// Its name, as used in `/v1/agents/{agent}/…` and as `model` in chat completions.
    pub name: String,
    /// Its type (`conversation`, …).
    #[serde(rename = "type")]
    pub agent_type: &'static str,
}

/// The listing.
#[derive(Debug, Serialize)]
pub struct AgentList {
    /// Every agent, by name.
    pub agents: Vec<AgentInfo>,
}

/// `GET /v1/agents`.
pub async fn list_agents(State(state): State<AppState>) -> Json<AgentList> {
    Json(AgentList {
        agents: state
            .agents
            .iter()
            .map(|agent| AgentInfo {
                name: agent.name().to_owned(),
                agent_type: agent.agent_type(),
            })
            .collect(),
    })
}
