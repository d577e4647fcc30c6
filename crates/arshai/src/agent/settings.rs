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
    /// [`crate::agent::RouterAgent`]: classifies each message (`routes`, `classifier`) and
    /// hands the turn to one of the agents its routes name.
    Router,
}

/// How a router classifies (`classifier = "rules"` or `"model"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierKind {
    /// The routes' keywords and regular expressions, then `default_route`.
    #[default]
    Rules,
    /// The rules first, then a model call with structured output (the router's provider
    /// and model, its `system_prompt` as instructions), then `default_route`.
    Model,
}

/// One route of a router (`routes = [{ agent = "billing", keywords = [...] }]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// The agent the route hands the turn to.
    pub agent: String,
    /// The route matches a message containing any of these, ignoring case.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The route matches a message this regular expression finds a match in (Rust
    /// `regex` syntax; `(?i)` for case-insensitive).
    #[serde(default)]
    pub regex: Option<String>,
    /// What the route is for, shown to the model (default: the agent's `description`).
    #[serde(default)]
    pub description: Option<String>,
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
    /// What the agent is for: told to models that call it as a tool or route to it.
    #[serde(default)]
    pub description: Option<String>,
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
    /// Tools the model may call (`docs/agents.md`): `"clock"`, `{ http = { … } }`,
    /// `{ mcp = { … } }`, `{ agent = "name" }`.
    #[serde(default)]
    pub tools: Vec<crate::agent::ToolSettings>,
    /// Bound on one tool call, in seconds (default 30).
    #[serde(default)]
    pub tool_timeout_seconds: Option<f64>,
    /// Rounds of tool calls in one turn before the model must answer in text (default 8).
    #[serde(default)]
    pub max_tool_rounds: Option<usize>,
    /// `router` agents: the routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteSettings>,
    /// `router` agents: the agent a message goes to when no route chooses.
    #[serde(default)]
    pub default_route: Option<String>,
    /// `router` agents: how messages are classified (default `rules`).
    #[serde(default)]
    pub classifier: Option<ClassifierKind>,
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
            description: None,
            tools: Vec::new(),
            tool_timeout_seconds: None,
            max_tool_rounds: None,
            routes: Vec::new(),
            default_route: None,
            classifier: None,
        }
    }
}

impl AgentSettings {
    /// The history window these settings give the agent.
    pub fn history_window(&self) -> crate::agent::HistoryWindow {
        let default_messages = match self.agent_type {
            AgentType::Conversation | AgentType::Router => crate::agent::DEFAULT_MAX_MESSAGES,
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
            AgentType::Conversation | AgentType::Router => None,
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
        validate_tools(index, agent)?;
        validate_router(index, agent)?;
    }
    crate::agent::check_references(agents)
}

fn validate_tools(index: usize, agent: &AgentSettings) -> Result<(), InvalidSetting> {
    for (i, tool) in agent.tools.iter().enumerate() {
        tool.validate(&format!("agents[{index}].tools[{i}]"))?;
    }
    if let Some(seconds) = agent.tool_timeout_seconds {
        InvalidSetting::check_seconds([(
            format!("agents[{index}].tool_timeout_seconds").as_str(),
            seconds,
        )])?;
        // An MCP server's own bound must be the one that fires: it also drops the
        // connection, so that a hung server is restarted on the next call.
        for (i, tool) in agent.tools.iter().enumerate() {
            if let crate::agent::ToolSettings::Mcp(server) = tool
                && server.call_timeout_seconds >= seconds
            {
                return Err(InvalidSetting::new(
                    format!("agents[{index}].tools[{i}].mcp.call_timeout_seconds"),
                    server.call_timeout_seconds,
                    format!("must be below the agent's tool_timeout_seconds ({seconds})"),
                ));
            }
        }
    }
    if agent.max_tool_rounds == Some(0) {
        return Err(InvalidSetting::new(
            format!("agents[{index}].max_tool_rounds"),
            0,
            "must be at least 1",
        ));
    }
    Ok(())
}

fn validate_router(index: usize, agent: &AgentSettings) -> Result<(), InvalidSetting> {
    if agent.agent_type != AgentType::Router {
        if !agent.routes.is_empty() || agent.default_route.is_some() || agent.classifier.is_some() {
            return Err(InvalidSetting::new(
                format!("agents[{index}].type"),
                format!("{:?}", agent.agent_type).to_lowercase(),
                "routes, default_route and classifier need type = \"router\"",
            ));
        }
        return Ok(());
    }
    let key = |rest: &str| format!("agents[{index}].{rest}");
    if !agent.tools.is_empty() {
        return Err(InvalidSetting::new(
            key("tools"),
            format!("[{} entries]", agent.tools.len()),
            "a router hands the turn over and calls no tools; give them to the agents it routes to",
        ));
    }
    if agent.routes.is_empty() {
        return Err(InvalidSetting::new(
            key("routes"),
            "[]",
            "a router needs at least one route",
        ));
    }
    let classifier = agent.classifier.unwrap_or_default();
    for (i, route) in agent.routes.iter().enumerate() {
        if let Some(pattern) = &route.regex
            && let Err(error) = regex::Regex::new(pattern)
        {
            return Err(InvalidSetting::new(
                key(&format!("routes[{i}].regex")),
                format!("{pattern:?}"),
                format!("is not a valid regular expression: {error}"),
            ));
        }
        if route.keywords.iter().any(|k| k.trim().is_empty()) {
            return Err(InvalidSetting::new(
                key(&format!("routes[{i}].keywords")),
                format!("{:?}", route.keywords),
                "a keyword must not be empty (it would match every message)",
            ));
        }
        if classifier == ClassifierKind::Rules && route.keywords.is_empty() && route.regex.is_none()
        {
            return Err(InvalidSetting::new(
                key(&format!("routes[{i}]")),
                &route.agent,
                "with classifier = \"rules\" a route needs keywords or regex (or set classifier = \"model\")",
            ));
        }
    }
    if classifier == ClassifierKind::Rules && agent.default_route.is_none() {
        return Err(InvalidSetting::new(
            key("default_route"),
            "(unset)",
            "a rules router needs a default_route for messages no rule matches",
        ));
    }
    Ok(())
}

impl AgentSettings {
    /// The agents this one calls: its agent tools and, for a router, its routes' agents and
    /// default route, each with the dotted key (below `agents[i].`) that names it.
    pub fn called_agents(&self) -> Vec<(String, &str)> {
        let mut called = Vec::new();
        for (i, tool) in self.tools.iter().enumerate() {
            if let crate::agent::ToolSettings::Agent(name) = tool {
                called.push((format!("tools[{i}].agent"), name.as_str()));
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            called.push((format!("routes[{i}].agent"), route.agent.as_str()));
        }
        if let Some(default) = &self.default_route {
            called.push(("default_route".to_owned(), default.as_str()));
        }
        called
    }
}
