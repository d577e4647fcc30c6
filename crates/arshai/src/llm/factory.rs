//! Builds LLM clients from [`crate::settings::ProvidersSettings`], one per provider, shared
//! by every agent that uses it.

use std::collections::HashMap;
use std::sync::Arc;

use super::openai::{DEFAULT_BASE_URL, OpenAiClient, OpenAiConfig};
use super::{LlmClient, LlmError};
use crate::settings::{ProviderChoice, ProvidersSettings};

/// Creates each provider's client once and hands out shared references.
pub struct ClientFactory {
    settings: ProvidersSettings,
    built: HashMap<ProviderChoice, Arc<dyn LlmClient>>,
}

impl ClientFactory {
    /// A factory over `settings`.
    pub fn new(settings: ProvidersSettings) -> Self {
        Self {
            settings,
            built: HashMap::new(),
        }
    }

    /// The provider `choice` resolves to: `auto` picks the configured provider.
    pub fn resolve(&self, choice: ProviderChoice) -> Result<ProviderChoice, LlmError> {
        match choice {
            ProviderChoice::Auto if self.settings.openai.is_configured() => {
                Ok(ProviderChoice::Openai)
            }
            ProviderChoice::Auto => Err(LlmError::Config {
                provider: "auto",
                message: "no LLM provider is configured: set OPENAI_BASE_URL (any \
                          OpenAI-compatible endpoint) and/or OPENAI_API_KEY"
                    .to_owned(),
            }),
            other => Ok(other),
        }
    }

    /// The shared client for `choice`.
    pub fn client(&mut self, choice: ProviderChoice) -> Result<Arc<dyn LlmClient>, LlmError> {
        let resolved = self.resolve(choice)?;
        if let Some(client) = self.built.get(&resolved) {
            return Ok(Arc::clone(client));
        }
        let client: Arc<dyn LlmClient> = match resolved {
            ProviderChoice::Openai | ProviderChoice::Auto => {
                let openai = &self.settings.openai;
                Arc::new(OpenAiClient::new(OpenAiConfig {
                    provider: "openai",
                    base_url: openai
                        .base_url
                        .clone()
                        .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
                    api_key: openai.api_key.clone(),
                    default_model: openai.model.clone(),
                    http: self.settings.http.clone(),
                })?)
            }
        };
        self.built.insert(resolved, Arc::clone(&client));
        Ok(client)
    }
}
