//! [`EdgeChooser`]: code (or a model) that picks the next node among an edge's targets;
//! [`AgentChooser`] asks an agent to classify.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::state::WorkflowState;
use crate::agent::{Agent, AgentInput};

/// Why a chooser could not choose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChooseError(pub String);

/// Picks one of `targets` (node names) from the state: the router of a chosen edge or of
/// the entry. A router agent, a rules engine or a classifier plugs in here.
#[async_trait]
pub trait EdgeChooser: Send + Sync + 'static {
    /// The chosen target; it must be one of `targets`.
    async fn choose(
        &self,
        state: &WorkflowState,
        targets: &[String],
    ) -> Result<String, ChooseError>;
}

/// A chooser from a function of the state.
pub struct FnChooser<F>(pub F);

#[async_trait]
impl<F> EdgeChooser for FnChooser<F>
where
    F: Fn(&WorkflowState, &[String]) -> Result<String, ChooseError> + Send + Sync + 'static,
{
    async fn choose(
        &self,
        state: &WorkflowState,
        targets: &[String],
    ) -> Result<String, ChooseError> {
        (self.0)(state, targets)
    }
}

/// A chooser that asks an agent: the agent gets the value at `input` (default `/input`)
/// and the list of targets, statelessly, and its reply names the target.
///
/// The reply matches a target when, trimmed of whitespace, quotes and a final full stop,
/// it equals the target's name ignoring ASCII case; failing that, the target named
/// earliest in the reply is taken. A reply naming none is an error.
pub struct AgentChooser {
    agent: Arc<dyn Agent>,
    input: String,
}

impl AgentChooser {
    /// A chooser asking `agent` about the run's input.
    pub fn new(agent: Arc<dyn Agent>) -> Self {
        Self {
            agent,
            input: "/input".to_owned(),
        }
    }

    /// Asks about the value at `pointer` instead of the run's input.
    pub fn input(mut self, pointer: impl Into<String>) -> Self {
        self.input = pointer.into();
        self
    }
}

/// Which of `targets` a classifier's `reply` names.
pub fn target_named(reply: &str, targets: &[String]) -> Option<String> {
    let cleaned = reply
        .trim()
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '`' || c == '.')
        .trim();
    targets
        .iter()
        .find(|target| target.eq_ignore_ascii_case(cleaned))
        .or_else(|| {
            let lower = reply.to_ascii_lowercase();
            targets
                .iter()
                .filter_map(|target| Some((lower.find(&target.to_ascii_lowercase())?, target)))
                .min_by_key(|(at, _)| *at)
                .map(|(_, target)| target)
        })
        .cloned()
}

#[async_trait]
impl EdgeChooser for AgentChooser {
    async fn choose(
        &self,
        state: &WorkflowState,
        targets: &[String],
    ) -> Result<String, ChooseError> {
        let subject = match state.read(&self.input) {
            Some(Value::String(text)) => text,
            Some(other) => other.to_string(),
            None => {
                return Err(ChooseError(format!(
                    "its input {:?} is not in the state",
                    self.input
                )));
            }
        };
        let prompt = format!(
            "Answer with exactly one of: {}.\n\n{subject}",
            targets.join(", ")
        );
        let input = AgentInput::stateless(vec![crate::llm::Message::user(prompt)]);
        let output = Arc::clone(&self.agent)
            .respond(input)
            .await
            .map_err(|error| ChooseError(format!("agent {:?}: {error}", self.agent.name())))?;
        target_named(&output.reply, targets).ok_or_else(|| {
            ChooseError(format!(
                "agent {:?} answered {:?}, which names none of {}",
                self.agent.name(),
                output.reply,
                targets.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_names_a_target_exactly_or_by_mention() {
        let targets = ["billing".to_owned(), "technical".to_owned()];
        assert_eq!(
            target_named(" Billing.\n", &targets).as_deref(),
            Some("billing")
        );
        assert_eq!(
            target_named("This is a technical question", &targets).as_deref(),
            Some("technical")
        );
        assert_eq!(
            target_named("technical, not billing", &targets).as_deref(),
            Some("technical")
        );
        assert_eq!(target_named("no idea", &targets), None);
    }
}
