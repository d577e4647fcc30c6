//! Settings of the server's operational surface: admission control, shutdown, auth, logs.
//!
//! They sit next to the library's sections in [`super::Settings`], so that one file and one
//! set of environment variables configure the whole process.

use std::path::PathBuf;

use arshai::settings::InvalidSetting;
use serde::{Deserialize, Serialize};

/// Admission control and connection limits (`[admission]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionSettings {
    /// Most agent turns running at once in this process.
    pub max_in_flight_turns: usize,
    /// Most turns waiting for a slot; beyond it a turn is answered 503 at once.
    pub max_queued_turns: usize,
    /// Longest a turn waits in the queue before it is answered 503, in seconds.
    pub queue_timeout_seconds: f64,
    /// The `Retry-After` sent with an overload 503, in seconds.
    pub retry_after_seconds: u64,
    /// Most open client connections; further connections wait in the kernel's backlog.
    pub max_connections: usize,
    /// Bound on reading a request's headers, in seconds. The timer also runs while a
    /// kept-alive connection waits for its next request, so it is the keep-alive idle
    /// timeout as well.
    pub header_read_timeout_seconds: f64,
    /// Serve HTTP/1.1 keep-alive (connection reuse).
    pub keep_alive: bool,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            max_in_flight_turns: 1024,
            max_queued_turns: 1024,
            queue_timeout_seconds: 5.0,
            retry_after_seconds: 1,
            max_connections: 16_384,
            header_read_timeout_seconds: 30.0,
            keep_alive: true,
        }
    }
}

impl AdmissionSettings {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        InvalidSetting::check_seconds([
            (
                "admission.queue_timeout_seconds",
                self.queue_timeout_seconds,
            ),
            (
                "admission.header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
        ])?;
        InvalidSetting::check_at_least_one([
            (
                "admission.max_in_flight_turns",
                self.max_in_flight_turns as u64,
            ),
            ("admission.max_connections", self.max_connections as u64),
        ])
    }
}

/// Graceful shutdown (`[shutdown]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownSettings {
    /// After SIGTERM or SIGINT, how long in-flight turns and streams may run before they are
    /// cancelled, in seconds.
    pub grace_seconds: f64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self {
            grace_seconds: 30.0,
        }
    }
}

impl ShutdownSettings {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        InvalidSetting::check_seconds([("shutdown.grace_seconds", self.grace_seconds)])
    }
}

/// API-key authentication (`[auth]`). Off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Require an API key on every agent endpoint.
    pub enabled: bool,
    /// Keys declared inline.
    pub keys: Vec<ApiKeySettings>,
    /// A TOML file with more `[[keys]]` entries (same shape as `keys`), so that secrets can
    /// live in a mounted secret rather than in the main settings file.
    pub keys_file: Option<PathBuf>,
}

impl AuthSettings {
    /// Checks that each inline key names a tenant and exactly one of its key or hash.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        for (index, key) in self.keys.iter().enumerate() {
            if key.tenant.is_empty() || key.sha256.is_some() == key.key.is_some() {
                return Err(InvalidSetting::new(
                    format!("auth.keys[{index}]"),
                    "(hidden)",
                    "needs a non-empty tenant and exactly one of `sha256` or `key`",
                ));
            }
            if let Some(id) = &key.id
                && (id.is_empty() || id.contains(['{', '}']))
            {
                return Err(InvalidSetting::new(
                    format!("auth.keys[{index}].id"),
                    id,
                    "must be non-empty, without { or }",
                ));
            }
        }
        Ok(())
    }
}

/// One API key and the tenant it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// The tenant whose conversations this key reaches.
    pub tenant: String,
    /// The key's SHA-256, hex encoded (`arshai hash-key` prints it). Preferred: the file
    /// then holds no secret.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The key itself; hashed at load and never kept in clear.
    #[serde(default)]
    pub key: Option<String>,
    /// Agents this key may use; every agent when empty.
    #[serde(default)]
    pub agents: Vec<String>,
    /// The key's id in rate-limit and budget state (Redis key names, `GET /v1/usage`);
    /// never the secret. Default: the first 16 hex digits of the key's SHA-256.
    #[serde(default)]
    pub id: Option<String>,
    /// Requests per minute of this key; default `limits.key.requests_per_minute`.
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute of this key; default `limits.key.tokens_per_minute`.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Tokens per UTC day of this key; default `limits.key_budget.tokens_per_day`.
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    /// Tokens per UTC month of this key; default `limits.key_budget.tokens_per_month`.
    #[serde(default)]
    pub tokens_per_month: Option<u64>,
}

/// Log output (`[logging]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSettings {
    /// `json`, `pretty`, or `auto` (pretty on a terminal, JSON otherwise).
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}
