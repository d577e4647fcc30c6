//! The loader: defaults < TOML file < environment (< command-line flags, applied by the binary).
//!
//! Each layer owns its section: [`MemorySettings`] (`crate::memory`), [`ProvidersSettings`]
//! (`crate::llm`), [`AgentSettings`] and the composed [`Settings`] (`crate::agent`). This
//! module only loads them, and no layer imports it. [`load`] fills any serde struct, so an
//! application composes the library's sections with its own (as `arshai-server` does) and
//! loads them from the same file and the same environment.
//!
//! Every key can be set from the environment as `ARSHAI_<SECTION>__<KEY>` (for example
//! `ARSHAI_MEMORY__TTL_SECONDS=600`), and the conventional plain names are honoured too
//! (`REDIS_URL`, `OPENAI_API_KEY`, `OPENAI_BASE_URL`, …; see [`env_names::PLAIN`]). Names
//! follow Arshai's scaling guide where it has one (`memory_provider`, `ttl_seconds`,
//! `max_conversations`, `redis_max_connections`, …). `docs/settings.md` documents each key.
//!
//! Other variables are left alone: only `ARSHAI_<SECTION>__<KEY>` names and the plain names
//! are read, and a plain name holding a Kubernetes service link (`REDIS_PORT=tcp://…`) is
//! skipped ([`environment`] has the rule; [`environment::IgnoredEnvironment`] lists what was
//! skipped, for the binary's warning).

pub mod env_names;
pub mod environment;

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::InvalidSetting;
pub use crate::agent::{
    AgentSettings, AgentType, ClassifierKind, HttpToolSettings, McpServerSettings, RouteSettings,
    Settings, ToolSettings, validate_agents,
};
pub use crate::llm::{
    DEFAULT_MODEL_PATH, LocalProviderSettings, MAX_CONTEXT_TOKENS, OpenAiProviderSettings,
    ProviderChoice, ProvidersSettings,
};
pub use crate::memory::{MemoryProvider, MemorySettings};
pub use env_names::EnvNames;

/// Why the settings could not be loaded. The message names the key and the bad value.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A source could not be read or a value has the wrong type or an unknown key.
    #[error("invalid settings: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value has the right type but is out of range or inconsistent.
    #[error("invalid setting {key} = {value}: {reason}")]
    Invalid {
        /// The dotted key (`memory.ttl_seconds`).
        key: String,
        /// The offending value, as text.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<InvalidSetting> for SettingsError {
    fn from(invalid: InvalidSetting) -> Self {
        Self::Invalid {
            key: invalid.key,
            value: invalid.value,
            reason: invalid.reason,
        }
    }
}

/// Loads `T` from its defaults < `file` < the process environment, without validating.
///
/// The environment is read as `ARSHAI_<SECTION>__<KEY>`, plus the library's plain names
/// ([`env_names::PLAIN`]) and the application's (`names.plain`). `T`'s own serde attributes
/// decide what is accepted: with `deny_unknown_fields`, an unknown key in the file or a
/// misspelt structured variable is an error.
pub fn load<T>(file: Option<&Path>, names: &EnvNames) -> Result<T, SettingsError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(SettingsError::Invalid {
                key: "--config".to_owned(),
                value: path.display().to_string(),
                reason: "no such file".to_owned(),
            });
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    for (name, key) in names.plain_names() {
        // A Service named `redis` makes Kubernetes inject `REDIS_PORT=tcp://…`.
        if std::env::var(name).is_ok_and(|value| environment::is_service_link(&value)) {
            continue;
        }
        figment = figment.merge(Env::raw().only(&[name]).map(move |_| key.into()));
    }
    // Only `ARSHAI_<SECTION>__<KEY>`: `ARSHAI_SERVICE_PORT` (a Service named `arshai`)
    // and the binary's own variables are not settings.
    let names = *names;
    figment = figment.merge(
        Env::prefixed(env_names::PREFIX)
            .filter(move |rest| {
                environment::is_structured(rest.as_str()) && names.reads_section(rest.as_str())
            })
            .split(env_names::SEPARATOR),
    );
    Ok(figment.extract().map_err(Box::new)?)
}

impl Settings {
    /// Loads defaults < `file` < the process environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let settings: Self = load(file, &EnvNames::LIBRARY)?;
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests;
