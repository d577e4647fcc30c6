//! Azure OpenAI: Chat Completions under
//! `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…`, authenticated
//! with the `api-key` header. The wire format is OpenAI's, so the client is an
//! [`OpenAiClient`] with Azure's URL and auth.

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

use super::openai::OpenAiClient;
use crate::llm::transport::endpoint::{checked_base_url, secret_header};
use crate::llm::{HttpPoolSettings, LlmError};

const PROVIDER: &str = "azure";

/// Azure OpenAI settings (`[providers.azure]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AzureSettings {
    /// Resource endpoint, e.g. `https://NAME.openai.azure.com` (`AZURE_OPENAI_ENDPOINT`).
    pub endpoint: Option<String>,
    /// API key (`AZURE_OPENAI_API_KEY`).
    pub api_key: Option<String>,
    /// Deployment name, which selects the model (`AZURE_DEPLOYMENT`).
    pub deployment: Option<String>,
    /// API version (`AZURE_API_VERSION`).
    pub api_version: String,
}

impl Default for AzureSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            api_key: None,
            deployment: None,
            api_version: "2024-10-21".to_owned(),
        }
    }
}

impl AzureSettings {
    /// Whether an endpoint is set.
    pub fn is_configured(&self) -> bool {
        self.endpoint.is_some()
    }

    /// Builds the client.
    pub fn client(&self, http: HttpPoolSettings) -> Result<OpenAiClient, LlmError> {
        let missing = |name: &str| LlmError::Config {
            provider: PROVIDER,
            message: format!("{name} is not set"),
        };
        let endpoint = self
            .endpoint
            .as_deref()
            .ok_or_else(|| missing("AZURE_OPENAI_ENDPOINT"))?;
        let endpoint = checked_base_url(PROVIDER, endpoint)?;
        let deployment = self
            .deployment
            .as_deref()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| missing("AZURE_DEPLOYMENT"))?;
        let key = self
            .api_key
            .as_deref()
            .ok_or_else(|| missing("AZURE_OPENAI_API_KEY"))?;
        let mut headers = HeaderMap::new();
        headers.insert("api-key", secret_header(PROVIDER, key)?);
        OpenAiClient::with_endpoint(
            PROVIDER,
            format!(
                "{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={}",
                self.api_version
            ),
            headers,
            deployment.to_owned(),
            http,
        )
    }
}
