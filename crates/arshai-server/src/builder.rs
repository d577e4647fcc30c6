//! [`Server::builder`]: a server assembled in code — agents built by the program, the
//! memory store it chose, settings from a file or defaults.

use std::future::Future;
use std::sync::Arc;

use crate::settings::Settings;
use arshai::agent::Agent;
use arshai::memory::MemoryStore;
use tokio::net::TcpListener;

use crate::state::{AppState, CodeWorkflows, StartupError};
use arshai::agent::Tool;
use arshai::workflow::{EdgeChooser, NodeFunction, Workflow};

/// The arshai server, for programs that embed it.
///
/// ```no_run
/// use std::sync::Arc;
///
/// use arshai::agent::ConversationAgent;
/// use arshai::llm::openai::OpenAiClient;
/// use arshai::memory::{InMemoryStore, MemoryStore};
/// use arshai_server::Server;
///
/// # async fn run() -> anyhow::Result<()> {
/// let memory: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::default());
/// let llm = Arc::new(OpenAiClient::builder().api_key("sk-…").build()?);
/// let agent = ConversationAgent::builder("assistant", llm, Arc::clone(&memory)).build();
/// Server::builder()
///     .agent(agent)
///     .memory(memory)
///     .serve_until_signal()
///     .await?;
/// # Ok(())
/// # }
/// ```
pub struct Server {
    state: AppState,
}

/// Builds a [`Server`]; see [`Server::builder`].
#[derive(Default)]
pub struct ServerBuilder {
    settings: Settings,
    memory: Option<Arc<dyn MemoryStore>>,
    agents: Vec<Arc<dyn Agent>>,
    workflows: CodeWorkflows,
}

/// Why a server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The server could not be assembled.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The address could not be bound, or serving failed.
    #[error("cannot serve on {address}: {source}")]
    Io {
        /// `host:port`.
        address: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
}

impl Server {
    /// A builder with the default settings (in-memory store, the embedded or configured
    /// provider, `127.0.0.1:8000`).
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The server's shared state (its agents, memory, metrics).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The whole HTTP surface, for a program that runs its own accept loop.
    pub fn router(&self) -> axum::Router {
        crate::app(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` resolves, then drains (see [`crate::serve`]).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        crate::serve(listener, self.state, shutdown).await
    }
}

impl ServerBuilder {
    /// The settings (default: [`Settings::default`]); [`Settings::load`] reads a file and
    /// the environment.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The conversation store the conversation routes read and the agents declared in the
    /// settings use (default: the store the settings choose). Agents built in code use the
    /// store they were given: pass them the same one.
    pub fn memory(mut self, store: Arc<dyn MemoryStore>) -> Self {
        self.memory = Some(store);
        self
    }

    /// Serves `agent` under its name, beside the agents the settings declare. With agents
    /// given in code, the default `assistant` agent is not added.
    pub fn agent(self, agent: impl Agent) -> Self {
        self.shared_agent(Arc::new(agent))
    }

    /// Like [`ServerBuilder::agent`], for an agent the program also keeps a handle to.
    pub fn shared_agent(mut self, agent: Arc<dyn Agent>) -> Self {
        self.agents.push(agent);
        self
    }

    /// Serves `workflow` (built in code) under its name, beside those the settings declare.
    pub fn workflow(mut self, workflow: Workflow) -> Self {
        self.workflows.built.push(Arc::new(workflow));
        self
    }

    /// A function the settings' workflow nodes may name (`function = "name"`).
    pub fn workflow_function(
        mut self,
        name: impl Into<String>,
        function: impl NodeFunction,
    ) -> Self {
        self.workflows.catalog = self.workflows.catalog.function(name, function);
        self
    }

    /// A tool the settings' workflow nodes may name (`tool = "name"`, its definition's name).
    pub fn workflow_tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.workflows.catalog = self.workflows.catalog.tool(tool);
        self
    }

    /// A router the settings' workflow edges and entries may name (`router = "name"`);
    /// it wins over an agent of the same name.
    pub fn workflow_router(mut self, name: impl Into<String>, chooser: impl EdgeChooser) -> Self {
        self.workflows.catalog = self.workflows.catalog.chooser(name, chooser);
        self
    }

    /// Opens the store (unless given), builds the declared agents and workflows, and the
    /// server.
    pub async fn build(self) -> Result<Server, StartupError> {
        let state =
            AppState::assemble(self.settings, self.memory, self.agents, self.workflows).await?;
        Ok(Server { state })
    }

    /// Builds, binds `server.host:server.port`, and serves until SIGTERM or SIGINT, then
    /// drains.
    pub async fn serve_until_signal(self) -> Result<(), ServeError> {
        let address = format!(
            "{}:{}",
            self.settings.server.host, self.settings.server.port
        );
        let server = self.build().await?;
        let listener = TcpListener::bind(&address)
            .await
            .map_err(|source| ServeError::Io {
                address: address.clone(),
                source,
            })?;
        server
            .serve(listener, crate::shutdown::signal())
            .await
            .map_err(|source| ServeError::Io { address, source })
    }
}
