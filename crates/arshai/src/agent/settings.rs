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
    /// The workflows (`[[workflows]]`, `docs/workflows.md`).
    pub workflows: Vec<crate::workflow::WorkflowSettings>,
}

impl Settings {
    /// Checks ranges and consistency that types alone cannot express, section by section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.memory.validate()?;
        self.providers.validate()?;
        validate_agents(&self.agents)?;
        crate::workflow::validate_workflows(&self.workflows)
    }
}

/// Agent types the registry can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentType {
    /// [`crate::agent::ConversationAgent`]: the whole window of history.
    Conversation,
    /// [`crate::agent::ConversationAgent`] with a [`crate::agent::WorkingMemory`]: the
    /// model revises a running summary of the conversation, and the prompt carries it plus
    /// the last `history_messages` (default 10) messages.
    WorkingMemory,
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
    /// At most this many of the most recent stored messages are sent to the model (default:
    /// 100, or 10 for `working_memory` agents); `0` sends every kept message.
    #[serde(default)]
    pub history_messages: Option<usize>,
    /// At most this many (estimated) tokens of history are sent (default: no bound).
    #[serde(default)]
    pub history_tokens: Option<usize>,
    /// `working_memory` agents: revise the memory after every this many turns (default 1).
    #[serde(default)]
    pub memory_every_turns: Option<u32>,
    /// `working_memory` agents: the revision's instructions (default:
    /// [`crate::agent::DEFAULT_MEMORY_INSTRUCTIONS`]).
    #[serde(default)]
    pub memory_instructions: Option<String>,
    /// The response cache of this agent (`cache = { ttl_seconds, scope,
    /// cache_nondeterministic }`): present means its answers are cached
    /// (`docs/cache.md`).
    #[serde(default)]
    pub cache: Option<crate::cache::AgentCacheSettings>,
}

impl Default for AgentSettings {
    /// A `conversation` agent named `assistant` on the default provider, with no system
    /// prompt.
    fn default() -> Self {
        Self {
            name: "assistant".to_owned(),
            agent_type: AgentType::Conversation,
            provider: ProviderChoice::default(),
            model: None,
            system_prompt: String::new(),
            temperature: None,
            top_p: None,
            max_tokens: None,
            history_messages: None,
            history_tokens: None,
            memory_every_turns: None,
            memory_instructions: None,
            cache: None,
        }
    }
}

impl AgentSettings {
    /// The history window these settings give the agent.
    pub fn history_window(&self) -> crate::agent::HistoryWindow {
        let default_messages = match self.agent_type {
            AgentType::Conversation => crate::agent::DEFAULT_MAX_MESSAGES,
            AgentType::WorkingMemory => WORKING_MEMORY_HISTORY,
        };
        crate::agent::HistoryWindow {
            max_messages: match self.history_messages {
                Some(0) => None,
                Some(max) => Some(max),
                None => Some(default_messages),
            },
            max_tokens: self.history_tokens,
        }
    }

    /// The working memory these settings give the agent (`working_memory` agents only).
    pub fn working_memory(&self) -> Option<crate::agent::WorkingMemory> {
        match self.agent_type {
            AgentType::Conversation => None,
            AgentType::WorkingMemory => {
                let defaults = crate::agent::WorkingMemory::default();
                Some(crate::agent::WorkingMemory {
                    every_turns: self.memory_every_turns.unwrap_or(defaults.every_turns),
                    instructions: self
                        .memory_instructions
                        .clone()
                        .unwrap_or(defaults.instructions),
                    max_tokens: defaults.max_tokens,
                })
            }
        }
    }
}

/// The history window of a `working_memory` agent when none is configured: the memory
/// carries the rest.
const WORKING_MEMORY_HISTORY: usize = 10;

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
        if agent.memory_every_turns == Some(0) {
            return Err(InvalidSetting::new(
                format!("agents[{index}].memory_every_turns"),
                0,
                "must be at least 1",
            ));
        }
        if agent.agent_type == AgentType::Conversation
            && (agent.memory_every_turns.is_some() || agent.memory_instructions.is_some())
        {
            return Err(InvalidSetting::new(
                format!("agents[{index}].type"),
                "conversation",
                "memory_every_turns and memory_instructions need type = \"working_memory\"",
            ));
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
