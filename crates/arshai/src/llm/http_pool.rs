//! The pooled HTTP client shared by the HTTP providers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::LlmError;

/// Connection pool and timeout settings for one provider's HTTP client.
///
/// Names follow the scaling guide's `aiohttp.TCPConnector` example where they apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpPoolSettings {
    /// Idle connections kept per host.
    pub max_idle_per_host: usize,
    /// How long an idle connection is kept, in seconds.
    pub idle_timeout_seconds: f64,
    /// Bound on establishing a TCP (and TLS) connection, in seconds.
    pub connect_timeout_seconds: f64,
    /// Total deadline of a non-streaming call, in seconds.
    pub request_timeout_seconds: f64,
    /// TCP keepalive interval, in seconds.
    pub tcp_keepalive_seconds: f64,
    /// Longest wait for the next bytes of a streamed answer, in seconds.
    pub read_timeout_seconds: f64,
}

impl Default for HttpPoolSettings {
    fn default() -> Self {
        Self {
            max_idle_per_host: 64,
            idle_timeout_seconds: 90.0,
            connect_timeout_seconds: 5.0,
            request_timeout_seconds: 120.0,
            tcp_keepalive_seconds: 30.0,
            read_timeout_seconds: 60.0,
        }
    }
}

impl HttpPoolSettings {
    /// The total deadline of a non-streaming call.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_seconds)
    }

    /// The longest wait for the next bytes of a streamed answer.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.read_timeout_seconds)
    }
}

/// Builds the one pooled `reqwest::Client` a provider uses for all its calls.
pub fn build_http_client(
    provider: &'static str,
    settings: &HttpPoolSettings,
) -> Result<reqwest::Client, LlmError> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(settings.max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs_f64(settings.idle_timeout_seconds))
        .connect_timeout(Duration::from_secs_f64(settings.connect_timeout_seconds))
        .tcp_keepalive(Duration::from_secs_f64(settings.tcp_keepalive_seconds))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| LlmError::Config {
            provider,
            message: format!("cannot build the HTTP client: {e}"),
        })
}
