//! [`Checkpoints`]: where a run records each node it finished, so that a retried run with
//! the same store resumes from its last checkpoint instead of running finished nodes again.
//!
//! The engine asks [`Checkpoints::load`] before each node (by its [`Checkpoint`] path) and
//! uses a recorded result instead of running the node; after a node succeeds it calls
//! [`Checkpoints::save`] before merging the output and moving on. The walk is
//! deterministic given the same recorded outputs (conditions and routes read the state,
//! which the restored outputs rebuild), so a resumed run takes the same path.
//!
//! A node's path is `<name>#<visit>`: its name and how many times this run reached it
//! (1 first, 2 on the second pass of a bounded cycle); the branches of a fan-out are
//! different nodes, so different paths. A fallback that took a node's place is recorded
//! under the node's path (the whole chain is one checkpoint); a node inside a nested
//! workflow is `<outer path>/<name>#<visit>`, and inside a fallback's nested workflow
//! `<outer path>><fallback>/<name>#<visit>`. A chosen edge's choice (an [`super::EdgeChooser`],
//! e.g. a router agent) is recorded too, at `<from>@route#<visit>` (`entry@route#1` for an
//! entry router), its [`Checkpoint::node`] the chosen target: a resumed run takes the same
//! path even when a model chose it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::llm::Usage;

/// The longest the engine waits for one [`Checkpoints::load`] or [`Checkpoints::save`]
/// before it fails the run with [`super::RunError::Checkpoint`].
pub const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished node left behind: enough to merge it into the state again without
/// running it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The node that produced the output: the node itself, or the fallback that took its
    /// place.
    pub node: String,
    /// Its output.
    pub output: Value,
    /// `(node, message)` of each failure that took a fallback edge on the way.
    #[serde(default)]
    pub errors: Vec<(String, String)>,
    /// The tokens it used (counted again in a resumed run's usage: the run's total is
    /// every node's tokens once).
    #[serde(default)]
    pub usage: Usage,
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The store is unreachable or answered an error.
    #[error("the checkpoint store is unavailable: {0}")]
    Unavailable(String),
    /// A recorded checkpoint does not parse.
    #[error("a recorded checkpoint is corrupt: {0}")]
    Corrupt(String),
    /// The store did not answer within [`CHECKPOINT_TIMEOUT`].
    #[error("the checkpoint store did not answer within {0:?}")]
    Timeout(Duration),
}

/// A run's checkpoint store, set on [`super::RunOptions::checkpoints`]: one per run (the
/// implementation keys its records by the run), shared by every attempt of that run.
///
/// Implementations should answer within their own bound; the engine gives up after
/// [`CHECKPOINT_TIMEOUT`].
#[async_trait]
pub trait Checkpoints: Send + Sync {
    /// The checkpoint recorded at `path`, if the node finished in an earlier attempt.
    async fn load(&self, path: &str) -> Result<Option<Checkpoint>, CheckpointError>;

    /// Records that the node at `path` finished with `checkpoint`.
    async fn save(&self, path: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError>;
}

/// Checkpoints of one run kept in this process: for tests, and for a caller that retries
/// a failed run in the same process.
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    saved: Mutex<HashMap<String, Checkpoint>>,
}

impl MemoryCheckpoints {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The paths recorded so far, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.lock().keys().cloned().collect();
        paths.sort();
        paths
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Checkpoint>> {
        // Plain data: a panicking holder leaves it usable.
        self.saved
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Checkpoints for MemoryCheckpoints {
    async fn load(&self, path: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        Ok(self.lock().get(path).cloned())
    }

    async fn save(&self, path: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        self.lock().insert(path.to_owned(), checkpoint.clone());
        Ok(())
    }
}
