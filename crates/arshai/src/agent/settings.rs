//! The agents the settings declare (`[[agents]]`), and [`Settings`], the library's whole
//! configuration.
//!
//! [`Settings`] lives in this layer, the top one, because building agents takes every
//! section: the agents, the providers they call and the memory they keep. The loader
//! ([`crate::settings`]) fills it from defaults, a file and the environment.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::InvalidSetting;
use crate::llm::{ProviderChoice, ProvidersSettings};
use crate::memory::MemorySettings;

/// The configuration of an embedding application: memory, providers and agents. A server
/// composes these sections with its own (`arshai-server`'s settings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Conversation memory.
    pub memory: MemorySettings,
    /// LLM providers.
    pub providers: ProvidersSettings,
    /// The agents.
    pub agents: Vec<AgentSettings>,
}

impl Settings {
    /// Checks ranges and consistency that types alone cannot express, section by section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.memory.validate()?;
        self.providers.validate()?;
        validate_agents(&self.agents)
    }
}

/// Agent types the registry can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentType {
    /// [`crate::agent::ConversationAgent`].
    Conversation,
}

/// One agent (`[[agents]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Name in URLs: `/v1/agents/{name}/messages`.
    pub name: String,
    /// The agent type.
    #[serde(rename = "type")]
    pub agent_type: AgentType,
    /// The provider.
    #[serde(default)]
    pub provider: ProviderChoice,
    /// The model; the provider's default when unset.
    #[serde(default)]
    pub model: Option<String>,
    /// The system prompt.
    #[serde(default)]
    pub system_prompt: String,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Bound on generated tokens per call.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// The response cache of this agent (`cache = { ttl_seconds, scope,
    /// cache_nondeterministic }`): present means its answers are cached
    /// (`docs/cache.md`).
    #[serde(default)]
    pub cache: Option<crate::cache::AgentCacheSettings>,
}

/// Checks each agent's name (URL-safe, unique) and sampling ranges.
pub fn validate_agents(agents: &[AgentSettings]) -> Result<(), InvalidSetting> {
    let mut names = HashSet::new();
    for (index, agent) in agents.iter().enumerate() {
        let key = format!("agents[{index}].name");
        if agent.name.is_empty()
            || !agent
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(InvalidSetting::new(
                key,
                format!("{:?}", agent.name),
                "must be non-empty ASCII letters, digits, '-', '_' or '.'",
            ));
        }
        if !names.insert(agent.name.as_str()) {
            return Err(InvalidSetting::new(key, &agent.name, "is declared twice"));
        }
        if let Some(t) = agent.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(InvalidSetting::new(
                format!("agents[{index}].temperature"),
                t,
                "must be within 0.0 to 2.0",
            ));
        }
    }
    Ok(())
}
