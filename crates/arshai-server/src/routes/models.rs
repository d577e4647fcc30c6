//! `GET /v1/models` and `GET /v1/models/{model}`: the agents, as OpenAI model objects, so
//! OpenAI clients can discover what to put in `model`; then the workflows
//! (`owned_by: "arshai-workflow"`), which run at `/v1/workflows/{name}/runs` and, by name
//! in `model`, through `/v1/chat/completions` (an agent of the same name comes first).

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::error::OpenAiError;
use crate::extract::PathParams;
use crate::{ApiError, AppState};

/// An OpenAI `model` object.
#[derive(Debug, Serialize)]
pub struct Model {
    /// The agent's name.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Creation time in Unix seconds; agents are declared in settings and have none, so `0`.
    pub created: u64,
    /// `arshai` for an agent, `arshai-workflow` for a workflow.
    pub owned_by: &'static str,
}

impl Model {
    fn new(name: &str) -> Self {
        Self {
            id: name.to_owned(),
            object: "model",
            created: 0,
            owned_by: "arshai",
        }
    }

    fn workflow(name: &str) -> Self {
        Self {
            owned_by: "arshai-workflow",
            ..Self::new(name)
        }
    }
}

/// An OpenAI `list` of models.
#[derive(Debug, Serialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    /// One model per agent, by name.
    pub data: Vec<Model>,
}

/// `GET /v1/models`.
pub async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: state
            .agents
            .iter()
            .map(|agent| Model::new(agent.name()))
            .chain(
                state
                    .workflows
                    .iter()
                    .map(|workflow| Model::workflow(workflow.name())),
            )
            .collect(),
    })
}

/// `GET /v1/models/{model}`.
pub async fn get_model(
    State(state): State<AppState>,
    PathParams(model): PathParams<String>,
) -> Result<Json<Model>, OpenAiError> {
    match state.agents.get(&model) {
        Some(agent) => Ok(Json(Model::new(agent.name()))),
        None => match state.workflows.get(&model) {
            Some(workflow) => Ok(Json(Model::workflow(workflow.name()))),
            None => Err(ApiError::UnknownAgent(model).into()),
        },
    }
}
