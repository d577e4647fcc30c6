//! [`OpenAiClientBuilder`]: an [`OpenAiClient`] from a few calls, every other setting at its
//! default.

use std::time::Duration;

use super::{DEFAULT_BASE_URL, OpenAiClient, OpenAiConfig};
use crate::llm::{HttpPoolSettings, LlmError};

/// The model used when neither the builder nor a request names one (the default of
/// `providers.openai.model`).
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// Builds an [`OpenAiClient`]: the public OpenAI API and [`DEFAULT_MODEL`] unless told
/// otherwise, no API key, and the pool and timeouts of [`HttpPoolSettings::default`].
/// Start from [`OpenAiClient::builder`].
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct OpenAiClientBuilder {
    config: OpenAiConfig,
}

impl OpenAiClientBuilder {
    /// The bearer token (`OPENAI_API_KEY`); without one no `Authorization` header is sent
    /// (local gateways).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.config.api_key = Some(key.into());
        self
    }

    /// The base URL up to and including the version segment, for any OpenAI-compatible
    /// endpoint (vLLM, Ollama, LiteLLM, …); [`DEFAULT_BASE_URL`] when unset.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.config.base_url = url.into();
        self
    }

    /// The model used when a request names none.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.config.default_model = model.into();
        self
    }

    /// A header sent with every request (a gateway's routing or tenant header).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.extra_headers.push((name.into(), value.into()));
        self
    }

    /// The provider's name in errors and metrics (`openai` unless set).
    pub fn provider(mut self, name: &'static str) -> Self {
        self.config.provider = name;
        self
    }

    /// The total deadline of a non-streaming call (and of a streamed call's response head).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.http.request_timeout_seconds = timeout.as_secs_f64();
        self
    }

    /// The bound on establishing a connection (TCP and TLS).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.http.connect_timeout_seconds = timeout.as_secs_f64();
        self
    }

    /// The longest wait for the next bytes of a streamed answer.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.config.http.read_timeout_seconds = timeout.as_secs_f64();
        self
    }

    /// Every pool and timeout setting at once (replaces the timeouts set before).
    pub fn http(mut self, http: HttpPoolSettings) -> Self {
        self.config.http = http;
        self
    }

    /// The client, with its pooled HTTP client. Fails on a base URL that is not http(s) or
    /// on a header or key that cannot be sent.
    pub fn build(self) -> Result<OpenAiClient, LlmError> {
        OpenAiClient::new(self.config)
    }
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            provider: "openai",
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: None,
            default_model: DEFAULT_MODEL.to_owned(),
            extra_headers: Vec::new(),
            http: HttpPoolSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{LlmClient, OpenAiProviderSettings};

    #[test]
    fn the_builder_defaults_to_the_public_api_and_the_settings_model() {
        let client = OpenAiClient::builder().build().expect("builds");
        assert_eq!(client.provider(), "openai");
        assert_eq!(
            client.default_model(),
            OpenAiProviderSettings::default().model
        );
        let client = OpenAiClient::builder()
            .base_url("http://127.0.0.1:9/v1")
            .model("m")
            .build()
            .expect("builds");
        assert_eq!(client.default_model(), "m");
        assert!(OpenAiClient::builder().base_url("ftp://x").build().is_err());
    }
}
