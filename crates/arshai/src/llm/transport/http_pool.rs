//! The pooled HTTP client shared by the HTTP providers.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::dns_cache::{CachingResolver, SharedResolver};
use crate::InvalidSetting;
use crate::llm::LlmError;

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
    /// Calls in flight to all providers together (the seed's `limit`).
    pub max_in_flight: usize,
    /// Calls in flight to one host (the seed's `limit_per_host`).
    pub max_in_flight_per_host: usize,
    /// Longest wait for a free slot when a limit is reached, in seconds; then the call
    /// fails with a timeout.
    pub pool_wait_seconds: f64,
    /// Use HTTP/2 when the upstream offers it (TLS ALPN); `false` forces HTTP/1.1.
    pub http2: bool,
    /// How long resolved DNS answers are reused, in seconds (the seed's `ttl_dns_cache`);
    /// `0` resolves on every new connection.
    pub ttl_dns_cache_seconds: f64,
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
            max_in_flight: 100,
            max_in_flight_per_host: 30,
            pool_wait_seconds: 10.0,
            http2: true,
            ttl_dns_cache_seconds: 10.0,
        }
    }
}

impl HttpPoolSettings {
    /// The total deadline of a non-streaming call.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_seconds)
    }

    /// The longest wait for a free call slot.
    pub fn pool_wait(&self) -> Duration {
        Duration::from_secs_f64(self.pool_wait_seconds)
    }

    /// The longest wait for the next bytes of a streamed answer.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.read_timeout_seconds)
    }

    /// Checks ranges (`[providers.http]`).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        InvalidSetting::check_seconds([
            (
                "providers.http.request_timeout_seconds",
                self.request_timeout_seconds,
            ),
            (
                "providers.http.connect_timeout_seconds",
                self.connect_timeout_seconds,
            ),
            (
                "providers.http.idle_timeout_seconds",
                self.idle_timeout_seconds,
            ),
            (
                "providers.http.tcp_keepalive_seconds",
                self.tcp_keepalive_seconds,
            ),
            (
                "providers.http.read_timeout_seconds",
                self.read_timeout_seconds,
            ),
            ("providers.http.pool_wait_seconds", self.pool_wait_seconds),
        ])?;
        if self.max_in_flight == 0 || self.max_in_flight_per_host == 0 {
            return Err(InvalidSetting::new(
                "providers.http.max_in_flight",
                0,
                "limits of calls in flight must be at least 1",
            ));
        }
        if !(self.ttl_dns_cache_seconds >= 0.0 && self.ttl_dns_cache_seconds < 1e9) {
            return Err(InvalidSetting::new(
                "providers.http.ttl_dns_cache_seconds",
                self.ttl_dns_cache_seconds,
                "must be a number of seconds, 0 or more",
            ));
        }
        Ok(())
    }
}

/// Builds the one pooled `reqwest::Client` a provider uses for all its calls.
pub fn build_http_client(
    provider: &'static str,
    settings: &HttpPoolSettings,
) -> Result<reqwest::Client, LlmError> {
    let resolver = CachingResolver::new(Duration::from_secs_f64(settings.ttl_dns_cache_seconds));
    let mut builder = reqwest::Client::builder()
        .pool_max_idle_per_host(settings.max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs_f64(settings.idle_timeout_seconds))
        .connect_timeout(Duration::from_secs_f64(settings.connect_timeout_seconds))
        .tcp_keepalive(Duration::from_secs_f64(settings.tcp_keepalive_seconds))
        .tcp_nodelay(true)
        .dns_resolver(Arc::new(SharedResolver(Arc::new(resolver))));
    builder = if settings.http2 {
        builder
            .http2_adaptive_window(true)
            .http2_keep_alive_interval(Duration::from_secs_f64(settings.tcp_keepalive_seconds))
            .http2_keep_alive_while_idle(true)
    } else {
        builder.http1_only()
    };
    builder.build().map_err(|e| LlmError::Config {
        provider,
        message: format!("cannot build the HTTP client: {e}"),
    })
}
