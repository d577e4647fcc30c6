//! The engine: walks a [`Workflow`]'s graph from its entry, node by node, merging each
//! output into the state, within the workflow's bounds.
//!
//! A run is driven by its caller: [`Workflow::run_to_end`] is one future, and
//! [`Workflow::run`] is a stream whose producer runs only while the stream is polled and
//! is dropped with it (a client that leaves cancels the run and its upstream calls). The
//! branches of a fan-out run concurrently in that same task: nodes wait on I/O (models,
//! tools); a CPU-heavy function node moves its work to `spawn_blocking`.
//!
//! With [`RunOptions::checkpoints`] each finished node is recorded (its path is described
//! in `checkpoint`) and a node recorded by an earlier attempt of the run is not run again:
//! its recorded output is merged and its step reported as [`StepStatus::Restored`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::{BoxFuture, join_all};
use futures::stream::{self, StreamExt};
use futures::{FutureExt, SinkExt};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::checkpoint::{CHECKPOINT_TIMEOUT, Checkpoint, CheckpointError};
use super::chooser::{ChooseError, EdgeChooser};
use super::definition::Workflow;
use super::error::{NodeError, RunError};
use super::event::{RunOptions, RunOutput, Step, StepStatus, WorkflowEvent, WorkflowEventStream};
use super::node::{Node, NodeKind, NodeMemory};
use super::route::Route;
use super::state::{ERRORS_KEY, WorkflowState};
use crate::agent::{AgentError, AgentEvent, AgentInput, ConversationRef, Delivery};
use crate::llm::{Message, Usage};

/// How many events a run may produce ahead of a slow consumer before it waits.
const EVENT_BUFFER: usize = 32;

type Sender = mpsc::Sender<Result<WorkflowEvent, RunError>>;

/// Where the run goes next.
enum Hop<'w> {
    End,
    Node(&'w Node),
    Parallel(&'w [String], Option<&'w str>),
}

/// A node (or the fallback that took its place) that produced its output.
struct Finished<'w> {
    node: &'w Node,
    output: Value,
    /// `(node, message)` of each failure that took a fallback edge on the way.
    errors: Vec<(String, String)>,
    steps: Vec<Step>,
    usage: Usage,
}

/// What every node of one run shares.
struct Walk<'r> {
    options: &'r RunOptions,
    /// Prefix of the steps' names (`outer/` in a nested workflow).
    prefix: &'r str,
    /// Prefix of the checkpoint paths (`outer#1/` in a nested workflow).
    path_prefix: &'r str,
    taken: AtomicUsize,
    /// How many times this walk reached each node.
    visits: Mutex<HashMap<String, u32>>,
}

impl Walk<'_> {
    /// The checkpoint path of the next visit of `node`: `<prefix><node>#<visit>`.
    fn path(&self, node: &str) -> String {
        let mut visits = self
            .visits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let visit = visits.entry(node.to_owned()).or_insert(0);
        *visit += 1;
        format!("{}{node}#{visit}", self.path_prefix)
    }
}

/// `work` on the checkpoint store, within [`CHECKPOINT_TIMEOUT`].
async fn bounded<T>(
    work: impl Future<Output = Result<T, CheckpointError>>,
) -> Result<T, CheckpointError> {
    tokio::time::timeout(CHECKPOINT_TIMEOUT, work)
        .await
        .unwrap_or(Err(CheckpointError::Timeout(CHECKPOINT_TIMEOUT)))
}

impl Workflow {
    /// Runs the workflow on `input` as a stream of events ending with
    /// [`WorkflowEvent::Done`] (or an error). Agent nodes forward their text deltas and tool
    /// events when `options.delivery` is [`Delivery::Streamed`].
    pub fn run(self: Arc<Self>, input: Value, options: RunOptions) -> WorkflowEventStream {
        let (sender, receiver) = mpsc::channel(EVENT_BUFFER);
        let producer = async move {
            let mut last = sender.clone();
            let result = self.execute(input, &options, Some(sender), "", "").await;
            let _ = last.send(result.map(WorkflowEvent::Done)).await;
        }
        .into_stream()
        .filter_map(|()| async { None });
        // `select` ends when both sides end: the run finished and every event was read.
        stream::select(receiver, producer).boxed()
    }

    /// Runs the workflow on `input` to its end.
    pub async fn run_to_end(
        self: &Arc<Self>,
        input: Value,
        options: RunOptions,
    ) -> Result<RunOutput, RunError> {
        self.execute(input, &options, None, "", "").await
    }

    /// One run within the total timeout; `prefix` names the nodes of a nested run and
    /// `path_prefix` their checkpoints.
    fn execute<'a>(
        &'a self,
        input: Value,
        options: &'a RunOptions,
        events: Option<Sender>,
        prefix: &'a str,
        path_prefix: &'a str,
    ) -> BoxFuture<'a, Result<RunOutput, RunError>> {
        async move {
            let walk = Walk {
                options,
                prefix,
                path_prefix,
                taken: AtomicUsize::new(0),
                visits: Mutex::new(HashMap::new()),
            };
            let run = self.walk(input, &walk, events);
            match self.bounds.timeout {
                Some(timeout) => tokio::time::timeout(timeout, run)
                    .await
                    .unwrap_or_else(|_| {
                        Err(RunError::Timeout {
                            workflow: self.name.clone(),
                            timeout,
                        })
                    }),
                None => run.await,
            }
        }
        .boxed()
    }

    async fn walk(
        &self,
        input: Value,
        walk: &Walk<'_>,
        events: Option<Sender>,
    ) -> Result<RunOutput, RunError> {
        let mut state = WorkflowState::new(input);
        let mut steps = Vec::new();
        let mut usage = Usage::default();
        let mut last = Value::Null;
        let mut route = &self.entry;
        let mut from: Option<&str> = None;
        loop {
            match self.resolve(route, &state, from, walk).await? {
                Hop::End => break,
                Hop::Node(node) => {
                    let path = walk.path(&node.name);
                    let done = self
                        .run_node(node, &state, walk, events.clone(), path)
                        .await?;
                    route = &done.node.route;
                    from = Some(&done.node.name);
                    last = absorb(&mut state, &mut steps, &mut usage, done);
                }
                Hop::Parallel(branches, join) => {
                    let runs = branches
                        .iter()
                        .filter_map(|branch| self.node(branch))
                        .map(|node| {
                            // Paths are taken here, in declared order, before any branch runs.
                            let path = walk.path(&node.name);
                            self.run_node(node, &state, walk, events.clone(), path)
                        });
                    let results = join_all(runs).await;
                    let mut outputs = Map::new();
                    for result in results {
                        let done = result?;
                        let key = done.node.output_key().to_owned();
                        outputs.insert(key, absorb(&mut state, &mut steps, &mut usage, done));
                    }
                    last = Value::Object(outputs);
                    match join.and_then(|join| self.node(join)) {
                        Some(join) => {
                            // The join is reached like any other node: through a route.
                            let path = walk.path(&join.name);
                            let done = self
                                .run_node(join, &state, walk, events.clone(), path)
                                .await?;
                            route = &done.node.route;
                            from = Some(&done.node.name);
                            last = absorb(&mut state, &mut steps, &mut usage, done);
                        }
                        None => break,
                    }
                }
            }
        }
        let output = match &self.output {
            Some(pointer) => state.read(pointer).unwrap_or(Value::Null),
            None => last,
        };
        Ok(RunOutput {
            run_id: walk.options.run_id.clone(),
            output,
            state: state.into_value(),
            steps,
            usage,
        })
    }

    /// Where `route` leads on `state`; `from` is the node it leaves (`None`: the entry).
    async fn resolve<'w>(
        &'w self,
        route: &'w Route,
        state: &WorkflowState,
        from: Option<&str>,
        walk: &Walk<'_>,
    ) -> Result<Hop<'w>, RunError> {
        let no_route = |reason: String| RunError::NoRoute {
            workflow: self.name.clone(),
            from: from.map_or_else(|| "the entry".to_owned(), |node| format!("node {node:?}")),
            reason,
        };
        let target = match route {
            Route::End => return Ok(Hop::End),
            Route::Parallel { branches, join } => {
                return Ok(Hop::Parallel(branches, join.as_deref()));
            }
            Route::Next(node) => node.as_str(),
            Route::Conditional {
                branches,
                otherwise,
            } => branches
                .iter()
                .find(|(condition, _)| condition.holds(state))
                .map(|(_, node)| node.as_str())
                .or(otherwise.as_deref())
                .ok_or_else(|| no_route("no condition holds and there is no default".to_owned()))?,
            Route::Chosen { chooser, targets } => {
                let chosen = self
                    .choose(chooser.as_ref(), targets, state, from, walk)
                    .await?;
                let chosen = chosen.map_err(|error| no_route(error.0))?;
                targets
                    .iter()
                    .find(|target| **target == chosen)
                    .map(String::as_str)
                    .ok_or_else(|| no_route(format!("the router chose {chosen:?}, not a target")))?
            }
        };
        self.node(target)
            .map(Hop::Node)
            .ok_or_else(|| no_route(format!("{target:?} is not a node")))
    }

    /// What `chooser` picks among `targets` leaving `from`. With checkpoints the choice
    /// is recorded (at `<from>@route#<visit>`, `entry@route#1` for the entry) and a
    /// recorded choice is used instead of asking again, so a resumed run takes the same
    /// path even when the chooser is a model.
    async fn choose(
        &self,
        chooser: &dyn EdgeChooser,
        targets: &[String],
        state: &WorkflowState,
        from: Option<&str>,
        walk: &Walk<'_>,
    ) -> Result<Result<String, ChooseError>, RunError> {
        let Some(store) = walk.options.checkpoints.as_deref() else {
            return Ok(chooser.choose(state, targets).await);
        };
        let path = walk.path(&format!("{}@route", from.unwrap_or("entry")));
        let checkpoint_error = |error: CheckpointError| RunError::Checkpoint {
            workflow: self.name.clone(),
            path: path.clone(),
            error,
        };
        if let Some(recorded) = bounded(store.load(&path)).await.map_err(checkpoint_error)? {
            return Ok(Ok(recorded.node));
        }
        let chosen = chooser.choose(state, targets).await;
        if let Ok(target) = &chosen {
            let checkpoint = Checkpoint {
                node: target.clone(),
                output: Value::Null,
                errors: Vec::new(),
                usage: Usage::default(),
            };
            bounded(store.save(&path, &checkpoint))
                .await
                .map_err(checkpoint_error)?;
        }
        Ok(chosen)
    }

    /// Runs `node`, and its fallbacks in turn while they fail; `path` is its checkpoint
    /// path (the whole chain is one checkpoint). A chain an earlier attempt recorded is
    /// restored instead of run.
    async fn run_node<'w>(
        &'w self,
        node: &'w Node,
        state: &WorkflowState,
        walk: &Walk<'_>,
        mut events: Option<Sender>,
        path: String,
    ) -> Result<Finished<'w>, RunError> {
        let checkpoint_error = |error: CheckpointError| RunError::Checkpoint {
            workflow: self.name.clone(),
            path: path.clone(),
            error,
        };
        let store = walk.options.checkpoints.as_deref();
        if let Some(store) = store
            && let Some(recorded) = bounded(store.load(&path)).await.map_err(checkpoint_error)?
        {
            return self.restore(node, recorded, walk, events, &path).await;
        }
        let mut current = node;
        let mut errors = Vec::new();
        let mut steps = Vec::new();
        // The state a fallback sees: the run's, plus the failures before it.
        let mut fallback_state: Option<WorkflowState> = None;
        loop {
            let taken = walk.taken.fetch_add(1, Ordering::Relaxed);
            if let Some(max_steps) = self.bounds.max_steps
                && taken >= max_steps
            {
                return Err(RunError::StepLimit {
                    workflow: self.name.clone(),
                    max_steps,
                    node: current.name.clone(),
                });
            }
            let label = format!("{}{}", walk.prefix, current.name);
            emit(&mut events, || WorkflowEvent::NodeStarted {
                node: label.clone(),
            })
            .await;
            let started = Instant::now();
            let view = fallback_state.as_ref().unwrap_or(state);
            // A fallback's own path within the chain names its agent turn and nested run.
            let exec_path = if std::ptr::eq(current, node) {
                path.clone()
            } else {
                format!("{path}>{}", current.name)
            };
            let mut result = self
                .execute_node(
                    current,
                    view,
                    walk.options,
                    events.clone(),
                    &label,
                    &exec_path,
                )
                .await;
            if let Ok((_, _, nested)) = &mut result {
                // A nested workflow's steps come before its own.
                steps.append(nested);
            }
            let (status, error) = match &result {
                Ok(_) => (StepStatus::Ok, None),
                Err(NodeError::Timeout(_)) => (StepStatus::TimedOut, result.as_ref().err()),
                Err(error) => (StepStatus::Failed, Some(error)),
            };
            let step = Step {
                node: label,
                status,
                duration: started.elapsed(),
                error: error.map(ToString::to_string),
            };
            if let Some(observer) = &walk.options.observer {
                observer.step_finished(&self.name, &step);
            }
            emit(&mut events, || WorkflowEvent::NodeFinished(step.clone())).await;
            steps.push(step);
            match result {
                Ok((output, usage, _)) => {
                    if let Some(store) = store {
                        let checkpoint = Checkpoint {
                            node: current.name.clone(),
                            output: output.clone(),
                            errors: errors.clone(),
                            usage,
                        };
                        bounded(store.save(&path, &checkpoint))
                            .await
                            .map_err(checkpoint_error)?;
                    }
                    return Ok(Finished {
                        node: current,
                        output,
                        errors,
                        steps,
                        usage,
                    });
                }
                Err(error) => match current.fallback.as_deref().and_then(|f| self.node(f)) {
                    Some(fallback) => {
                        let message = error.to_string();
                        let mut seen = fallback_state.take().unwrap_or_else(|| state.clone());
                        seen.merge(
                            ERRORS_KEY,
                            Value::Object(Map::from_iter([(
                                current.name.clone(),
                                Value::String(message.clone()),
                            )])),
                        );
                        fallback_state = Some(seen);
                        errors.push((current.name.clone(), message));
                        current = fallback;
                    }
                    None => {
                        return Err(RunError::Node {
                            workflow: self.name.clone(),
                            node: current.name.clone(),
                            error,
                        });
                    }
                },
            }
        }
    }

    /// The chain of `node` as an earlier attempt recorded it: one `restored` step, the
    /// recorded output, failures and tokens (counted toward the step bound as one step).
    async fn restore<'w>(
        &'w self,
        node: &'w Node,
        recorded: Checkpoint,
        walk: &Walk<'_>,
        mut events: Option<Sender>,
        path: &str,
    ) -> Result<Finished<'w>, RunError> {
        let taken = walk.taken.fetch_add(1, Ordering::Relaxed);
        if let Some(max_steps) = self.bounds.max_steps
            && taken >= max_steps
        {
            return Err(RunError::StepLimit {
                workflow: self.name.clone(),
                max_steps,
                node: node.name.clone(),
            });
        }
        let produced = self
            .node(&recorded.node)
            .ok_or_else(|| RunError::Checkpoint {
                workflow: self.name.clone(),
                path: path.to_owned(),
                error: CheckpointError::Corrupt(format!(
                    "it names the node {:?}, which this workflow does not have",
                    recorded.node
                )),
            })?;
        let label = format!("{}{}", walk.prefix, node.name);
        emit(&mut events, || WorkflowEvent::NodeStarted {
            node: label.clone(),
        })
        .await;
        let step = Step {
            node: label,
            status: StepStatus::Restored,
            duration: Duration::ZERO,
            error: None,
        };
        if let Some(observer) = &walk.options.observer {
            observer.step_finished(&self.name, &step);
        }
        emit(&mut events, || WorkflowEvent::NodeFinished(step.clone())).await;
        Ok(Finished {
            node: produced,
            output: recorded.output,
            errors: recorded.errors,
            steps: vec![step],
            usage: recorded.usage,
        })
    }

    /// Runs one node within its timeout: its output and the tokens it used. `path` is
    /// its checkpoint path (the prefix of a nested run's paths, and its agent turn's
    /// idempotency key).
    async fn execute_node(
        &self,
        node: &Node,
        state: &WorkflowState,
        options: &RunOptions,
        events: Option<Sender>,
        label: &str,
        path: &str,
    ) -> Result<(Value, Usage, Vec<Step>), NodeError> {
        let input = state
            .read(&node.input)
            .ok_or_else(|| NodeError::MissingInput {
                pointer: node.input.clone(),
            })?;
        let work = async {
            match &node.kind {
                NodeKind::Agent(agent) => {
                    let (reply, usage) =
                        agent_turn(agent, node.memory, input, options, events, label, path).await?;
                    Ok((reply, usage, Vec::new()))
                }
                NodeKind::Tool(tool) => Ok((
                    Value::String(tool.call(input).await?),
                    Usage::default(),
                    Vec::new(),
                )),
                NodeKind::Workflow(inner) => {
                    let prefix = format!("{label}/");
                    let path_prefix = format!("{path}/");
                    let run = inner
                        .execute(input, options, events, &prefix, &path_prefix)
                        .await
                        .map_err(|error| NodeError::Workflow(Box::new(error)))?;
                    Ok((run.output, run.usage, run.steps))
                }
                NodeKind::Function(function) => Ok((
                    function.call(input, state).await?,
                    Usage::default(),
                    Vec::new(),
                )),
            }
        };
        match node.timeout.or(self.bounds.node_timeout) {
            Some(timeout) => tokio::time::timeout(timeout, work)
                .await
                .unwrap_or(Err(NodeError::Timeout(timeout))),
            None => work.await,
        }
    }
}

/// Merges a finished node into the run: its failures, its output, its steps and tokens.
/// Returns its output.
fn absorb(
    state: &mut WorkflowState,
    steps: &mut Vec<Step>,
    usage: &mut Usage,
    done: Finished<'_>,
) -> Value {
    if !done.errors.is_empty() {
        let errors = done
            .errors
            .into_iter()
            .map(|(node, message)| (node, Value::String(message)))
            .collect();
        state.merge(ERRORS_KEY, Value::Object(errors));
    }
    state.merge(done.node.output_key(), done.output.clone());
    steps.extend(done.steps);
    *usage += done.usage;
    done.output
}

/// Sends the event `make` builds if the run is streamed (a run to its end builds none); a
/// consumer that left is not an error here (the run is dropped with its stream).
async fn emit(events: &mut Option<Sender>, make: impl FnOnce() -> WorkflowEvent) {
    if let Some(sender) = events {
        let _ = sender.send(Ok(make())).await;
    }
}

/// One turn of `agent` on `input`: the reply's text and the tokens used. The turn's
/// idempotency key is `<run id>:<path>`, so a retried run's repeated turn is answered from
/// the first one's receipt.
async fn agent_turn(
    agent: &Arc<dyn crate::agent::Agent>,
    memory: NodeMemory,
    input: Value,
    options: &RunOptions,
    events: Option<Sender>,
    label: &str,
    path: &str,
) -> Result<(Value, Usage), NodeError> {
    let text = match input {
        Value::String(text) => text,
        other => other.to_string(),
    };
    let conversation = match (memory, &options.conversation) {
        (NodeMemory::Run, Some(id)) => ConversationRef::Id(id.clone()),
        _ => ConversationRef::Stateless,
    };
    // Only a turn on a conversation has a receipt to be answered from.
    let idempotency_key = matches!(conversation, ConversationRef::Id(_))
        .then(|| format!("{}:{path}", options.run_id));
    let turn = AgentInput {
        tenant: options.tenant.clone(),
        request_id: options.request_id.clone(),
        idempotency_key,
        delivery: options.delivery,
        ..AgentInput::with_messages(conversation, vec![Message::user(text)])
    };
    match (options.delivery, events) {
        (Delivery::Streamed, Some(mut sender)) => {
            let mut stream = Arc::clone(agent).turn(turn);
            while let Some(item) = stream.next().await {
                match item? {
                    AgentEvent::Done(output) => {
                        return Ok((Value::String(output.reply), output.usage));
                    }
                    event => {
                        let _ = sender
                            .send(Ok(WorkflowEvent::Agent {
                                node: label.to_owned(),
                                event,
                            }))
                            .await;
                    }
                }
            }
            Err(AgentError::Incomplete.into())
        }
        _ => {
            let output = Arc::clone(agent).respond(turn).await?;
            Ok((Value::String(output.reply), output.usage))
        }
    }
}
