//! Builds LLM clients from [`super::ProvidersSettings`], one per provider, shared
//! by every agent that uses it.
//!
//! Each provider's client is composed from small units, innermost first: the provider's wire
//! client, a [`LimitedClient`] (slots in flight, total and per host, shared by the factory's
//! clients), its [`CircuitClient`] (each upstream attempt counts), a [`RetryingClient`], and,
//! when `providers.fallback` names providers, a [`FallbackClient`] chain.

use std::collections::HashMap;
use std::sync::Arc;

use super::providers::gemini::{self, GeminiClient};
use super::providers::openai::{DEFAULT_BASE_URL, OpenAiClient, OpenAiConfig};
use super::providers::openrouter;
use super::{
    CallLimiter, CircuitBreaker, CircuitClient, FallbackClient, LimitedClient, LlmClient, LlmError,
    LlmEvents, NoEvents, ProviderChoice, ProvidersSettings, RetryPolicy, RetryingClient, host_of,
};

/// Creates each provider's client once and hands out shared references.
pub struct ClientFactory {
    settings: ProvidersSettings,
    events: Arc<dyn LlmEvents>,
    limiter: Arc<CallLimiter>,
    built: HashMap<ProviderChoice, Arc<dyn LlmClient>>,
}

impl ClientFactory {
    /// A factory over `settings`.
    pub fn new(settings: ProvidersSettings) -> Self {
        Self::with_events(settings, Arc::new(NoEvents))
    }

    /// A factory whose clients report retries and circuit states to `events`.
    pub fn with_events(settings: ProvidersSettings, events: Arc<dyn LlmEvents>) -> Self {
        let http = &settings.http;
        let limiter = Arc::new(CallLimiter::new(
            http.max_in_flight,
            http.max_in_flight_per_host,
            http.pool_wait(),
        ));
        Self {
            settings,
            events,
            limiter,
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
            ProviderChoice::Auto if self.settings.azure.is_configured() => {
                Ok(ProviderChoice::Azure)
            }
            ProviderChoice::Auto if self.settings.gemini.is_configured() => {
                Ok(ProviderChoice::Gemini)
            }
            ProviderChoice::Auto if self.settings.openrouter.is_configured() => {
                Ok(ProviderChoice::Openrouter)
            }
            ProviderChoice::Auto => Ok(ProviderChoice::Local),
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
        if resolved == ProviderChoice::Local {
            // In-process: no connections to pool, no transient network failures to retry;
            // its bounded queue answers overload itself.
            let client = local_client(&self.settings)?;
            self.built.insert(resolved, Arc::clone(&client));
            return Ok(client);
        }
        let (wire, host) = self.wire_client(resolved)?;
        let mut client: Arc<dyn LlmClient> =
            Arc::new(LimitedClient::new(wire, Arc::clone(&self.limiter), host));
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

    /// The bare client that speaks the provider's wire format, and the host it calls.
    fn wire_client(
        &self,
        resolved: ProviderChoice,
    ) -> Result<(Arc<dyn LlmClient>, String), LlmError> {
        let settings = &self.settings;
        let url = match resolved {
            ProviderChoice::Openai | ProviderChoice::Auto => settings
                .openai
                .base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            ProviderChoice::Azure => settings.azure.endpoint.clone().unwrap_or_default(),
            ProviderChoice::Local => String::new(),
            ProviderChoice::Gemini => settings
                .gemini
                .base_url
                .clone()
                .unwrap_or_else(|| gemini::DEFAULT_BASE_URL.to_owned()),
            ProviderChoice::Openrouter => settings
                .openrouter
                .base_url
                .clone()
                .unwrap_or_else(|| openrouter::DEFAULT_BASE_URL.to_owned()),
        };
        let client: Arc<dyn LlmClient> = match resolved {
            ProviderChoice::Openai | ProviderChoice::Auto => {
                let openai = &self.settings.openai;
                Arc::new(OpenAiClient::new(OpenAiConfig {
                    provider: "openai",
                    base_url: url.clone(),
                    api_key: openai.api_key.clone(),
                    default_model: openai.model.clone(),
                    extra_headers: openai
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    http: self.settings.http.clone(),
                })?)
            }
            ProviderChoice::Local => local_client(&self.settings)?,
            ProviderChoice::Azure => {
                Arc::new(self.settings.azure.client(self.settings.http.clone())?)
            }
            ProviderChoice::Gemini => Arc::new(GeminiClient::new(
                &self.settings.gemini,
                self.settings.http.clone(),
            )?),
            ProviderChoice::Openrouter => Arc::new(
                self.settings
                    .openrouter
                    .client(self.settings.http.clone())?,
            ),
        };
        Ok((client, host_of(&url)))
    }
}

#[cfg(feature = "local-model")]
fn local_client(settings: &ProvidersSettings) -> Result<Arc<dyn LlmClient>, LlmError> {
    Ok(Arc::new(super::LocalClient::new(&settings.local)?))
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
