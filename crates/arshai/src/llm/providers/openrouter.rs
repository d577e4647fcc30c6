//! OpenRouter: an OpenAI-compatible gateway with bearer auth and optional attribution
//! headers (`HTTP-Referer`, `X-Title`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::openai::{OpenAiClient, OpenAiConfig};
use crate::llm::{HttpPoolSettings, LlmError};

/// The public OpenRouter API, used when no base URL is configured.
pub const DEFAULT_BASE_URL: &str = "https://openrouter.ai/api/v1";

/// OpenRouter settings (`[providers.openrouter]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenRouterSettings {
    /// API key (`OPENROUTER_API_KEY`).
    pub api_key: Option<String>,
    /// Base URL (`OPENROUTER_BASE_URL`); the public API when unset.
    pub base_url: Option<String>,
    /// Default model, in OpenRouter's `vendor/model` form.
    pub model: String,
    /// Extra headers sent with every request, e.g. `HTTP-Referer` and `X-Title`.
    pub headers: BTreeMap<String, String>,
}

impl Default for OpenRouterSettings {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: None,
            model: "openai/gpt-4o-mini".to_owned(),
            headers: BTreeMap::new(),
        }
    }
}

impl OpenRouterSettings {
    /// Whether a key is set.
    pub fn is_configured(&self) -> bool {
        self.api_key.is_some()
    }

    /// Builds the client.
    pub fn client(&self, http: HttpPoolSettings) -> Result<OpenAiClient, LlmError> {
        OpenAiClient::new(OpenAiConfig {
            provider: "openrouter",
            base_url: self
                .base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            api_key: self.api_key.clone(),
            default_model: self.model.clone(),
            extra_headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            http,
        })
    }
}
