//! The agents a server exposes, built by type name from settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::time::Duration;

use super::references::build_order;
use super::settings::{AgentSettings, AgentType, ClassifierKind, Settings};
use super::{
    Agent, ConversationAgent, ConversationAgentConfig, Route, RouteClassifier, RouterAgent,
    RouterError, TokenCounter, ToolBuildError, declared_tools,
};
use crate::cache::CacheLayer;
use crate::llm::{ClientFactory, LlmClient, LlmError, LlmEvents, NoEvents, Sampling};
use crate::memory::MemoryStore;

/// The system prompt of the agent added when the settings declare none.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant. Answer briefly and plainly.";

/// Why the registry could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// An agent's provider could not be built.
    #[error("agent {agent:?}: {source}")]
    Provider {
        /// The agent's name.
        agent: String,
        /// The provider error.
        #[source]
        source: LlmError,
    },
    /// An agent's tools could not be built (an MCP server did not start, say).
    #[error("agent {agent:?}: {source}")]
    Tools {
        /// The agent's name.
        agent: String,
        /// Why.
        #[source]
        source: ToolBuildError,
    },
    /// A router's routes could not be built.
    #[error("agent {agent:?}: {message}")]
    Router {
        /// The router's name.
        agent: String,
        /// Why.
        message: String,
    },
}

impl From<RouterError> for RegistryError {
    fn from(error: RouterError) -> Self {
        Self::Router {
            agent: error.router.clone(),
            message: error.to_string(),
        }
    }
}

/// Agents by name.
#[derive(Clone, Default)]
pub struct AgentRegistry {
    agents: BTreeMap<String, Arc<dyn Agent>>,
}

impl AgentRegistry {
    /// Builds every agent declared in `settings` over `memory`. With no agent declared, one
    /// `conversation` agent named `assistant` is added.
    ///
    /// Agents are built callees first (agent tools and routes name agents built before);
    /// MCP servers are started and their tools listed here, so a server that does not
    /// start fails the whole build.
    pub async fn from_settings(
        settings: &Settings,
        memory: Arc<dyn MemoryStore>,
    ) -> Result<Self, RegistryError> {
        Self::from_settings_with(settings, memory, Arc::new(NoEvents), &|client| client).await
    }

    /// Like [`AgentRegistry::from_settings`], with the LLM clients reporting retries and
    /// circuit states to `llm_events`, and each agent's client passed through `wrap_llm`
    /// first, so that an application can decorate clients (metrics, tracing) without the
    /// library knowing.
    pub async fn from_settings_with(
        settings: &Settings,
        memory: Arc<dyn MemoryStore>,
        llm_events: Arc<dyn LlmEvents>,
        wrap_llm: &(dyn Fn(Arc<dyn LlmClient>) -> Arc<dyn LlmClient> + Sync),
    ) -> Result<Self, RegistryError> {
        Self::from_settings_cached(settings, memory, llm_events, wrap_llm, None).await
    }

    /// Like [`AgentRegistry::from_settings_with`], and each agent that declares `cache =
    /// { … }` has its client (after `wrap_llm`) wrapped by `cache` as the outermost layer,
    /// so that a hit skips every other layer.
    pub async fn from_settings_cached(
        settings: &Settings,
        memory: Arc<dyn MemoryStore>,
        llm_events: Arc<dyn LlmEvents>,
        wrap_llm: &(dyn Fn(Arc<dyn LlmClient>) -> Arc<dyn LlmClient> + Sync),
        cache: Option<&CacheLayer>,
    ) -> Result<Self, RegistryError> {
        let mut factory = ClientFactory::with_events(settings.providers.clone(), llm_events);
        let declared = if settings.agents.is_empty() {
            vec![default_agent()]
        } else {
            settings.agents.clone()
        };
        let mut registry = Self::default();
        let descriptions: BTreeMap<String, String> = declared
            .iter()
            .filter_map(|a| Some((a.name.clone(), a.description.clone()?)))
            .collect();
        for at in build_order(&declared) {
            let agent = &declared[at];
            let llm = factory
                .client(agent.provider)
                .map_err(|source| RegistryError::Provider {
                    agent: agent.name.clone(),
                    source,
                })?;
            // The unwrapped client, which knows its tokenizer (the embedded model).
            let raw = Arc::clone(&llm);
            let llm = wrap_llm(llm);
            let llm = match (cache, &agent.cache) {
                (Some(layer), Some(policy)) => layer.wrap(llm, &agent.name, policy),
                _ => llm,
            };

            tracing::info!(
                agent = %agent.name,
                provider = llm.provider(),
                model = agent.model.as_deref().unwrap_or(llm.default_model()),
                "agent uses LLM provider {}",
                llm.provider()
            );
            let built: Arc<dyn Agent> = match agent.agent_type {
                AgentType::Router => Arc::new(router(agent, llm, &registry.agents, &descriptions)?),
                AgentType::Conversation | AgentType::WorkingMemory => {
                    let mut tools = declared_tools(&agent.tools, &registry.agents, &descriptions)
                        .await
                        .map_err(|source| RegistryError::Tools {
                            agent: agent.name.clone(),
                            source,
                        })?;
                    tools.call_timeout = match agent.tool_timeout_seconds {
                        Some(seconds) => Duration::from_secs_f64(seconds),
                        // Unset: long enough for every MCP server's own bounds (a reconnect
                        // and a call) to fire first.
                        None => tools.call_timeout.max(mcp_bound(agent)),
                    };
                    if let Some(rounds) = agent.max_tool_rounds {
                        tools.max_rounds = rounds;
                    }
                    let model = agent.model.as_deref().unwrap_or(llm.default_model());
                    let counter = TokenCounter::for_model(&raw, model);
                    if agent.history_tokens.is_some() {
                        // Building an OpenAI tokenizer takes a moment of CPU: off the runtime.
                        let warming = counter.clone();
                        if let Err(error) =
                            tokio::task::spawn_blocking(move || warming.warm()).await
                        {
                            tracing::warn!(agent = %agent.name, %error, "the tokenizer did not load");
                        }
                        tracing::info!(agent = %agent.name, tokenizer = counter.name(),
                            "the history token bound counts with {}", counter.name());
                    }
                    Arc::new(
                        ConversationAgent::new(
                            ConversationAgentConfig {
                                name: agent.name.clone(),
                                model: agent.model.clone(),
                                system_prompt: agent.system_prompt.clone(),
                                sampling: Sampling {
                                    temperature: agent.temperature,
                                    top_p: agent.top_p,
                                    max_tokens: agent.max_tokens,
                                    ..Sampling::default()
                                },
                                lease: settings.memory.lease_settings(),
                                history: agent.history_window(),
                                working_memory: agent.working_memory(),
                            },
                            llm,
                            Arc::clone(&memory),
                        )
                        .with_tools(tools)
                        .with_token_counter(counter),
                    )
                }
            };
            registry.insert(built);
        }
        Ok(registry)
    }

    /// Adds (or replaces) an agent under its name.
    pub fn insert(&mut self, agent: Arc<dyn Agent>) {
        self.agents.insert(agent.name().to_owned(), agent);
    }

    /// The agent called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Agent>> {
        self.agents.get(name)
    }

    /// Every agent, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Agent>> {
        self.agents.values()
    }

    /// How many agents there are.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }
}

/// The longest an MCP tool of `agent` can take within its own bounds (connect and call),
/// plus a second.
fn mcp_bound(agent: &AgentSettings) -> Duration {
    let seconds = agent
        .tools
        .iter()
        .filter_map(|tool| match tool {
            super::ToolSettings::Mcp(server) => {
                Some(server.connect_timeout_seconds + server.call_timeout_seconds + 1.0)
            }
            _ => None,
        })
        .fold(0.0, f64::max);
    Duration::from_secs_f64(seconds)
}

/// The router `agent` declares, over the agents built so far.
fn router(
    agent: &AgentSettings,
    llm: Arc<dyn LlmClient>,
    built: &BTreeMap<String, Arc<dyn Agent>>,
    descriptions: &BTreeMap<String, String>,
) -> Result<RouterAgent, RegistryError> {
    let invalid = |message: String| RegistryError::Router {
        agent: agent.name.clone(),
        message,
    };
    let mut routes = Vec::new();
    for (i, declared) in agent.routes.iter().enumerate() {
        let description = declared
            .description
            .clone()
            .or_else(|| descriptions.get(&declared.agent).cloned())
            .unwrap_or_else(|| format!("the {} agent", declared.agent));
        let mut route = Route::new(&declared.agent, description).keywords(&declared.keywords);
        if let Some(pattern) = &declared.regex {
            let pattern = regex::Regex::new(pattern)
                .map_err(|e| invalid(format!("routes[{i}].regex: {e}")))?;
            route = route.pattern(pattern);
        }
        routes.push(route);
    }
    let mut classifier = RouteClassifier::new(routes);
    if let Some(default) = &agent.default_route {
        classifier = classifier.default_route(default);
    }
    if agent.classifier == Some(ClassifierKind::Model) {
        classifier = classifier.with_model(llm, agent.model.clone(), &agent.system_prompt);
    }
    let targets: Vec<Arc<dyn Agent>> = classifier
        .targets()
        .map(|name| {
            built
                .get(name)
                .cloned()
                .ok_or_else(|| invalid(format!("routes to {name:?}, which is not declared")))
        })
        .collect::<Result<_, _>>()?;
    Ok(RouterAgent::new(&agent.name, classifier, targets)?)
}

fn default_agent() -> AgentSettings {
    AgentSettings {
        name: "assistant".to_owned(),
        system_prompt: DEFAULT_SYSTEM_PROMPT.to_owned(),
        ..AgentSettings::default()
    }
}
