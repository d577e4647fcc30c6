//! [`RouteClassifier`]: picks which of several named routes a message belongs to, by rules
//! (keywords, regular expressions) and, where configured, by a model call with structured
//! output. The router agent uses it to hand a turn to another agent; a workflow can use it
//! to choose an edge.
//!
//! Rules are tried first, in order; the first that matches wins. Then, with a model, the
//! model is asked to pick one of the routes (their names and descriptions) under a JSON
//! Schema whose `route` is an enum of the names. Then the default route, if any. A model
//! that fails or answers something else falls through to the default.

use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use serde_json::json;

use crate::llm::{
    ChatRequest, JsonSchemaFormat, LlmClient, LlmError, Message, ResponseFormat, Sampling,
    StructuredError, Usage, parse_structured,
};

/// The classifier's instructions to the model when none are configured.
pub const DEFAULT_ROUTER_INSTRUCTIONS: &str = "You route each user message to the one \
route that should handle it. Answer with JSON only: {\"route\": \"<name>\"}.";

/// One route: a target name, what it is for, and the rules that select it.
#[derive(Debug, Clone)]
pub struct Route {
    /// The name the classification returns (an agent's name, for a router agent).
    pub target: String,
    /// What the route is for, shown to the model.
    pub description: String,
    /// The route matches a message containing any of these (case-insensitive, lowercase).
    keywords: Vec<String>,
    /// The route matches a message this expression finds a match in.
    pattern: Option<Regex>,
}

impl Route {
    /// A route to `target`, described by `description`, without rules (only the model or
    /// the default picks it).
    pub fn new(target: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            description: description.into(),
            keywords: Vec::new(),
            pattern: None,
        }
    }

    /// The route also matches a message containing any of `keywords`, ignoring case.
    pub fn keywords<S: AsRef<str>>(mut self, keywords: impl IntoIterator<Item = S>) -> Self {
        self.keywords
            .extend(keywords.into_iter().map(|k| k.as_ref().to_lowercase()));
        self
    }

    /// The route also matches a message `pattern` finds a match in.
    pub fn pattern(mut self, pattern: Regex) -> Self {
        self.pattern = Some(pattern);
        self
    }

    /// Whether the route has rules.
    pub fn has_rules(&self) -> bool {
        !self.keywords.is_empty() || self.pattern.is_some()
    }

    fn matches(&self, lowercase: &str, text: &str) -> Option<RouteReason> {
        if let Some(keyword) = self
            .keywords
            .iter()
            .find(|k| lowercase.contains(k.as_str()))
        {
            return Some(RouteReason::Keyword(keyword.clone()));
        }
        match &self.pattern {
            Some(pattern) if pattern.is_match(text) => Some(RouteReason::Pattern),
            _ => None,
        }
    }
}

/// Why a route was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteReason {
    /// The message contains this keyword of the route.
    Keyword(String),
    /// The route's regular expression matched.
    Pattern,
    /// The model chose it.
    Model,
    /// Nothing else chose: the default route.
    Default,
}

/// The route a message goes to.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteDecision {
    /// The chosen route's target.
    pub target: String,
    /// Why.
    pub reason: RouteReason,
    /// Tokens the model call used (zero when rules decided).
    pub usage: Usage,
}

/// Why no route could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No rule matched and there is neither a model nor a default route.
    #[error("no route matches the message and there is no default route")]
    NoMatch,
    /// The model could not classify and there is no default route.
    #[error("the model could not classify the message: {0}")]
    Model(#[from] StructuredError),
    /// The model named a route that does not exist, and there is no default route.
    #[error("the model chose {0:?}, which is not a route")]
    UnknownRoute(String),
}

impl RouteError {
    /// The LLM error underneath, if the model call itself failed.
    pub fn into_llm(self) -> Option<LlmError> {
        match self {
            Self::Model(StructuredError::Llm(error)) => Some(error),
            _ => None,
        }
    }
}

/// The model that classifies when no rule matches.
#[derive(Clone)]
struct ModelClassifier {
    llm: Arc<dyn LlmClient>,
    model: Option<String>,
    instructions: String,
}

/// Picks a route for a message; see the module documentation for the order.
///
/// ```
/// use arshai::agent::{Route, RouteClassifier, RouteReason};
///
/// let classifier = RouteClassifier::new(vec![
///     Route::new("billing", "Invoices and refunds").keywords(["invoice", "refund"]),
///     Route::new("tech", "Errors and crashes")
///         .pattern(regex::Regex::new(r"(?i)\berror\b|crash").unwrap()),
/// ])
/// .default_route("general");
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let decision = classifier.classify("Where is my INVOICE?", None).await.unwrap();
/// assert_eq!(decision.target, "billing");
/// assert_eq!(classifier.classify("hello", None).await.unwrap().reason, RouteReason::Default);
/// # });
/// ```
#[derive(Clone)]
pub struct RouteClassifier {
    routes: Vec<Route>,
    default: Option<String>,
    model: Option<ModelClassifier>,
}

impl std::fmt::Debug for RouteClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteClassifier")
            .field("routes", &self.routes)
            .field("default", &self.default)
            .field("model", &self.model.as_ref().map(|m| m.llm.provider()))
            .finish()
    }
}

#[derive(Deserialize)]
struct Choice {
    route: String,
}

impl RouteClassifier {
    /// A classifier over `routes`, by their rules only, with no default.
    pub fn new(routes: Vec<Route>) -> Self {
        Self {
            routes,
            default: None,
            model: None,
        }
    }

    /// The route taken when nothing else chooses.
    pub fn default_route(mut self, target: impl Into<String>) -> Self {
        self.default = Some(target.into());
        self
    }

    /// Asks `llm` (model `model`, or its default) when no rule matches, with `instructions`
    /// as the system prompt (default [`DEFAULT_ROUTER_INSTRUCTIONS`] when empty).
    pub fn with_model(
        mut self,
        llm: Arc<dyn LlmClient>,
        model: Option<String>,
        instructions: impl Into<String>,
    ) -> Self {
        let instructions = instructions.into();
        self.model = Some(ModelClassifier {
            llm,
            model,
            instructions: if instructions.trim().is_empty() {
                DEFAULT_ROUTER_INSTRUCTIONS.to_owned()
            } else {
                instructions
            },
        });
        self
    }

    /// The routes, in rule order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Every name a decision can return (the routes' targets and the default).
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.routes
            .iter()
            .map(|route| route.target.as_str())
            .chain(self.default.as_deref())
    }

    /// The route for `text` (`request_id` goes with the model call, if one is made).
    pub async fn classify(
        &self,
        text: &str,
        request_id: Option<String>,
    ) -> Result<RouteDecision, RouteError> {
        let lowercase = text.to_lowercase();
        for route in &self.routes {
            if let Some(reason) = route.matches(&lowercase, text) {
                return Ok(RouteDecision {
                    target: route.target.clone(),
                    reason,
                    usage: Usage::default(),
                });
            }
        }
        let mut usage = Usage::default();
        let failure = match &self.model {
            Some(model) => match self.ask(model, text, request_id, &mut usage).await {
                Ok(decision) => return Ok(decision),
                Err(error) => error,
            },
            None => RouteError::NoMatch,
        };
        match &self.default {
            Some(default) => {
                if !matches!(failure, RouteError::NoMatch) {
                    tracing::warn!(error = %failure, route = %default,
                        "the model did not classify; taking the default route");
                }
                Ok(RouteDecision {
                    target: default.clone(),
                    reason: RouteReason::Default,
                    usage,
                })
            }
            None => Err(failure),
        }
    }

    async fn ask(
        &self,
        model: &ModelClassifier,
        text: &str,
        request_id: Option<String>,
        usage: &mut Usage,
    ) -> Result<RouteDecision, RouteError> {
        let names: Vec<&str> = self.routes.iter().map(|r| r.target.as_str()).collect();
        let mut system = model.instructions.clone();
        system.push_str("\n\nRoutes:\n");
        for route in &self.routes {
            system.push_str(&format!("- {}: {}\n", route.target, route.description));
        }
        let request = ChatRequest {
            model: model.model.clone(),
            system: Some(system),
            messages: vec![Message::user(text)],
            sampling: Sampling {
                temperature: Some(0.0),
                max_tokens: Some(64),
                ..Sampling::default()
            },
            request_id,
            response_format: Some(ResponseFormat::JsonSchema(JsonSchemaFormat {
                name: "route".to_owned(),
                schema: json!({
                    "type": "object",
                    "properties": {"route": {"type": "string", "enum": names}},
                    "required": ["route"],
                    "additionalProperties": false,
                }),
                strict: true,
            })),
            ..ChatRequest::default()
        };
        let response = model
            .llm
            .chat(&request)
            .await
            .map_err(StructuredError::from)?;
        *usage += response.usage;
        let choice: Choice = parse_structured(model.llm.provider(), &response.text)?;
        match self.routes.iter().find(|r| r.target == choice.route) {
            Some(route) => Ok(RouteDecision {
                target: route.target.clone(),
                reason: RouteReason::Model,
                usage: *usage,
            }),
            None => Err(RouteError::UnknownRoute(choice.route)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rules_are_tried_in_order_then_the_default() {
        let classifier = RouteClassifier::new(vec![
            Route::new("a", "").keywords(["Refund"]),
            Route::new("b", "").pattern(Regex::new(r"^\d+$").unwrap()),
            Route::new("c", "").keywords(["refund"]),
        ]);
        let decision = classifier.classify("a REFUND please", None).await.unwrap();
        assert_eq!(decision.target, "a");
        assert_eq!(decision.reason, RouteReason::Keyword("refund".into()));
        assert_eq!(classifier.classify("42", None).await.unwrap().target, "b");
        assert!(matches!(
            classifier.classify("hello", None).await,
            Err(RouteError::NoMatch)
        ));
        let with_default = classifier.default_route("c");
        let decision = with_default.classify("hello", None).await.unwrap();
        assert_eq!(
            (decision.target.as_str(), decision.reason),
            ("c", RouteReason::Default)
        );
    }
}
