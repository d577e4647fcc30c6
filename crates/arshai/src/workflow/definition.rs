//! [`Workflow`]: a validated graph of nodes, ready to run.

use std::collections::HashMap;
use std::sync::Arc;

use super::bounds::Bounds;
use super::node::Node;
use super::route::Route;

/// A workflow: named nodes, each with its outgoing [`Route`], an entry route, bounds and
/// an optional output pointer. Built (and validated) by [`Workflow::builder`] or from
/// settings ([`super::WorkflowRegistry`]); run by [`Workflow::run`] or
/// [`Workflow::run_to_end`].
#[derive(Debug)]
pub struct Workflow {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) entry: Route,
    pub(crate) nodes: Vec<Node>,
    pub(crate) index: HashMap<String, usize>,
    pub(crate) bounds: Bounds,
    pub(crate) output: Option<String>,
}

impl Workflow {
    /// The workflow's name, as it is addressed over HTTP.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the workflow does, for listings.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The nodes, in declaration order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.index.get(name).map(|&at| &self.nodes[at])
    }

    /// The entry route.
    pub fn entry(&self) -> &Route {
        &self.entry
    }

    /// The bounds of each run.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// The pointer of the run's output, if set.
    pub fn output_pointer(&self) -> Option<&str> {
        self.output.as_deref()
    }

    /// This workflow shared, as nodes and registries hold it.
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }
}
