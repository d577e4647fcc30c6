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

    /// The provider `choice` resolves to: `auto` picks the configured HTTP provider, else
    /// the embedded local model.
    pub fn resolve(&self, choice: ProviderChoice) -> Result<ProviderChoice, LlmError> {
        match choice {
            ProviderChoice::Auto if self.settings.openai.is_configured() => {
                Ok(ProviderChoice::Openai)
            }
            ProviderChoice::Auto => Ok(ProviderChoice::Local),
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
            ProviderChoice::Local => local_client(&self.settings)?,
        };
        self.built.insert(resolved, Arc::clone(&client));
        Ok(client)
    }
}

#[cfg(feature = "local-model")]
fn local_client(settings: &ProvidersSettings) -> Result<Arc<dyn LlmClient>, LlmError> {
    Ok(Arc::new(super::local::LocalClient::new(&settings.local)?))
}

#[cfg(not(feature = "local-model"))]
fn local_client(_: &ProvidersSettings) -> Result<Arc<dyn LlmClient>, LlmError> {
    Err(LlmError::Config {
        provider: "local",
        message: "this build has no embedded model (the `local-model` feature of the arshai \
                  crate is off): set OPENAI_BASE_URL and/or OPENAI_API_KEY"
            .to_owned(),
    })
}
