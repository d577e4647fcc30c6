//! [`WorkflowBuilder`]: a workflow in code, validated by [`WorkflowBuilder::build`].

use std::collections::HashMap;
use std::time::Duration;

use super::bounds::Bounds;
use super::definition::Workflow;
use super::error::DefinitionError;
use super::node::Node;
use super::route::Route;
use super::validate;

/// Builds a [`Workflow`].
///
/// ```
/// use arshai::workflow::{Condition, Node, Route, RunOptions, Workflow};
/// use serde_json::{Value, json};
///
/// let workflow = Workflow::builder("triage")
///     .node(Node::from_fn("classify", |input: Value| async move {
///         let text = input.as_str().unwrap_or_default();
///         Ok(json!(if text.contains("refund") { "billing" } else { "other" }))
///     }))
///     .node(Node::from_fn("billing", |_| async { Ok(json!("billing desk")) }))
///     .node(Node::from_fn("other", |_| async { Ok(json!("front desk")) }))
///     .entry("classify")
///     .route(
///         "classify",
///         Route::when(Condition::equals("/classify", json!("billing")), "billing")
///             .otherwise("other"),
///     )
///     .build()
///     .unwrap()
///     .shared();
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let run = workflow.run_to_end(json!("a refund please"), RunOptions::default()).await.unwrap();
/// assert_eq!(run.output, json!("billing desk"));
/// assert_eq!(run.steps.len(), 2);
/// # });
/// ```
#[derive(Debug)]
pub struct WorkflowBuilder {
    name: String,
    description: String,
    entry: Option<Route>,
    nodes: Vec<Node>,
    routes: Vec<(String, Route)>,
    bounds: Bounds,
    output: Option<String>,
}

impl Workflow {
    /// A builder for a workflow named `name`.
    pub fn builder(name: impl Into<String>) -> WorkflowBuilder {
        WorkflowBuilder::new(name)
    }
}

impl WorkflowBuilder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            entry: None,
            nodes: Vec::new(),
            routes: Vec::new(),
            bounds: Bounds::default(),
            output: None,
        }
    }

    /// What the workflow does, for listings.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a node.
    pub fn node(mut self, node: Node) -> Self {
        self.nodes.push(node);
        self
    }

    /// The run starts at `node` (default: the first node added).
    pub fn entry(self, node: impl Into<String>) -> Self {
        self.entry_route(Route::Next(node.into()))
    }

    /// The run starts where `route` leads: an entry router (a chosen or conditional route)
    /// or a fan-out.
    pub fn entry_route(mut self, route: Route) -> Self {
        self.entry = Some(route);
        self
    }

    /// An edge from `from` to `to` (replaces `from`'s route).
    pub fn edge(self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.route(from, Route::Next(to.into()))
    }

    /// Sets `from`'s outgoing route (the last one set wins).
    pub fn route(mut self, from: impl Into<String>, route: Route) -> Self {
        self.routes.push((from.into(), route));
        self
    }

    /// Sets the step bound.
    pub fn max_steps(mut self, steps: usize) -> Self {
        self.bounds.max_steps = Some(steps);
        self
    }

    /// Bounds each run's total time.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.bounds.timeout = Some(timeout);
        self
    }

    /// Bounds each node's time (a node's own timeout wins).
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.bounds.node_timeout = Some(timeout);
        self
    }

    /// Sets every bound at once.
    pub fn bounds(mut self, bounds: Bounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// The run's output is the value at this pointer of the final state (default: the
    /// output of the node that ran last).
    pub fn output(mut self, pointer: impl Into<String>) -> Self {
        self.output = Some(pointer.into());
        self
    }

    /// Validates and builds the workflow: unknown nodes, unreachable nodes, a cycle
    /// without `max_steps`, malformed pointers and empty routes are refused with an error
    /// naming them.
    pub fn build(self) -> Result<Workflow, DefinitionError> {
        let Self {
            name,
            description,
            entry,
            mut nodes,
            routes,
            bounds,
            output,
        } = self;
        let mut index = HashMap::with_capacity(nodes.len());
        validate::name(&name, &name)?;
        for (at, node) in nodes.iter().enumerate() {
            validate::name(&name, &node.name)?;
            if index.insert(node.name.clone(), at).is_some() {
                return Err(DefinitionError::DuplicateNode {
                    workflow: name,
                    node: node.name.clone(),
                });
            }
        }
        for (from, route) in routes {
            let Some(&at) = index.get(&from) else {
                return Err(DefinitionError::UnknownNode {
                    workflow: name,
                    referenced_by: "an edge".to_owned(),
                    node: from,
                });
            };
            nodes[at].route = route;
        }
        let entry = match entry {
            Some(entry) => entry,
            None => match nodes.first() {
                Some(first) => Route::Next(first.name.clone()),
                None => return Err(DefinitionError::Empty { workflow: name }),
            },
        };
        let workflow = Workflow {
            name,
            description,
            entry,
            nodes,
            index,
            bounds,
            output,
        };
        validate::workflow(&workflow)?;
        Ok(workflow)
    }
}
