//! Settings: defaults < TOML file < environment (< command-line flags, applied by the binary).
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
mod operations;

pub use operations::{
    AdmissionSettings, ApiKeySettings, AuthSettings, LogFormat, LoggingSettings, ShutdownSettings,
};

mod local;

use std::collections::HashSet;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::llm::azure::AzureSettings;
use crate::llm::gemini::GeminiSettings;
use crate::llm::openrouter::OpenRouterSettings;
use crate::llm::{CircuitSettings, HttpPoolSettings, RetrySettings};
use crate::memory::LeasePolicy;

pub use local::{DEFAULT_MODEL_PATH, LocalProviderSettings, MAX_CONTEXT_TOKENS};

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

/// The whole configuration of a server or an embedding application.
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
}

/// The HTTP service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind (the scaling guide's Service targets 8000).
    pub port: u16,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Deadline of one request, in seconds.
    pub request_timeout_seconds: f64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8000,
            max_body_bytes: 1024 * 1024,
            request_timeout_seconds: 300.0,
        }
    }
}

/// Streamed responses (server-sent events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSettings {
    /// Seconds between keep-alive comments while a stream has nothing to send, so proxies
    /// and load balancers do not close a quiet connection.
    pub keep_alive_seconds: f64,
    /// A stream that produces no event for this many seconds ends with an error event.
    pub idle_timeout_seconds: f64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            keep_alive_seconds: 15.0,
            idle_timeout_seconds: 60.0,
        }
    }
}

/// Which memory backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryProvider {
    /// In this process only (one instance).
    Memory,
    /// Redis (standalone, Sentinel or Cluster): shared by every instance.
    Redis,
}

/// Conversation memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemorySettings {
    /// `memory` or `redis`; when unset, `redis` if a Redis URL is set, else `memory`.
    pub memory_provider: Option<MemoryProvider>,
    /// Redis URL (`redis://`, `rediss://`, with user and password for ACLs).
    pub redis_url: Option<String>,
    /// Redis host, used when no URL is set.
    pub redis_host: String,
    /// Redis port, used when no URL is set.
    pub redis_port: u16,
    /// Redis database number.
    pub redis_db: i64,
    /// Bound on Redis connections / commands in flight.
    pub redis_max_connections: usize,
    /// Retry idempotent Redis operations that time out.
    pub redis_retry_on_timeout: bool,
    /// Sliding TTL of a conversation, in seconds, refreshed on every write.
    pub ttl_seconds: u64,
    /// Most conversations kept per tenant; the least recently used are evicted.
    pub max_conversations: u64,
    /// Optional cap on conversations over every tenant together.
    pub max_conversations_total: Option<u64>,
    /// Redis Cluster: buckets of the LRU and listing indexes (`0`: 16).
    pub redis_index_buckets: u32,
    /// Most messages kept per conversation; the oldest are trimmed.
    pub max_messages: usize,
    /// Prefix of every Redis key.
    pub key_prefix: String,
    /// What a turn does when another turn holds its conversation: `wait` or `reject`.
    pub turn_policy: LeasePolicy,
    /// With `turn_policy = "wait"`, the longest wait, in seconds.
    pub turn_wait_seconds: f64,
    /// Lifetime of a turn lease without renewal, in seconds.
    pub turn_lease_seconds: f64,
    /// Sentinel: the monitored master's name; setting it selects Sentinel.
    pub redis_sentinel_master: Option<String>,
    /// Sentinel: the sentinels' addresses (`host:port`).
    pub redis_sentinels: Vec<String>,
    /// Cluster: seed nodes (`host:port` or `redis://…`); setting them selects Cluster.
    pub redis_cluster_nodes: Vec<String>,
    /// Bound on establishing a Redis connection, in seconds.
    pub redis_connect_timeout_seconds: f64,
    /// Bound on each Redis command's reply, in seconds.
    pub redis_response_timeout_seconds: f64,
    /// Longest wait for one of the `redis_max_connections` in-flight slots, in seconds.
    pub redis_pool_wait_seconds: f64,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            memory_provider: None,
            redis_url: None,
            redis_host: "127.0.0.1".to_owned(),
            redis_port: 6379,
            redis_db: 0,
            redis_max_connections: 20,
            redis_retry_on_timeout: true,
            ttl_seconds: 3600,
            max_conversations: 1000,
            max_conversations_total: None,
            redis_index_buckets: 0,
            max_messages: 1000,
            key_prefix: "arshai".to_owned(),
            turn_policy: LeasePolicy::Wait,
            turn_wait_seconds: 30.0,
            turn_lease_seconds: 5.0,
            redis_sentinel_master: None,
            redis_sentinels: Vec::new(),
            redis_cluster_nodes: Vec::new(),
            redis_connect_timeout_seconds: 5.0,
            redis_response_timeout_seconds: 2.0,
            redis_pool_wait_seconds: 2.0,
        }
    }
}

impl MemorySettings {
    /// The backend in effect: the explicit choice, else Redis when a URL, a Sentinel master or
    /// Cluster nodes are set.
    pub fn effective_provider(&self) -> MemoryProvider {
        match self.memory_provider {
            Some(provider) => provider,
            None if self.redis_url.is_some()
                || self.redis_sentinel_master.is_some()
                || !self.redis_cluster_nodes.is_empty() =>
            {
                MemoryProvider::Redis
            }
            None => MemoryProvider::Memory,
        }
    }

    /// The lease settings for agent turns.
    pub fn lease_settings(&self) -> crate::memory::LeaseSettings {
        crate::memory::LeaseSettings {
            ttl: std::time::Duration::from_secs_f64(self.turn_lease_seconds),
            policy: self.turn_policy,
            max_wait: std::time::Duration::from_secs_f64(self.turn_wait_seconds),
        }
    }
}

/// LLM providers.
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

/// An OpenAI-compatible provider.
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
    pub headers: std::collections::BTreeMap<String, String>,
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

/// Agent types the registry can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentType {
    /// [`crate::agent::ConversationAgent`].
    Conversation,
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

/// One agent exposed by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Name in URLs: `/v1/agents/{name}/messages`.
    pub name: String,
    /// The agent type.
    #[serde(rename = "type")]
    pub agent_type: AgentType,
    /// The provider.
    #[serde(default)]
    pub provider: ProviderChoice,
    /// The model; the provider's default when unset.
    #[serde(default)]
    pub model: Option<String>,
    /// The system prompt.
    #[serde(default)]
    pub system_prompt: String,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Bound on generated tokens per call.
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

impl Settings {
    /// Loads defaults < `file` < the process environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
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
        for (name, key) in env_names::PLAIN {
            // A Service named `redis` makes Kubernetes inject `REDIS_PORT=tcp://…`.
            if std::env::var(name).is_ok_and(|value| environment::is_service_link(&value)) {
                continue;
            }
            let key = *key;
            figment = figment.merge(Env::raw().only(&[name]).map(move |_| key.into()));
        }
        // Only `ARSHAI_<SECTION>__<KEY>`: `ARSHAI_SERVICE_PORT` (a Service named `arshai`)
        // and the binary's own variables are not settings.
        figment = figment.merge(
            Env::prefixed(env_names::PREFIX)
                .filter(|rest| environment::is_structured(rest.as_str()))
                .split(env_names::SEPARATOR),
        );
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks ranges and consistency that types alone cannot express.
    pub fn validate(&self) -> Result<(), SettingsError> {
        fn invalid(key: &str, value: impl ToString, reason: &str) -> SettingsError {
            SettingsError::Invalid {
                key: key.to_owned(),
                value: value.to_string(),
                reason: reason.to_owned(),
            }
        }
        let memory = &self.memory;
        if memory.ttl_seconds == 0 {
            return Err(invalid("memory.ttl_seconds", 0, "must be at least 1"));
        }
        if memory.max_conversations_total == Some(0) {
            return Err(invalid(
                "memory.max_conversations_total",
                0,
                "must be at least 1 (leave it unset for no global cap)",
            ));
        }
        if memory.max_conversations == 0 {
            return Err(invalid("memory.max_conversations", 0, "must be at least 1"));
        }
        if memory.max_messages == 0 {
            return Err(invalid("memory.max_messages", 0, "must be at least 1"));
        }
        if memory.redis_max_connections == 0 {
            return Err(invalid(
                "memory.redis_max_connections",
                0,
                "must be at least 1",
            ));
        }
        for (key, value) in [
            ("memory.turn_wait_seconds", memory.turn_wait_seconds),
            ("memory.turn_lease_seconds", memory.turn_lease_seconds),
            (
                "memory.redis_connect_timeout_seconds",
                memory.redis_connect_timeout_seconds,
            ),
            (
                "memory.redis_response_timeout_seconds",
                memory.redis_response_timeout_seconds,
            ),
            (
                "memory.redis_pool_wait_seconds",
                memory.redis_pool_wait_seconds,
            ),
            (
                "server.request_timeout_seconds",
                self.server.request_timeout_seconds,
            ),
            (
                "providers.http.request_timeout_seconds",
                self.providers.http.request_timeout_seconds,
            ),
            (
                "providers.http.connect_timeout_seconds",
                self.providers.http.connect_timeout_seconds,
            ),
            (
                "providers.http.idle_timeout_seconds",
                self.providers.http.idle_timeout_seconds,
            ),
            (
                "providers.http.tcp_keepalive_seconds",
                self.providers.http.tcp_keepalive_seconds,
            ),
            (
                "providers.http.read_timeout_seconds",
                self.providers.http.read_timeout_seconds,
            ),
            ("stream.keep_alive_seconds", self.stream.keep_alive_seconds),
            (
                "stream.idle_timeout_seconds",
                self.stream.idle_timeout_seconds,
            ),
            (
                "admission.queue_timeout_seconds",
                self.admission.queue_timeout_seconds,
            ),
            (
                "admission.header_read_timeout_seconds",
                self.admission.header_read_timeout_seconds,
            ),
            ("shutdown.grace_seconds", self.shutdown.grace_seconds),
            (
                "providers.http.pool_wait_seconds",
                self.providers.http.pool_wait_seconds,
            ),
        ] {
            if !(value.is_finite() && value > 0.0 && value < 1e9) {
                return Err(invalid(key, value, "must be a positive number of seconds"));
            }
        }
        if memory.effective_provider() == MemoryProvider::Redis
            && memory.redis_url.as_deref().is_some_and(|url| {
                !(url.starts_with("redis://")
                    || url.starts_with("rediss://")
                    || url.starts_with("redis+unix://")
                    || url.starts_with("unix://"))
            })
        {
            return Err(invalid(
                "memory.redis_url",
                "(hidden)",
                "must start with redis://, rediss:// or unix://",
            ));
        }
        for (key, value) in [
            (
                "admission.max_in_flight_turns",
                self.admission.max_in_flight_turns,
            ),
            ("admission.max_connections", self.admission.max_connections),
        ] {
            if value == 0 {
                return Err(invalid(key, 0, "must be at least 1"));
            }
        }
        for (index, key) in self.auth.keys.iter().enumerate() {
            if key.tenant.is_empty() || key.sha256.is_some() == key.key.is_some() {
                return Err(invalid(
                    &format!("auth.keys[{index}]"),
                    "(hidden)",
                    "needs a non-empty tenant and exactly one of `sha256` or `key`",
                ));
            }
        }
        if memory.key_prefix.contains(['{', '}']) {
            return Err(invalid(
                "memory.key_prefix",
                &memory.key_prefix,
                "must not contain '{' or '}' (they would change the Redis Cluster hash tag)",
            ));
        }
        if memory.redis_sentinel_master.is_some() && memory.redis_sentinels.is_empty() {
            return Err(invalid(
                "memory.redis_sentinels",
                "[]",
                "must list at least one sentinel when redis_sentinel_master is set",
            ));
        }

        self.providers.local.validate()?;

        if self.providers.http.max_in_flight == 0 || self.providers.http.max_in_flight_per_host == 0
        {
            return Err(invalid(
                "providers.http.max_in_flight",
                0,
                "limits of calls in flight must be at least 1",
            ));
        }
        if !(self.providers.http.ttl_dns_cache_seconds >= 0.0
            && self.providers.http.ttl_dns_cache_seconds < 1e9)
        {
            return Err(invalid(
                "providers.http.ttl_dns_cache_seconds",
                self.providers.http.ttl_dns_cache_seconds,
                "must be a number of seconds, 0 or more",
            ));
        }
        if self.server.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes", 0, "must be at least 1"));
        }
        let mut names = HashSet::new();
        for (index, agent) in self.agents.iter().enumerate() {
            let key = format!("agents[{index}].name");
            if agent.name.is_empty()
                || !agent
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(invalid(
                    &key,
                    format!("{:?}", agent.name),
                    "must be non-empty ASCII letters, digits, '-', '_' or '.'",
                ));
            }
            if !names.insert(agent.name.as_str()) {
                return Err(invalid(&key, &agent.name, "is declared twice"));
            }
            if let Some(t) = agent.temperature
                && !(0.0..=2.0).contains(&t)
            {
                return Err(invalid(
                    &format!("agents[{index}].temperature"),
                    t,
                    "must be within 0.0 to 2.0",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
