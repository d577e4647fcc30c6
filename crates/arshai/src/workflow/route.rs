//! [`Route`]: where a run goes after a node (or at its entry) — the edges of the graph.

use std::sync::Arc;

use super::chooser::EdgeChooser;
use super::condition::Condition;

/// The outgoing edges of a node, or the workflow's entry.
#[derive(Clone, Default)]
pub enum Route {
    /// The run ends here.
    #[default]
    End,
    /// Always this node.
    Next(String),
    /// The first branch whose condition holds on the state, else `otherwise` (with no
    /// `otherwise`, a state no branch matches fails the run).
    Conditional {
        /// Conditions and their targets, tried in order.
        branches: Vec<(Condition, String)>,
        /// The target when no condition holds.
        otherwise: Option<String>,
    },
    /// The target a chooser picks among `targets` (a router agent, a classifier).
    Chosen {
        /// Who picks.
        chooser: Arc<dyn EdgeChooser>,
        /// The nodes it may pick.
        targets: Vec<String>,
    },
    /// Every branch node runs at once on the same state; their outputs are merged in the
    /// declared order, then the run goes on at `join` (or ends, without one). Each branch
    /// is one node: a branch of several steps is a workflow node.
    Parallel {
        /// The branch nodes.
        branches: Vec<String>,
        /// The node after every branch finished.
        join: Option<String>,
    },
}

impl Route {
    /// Always `node`.
    pub fn to(node: impl Into<String>) -> Self {
        Self::Next(node.into())
    }

    /// A conditional route with its first branch.
    pub fn when(condition: Condition, node: impl Into<String>) -> Self {
        Self::Conditional {
            branches: vec![(condition, node.into())],
            otherwise: None,
        }
    }

    /// Adds a branch to a conditional route (other routes are returned unchanged).
    pub fn or_when(mut self, condition: Condition, node: impl Into<String>) -> Self {
        if let Self::Conditional { branches, .. } = &mut self {
            branches.push((condition, node.into()));
        }
        self
    }

    /// Sets the default of a conditional route (other routes are returned unchanged).
    pub fn otherwise(mut self, node: impl Into<String>) -> Self {
        if let Self::Conditional { otherwise, .. } = &mut self {
            *otherwise = Some(node.into());
        }
        self
    }

    /// A route picked by `chooser` among `targets`.
    pub fn chosen<I, S>(chooser: impl EdgeChooser, targets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Chosen {
            chooser: Arc::new(chooser),
            targets: targets.into_iter().map(Into::into).collect(),
        }
    }

    /// A fan-out over `branches`, joined at `join`.
    pub fn parallel<I, S>(branches: I, join: Option<&str>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Parallel {
            branches: branches.into_iter().map(Into::into).collect(),
            join: join.map(str::to_owned),
        }
    }

    /// Every node this route may lead to.
    pub fn targets(&self) -> Vec<&str> {
        match self {
            Self::End => Vec::new(),
            Self::Next(node) => vec![node],
            Self::Conditional {
                branches,
                otherwise,
            } => branches
                .iter()
                .map(|(_, node)| node.as_str())
                .chain(otherwise.as_deref())
                .collect(),
            Self::Chosen { targets, .. } => targets.iter().map(String::as_str).collect(),
            Self::Parallel { branches, join } => branches
                .iter()
                .map(String::as_str)
                .chain(join.as_deref())
                .collect(),
        }
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::End => f.write_str("End"),
            Self::Next(node) => write!(f, "Next({node:?})"),
            Self::Conditional {
                branches,
                otherwise,
            } => f
                .debug_struct("Conditional")
                .field("branches", branches)
                .field("otherwise", otherwise)
                .finish(),
            Self::Chosen { targets, .. } => {
                f.debug_struct("Chosen").field("targets", targets).finish()
            }
            Self::Parallel { branches, join } => f
                .debug_struct("Parallel")
                .field("branches", branches)
                .field("join", join)
                .finish(),
        }
    }
}
