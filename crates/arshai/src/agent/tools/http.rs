//! The built-in HTTP request tool: GET or POST to a host on an allow-list, within a time
//! bound, its body cut to a size bound. The model sees the status and the body text.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::settings::HttpToolSettings;
use super::{Tool, ToolError};
use crate::llm::ToolDefinition;

/// Redirects followed at most (each to an allowed host).
const MAX_REDIRECTS: usize = 5;

/// The HTTP request tool built from [`HttpToolSettings`].
#[derive(Debug, Clone)]
pub struct HttpTool {
    definition: ToolDefinition,
    allow: AllowList,
    max_bytes: usize,
    timeout: Duration,
    client: reqwest::Client,
}

/// The arguments the model sends.
#[derive(Debug, Deserialize, JsonSchema)]
struct HttpArguments {
    /// `GET` (default) or `POST`.
    #[serde(default)]
    method: Method,
    /// The absolute `http://` or `https://` URL.
    url: String,
    /// The request body (POST only).
    #[serde(default)]
    body: Option<String>,
    /// The body's content type (default `application/json` when there is a body).
    #[serde(default)]
    content_type: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
enum Method {
    #[default]
    Get,
    Post,
}

/// Hosts a request may reach: `host` (any port) or `host:port`.
#[derive(Debug, Clone)]
struct AllowList(Vec<(String, Option<u16>)>);

impl AllowList {
    fn new(hosts: &[String]) -> Self {
        Self(
            hosts
                .iter()
                .map(|entry| {
                    let entry = entry.to_ascii_lowercase();
                    match entry.rsplit_once(':') {
                        // `[::1]:8080` or `host:8080`; a bare IPv6 address has no brackets.
                        Some((host, port)) if !host.ends_with(':') && !host.is_empty() => {
                            match port.parse() {
                                Ok(port) => (host.trim_matches(['[', ']']).to_owned(), Some(port)),
                                Err(_) => (entry.trim_matches(['[', ']']).to_owned(), None),
                            }
                        }
                        _ => (entry.trim_matches(['[', ']']).to_owned(), None),
                    }
                })
                .collect(),
        )
    }

    fn allows(&self, url: &reqwest::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let port = url.port_or_known_default();
        self.0.iter().any(|(allowed, allowed_port)| {
            *allowed == host && allowed_port.is_none_or(|p| Some(p) == port)
        })
    }
}

impl HttpTool {
    /// The tool `settings` describe.
    pub fn new(settings: &HttpToolSettings) -> Result<Self, ToolError> {
        let allow = AllowList::new(&settings.allow_hosts);
        let redirects = allow.clone();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
                } else if redirects.allows(attempt.url()) {
                    attempt.follow()
                } else {
                    let refused = format!(
                        "a redirect to {} (a host not on the tool's allow-list)",
                        attempt.url().host_str().unwrap_or("?")
                    );
                    attempt.error(refused)
                }
            }))
            .build()
            .map_err(|e| ToolError::new(format!("cannot build the HTTP client: {e}")))?;
        let description = settings.description.clone().unwrap_or_else(|| {
            format!(
                "Sends an HTTP GET or POST request and returns the status and the body (at \
                 most {} bytes). Only these hosts can be reached: {}.",
                settings.max_response_bytes,
                settings.allow_hosts.join(", ")
            )
        });
        Ok(Self {
            definition: ToolDefinition::of::<HttpArguments>(&settings.name, description),
            allow,
            max_bytes: settings.max_response_bytes,
            timeout: Duration::from_secs_f64(settings.timeout_seconds),
            client,
        })
    }

    async fn request(&self, arguments: HttpArguments) -> Result<String, ToolError> {
        let url = reqwest::Url::parse(&arguments.url).map_err(|e| {
            ToolError::new(format!("the url {:?} is not valid: {e}", arguments.url))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::new(format!(
                "the url must be http:// or https://, not {}://",
                url.scheme()
            )));
        }
        if !self.allow.allows(&url) {
            return Err(ToolError::new(format!(
                "the host {} is not on this tool's allow-list",
                url.host_str().unwrap_or("?")
            )));
        }
        let request = match arguments.method {
            Method::Get => {
                if arguments.body.is_some() {
                    return Err(ToolError::new("a GET request has no body; use POST"));
                }
                self.client.get(url)
            }
            Method::Post => {
                let body = arguments.body.unwrap_or_default();
                let content_type = arguments
                    .content_type
                    .unwrap_or_else(|| "application/json".to_owned());
                self.client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body)
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| ToolError::new(format!("the request failed: {}", error_chain(&e))))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let mut truncated = false;
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| {
                ToolError::new(format!("the response body broke off: {}", error_chain(&e)))
            })?;
            let room = self.max_bytes - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        // A cut may fall inside a UTF-8 sequence: drop the partial character.
        let text = match String::from_utf8(body) {
            Ok(text) => text,
            Err(error) => {
                let valid = error.utf8_error().valid_up_to();
                let mut bytes = error.into_bytes();
                if truncated && bytes.len() - valid < 4 {
                    bytes.truncate(valid);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        Ok(json!({ "status": status, "body": text, "truncated": truncated }).to_string())
    }
}

#[async_trait]
impl Tool for HttpTool {
    fn definition(&self) -> ToolDefinition {
        self.definition.clone()
    }

    async fn call(&self, arguments: Value) -> Result<String, ToolError> {
        let arguments: HttpArguments = serde_json::from_value(arguments)
            .map_err(|e| ToolError::new(format!("the arguments do not match the schema: {e}")))?;
        match tokio::time::timeout(self.timeout, self.request(arguments)).await {
            Ok(result) => result,
            Err(_) => Err(ToolError::new(format!(
                "the request did not finish within {:?}",
                self.timeout
            ))),
        }
    }
}

/// An error and its sources, so the model reads why (a refused redirect, a refused
/// connection) and not only "error sending request".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_with_or_without_a_port() {
        let allow = AllowList::new(&[
            "Example.com".into(),
            "127.0.0.1:8080".into(),
            "[::1]:9".into(),
        ]);
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(allow.allows(&url("https://example.com/x")));
        assert!(allow.allows(&url("http://EXAMPLE.com:81/")));
        assert!(allow.allows(&url("http://127.0.0.1:8080/")));
        assert!(!allow.allows(&url("http://127.0.0.1:8081/")));
        assert!(!allow.allows(&url("http://example.com.evil.net/")));
        assert!(allow.allows(&url("http://[::1]:9/")));
    }
}
