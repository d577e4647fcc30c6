//! The server's settings: the library's sections (`memory`, `providers`, `agents`,
//! `limits`, `cache`) composed with the server's own (`server`, `stream`, `admission`,
//! `auth`, `shutdown`, `logging`, `runs`),
//! loaded by [`arshai::settings::load`] from one file and one environment.
//!
//! Every key keeps its `ARSHAI_<SECTION>__<KEY>` name and the plain names
//! ([`arshai::settings::env_names::PLAIN`]) keep working; [`env_names`] lists the binary's
//! own variables. `docs/settings.md` documents each key.

pub mod env_names;
mod http;
mod operations;
mod runs;

use std::path::Path;

use serde::{Deserialize, Serialize};

use arshai::cache::CacheSettings;
use arshai::limits::LimitsSettings;
use arshai::settings::{AgentSettings, InvalidSetting, SettingsError, validate_agents};
use arshai::{llm::ProvidersSettings, memory::MemorySettings};

pub use http::{ServerSettings, StreamSettings};
pub use operations::{
    AdmissionSettings, ApiKeySettings, AuthSettings, LogFormat, LoggingSettings, ShutdownSettings,
};
pub use runs::RunsSettings;

/// The whole configuration of the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The HTTP service.
    pub server: ServerSettings,
    /// Conversation memory.
    pub memory: MemorySettings,
    /// LLM providers.
    pub providers: ProvidersSettings,
    /// The agents this server exposes.
    pub agents: Vec<AgentSettings>,
    /// The workflows this server runs (`docs/workflows.md`).
    pub workflows: Vec<arshai::workflow::WorkflowSettings>,
    /// Admission control and connection limits.
    pub admission: AdmissionSettings,
    /// Graceful shutdown.
    pub shutdown: ShutdownSettings,
    /// API-key authentication.
    pub auth: AuthSettings,
    /// Log output.
    pub logging: LoggingSettings,

    /// Streamed responses (`stream: true`).
    pub stream: StreamSettings,

    /// Rate limits and token budgets (`docs/limits.md`).
    pub limits: LimitsSettings,
    /// The response cache shared by every agent that declares `cache = { … }`
    /// (`docs/cache.md`).
    pub cache: CacheSettings,
    /// Durable background runs (`docs/runs.md`).
    pub runs: RunsSettings,
}

impl Settings {
    /// Loads defaults < `file` < the process environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let settings: Self = arshai::settings::load(file, &env_names::NAMES)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks ranges and consistency that types alone cannot express: each section checks
    /// itself.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.memory.validate()?;
        self.providers.validate()?;
        validate_agents(&self.agents)?;
        arshai::workflow::validate_workflows(&self.workflows)?;
        self.server.validate()?;
        self.stream.validate()?;
        self.admission.validate()?;
        self.auth.validate()?;
        self.limits
            .validate()
            .map_err(|error| InvalidSetting::new("limits", "(section)", error.to_string()))?;
        self.cache
            .validate()
            .map_err(|reason| InvalidSetting::new("cache", "(section)", reason))?;
        self.runs.validate()?;
        self.shutdown.validate()
    }

    /// The library's sections, to build the agents and the memory from.
    pub fn library(&self) -> arshai::Settings {
        arshai::Settings {
            memory: self.memory.clone(),
            providers: self.providers.clone(),
            agents: self.agents.clone(),
            workflows: self.workflows.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
