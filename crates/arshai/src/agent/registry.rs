//! The agents a server exposes, built by type name from settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::settings::{AgentSettings, AgentType, Settings};
use super::{Agent, ConversationAgent, ConversationAgentConfig};
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
}

/// Agents by name.
#[derive(Clone, Default)]
pub struct AgentRegistry {
    agents: BTreeMap<String, Arc<dyn Agent>>,
}

impl AgentRegistry {
    /// Builds every agent declared in `settings` over `memory`. With no agent declared, one
    /// `conversation` agent named `assistant` is added.
    pub fn from_settings(
        settings: &Settings,
        memory: Arc<dyn MemoryStore>,
    ) -> Result<Self, RegistryError> {
        Self::from_settings_with(settings, memory, Arc::new(NoEvents), &|client| client)
    }

    /// Like [`AgentRegistry::from_settings`], with the LLM clients reporting retries and
    /// circuit states to `llm_events`, and each agent's client passed through `wrap_llm`
    /// first, so that an application can decorate clients (metrics, tracing) without the
    /// library knowing.
    pub fn from_settings_with(
        settings: &Settings,
        memory: Arc<dyn MemoryStore>,
        llm_events: Arc<dyn LlmEvents>,
        wrap_llm: &dyn Fn(Arc<dyn LlmClient>) -> Arc<dyn LlmClient>,
    ) -> Result<Self, RegistryError> {
        Self::from_settings_cached(settings, memory, llm_events, wrap_llm, None)
    }

    /// Like [`AgentRegistry::from_settings_with`], and each agent that declares `cache =
    /// { … }` has its client (after `wrap_llm`) wrapped by `cache` as the outermost layer,
    /// so that a hit skips every other layer.
    pub fn from_settings_cached(
        settings: &Settings,
        memory: Arc<dyn MemoryStore>,
        llm_events: Arc<dyn LlmEvents>,
        wrap_llm: &dyn Fn(Arc<dyn LlmClient>) -> Arc<dyn LlmClient>,
        cache: Option<&CacheLayer>,
    ) -> Result<Self, RegistryError> {
        let mut factory = ClientFactory::with_events(settings.providers.clone(), llm_events);
        let declared = if settings.agents.is_empty() {
            vec![default_agent()]
        } else {
            settings.agents.clone()
        };
        let mut registry = Self::default();
        for agent in declared {
            let llm = factory
                .client(agent.provider)
                .map_err(|source| RegistryError::Provider {
                    agent: agent.name.clone(),
                    source,
                })?;
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
                AgentType::Conversation | AgentType::WorkingMemory => {
                    Arc::new(ConversationAgent::new(
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
                    ))
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

fn default_agent() -> AgentSettings {
    AgentSettings {
        name: "assistant".to_owned(),
        system_prompt: DEFAULT_SYSTEM_PROMPT.to_owned(),
        ..AgentSettings::default()
    }
}
