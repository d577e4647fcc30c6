//! The HTTP service (`[server]`) and streamed responses (`[stream]`).

use serde::{Deserialize, Serialize};

use arshai::settings::InvalidSetting;

/// The HTTP service (`[server]`).
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

impl ServerSettings {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        InvalidSetting::check_seconds([(
            "server.request_timeout_seconds",
            self.request_timeout_seconds,
        )])?;
        InvalidSetting::check_at_least_one([("server.max_body_bytes", self.max_body_bytes as u64)])
    }
}

/// Streamed responses, server-sent events (`[stream]`).
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

impl StreamSettings {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        InvalidSetting::check_seconds([
            ("stream.keep_alive_seconds", self.keep_alive_seconds),
            ("stream.idle_timeout_seconds", self.idle_timeout_seconds),
        ])
    }
}
