//! The router agent: classifies each message with a [`RouteClassifier`] and hands the turn,
//! unchanged (the same conversation, delivery and sampling), to the agent it chose. The
//! chosen agent reads and records the conversation as if it had been called directly; the
//! router adds its classification's tokens (if a model classified) to the turn's usage.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;

use super::{
    Agent, AgentError, AgentEvent, AgentEventStream, AgentInput, RouteClassifier, RouteError,
    event_stream,
};
use crate::llm::Role;

/// An agent that hands each turn to one of several agents.
pub struct RouterAgent {
    name: String,
    classifier: RouteClassifier,
    targets: BTreeMap<String, Arc<dyn Agent>>,
}

/// Why a router could not be built.
#[derive(Debug, thiserror::Error)]
#[error("the router {router:?} routes to {target:?}, which is not one of its agents")]
pub struct RouterError {
    /// The router's name.
    pub router: String,
    /// The route without an agent.
    pub target: String,
}

impl RouterAgent {
    /// A router called `name` over `targets`; every target `classifier` can return must be
    /// among them (by [`Agent::name`]).
    pub fn new(
        name: impl Into<String>,
        classifier: RouteClassifier,
        targets: impl IntoIterator<Item = Arc<dyn Agent>>,
    ) -> Result<Self, RouterError> {
        let name = name.into();
        let targets: BTreeMap<String, Arc<dyn Agent>> = targets
            .into_iter()
            .map(|agent| (agent.name().to_owned(), agent))
            .collect();
        if let Some(missing) = classifier.targets().find(|t| !targets.contains_key(*t)) {
            return Err(RouterError {
                router: name,
                target: missing.to_owned(),
            });
        }
        Ok(Self {
            name,
            classifier,
            targets,
        })
    }

    /// How the router classifies.
    pub fn classifier(&self) -> &RouteClassifier {
        &self.classifier
    }
}

impl Agent for RouterAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn agent_type(&self) -> &'static str {
        "router"
    }

    fn turn(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
        event_stream(move |mut events| async move {
            // The newest user message is what is classified.
            let text = input
                .messages
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map(|m| m.content.clone())
                .unwrap_or_default();
            if text.trim().is_empty() {
                events
                    .send(Err(AgentError::InvalidInput(
                        "there is no user message to route".to_owned(),
                    )))
                    .await;
                return;
            }
            let decision = match self
                .classifier
                .classify(&text, input.request_id.clone())
                .await
            {
                Ok(decision) => decision,
                Err(error) => {
                    events.send(Err(route_failure(&self.name, error))).await;
                    return;
                }
            };
            let Some(target) = self.targets.get(&decision.target) else {
                // `new` checked every target; a decision names one of them.
                events
                    .send(Err(AgentError::Unsupported(format!(
                        "routing to the unknown agent {:?}",
                        decision.target
                    ))))
                    .await;
                return;
            };
            tracing::debug!(router = %self.name, target = %decision.target,
                reason = ?decision.reason, "routed the turn");
            let mut turn = Arc::clone(target).turn(input);
            while let Some(item) = turn.next().await {
                let item = match item {
                    Ok(AgentEvent::Done(mut output)) => {
                        output.usage += decision.usage;
                        Ok(AgentEvent::Done(output))
                    }
                    other => other,
                };
                if !events.send(item).await {
                    return;
                }
            }
        })
    }
}

/// A failed classification as the turn's error: the model's own failure as an LLM error
/// (so it maps to the same status as any upstream failure).
fn route_failure(router: &str, error: RouteError) -> AgentError {
    let text = error.to_string();
    match error.into_llm() {
        Some(llm) => AgentError::Llm(llm),
        None => AgentError::Llm(crate::llm::LlmError::Decode {
            provider: "router",
            message: format!("the router {router:?} could not route the message: {text}"),
        }),
    }
}
