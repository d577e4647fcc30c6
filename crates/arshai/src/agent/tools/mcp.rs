//! MCP servers as tools, through the official Rust SDK (`rmcp`): a child process spoken to
//! over its stdio, or a streamable HTTP endpoint.
//!
//! [`McpServer::start`] connects at start-up and lists the server's tools; each becomes an
//! [`McpTool`]. A call is bounded by the server's call timeout. When the server died (the
//! child exited, the HTTP session is gone) or a call failed in transport or overran, the
//! connection is dropped (a child is killed) and the next call opens a new one, once, within
//! the connect timeout. Every failure is a [`ToolError`] the model reads; none ends the turn.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde_json::Value;

use super::settings::{McpServerSettings, is_tool_name};
use super::{Tool, ToolError};
use crate::llm::ToolDefinition;

/// An open MCP session.
type Connection = RunningService<RoleClient, ()>;

/// Why an MCP server's tools could not be had at start-up.
#[derive(Debug, thiserror::Error)]
#[error("MCP server {server:?}: {message}")]
pub struct McpStartError {
    /// The server's name.
    pub server: String,
    /// What went wrong.
    pub message: String,
}

/// One MCP server: its settings and its current connection, shared by its tools.
pub struct McpServer {
    settings: McpServerSettings,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.settings.name)
            .finish_non_exhaustive()
    }
}

impl McpServer {
    /// Connects to the server `settings` describe and returns its tools (those named in
    /// `settings.tools`, or all it lists).
    pub async fn start(settings: McpServerSettings) -> Result<Vec<McpTool>, McpStartError> {
        let server = Arc::new(Self {
            settings,
            connection: tokio::sync::Mutex::new(None),
        });
        let fail = |message: String| McpStartError {
            server: server.settings.name.clone(),
            message,
        };
        let connection = server.connection().await.map_err(|e| fail(e.0))?;
        let listed = tokio::time::timeout(server.connect_timeout(), connection.list_all_tools())
            .await
            .map_err(|_| {
                fail(format!(
                    "did not list its tools within {:?}",
                    server.connect_timeout()
                ))
            })?
            .map_err(|e| fail(format!("cannot list its tools: {e}")))?;
        if let Some(wanted) = &server.settings.tools
            && let Some(missing) = wanted
                .iter()
                .find(|name| !listed.iter().any(|tool| tool.name == name.as_str()))
        {
            return Err(fail(format!(
                "has no tool named {missing:?} (it lists {})",
                listed
                    .iter()
                    .map(|tool| tool.name.as_ref())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut tools = Vec::new();
        for tool in listed {
            if let Some(wanted) = &server.settings.tools
                && !wanted.iter().any(|name| tool.name == name.as_str())
            {
                continue;
            }
            if !is_tool_name(&tool.name) {
                return Err(fail(format!(
                    "lists a tool named {:?}, which models cannot call (1 to 64 of \
                     [a-zA-Z0-9_-]); leave it out with `tools = [...]`",
                    tool.name
                )));
            }
            tools.push(McpTool {
                definition: ToolDefinition::new(
                    tool.name.as_ref(),
                    tool.description.as_deref().unwrap_or_default(),
                    Value::Object((*tool.input_schema).clone()),
                ),
                server: Arc::clone(&server),
            });
        }
        tracing::info!(
            server = %server.settings.name,
            tools = tools.len(),
            "MCP server {} connected",
            server.settings.name
        );
        Ok(tools)
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.settings.connect_timeout_seconds)
    }

    fn call_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.settings.call_timeout_seconds)
    }

    /// The open connection, or a new one when there is none or it died.
    async fn connection(&self) -> Result<Arc<Connection>, ToolError> {
        let mut current = self.connection.lock().await;
        if let Some(open) = current.as_ref()
            && !open.is_closed()
            && !open.peer().is_transport_closed()
        {
            return Ok(Arc::clone(open));
        }
        if current.take().is_some() {
            tracing::warn!(server = %self.settings.name, "MCP server connection lost; reconnecting");
        }
        let timeout = self.connect_timeout();
        let opened = tokio::time::timeout(timeout, self.open())
            .await
            .map_err(|_| {
                ToolError::new(format!(
                    "the MCP server {:?} did not start (or answer its handshake) within {timeout:?}",
                    self.settings.name
                ))
            })??;
        let opened = Arc::new(opened);
        *current = Some(Arc::clone(&opened));
        Ok(opened)
    }

    async fn open(&self) -> Result<Connection, ToolError> {
        let name = &self.settings.name;
        let handshake = |e: rmcp::service::ClientInitializeError| {
            ToolError::new(format!("the MCP server {name:?} failed its handshake: {e}"))
        };
        if let Some(command) = &self.settings.command {
            let settings = &self.settings;
            let child = tokio::process::Command::new(command).configure(|cmd| {
                cmd.args(&settings.args).envs(&settings.env);
                if let Some(cwd) = &settings.cwd {
                    cmd.current_dir(cwd);
                }
            });
            let (transport, _) = TokioChildProcess::builder(child)
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .map_err(|e| {
                    ToolError::new(format!(
                        "cannot start the MCP server {name:?} ({command}): {e}"
                    ))
                })?;
            ().serve(transport).await.map_err(handshake)
        } else if let Some(url) = &self.settings.url {
            // rmcp's HTTP client has no TLS provider of its own: use ring's, unless the
            // process installed one already (then this is refused, harmlessly).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let transport = StreamableHttpClientTransport::from_uri(url.as_str());
            ().serve(transport).await.map_err(handshake)
        } else {
            Err(ToolError::new(format!(
                "the MCP server {name:?} has neither command nor url"
            )))
        }
    }

    /// Drops `dead` if it is still the current connection (a child process is killed), so
    /// the next call opens a new one.
    async fn forget(&self, dead: &Arc<Connection>) {
        let mut current = self.connection.lock().await;
        if current.as_ref().is_some_and(|open| Arc::ptr_eq(open, dead)) {
            *current = None;
        }
    }

    async fn call(&self, tool: &str, arguments: Value) -> Result<String, ToolError> {
        let name = &self.settings.name;
        let arguments = match arguments {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                return Err(ToolError::new(format!(
                    "the arguments must be a JSON object, not {other}"
                )));
            }
        };
        let connection = self.connection().await?;
        let params =
            CallToolRequestParams::new(Cow::Owned(tool.to_owned())).with_arguments(arguments);
        let timeout = self.call_timeout();
        match tokio::time::timeout(timeout, connection.call_tool(params)).await {
            Ok(Ok(result)) => result_text(result),
            // The server answered with a protocol error: the connection is fine.
            Ok(Err(ServiceError::McpError(error))) => Err(ToolError::new(format!(
                "the MCP server {name:?} refused the call: {}",
                error.message
            ))),
            Ok(Err(error)) => {
                self.forget(&connection).await;
                Err(ToolError::new(format!(
                    "the MCP server {name:?} failed during the call ({error}); it is \
                     reconnected on the next call"
                )))
            }
            Err(_) => {
                self.forget(&connection).await;
                Err(ToolError::new(format!(
                    "the MCP server {name:?} did not answer within {timeout:?}; it is \
                     reconnected on the next call"
                )))
            }
        }
    }
}

/// The text the model sees: the text blocks, or the structured content; an error result
/// becomes a [`ToolError`] with the same text.
fn result_text(result: CallToolResult) -> Result<String, ToolError> {
    let mut parts: Vec<String> = result
        .content
        .iter()
        .map(|block| match block {
            ContentBlock::Text(text) => text.text.clone(),
            _ => serde_json::to_string(block).unwrap_or_else(|_| "(content)".to_owned()),
        })
        .collect();
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        parts.push(structured.to_string());
    }
    let text = parts.join("\n");
    if result.is_error == Some(true) {
        Err(ToolError::new(text))
    } else {
        Ok(text)
    }
}

/// One tool of an MCP server.
#[derive(Debug)]
pub struct McpTool {
    definition: ToolDefinition,
    server: Arc<McpServer>,
}

#[async_trait]
impl Tool for McpTool {
    fn definition(&self) -> ToolDefinition {
        self.definition.clone()
    }

    async fn call(&self, arguments: Value) -> Result<String, ToolError> {
        self.server.call(&self.definition.name, arguments).await
    }
}
