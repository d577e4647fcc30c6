//! The [`ToolSet`] an agent's settings declare: each entry of `tools = [ … ]` built, MCP
//! servers connected and their tools listed.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::settings::ToolSettings;
use super::{AgentTool, ClockTool, HttpTool, McpServer, McpStartError, Tool, ToolSet};
use crate::agent::Agent;

/// Why an agent's tools could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ToolBuildError {
    /// `{ agent = "…" }` names an agent that was not built (before this one).
    #[error("the agent tool {0:?} names no agent")]
    UnknownAgent(String),
    /// An MCP server could not be started or listed.
    #[error(transparent)]
    Mcp(#[from] McpStartError),
    /// The HTTP tool could not be built.
    #[error("the HTTP tool {name:?}: {message}")]
    Http {
        /// The tool's name.
        name: String,
        /// Why.
        message: String,
    },
    /// Two tools have the same name.
    #[error("two tools are named {0:?}; rename one (name = …) or leave one out")]
    Duplicate(String),
}

/// The tools `declared`, with `agents` (built earlier, by name) for agent tools and
/// `descriptions` (by agent name) for what the model is told they do.
pub async fn declared_tools(
    declared: &[ToolSettings],
    agents: &BTreeMap<String, Arc<dyn Agent>>,
    descriptions: &BTreeMap<String, String>,
) -> Result<ToolSet, ToolBuildError> {
    let mut set = ToolSet::new();
    for entry in declared {
        let built: Vec<Arc<dyn Tool>> = match entry {
            ToolSettings::Clock => vec![Arc::new(ClockTool)],
            ToolSettings::Http(http) => {
                let tool = HttpTool::new(http).map_err(|e| ToolBuildError::Http {
                    name: http.name.clone(),
                    message: e.0,
                })?;
                vec![Arc::new(tool)]
            }
            ToolSettings::Agent(name) => {
                let agent = agents
                    .get(name)
                    .ok_or_else(|| ToolBuildError::UnknownAgent(name.clone()))?;
                vec![Arc::new(AgentTool::new(
                    Arc::clone(agent),
                    descriptions.get(name).cloned(),
                ))]
            }
            ToolSettings::Mcp(server) => {
                let tools = McpServer::start(server.clone()).await?;
                if let Some(clash) = tools
                    .definitions()
                    .into_iter()
                    .find(|tool| set.contains(&tool.name))
                {
                    return Err(ToolBuildError::Duplicate(clash.name));
                }
                set = set.with_source(Arc::new(tools));
                Vec::new()
            }
        };
        for tool in built {
            let name = tool.definition().name;
            if set.contains(&name) {
                return Err(ToolBuildError::Duplicate(name));
            }
            set = set.with_shared(tool);
        }
    }
    Ok(set)
}
