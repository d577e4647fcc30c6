//! [`run_batch`]: one workflow over many inputs, at most `parallelism` runs at a time
//! (Python Arshai's `BatchProcessor`).

use std::sync::Arc;

use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::definition::Workflow;
use super::error::RunError;
use super::event::{RunOptions, RunOutput};

/// Runs `workflow` on each of `inputs`, at most `parallelism` (at least 1) at a time, and
/// returns each run's result in the order of the inputs. `options` gives the options of
/// the run of input `i` (its id, tenant, conversation).
///
/// ```
/// use std::sync::Arc;
///
/// use arshai::workflow::{Node, RunOptions, Workflow, run_batch};
/// use serde_json::{Value, json};
///
/// let double = Workflow::builder("double")
///     .node(Node::from_fn("double", |input: Value| async move {
///         Ok(json!(input.as_i64().unwrap_or(0) * 2))
///     }))
///     .build()
///     .unwrap()
///     .shared();
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let results = run_batch(&double, (1..=5).map(|n| json!(n)), 2, |_| RunOptions::default()).await;
/// let outputs: Vec<Value> = results.into_iter().map(|r| r.unwrap().output).collect();
/// assert_eq!(outputs, [2, 4, 6, 8, 10].map(|n| json!(n)));
/// # });
/// ```
pub async fn run_batch<I, F>(
    workflow: &Arc<Workflow>,
    inputs: I,
    parallelism: usize,
    options: F,
) -> Vec<Result<RunOutput, RunError>>
where
    I: IntoIterator<Item = Value>,
    F: Fn(usize) -> RunOptions,
{
    let mut results: Vec<(usize, Result<RunOutput, RunError>)> =
        stream::iter(inputs.into_iter().enumerate())
            .map(|(at, input)| {
                let workflow = Arc::clone(workflow);
                let options = options(at);
                async move { (at, workflow.run_to_end(input, options).await) }
            })
            .buffer_unordered(parallelism.max(1))
            .collect()
            .await;
    results.sort_by_key(|(at, _)| *at);
    results.into_iter().map(|(_, result)| result).collect()
}
