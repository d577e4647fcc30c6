//! The workflows the settings declare (`[[workflows]]`), as TOML reads them.
//!
//! ```toml
//! [[workflows]]
//! name = "support-desk"
//! entry = "triage"                   # or entry = { router = "classifier", routes = [...] }
//! output = "/answer"                 # optional: the run's output pointer
//! bounds = { max_steps = 10, timeout_seconds = 60, node_timeout_seconds = 30 }
//!
//! [[workflows.nodes]]
//! name = "triage"
//! agent = "triage"                   # exactly one of agent, workflow, function, tool
//! output = "category"                # default: the node's name
//!
//! [[workflows.edges]]
//! from = "triage"
//! to = "billing"
//! when = { pointer = "/category", equals = "billing" }
//! ```
//!
//! `docs/workflows.md` documents every key. [`validate_workflows`] checks the shape of
//! each entry at load; the graph itself is checked when the workflows are built
//! ([`super::WorkflowRegistry::from_settings`]).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::node::NodeMemory;
use crate::InvalidSetting;

/// One workflow (`[[workflows]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSettings {
    /// Name in URLs: `/v1/workflows/{name}/runs`.
    pub name: String,
    /// What it does, for listings.
    #[serde(default)]
    pub description: String,
    /// Where a run starts: a node's name, or a router (default: the first node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntrySettings>,
    /// The run's output: a JSON pointer into the final state (default: the output of the
    /// node that ran last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The bounds of each run.
    #[serde(default)]
    pub bounds: BoundsSettings,
    /// The nodes.
    #[serde(default)]
    pub nodes: Vec<NodeSettings>,
    /// The edges.
    #[serde(default)]
    pub edges: Vec<EdgeSettings>,
}

/// Where a run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EntrySettings {
    /// This node.
    Node(String),
    /// The node a router picks: `{ router = "classifier", routes = ["billing", "tech"] }`.
    Router(RouterSettings),
}

/// A router: an agent (or a chooser registered in code) picking one of `routes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSettings {
    /// A chooser registered in code, or else an agent, by name.
    pub router: String,
    /// The nodes it may pick.
    pub routes: Vec<String>,
    /// What an agent router is asked about: a pointer into the state (default `/input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

/// The bounds of each run (`bounds = { … }`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundsSettings {
    /// At most this many node executions per run; required when the graph has a cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
    /// The whole run must end within this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Each node must end within this many seconds (unless it sets its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_timeout_seconds: Option<f64>,
}

/// One node (`[[workflows.nodes]]`): exactly one of `agent`, `workflow`, `function`, `tool`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    /// The node's name, unique in its workflow.
    pub name: String,
    /// Runs one turn of this agent (`[[agents]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Runs this workflow (`[[workflows]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Runs this function, registered in code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Calls this tool, registered in code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The node's input: a JSON pointer into the state (default `/input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The key its output is merged under (default: the node's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The node's own time bound, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// The node run instead when this one fails or times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Agent nodes: `run` (the run's conversation, the default) or `none` (stateless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<NodeMemory>,
}

impl NodeSettings {
    /// The kind and the name of what the node runs, when exactly one is set.
    pub(crate) fn target(&self) -> Result<(&'static str, &str), usize> {
        let set: Vec<(&'static str, &str)> = [
            ("agent", &self.agent),
            ("workflow", &self.workflow),
            ("function", &self.function),
            ("tool", &self.tool),
        ]
        .into_iter()
        .filter_map(|(kind, name)| Some((kind, name.as_deref()?)))
        .collect();
        match set.as_slice() {
            [one] => Ok(*one),
            _ => Err(set.len()),
        }
    }
}

/// One edge (`[[workflows.edges]]`), leaving `from`: `to` (with an optional `when`),
/// `parallel` (with an optional `join`), or `router` with `routes`.
///
/// The edges leaving one node make its route: one edge with `to` alone is a plain edge;
/// edges with `when` are tried in order and an edge without `when` is the default; an
/// edge with `parallel` or `router` must be the only one leaving its node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSettings {
    /// The node it leaves.
    pub from: String,
    /// The node it leads to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Taken only when this condition holds on the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// Fans out to these nodes at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<Vec<String>>,
    /// Where the fan-out joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
    /// A chooser registered in code, or else an agent, that picks one of `routes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
    /// The nodes the router may pick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<String>>,
    /// What an agent router is asked about (default `/input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

/// Checks each workflow's name (URL-safe, unique), that each node runs exactly one thing,
/// and that durations are positive. The graph is checked when it is built.
pub fn validate_workflows(workflows: &[WorkflowSettings]) -> Result<(), InvalidSetting> {
    let mut names = HashSet::new();
    for (at, workflow) in workflows.iter().enumerate() {
        let key = format!("workflows[{at}].name");
        if super::validate::name(&workflow.name, &workflow.name).is_err() {
            return Err(InvalidSetting::new(
                key,
                format!("{:?}", workflow.name),
                "must be non-empty ASCII letters, digits, '-', '_' or '.'",
            ));
        }
        if !names.insert(workflow.name.as_str()) {
            return Err(InvalidSetting::new(
                key,
                &workflow.name,
                "is declared twice",
            ));
        }
        if workflow.nodes.is_empty() {
            return Err(InvalidSetting::new(
                format!("workflows[{at}].nodes"),
                "[]",
                format!("workflow {:?} needs at least one node", workflow.name),
            ));
        }
        let bounds = workflow.bounds;
        let mut seconds = Vec::new();
        let timeout_key = format!("workflows[{at}].bounds.timeout_seconds");
        let node_timeout_key = format!("workflows[{at}].bounds.node_timeout_seconds");
        seconds.extend(bounds.timeout_seconds.map(|s| (timeout_key.as_str(), s)));
        seconds.extend(
            bounds
                .node_timeout_seconds
                .map(|s| (node_timeout_key.as_str(), s)),
        );
        InvalidSetting::check_seconds(seconds)?;
        if bounds.max_steps == Some(0) {
            return Err(InvalidSetting::new(
                format!("workflows[{at}].bounds.max_steps"),
                0,
                "must be at least 1",
            ));
        }
        for (index, node) in workflow.nodes.iter().enumerate() {
            if let Err(count) = node.target() {
                return Err(InvalidSetting::new(
                    format!("workflows[{at}].nodes[{index}]"),
                    &node.name,
                    format!(
                        "sets {count} of agent, workflow, function, tool; a node runs exactly one"
                    ),
                ));
            }
            if let Some(seconds) = node.timeout_seconds {
                let key = format!("workflows[{at}].nodes[{index}].timeout_seconds");
                InvalidSetting::check_seconds([(key.as_str(), seconds)])?;
            }
        }
    }
    Ok(())
}
