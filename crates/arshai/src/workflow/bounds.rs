//! [`Bounds`]: how long and how far a run may go.

use std::time::Duration;

/// The bounds of a run. A run that passes one fails with an error naming it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    /// At most this many node executions per run (each branch of a fan-out and each
    /// fallback counts one). Required when the graph has a cycle.
    pub max_steps: Option<usize>,
    /// The whole run must end within this time.
    pub timeout: Option<Duration>,
    /// Each node must end within this time, unless the node sets its own.
    pub node_timeout: Option<Duration>,
}
