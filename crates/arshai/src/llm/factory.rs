//! Builds LLM clients from [`crate::settings::ProvidersSettings`], one per provider, shared
//! by every agent that uses it.
//!
//! Each provider's client is composed from small units, innermost first: the provider's wire
//! client, its [`CircuitClient`] (each upstream attempt counts), a [`RetryingClient`], and,
//! when `providers.fallback` names providers, a [`FallbackClient`] chain.

use std::collections::HashMap;
use std::sync::Arc;

use super::openai::{DEFAULT_BASE_URL, OpenAiClient, OpenAiConfig};
use super::{
    CircuitBreaker, CircuitClient, FallbackClient, LlmClient, LlmError, LlmEvents, NoEvents,
    RetryPolicy, RetryingClient,
};
use crate::settings::{ProviderChoice, ProvidersSettings};

/// Creates each provider's client once and hands out shared references.
pub struct ClientFactory {
    settings: ProvidersSettings,
    events: Arc<dyn LlmEvents>,
    built: HashMap<ProviderChoice, Arc<dyn LlmClient>>,
}

impl ClientFactory {
    /// A factory over `settings`.
    pub fn new(settings: ProvidersSettings) -> Self {
        Self::with_events(settings, Arc::new(NoEvents))
    }

    /// A factory whose clients report retries and circuit states to `events`.
    pub fn with_events(settings: ProvidersSettings, events: Arc<dyn LlmEvents>) -> Self {
        Self {
            settings,
            events,
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

    /// The shared client for `choice`, with retries, circuit breaker and the configured
    /// fallback chain.
    pub fn client(&mut self, choice: ProviderChoice) -> Result<Arc<dyn LlmClient>, LlmError> {
        let resolved = self.resolve(choice)?;
        let primary = self.resilient(resolved)?;
        if self.settings.fallback.is_empty() {
            return Ok(primary);
        }
        let mut chain = vec![primary];
        for fallback in self.settings.fallback.clone() {
            let fallback = self.resolve(fallback)?;
            if fallback != resolved {
                chain.push(self.resilient(fallback)?);
            }
        }
        if chain.len() == 1 {
            return Ok(chain.remove(0));
        }
        Ok(Arc::new(FallbackClient::new(chain)?))
    }

    /// The provider's client wrapped in its circuit breaker and retries, built once.
    fn resilient(&mut self, resolved: ProviderChoice) -> Result<Arc<dyn LlmClient>, LlmError> {
        if let Some(client) = self.built.get(&resolved) {
            return Ok(Arc::clone(client));
        }
        let mut client = self.wire_client(resolved)?;
        if self.settings.circuit.enabled {
            let breaker = Arc::new(CircuitBreaker::new(
                client.provider(),
                &self.settings.circuit,
                Arc::clone(&self.events),
            ));
            client = Arc::new(CircuitClient::new(client, breaker));
        }
        if self.settings.retry.max_retries > 0 {
            client = Arc::new(RetryingClient::new(
                client,
                RetryPolicy::new(self.settings.retry.clone()),
                Arc::clone(&self.events),
            ));
        }
        self.built.insert(resolved, Arc::clone(&client));
        Ok(client)
    }

    /// The bare client that speaks the provider's wire format.
    fn wire_client(&self, resolved: ProviderChoice) -> Result<Arc<dyn LlmClient>, LlmError> {
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
        Ok(client)
    }
}
