//! The tools an agent declares in the settings (`[[agents]]`, `tools = [ … ]`): built-in
//! tools (an HTTP request tool, a clock), MCP servers, and other agents.
//!
//! In TOML each entry is a one-key table naming its kind:
//!
//! ```toml
//! tools = [
//!   "clock",
//!   { http = { allow_hosts = ["api.example.com"], max_response_bytes = 65536 } },
//!   { mcp = { name = "files", command = "python3", args = ["files_server.py"] } },
//!   { mcp = { name = "search", url = "http://127.0.0.1:8931/mcp" } },
//!   { agent = "researcher" },
//! ]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::InvalidSetting;

/// One tool (or set of tools, for an MCP server) an agent declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolSettings {
    /// The HTTP request tool: GET or POST to an allowed host.
    Http(HttpToolSettings),
    /// The clock tool: the current time in UTC (and at an offset).
    Clock,
    /// Every tool an MCP server lists (or those named in its `tools`).
    Mcp(McpServerSettings),
    /// Another configured agent, called with one message, as a stateless turn.
    Agent(String),
}

/// The HTTP request tool (`{ http = { … } }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpToolSettings {
    /// The tool's name, as the model calls it (default `http_request`).
    #[serde(default = "default_http_name")]
    pub name: String,
    /// What the model is told the tool is for (default: a sentence naming the hosts).
    #[serde(default)]
    pub description: Option<String>,
    /// Hosts the tool may reach: `host` (any port) or `host:port`, compared with the
    /// URL's host case-insensitively; redirects to other hosts are refused. Required.
    pub allow_hosts: Vec<String>,
    /// The body is cut to at most this many bytes (default 65536).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// The whole request, body included, must finish within this (default 10 s).
    #[serde(default = "default_http_timeout")]
    pub timeout_seconds: f64,
}

/// An MCP server (`{ mcp = { … } }`): a child process spoken to over its stdio
/// (`command`), or a streamable HTTP endpoint (`url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSettings {
    /// The server's name in errors and logs.
    pub name: String,
    /// The program to start (stdio transport).
    #[serde(default)]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables added to its environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Its working directory (default: the server's).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// The streamable HTTP endpoint (`http://host:port/mcp`).
    #[serde(default)]
    pub url: Option<String>,
    /// Only these of the server's tools are offered (default: every listed tool).
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// Bound on one tool call (default 30 s); a call that overruns fails, and the
    /// connection is opened anew on the next call.
    #[serde(default = "default_mcp_call_timeout")]
    pub call_timeout_seconds: f64,
    /// Bound on starting the server (or connecting to it) and its handshake (default 10 s).
    #[serde(default = "default_mcp_connect_timeout")]
    pub connect_timeout_seconds: f64,
}

fn default_http_name() -> String {
    "http_request".to_owned()
}

fn default_max_response_bytes() -> usize {
    65_536
}

fn default_http_timeout() -> f64 {
    10.0
}

fn default_mcp_call_timeout() -> f64 {
    30.0
}

fn default_mcp_connect_timeout() -> f64 {
    10.0
}

impl ToolSettings {
    /// Checks this entry, `key` being its dotted key (`agents[0].tools[1]`).
    pub fn validate(&self, key: &str) -> Result<(), InvalidSetting> {
        match self {
            Self::Http(http) => http.validate(&format!("{key}.http")),
            Self::Clock | Self::Agent(_) => Ok(()),
            Self::Mcp(mcp) => mcp.validate(&format!("{key}.mcp")),
        }
    }
}

impl HttpToolSettings {
    fn validate(&self, key: &str) -> Result<(), InvalidSetting> {
        check_tool_name(&format!("{key}.name"), &self.name)?;
        if self.allow_hosts.is_empty() {
            return Err(InvalidSetting::new(
                format!("{key}.allow_hosts"),
                "[]",
                "must name at least one host the tool may reach",
            ));
        }
        for (i, host) in self.allow_hosts.iter().enumerate() {
            if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
                return Err(InvalidSetting::new(
                    format!("{key}.allow_hosts[{i}]"),
                    format!("{host:?}"),
                    "must be a host name or host:port, without scheme or path",
                ));
            }
        }
        if self.max_response_bytes == 0 {
            return Err(InvalidSetting::new(
                format!("{key}.max_response_bytes"),
                0,
                "must be at least 1",
            ));
        }
        InvalidSetting::check_seconds([(
            format!("{key}.timeout_seconds").as_str(),
            self.timeout_seconds,
        )])
    }
}

impl McpServerSettings {
    fn validate(&self, key: &str) -> Result<(), InvalidSetting> {
        if self.name.trim().is_empty() {
            return Err(InvalidSetting::new(
                format!("{key}.name"),
                "\"\"",
                "must name the server",
            ));
        }
        match (&self.command, &self.url) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(InvalidSetting::new(
                    format!("{key}.command"),
                    format!("{:?}", self.command),
                    "an MCP server needs exactly one of command (stdio) or url (streamable HTTP)",
                ));
            }
            (Some(command), None) if command.trim().is_empty() => {
                return Err(InvalidSetting::new(
                    format!("{key}.command"),
                    "\"\"",
                    "must name the program to start",
                ));
            }
            (None, Some(url)) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err(InvalidSetting::new(
                    format!("{key}.url"),
                    url,
                    "must be an http:// or https:// URL",
                ));
            }
            _ => {}
        }
        if self.command.is_none() && (!self.args.is_empty() || !self.env.is_empty()) {
            return Err(InvalidSetting::new(
                format!("{key}.args"),
                format!("{:?}", self.args),
                "args and env need a command",
            ));
        }
        InvalidSetting::check_seconds([
            (
                format!("{key}.call_timeout_seconds").as_str(),
                self.call_timeout_seconds,
            ),
            (
                format!("{key}.connect_timeout_seconds").as_str(),
                self.connect_timeout_seconds,
            ),
        ])
    }
}

/// Checks that `name` is a tool name every provider accepts: 1 to 64 of `[a-zA-Z0-9_-]`.
pub(crate) fn check_tool_name(key: &str, name: &str) -> Result<(), InvalidSetting> {
    if is_tool_name(name) {
        Ok(())
    } else {
        Err(InvalidSetting::new(
            key,
            format!("{name:?}"),
            "a tool name must be 1 to 64 ASCII letters, digits, '_' or '-'",
        ))
    }
}

/// Whether `name` is 1 to 64 of `[a-zA-Z0-9_-]`.
pub(crate) fn is_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Agent {
        tools: Vec<ToolSettings>,
    }

    #[test]
    fn each_kind_is_a_one_key_table_and_the_clock_a_bare_name() {
        let agent: Agent = toml_parse(
            r#"tools = [
                "clock",
                { http = { allow_hosts = ["127.0.0.1"] } },
                { mcp = { name = "files", command = "python3", args = ["s.py"] } },
                { agent = "researcher" },
            ]"#,
        );
        assert_eq!(agent.tools[0], ToolSettings::Clock);
        let ToolSettings::Http(http) = &agent.tools[1] else {
            panic!("{:?}", agent.tools[1])
        };
        assert_eq!(http.name, "http_request");
        assert_eq!(http.max_response_bytes, 65_536);
        assert!(
            matches!(&agent.tools[2], ToolSettings::Mcp(m) if m.command.as_deref() == Some("python3"))
        );
        assert_eq!(agent.tools[3], ToolSettings::Agent("researcher".into()));
        for (i, tool) in agent.tools.iter().enumerate() {
            tool.validate(&format!("tools[{i}]")).unwrap();
        }
    }

    #[test]
    fn an_mcp_server_needs_one_transport_and_http_a_host() {
        let agent: Agent = toml_parse(
            r#"tools = [
                { mcp = { name = "x" } },
                { mcp = { name = "x", command = "a", url = "http://h/mcp" } },
                { http = { allow_hosts = [] } },
            ]"#,
        );
        for (i, tool) in agent.tools.iter().enumerate() {
            let error = tool.validate(&format!("tools[{i}]")).unwrap_err();
            assert!(error.key.starts_with(&format!("tools[{i}]")), "{error}");
        }
    }

    fn toml_parse(text: &str) -> Agent {
        use figment::Figment;
        use figment::providers::{Format, Toml};
        Figment::from(Toml::string(text)).extract().unwrap()
    }
}
