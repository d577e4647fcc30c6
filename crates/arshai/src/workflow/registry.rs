//! [`WorkflowRegistry`]: workflows by name, built from settings against a [`NodeCatalog`]
//! of what their nodes may name (agents, functions and tools registered in code,
//! routers).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::bounds::Bounds;
use super::chooser::{AgentChooser, EdgeChooser};
use super::definition::Workflow;
use super::error::DefinitionError;
use super::node::{Node, NodeFunction, NodeKind};
use super::route::Route;
use super::settings::{EdgeSettings, EntrySettings, RouterSettings, WorkflowSettings};
use crate::agent::{Agent, Tool};

/// What the nodes of declared workflows may name, besides each other.
#[derive(Clone, Default)]
pub struct NodeCatalog {
    agents: HashMap<String, Arc<dyn Agent>>,
    functions: HashMap<String, Arc<dyn NodeFunction>>,
    tools: HashMap<String, Arc<dyn Tool>>,
    choosers: HashMap<String, Arc<dyn EdgeChooser>>,
}

impl NodeCatalog {
    /// A catalog of `agents`, by name.
    pub fn with_agents<'a>(agents: impl IntoIterator<Item = &'a Arc<dyn Agent>>) -> Self {
        Self {
            agents: agents
                .into_iter()
                .map(|agent| (agent.name().to_owned(), Arc::clone(agent)))
                .collect(),
            ..Self::default()
        }
    }

    /// Adds an agent (`agent = "…"`, or `router = "…"`).
    pub fn agent(mut self, agent: Arc<dyn Agent>) -> Self {
        self.agents.insert(agent.name().to_owned(), agent);
        self
    }

    /// Adds a function (`function = "…"`).
    pub fn function(mut self, name: impl Into<String>, function: impl NodeFunction) -> Self {
        self.functions.insert(name.into(), Arc::new(function));
        self
    }

    /// Adds a tool, named by its definition (`tool = "…"`).
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.insert(tool.definition().name, tool);
        self
    }

    /// Adds a chooser (`router = "…"`; a chooser wins over an agent of the same name).
    pub fn chooser(mut self, name: impl Into<String>, chooser: impl EdgeChooser) -> Self {
        self.choosers.insert(name.into(), Arc::new(chooser));
        self
    }
}

/// Workflows by name.
#[derive(Debug, Clone, Default)]
pub struct WorkflowRegistry {
    workflows: BTreeMap<String, Arc<Workflow>>,
}

impl WorkflowRegistry {
    /// Builds every workflow of `settings` (nested workflows first), validating each:
    /// the first problem is returned, naming the workflow and the node or edge.
    pub fn from_settings(
        settings: &[WorkflowSettings],
        catalog: &NodeCatalog,
    ) -> Result<Self, DefinitionError> {
        let declared: HashMap<&str, &WorkflowSettings> =
            settings.iter().map(|w| (w.name.as_str(), w)).collect();
        let mut registry = Self::default();
        for workflow in settings {
            let mut path = Vec::new();
            build(workflow, &declared, catalog, &mut registry, &mut path)?;
        }
        Ok(registry)
    }

    /// Adds (or replaces) a workflow built in code.
    pub fn insert(&mut self, workflow: Arc<Workflow>) {
        self.workflows.insert(workflow.name().to_owned(), workflow);
    }

    /// The workflow named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Workflow>> {
        self.workflows.get(name)
    }

    /// Every workflow, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Workflow>> {
        self.workflows.values()
    }

    /// How many workflows there are.
    pub fn len(&self) -> usize {
        self.workflows.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.workflows.is_empty()
    }
}

fn build(
    settings: &WorkflowSettings,
    declared: &HashMap<&str, &WorkflowSettings>,
    catalog: &NodeCatalog,
    registry: &mut WorkflowRegistry,
    path: &mut Vec<String>,
) -> Result<Arc<Workflow>, DefinitionError> {
    let name = settings.name.as_str();
    if let Some(built) = registry.get(name) {
        return Ok(Arc::clone(built));
    }
    if path.iter().any(|on_path| on_path == name) {
        let mut cycle = path.clone();
        cycle.push(name.to_owned());
        return Err(DefinitionError::Recursive {
            workflow: name.to_owned(),
            path: cycle,
        });
    }
    path.push(name.to_owned());
    let unknown = |referenced_by: String, kind: &'static str, target: &str| {
        DefinitionError::UnknownReference {
            workflow: name.to_owned(),
            referenced_by,
            kind,
            name: target.to_owned(),
        }
    };
    let mut builder = Workflow::builder(name)
        .description(settings.description.clone())
        .bounds(Bounds {
            max_steps: settings.bounds.max_steps,
            timeout: seconds(settings.bounds.timeout_seconds),
            node_timeout: seconds(settings.bounds.node_timeout_seconds),
        });
    if let Some(output) = &settings.output {
        builder = builder.output(output.clone());
    }
    for node in &settings.nodes {
        let referenced_by = format!("node {:?}", node.name);
        let kind = match node.target() {
            Ok(("agent", agent)) => NodeKind::Agent(Arc::clone(
                catalog
                    .agents
                    .get(agent)
                    .ok_or_else(|| unknown(referenced_by, "agent", agent))?,
            )),
            Ok(("workflow", nested)) => {
                let nested = declared
                    .get(nested)
                    .ok_or_else(|| unknown(referenced_by, "workflow", nested))?;
                NodeKind::Workflow(build(nested, declared, catalog, registry, path)?)
            }
            Ok(("function", function)) => NodeKind::Function(Arc::clone(
                catalog
                    .functions
                    .get(function)
                    .ok_or_else(|| unknown(referenced_by, "function", function))?,
            )),
            Ok((_, tool)) => NodeKind::Tool(Arc::clone(
                catalog
                    .tools
                    .get(tool)
                    .ok_or_else(|| unknown(referenced_by, "tool", tool))?,
            )),
            Err(count) => {
                return Err(DefinitionError::invalid(
                    name,
                    format!(
                        "node {:?} sets {count} of agent, workflow, function, tool; a node runs exactly one",
                        node.name
                    ),
                ));
            }
        };
        let mut built = Node::new(node.name.clone(), kind);
        if let Some(input) = &node.input {
            built = built.input(input.clone());
        }
        if let Some(output) = &node.output {
            built = built.output(output.clone());
        }
        if let Some(timeout) = seconds(node.timeout_seconds) {
            built = built.timeout(timeout);
        }
        if let Some(fallback) = &node.fallback {
            built = built.fallback(fallback.clone());
        }
        if let Some(memory) = node.memory {
            built = built.memory(memory);
        }
        builder = builder.node(built);
    }
    match &settings.entry {
        Some(EntrySettings::Node(node)) => builder = builder.entry(node.clone()),
        Some(EntrySettings::Router(router)) => {
            builder = builder.entry_route(router_route(name, "the entry", router, catalog)?);
        }
        None => {}
    }
    let mut from_order: Vec<&str> = Vec::new();
    let mut by_from: HashMap<&str, Vec<&EdgeSettings>> = HashMap::new();
    for edge in &settings.edges {
        if !by_from.contains_key(edge.from.as_str()) {
            from_order.push(&edge.from);
        }
        by_from.entry(&edge.from).or_default().push(edge);
    }
    for from in from_order {
        let route = edges_route(name, from, &by_from[from], catalog)?;
        builder = builder.route(from, route);
    }
    let workflow = builder.build()?.shared();
    path.pop();
    registry.insert(Arc::clone(&workflow));
    Ok(workflow)
}

fn seconds(value: Option<f64>) -> Option<Duration> {
    value
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
}

fn router_route(
    workflow: &str,
    referenced_by: &str,
    router: &RouterSettings,
    catalog: &NodeCatalog,
) -> Result<Route, DefinitionError> {
    let chooser: Arc<dyn EdgeChooser> = match catalog.choosers.get(&router.router) {
        Some(chooser) => Arc::clone(chooser),
        None => match catalog.agents.get(&router.router) {
            Some(agent) => {
                let mut chooser = AgentChooser::new(Arc::clone(agent));
                if let Some(input) = &router.input {
                    chooser = chooser.input(input.clone());
                }
                Arc::new(chooser)
            }
            None => {
                return Err(DefinitionError::UnknownReference {
                    workflow: workflow.to_owned(),
                    referenced_by: referenced_by.to_owned(),
                    kind: "router",
                    name: router.router.clone(),
                });
            }
        },
    };
    Ok(Route::Chosen {
        chooser,
        targets: router.routes.clone(),
    })
}

/// The route the edges leaving `from` make (the rules on [`EdgeSettings`]).
fn edges_route(
    workflow: &str,
    from: &str,
    edges: &[&EdgeSettings],
    catalog: &NodeCatalog,
) -> Result<Route, DefinitionError> {
    let invalid = |reason: String| DefinitionError::invalid(workflow, reason);
    let referenced_by = format!("the edge from {from:?}");
    let alone = |what: &str| {
        invalid(format!(
            "the {what} edge from {from:?} must be the only edge leaving it, and set no `to` or `when`"
        ))
    };
    for edge in edges {
        if let Some(branches) = &edge.parallel {
            if edges.len() > 1 || edge.to.is_some() || edge.when.is_some() || edge.router.is_some()
            {
                return Err(alone("parallel"));
            }
            return Ok(Route::Parallel {
                branches: branches.clone(),
                join: edge.join.clone(),
            });
        }
        if let Some(router) = &edge.router {
            if edges.len() > 1 || edge.to.is_some() || edge.when.is_some() {
                return Err(alone("router"));
            }
            let settings = RouterSettings {
                router: router.clone(),
                routes: edge.routes.clone().unwrap_or_default(),
                input: edge.input.clone(),
            };
            return router_route(workflow, &referenced_by, &settings, catalog);
        }
        if edge.to.is_none() {
            return Err(invalid(format!(
                "an edge from {from:?} sets none of `to`, `parallel`, `router`"
            )));
        }
        if edge.join.is_some() || edge.routes.is_some() {
            return Err(invalid(format!(
                "an edge from {from:?} sets `join` or `routes` without `parallel` or `router`"
            )));
        }
    }
    let mut branches = Vec::new();
    let mut otherwise: Option<String> = None;
    for edge in edges {
        let to = edge.to.clone().unwrap_or_default();
        match &edge.when {
            Some(condition) => branches.push((condition.clone(), to)),
            None if otherwise.is_some() => {
                return Err(invalid(format!(
                    "two edges from {from:?} have no `when`; give all but the default one a condition"
                )));
            }
            None => otherwise = Some(to),
        }
    }
    Ok(match (branches.is_empty(), otherwise) {
        (true, Some(to)) => Route::Next(to),
        (_, otherwise) => Route::Conditional {
            branches,
            otherwise,
        },
    })
}
