//! The `[providers]` settings section: each provider's endpoint and credentials, the shared
//! HTTP pool, retries, the circuit breaker, the fallback order and the embedded model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::azure::AzureSettings;
use super::gemini::GeminiSettings;
use super::openrouter::OpenRouterSettings;
use super::providers::local_settings::LocalProviderSettings;
use super::{CircuitSettings, HttpPoolSettings, RetrySettings};
use crate::InvalidSetting;

/// LLM providers (`[providers]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersSettings {
    /// OpenAI, or any OpenAI-compatible endpoint by base URL.
    pub openai: OpenAiProviderSettings,
    /// Azure OpenAI.
    pub azure: AzureSettings,
    /// Google Gemini.
    pub gemini: GeminiSettings,
    /// OpenRouter.
    pub openrouter: OpenRouterSettings,
    /// Connection pool and timeouts shared by the HTTP providers.
    pub http: HttpPoolSettings,
    /// Retries of failed calls (per provider, same settings for each).
    pub retry: RetrySettings,
    /// The circuit breaker of each provider.
    pub circuit: CircuitSettings,
    /// Providers tried in order when an agent's provider fails (empty: no fallback).
    pub fallback: Vec<ProviderChoice>,

    /// The embedded local model, used when no HTTP provider is configured.
    pub local: LocalProviderSettings,
}

impl ProvidersSettings {
    /// Checks ranges that types alone cannot express.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.http.validate()?;
        self.local.validate()
    }
}

/// An OpenAI-compatible provider (`[providers.openai]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiProviderSettings {
    /// API key (`OPENAI_API_KEY`).
    pub api_key: Option<String>,
    /// Base URL (`OPENAI_BASE_URL`); the public OpenAI API when unset.
    pub base_url: Option<String>,
    /// Default model.
    pub model: String,
    /// Extra headers sent with every request (a gateway's routing or tenant headers).
    pub headers: BTreeMap<String, String>,
}

impl Default for OpenAiProviderSettings {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: None,
            model: "gpt-4o-mini".to_owned(),
            headers: Default::default(),
        }
    }
}

impl OpenAiProviderSettings {
    /// Whether the environment or file selected this provider (a key or a base URL is set).
    pub fn is_configured(&self) -> bool {
        self.api_key.is_some() || self.base_url.is_some()
    }
}

/// Which provider an agent uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderChoice {
    /// The configured provider (`OPENAI_BASE_URL` / `OPENAI_API_KEY` select OpenAI-compatible);
    /// with none configured, the embedded local model.
    #[default]
    Auto,
    /// OpenAI or an OpenAI-compatible endpoint.
    Openai,
    /// The embedded local model (SmolLM2-135M-Instruct, in-process).
    Local,

    /// Azure OpenAI.
    Azure,
    /// Google Gemini.
    Gemini,
    /// OpenRouter.
    Openrouter,
}
