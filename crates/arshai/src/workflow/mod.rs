//! Layer 3: workflows — a graph of nodes run with a JSON state passed between them.
//!
//! A [`Workflow`] has named [`Node`]s: an agent turn, a tool call, another workflow, or a
//! function in code ([`NodeKind`]). Each node reads its input at a JSON pointer of the
//! [`WorkflowState`] and its output is merged into the state under its output key (the
//! merge rule is in [`state`](WorkflowState)). After a node, its [`Route`] says where the
//! run goes: one node, the first branch whose [`Condition`] holds on the state, the node
//! an [`EdgeChooser`] picks (a router agent: [`AgentChooser`]), or a parallel fan-out
//! joined at a node. The entry is a route too (an entry router). A node that fails or
//! times out takes its fallback edge when it has one (Python Arshai's
//! `FallbackWorkflow`). [`Bounds`] limit steps, total time and each node's time.
//!
//! Workflows are built in code ([`Workflow::builder`]) or declared in settings
//! (`[[workflows]]`, [`WorkflowSettings`], built by [`WorkflowRegistry::from_settings`]),
//! and validated when built: an unknown node, an unreachable node, or a cycle without a
//! step bound is an error naming it. [`run_batch`] runs one workflow over many inputs with
//! bounded parallelism. `docs/workflows.md` is the guide.
//!
//! - `state` — [`WorkflowState`] and the merge rule.
//! - `node` — [`Node`], [`NodeKind`], [`NodeFunction`], [`NodeMemory`].
//! - `route`, `condition`, `chooser` — edges: [`Route`], [`Condition`], [`EdgeChooser`].
//! - `bounds` — [`Bounds`].
//! - `definition`, `builder`, `validate` — [`Workflow`] and how it is built and checked.
//! - `run`, `event` — the engine, [`WorkflowEvent`], [`RunOutput`], [`RunOptions`].
//! - `checkpoint` — [`Checkpoints`]: per-node checkpoints, so a retried run resumes.
//! - `batch` — [`run_batch`].
//! - `settings`, `registry` — `[[workflows]]` and [`WorkflowRegistry`].

mod batch;
mod bounds;
mod builder;
mod checkpoint;
mod chooser;
mod condition;
mod definition;
mod error;
mod event;
mod node;
mod registry;
mod route;
mod run;
mod settings;
mod state;
mod validate;

#[cfg(test)]
mod tests;

pub use batch::run_batch;
pub use bounds::Bounds;
pub use builder::WorkflowBuilder;
pub use checkpoint::{
    CHECKPOINT_TIMEOUT, Checkpoint, CheckpointError, Checkpoints, MemoryCheckpoints,
};
pub use chooser::{AgentChooser, ChooseError, EdgeChooser, FnChooser, target_named};
pub use condition::Condition;
pub use definition::Workflow;
pub use error::{DefinitionError, NodeError, RunError};
pub use event::{
    RunOptions, RunOutput, Step, StepObserver, StepStatus, WorkflowEvent, WorkflowEventStream,
};
pub use node::{FnNode, Node, NodeFunction, NodeKind, NodeMemory};
pub use registry::{NodeCatalog, WorkflowRegistry};
pub use route::Route;
pub use settings::{
    BoundsSettings, EdgeSettings, EntrySettings, NodeSettings, RouterSettings, WorkflowSettings,
    validate_workflows,
};
pub use state::{ERRORS_KEY, INPUT_KEY, WorkflowState};
