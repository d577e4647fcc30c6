//! The agent an OpenAI-compatible request names in its `model` parameter.

use std::sync::Arc;

use arshai::agent::Agent;

use crate::auth::Caller;
use crate::error::OpenAiError;
use crate::{ApiError, AppState};

/// The agent named `model`, if `caller` may use it: 404 `model_not_found` for an unknown
/// name, 403 `permission_error` (param `model`) for an agent the key is not allowed.
pub fn model_agent(
    state: &AppState,
    caller: &Caller,
    model: &str,
) -> Result<Arc<dyn Agent>, OpenAiError> {
    let agent = state
        .agents
        .get(model)
        .cloned()
        .ok_or_else(|| ApiError::UnknownAgent(model.to_owned()))?;
    if !caller.may_use(model) {
        return Err(OpenAiError::with_param(
            ApiError::Forbidden(format!("this API key may not use the agent {model:?}")),
            "model",
        ));
    }
    Ok(agent)
}
