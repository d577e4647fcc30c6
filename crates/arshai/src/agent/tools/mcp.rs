//! MCP servers as tools, through the official Rust SDK (`rmcp`): a child process spoken to
//! over its stdio, or a streamable HTTP endpoint.
//!
//! [`McpServer::start`] connects at start-up and lists the server's tools: they are the
//! [`McpTools`] of the server, a [`ToolSource`] whose list follows the server's. A call is
//! bounded by the server's call timeout. When the server died (the child exited, the HTTP
//! session is gone) or a call failed in transport or overran, the connection is dropped (a
//! child is killed) and the next call opens a new one, once, within the connect timeout,
//! and lists the tools again: a restarted server may offer other tools, and the next turn
//! offers those. A `notifications/tools/list_changed` from the server lists them again too.
//! Every failure is a [`ToolError`] the model reads; none ends the turn.

use std::borrow::Cow;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceError, ServiceExt};
use serde_json::Value;

use super::settings::{McpServerSettings, is_tool_name};
use super::{Tool, ToolError, ToolSource};
use crate::llm::ToolDefinition;

/// An open MCP session.
type Connection = RunningService<RoleClient, ListWatcher>;

/// Why an MCP server's tools could not be had at start-up.
#[derive(Debug, thiserror::Error)]
#[error("MCP server {server:?}: {message}")]
pub struct McpStartError {
    /// The server's name.
    pub server: String,
    /// What went wrong.
    pub message: String,
}

/// One MCP server: its settings, its current connection, and the tools it listed last,
/// shared by its tools.
pub struct McpServer {
    settings: McpServerSettings,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    listing: Arc<Listing>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.settings.name)
            .finish_non_exhaustive()
    }
}

/// The tools a server listed last (those `tools = [...]` keeps), shared with its
/// connection's notification handler.
#[derive(Debug)]
struct Listing {
    server: String,
    wanted: Option<Vec<String>>,
    tools: RwLock<Vec<ToolDefinition>>,
}

impl Listing {
    /// The definitions of `listed` that are offered, or why the list cannot be used at
    /// start-up (a wanted tool missing, a name models cannot call).
    fn offered(&self, listed: &[rmcp::model::Tool]) -> Result<Vec<ToolDefinition>, String> {
        if let Some(wanted) = &self.wanted
            && let Some(missing) = wanted
                .iter()
                .find(|name| !listed.iter().any(|tool| tool.name == name.as_str()))
        {
            return Err(format!(
                "has no tool named {missing:?} (it lists {})",
                listed
                    .iter()
                    .map(|tool| tool.name.as_ref())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut tools = Vec::new();
        for tool in listed {
            if let Some(wanted) = &self.wanted
                && !wanted.iter().any(|name| tool.name == name.as_str())
            {
                continue;
            }
            if !is_tool_name(&tool.name) {
                return Err(format!(
                    "lists a tool named {:?}, which models cannot call (1 to 64 of \
                     [a-zA-Z0-9_-]); leave it out with `tools = [...]`",
                    tool.name
                ));
            }
            tools.push(ToolDefinition::new(
                tool.name.as_ref(),
                tool.description.as_deref().unwrap_or_default(),
                Value::Object((*tool.input_schema).clone()),
            ));
        }
        Ok(tools)
    }

    /// Replaces the list with what a running server listed: what start-up would refuse is
    /// left out (logged), so a changed server never stops the agent.
    fn relisted(&self, listed: &[rmcp::model::Tool]) {
        let tools: Vec<ToolDefinition> = match self.offered(listed) {
            Ok(tools) => tools,
            Err(problem) => {
                tracing::warn!(server = %self.server, %problem,
                    "the MCP server's new tool list has a problem; offering what is usable");
                listed
                    .iter()
                    .filter(|tool| is_tool_name(&tool.name))
                    .filter(|tool| {
                        self.wanted.as_ref().is_none_or(|wanted| {
                            wanted.iter().any(|name| tool.name == name.as_str())
                        })
                    })
                    .map(|tool| {
                        ToolDefinition::new(
                            tool.name.as_ref(),
                            tool.description.as_deref().unwrap_or_default(),
                            Value::Object((*tool.input_schema).clone()),
                        )
                    })
                    .collect()
            }
        };
        tracing::info!(server = %self.server, tools = tools.len(), "MCP server tools listed again");
        *self.tools.write().unwrap_or_else(PoisonError::into_inner) = tools;
    }

    fn current(&self) -> Vec<ToolDefinition> {
        self.tools
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A connection's handler of the server's notifications: a changed tool list is listed
/// again, within the connect timeout.
struct ListWatcher {
    listing: Arc<Listing>,
    timeout: Duration,
}

impl ClientHandler for ListWatcher {
    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        match tokio::time::timeout(self.timeout, context.peer.list_all_tools()).await {
            Ok(Ok(listed)) => self.listing.relisted(&listed),
            Ok(Err(error)) => tracing::warn!(server = %self.listing.server, %error,
                "the MCP server said its tools changed but did not list them"),
            Err(_) => tracing::warn!(server = %self.listing.server,
                "the MCP server said its tools changed but did not list them in time"),
        }
    }
}

/// The tools of one MCP server, following its list: what [`McpServer::start`] returns and
/// what an agent's [`super::ToolSet`] asks at every turn.
#[derive(Debug, Clone)]
pub struct McpTools {
    server: Arc<McpServer>,
}

impl McpTools {
    /// The definitions offered now.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.server.listing.current()
    }
}

impl ToolSource for McpTools {
    fn tools(&self) -> Vec<Arc<dyn Tool>> {
        self.definitions()
            .into_iter()
            .map(|definition| {
                Arc::new(McpTool {
                    definition,
                    server: Arc::clone(&self.server),
                }) as Arc<dyn Tool>
            })
            .collect()
    }
}

impl McpServer {
    /// Connects to the server `settings` describe and lists its tools (those named in
    /// `settings.tools`, or all it lists).
    pub async fn start(settings: McpServerSettings) -> Result<McpTools, McpStartError> {
        let listing = Arc::new(Listing {
            server: settings.name.clone(),
            wanted: settings.tools.clone(),
            tools: RwLock::new(Vec::new()),
        });
        let server = Arc::new(Self {
            settings,
            connection: tokio::sync::Mutex::new(None),
            listing,
        });
        let fail = |message: String| McpStartError {
            server: server.settings.name.clone(),
            message,
        };
        let mut current = server.connection.lock().await;
        let connection = server.open_within().await.map_err(|e| fail(e.0))?;
        let listed = server.list(&connection).await.map_err(|e| fail(e.0))?;
        let tools = server.listing.offered(&listed).map_err(fail)?;
        let count = tools.len();
        *server
            .listing
            .tools
            .write()
            .unwrap_or_else(PoisonError::into_inner) = tools;
        *current = Some(Arc::new(connection));
        drop(current);
        tracing::info!(
            server = %server.settings.name,
            tools = count,
            "MCP server {} connected",
            server.settings.name
        );
        Ok(McpTools { server })
    }

    /// The server's tools, as it lists them on `connection`, within the connect timeout.
    async fn list(&self, connection: &Connection) -> Result<Vec<rmcp::model::Tool>, ToolError> {
        let timeout = self.connect_timeout();
        tokio::time::timeout(timeout, connection.list_all_tools())
            .await
            .map_err(|_| ToolError::new(format!("did not list its tools within {timeout:?}")))?
            .map_err(|e| ToolError::new(format!("cannot list its tools: {e}")))
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
        let opened = self.open_within().await?;
        // A restarted server may list other tools: the next turn offers what it lists now.
        match self.list(&opened).await {
            Ok(listed) => self.listing.relisted(&listed),
            Err(error) => tracing::warn!(server = %self.settings.name, %error,
                "the reconnected MCP server did not list its tools; offering the last list"),
        }
        let opened = Arc::new(opened);
        *current = Some(Arc::clone(&opened));
        Ok(opened)
    }

    /// A new connection, within the connect timeout.
    async fn open_within(&self) -> Result<Connection, ToolError> {
        let timeout = self.connect_timeout();
        tokio::time::timeout(timeout, self.open())
            .await
            .map_err(|_| {
                ToolError::new(format!(
                    "the MCP server {:?} did not start (or answer its handshake) within {timeout:?}",
                    self.settings.name
                ))
            })?
    }

    /// The handler of a new connection's notifications.
    fn watcher(&self) -> ListWatcher {
        ListWatcher {
            listing: Arc::clone(&self.listing),
            timeout: self.connect_timeout(),
        }
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
            self.watcher().serve(transport).await.map_err(handshake)
        } else if let Some(url) = &self.settings.url {
            // rmcp's HTTP client has no TLS provider of its own: use ring's, unless the
            // process installed one already (then this is refused, harmlessly).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let transport = StreamableHttpClientTransport::from_uri(url.as_str());
            self.watcher().serve(transport).await.map_err(handshake)
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
        if !self
            .listing
            .current()
            .iter()
            .any(|listed| listed.name == tool)
        {
            return Err(ToolError::new(format!(
                "the MCP server {name:?} no longer lists the tool {tool:?}"
            )));
        }
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
