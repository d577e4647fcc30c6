//! What every request handler shares.

use std::sync::Arc;

use arshai::Settings;
use arshai::agent::{AgentRegistry, RegistryError};
use arshai::memory::{MemoryError, MemoryStore, open_store};

/// Shared, cheaply cloned state of the server.
#[derive(Clone)]
pub struct AppState {
    /// The settings the server runs with.
    pub settings: Arc<Settings>,
    /// The agents, by name.
    pub agents: Arc<AgentRegistry>,
    /// The conversation memory every agent shares.
    pub memory: Arc<dyn MemoryStore>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The memory store could not be opened.
    #[error("cannot open the memory store: {0}")]
    Memory(#[from] MemoryError),
    /// An agent could not be built.
    #[error("cannot build the agents: {0}")]
    Agents(#[from] RegistryError),
}

impl AppState {
    /// Opens the memory store and builds the agents the settings declare.
    pub async fn from_settings(settings: Settings) -> Result<Self, StartupError> {
        let memory = open_store(&settings.memory).await?;
        let agents = AgentRegistry::from_settings(&settings, Arc::clone(&memory))?;
        Ok(Self {
            settings: Arc::new(settings),
            agents: Arc::new(agents),
            memory,
        })
    }
}
