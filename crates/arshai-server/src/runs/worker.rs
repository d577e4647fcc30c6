//! The worker: takes runs from the queue and executes them, at most `concurrency` at once.
//!
//! One loop per process (inside `arshai serve` with `runs.workers` slots, or alone as
//! `arshai worker`): while a slot is free it looks for runs idle past the visibility
//! timeout (every `runs.check_interval_seconds`), then reads new ones, one per tenant per
//! read; each run executes in its own task, which renews the run's claim and checks for a
//! cancellation every check interval. On shutdown the loop stops taking runs, hands back
//! the ones it read but did not start, lets the running ones finish within the grace
//! period, and hands back those still running at the deadline: another worker takes them
//! over at once (their conversation turn, if it was committed, is not repeated).
//!
//! With limits ([`Worker::with_limits`]) each execution reserves its submitter's budgets
//! before it starts and settles them with the run's real tokens just before its outcome
//! is recorded ([`super::usage`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::executor::{RunExecutor, RunFailure};
use super::queue::{Delivery, Start};
use super::record::{RunRecord, RunStatus};
use super::usage::{RunCharge, output_tokens};
use super::{RunError, Runs, webhook};
use crate::metrics::Metrics;
use crate::turn::limits::TurnLimits;

/// Pause after a failed Redis call before the loop tries again (doubled while it keeps
/// failing, up to [`MAX_ERROR_PAUSE`]).
const ERROR_PAUSE: Duration = Duration::from_millis(250);
/// Longest pause between two tries while Redis is unreachable.
const MAX_ERROR_PAUSE: Duration = Duration::from_secs(4);

/// A worker of the run queue.
pub struct Worker {
    shared: Arc<Shared>,
    concurrency: usize,
}

struct Shared {
    runs: Arc<Runs>,
    executor: Arc<dyn RunExecutor>,
    metrics: Arc<Metrics>,
    /// The limits each run's tokens are charged to; `None`: not charged.
    limits: Option<Arc<TurnLimits>>,
    consumer: String,
    http: reqwest::Client,
    /// Runs started and not finished, by stream entry (handed back at the drain deadline).
    in_flight: Mutex<HashMap<String, Delivery>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded map is plain bookkeeping: a panicking holder leaves it usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a running run stopped before its executor returned.
enum Interrupted {
    /// A cancellation was asked.
    Cancelled,
    /// Another worker took it over (this one was presumed dead), or it finished elsewhere.
    Lost,
}

impl Worker {
    /// A worker executing up to `concurrency` runs at once with `executor`.
    pub fn new(
        runs: Arc<Runs>,
        executor: Arc<dyn RunExecutor>,
        metrics: Arc<Metrics>,
        concurrency: usize,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
        let consumer = format!(
            "{host}-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            shared: Arc::new(Shared {
                runs,
                executor,
                metrics,
                limits: None,
                consumer,
                http: reqwest::Client::new(),
                in_flight: Mutex::new(HashMap::new()),
            }),
            concurrency: concurrency.max(1),
        }
    }

    /// Charges each run's real tokens to its submitter's budgets and tokens-per-minute
    /// limits in `limits` (a run whose budget is spent when it starts fails with
    /// `budget_exceeded`).
    pub fn with_limits(mut self, limits: Arc<TurnLimits>) -> Self {
        // A worker holds the only reference to its shared part until it runs.
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.limits = Some(limits);
        }
        self
    }

    /// This worker's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.shared.consumer
    }

    /// Takes and executes runs until `stop` turns true, then drains within `grace`.
    pub async fn run(self, mut stop: watch::Receiver<bool>, grace: Duration) {
        let shared = self.shared;
        let runs = Arc::clone(&shared.runs);
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        let mut buffer: VecDeque<Delivery> = VecDeque::new();
        let check = Duration::from_secs_f64(runs.settings.check_interval_seconds);
        let mut last_reclaim: Option<Instant> = None;
        let mut rotation = 0usize;
        let mut link = None;
        let mut failures: u32 = 0;
        tracing::info!(consumer = %shared.consumer, concurrency = self.concurrency, "run worker started");
        while !*stop.borrow() {
            while tasks.try_join_next().is_some() {}
            let permit: OwnedSemaphorePermit = tokio::select! {
                () = stopped(&mut stop) => break,
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            if buffer.is_empty() {
                let free = slots.available_permits() + 1;
                match fetch(
                    &runs,
                    &shared.consumer,
                    &mut link,
                    &mut last_reclaim,
                    check,
                    &mut rotation,
                    free,
                )
                .await
                {
                    Ok(found) => {
                        if failures > 0 {
                            tracing::info!("the run queue is reachable again");
                        }
                        failures = 0;
                        buffer.extend(found);
                    }
                    Err(error) => {
                        // Logged once per outage; the pause doubles up to MAX_ERROR_PAUSE.
                        if failures == 0 {
                            tracing::warn!(%error, "the run queue is unavailable; retrying");
                        } else {
                            tracing::debug!(%error, "the run queue is still unavailable");
                        }
                        link = None;
                        let wait = ERROR_PAUSE
                            .saturating_mul(1 << failures.min(4))
                            .min(MAX_ERROR_PAUSE);
                        failures = failures.saturating_add(1);
                        pause(&mut stop, wait).await;
                    }
                }
            }
            if let Some(delivery) = buffer.pop_front() {
                tasks.spawn(execute(Arc::clone(&shared), delivery, permit));
            }
        }
        tracing::info!(consumer = %shared.consumer, running = tasks.len(), "run worker draining");
        for delivery in buffer {
            if let Err(error) = runs.hand_back(&shared.consumer, &delivery).await {
                tracing::warn!(%error, run = %delivery.run_id, "cannot hand a run back");
            }
        }
        let deadline = Instant::now() + grace;
        while !tasks.is_empty() {
            match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        let unfinished: Vec<Delivery> = lock(&shared.in_flight).drain().map(|(_, d)| d).collect();
        for delivery in unfinished {
            tracing::warn!(run = %delivery.run_id, "handing back a run still running at the drain deadline");
            if let Err(error) = runs.hand_back(&shared.consumer, &delivery).await {
                tracing::warn!(%error, run = %delivery.run_id, "cannot hand a run back");
            }
            shared.metrics.runs.running.dec();
        }
        tracing::info!(consumer = %shared.consumer, "run worker stopped");
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await.map(|_| ());
}

/// Sleeps `pause`, or less when `stop` turns true.
async fn pause(stop: &mut watch::Receiver<bool>, pause: Duration) {
    tokio::select! {
        () = stopped(stop) => {}
        () = tokio::time::sleep(pause) => {}
    }
}

/// Runs to execute: taken over from dead workers (every check interval), else new ones.
async fn fetch(
    runs: &Runs,
    consumer: &str,
    link: &mut Option<arshai::memory::RedisCommands>,
    last_reclaim: &mut Option<Instant>,
    check: Duration,
    rotation: &mut usize,
    free: usize,
) -> Result<Vec<Delivery>, RunError> {
    let mut tenants = runs.tenants().await?;
    if tenants.is_empty() {
        // Nothing was ever queued: wait one block for the first submission.
        tokio::time::sleep(runs.block()).await;
        return Ok(Vec::new());
    }
    if last_reclaim.is_none_or(|at| at.elapsed() >= check) {
        *last_reclaim = Some(Instant::now());
        let mut found = Vec::new();
        for tenant in &tenants {
            found.extend(runs.reclaim(consumer, tenant, free).await?);
            if found.len() >= free {
                break;
            }
        }
        if !found.is_empty() {
            return Ok(found);
        }
    }
    // Rotate which tenant comes first, so none is always served first within a read.
    let len = tenants.len();
    tenants.rotate_left(*rotation % len);
    *rotation = rotation.wrapping_add(1);
    if link.is_none() {
        *link = Some(runs.blocking_link().await?);
    }
    match link {
        Some(link) => runs.read_new(link, consumer, &tenants).await,
        None => Ok(Vec::new()),
    }
}

/// Executes one delivered run in its slot.
async fn execute(shared: Arc<Shared>, delivery: Delivery, _permit: OwnedSemaphorePermit) {
    let runs = &shared.runs;
    let attempt = match runs.start(&shared.consumer, &delivery).await {
        Ok(Start::Run(attempt)) => attempt,
        Ok(Start::Dead) => {
            tracing::warn!(run = %delivery.run_id, "a run exhausted its attempts: dead-lettered");
            shared
                .metrics
                .runs
                .finished(RunStatus::Failed.as_str(), None);
            if let Ok(Some(record)) = runs.load(&delivery.run_id).await {
                notify(&shared, &record).await;
            }
            return;
        }
        Ok(Start::Skip) => return,
        Err(error) => {
            // Left pending: this worker or another takes it over after the visibility timeout.
            tracing::warn!(%error, run = %delivery.run_id, "cannot start a run");
            return;
        }
    };
    let record = match runs.load(&delivery.run_id).await {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, run = %delivery.run_id, "cannot read a run");
            return;
        }
    };
    lock(&shared.in_flight).insert(delivery.entry.clone(), delivery.clone());
    shared.metrics.runs.running.inc();
    let _ = runs
        .append_event(
            &record.id,
            "running",
            &json!({"status": "running", "attempt": attempt, "worker": shared.consumer}),
        )
        .await;
    let started = Instant::now();
    let charge = match &shared.limits {
        Some(limits) => match RunCharge::reserve(limits, &record).await {
            Ok(charge) => Some(charge),
            Err(failure) => {
                shared.metrics.runs.running.dec();
                lock(&shared.in_flight).remove(&delivery.entry);
                let outcome = Some((
                    RunStatus::Failed,
                    failure_value(&failure),
                    failure.retryable,
                ));
                conclude(&shared, &delivery, &record, attempt, outcome, started, None).await;
                return;
            }
        },
        None => None,
    };
    let deadline = Duration::from_secs_f64(runs.settings.run_timeout_seconds);
    let outcome = tokio::select! {
        result = tokio::time::timeout(deadline, shared.executor.execute(&record, attempt, runs)) => {
            Some(match result {
                Ok(Ok(output)) => (RunStatus::Succeeded, output, false),
                Ok(Err(failure)) => (RunStatus::Failed, failure_value(&failure), failure.retryable),
                Err(_) => (RunStatus::Failed, failure_value(&RunFailure::new(
                    "run_timeout",
                    format!("the run did not finish within {deadline:?}"),
                )), false),
            })
        }
        interrupted = watch_claim(&shared, &delivery, attempt) => match interrupted {
            Interrupted::Cancelled => Some((RunStatus::Cancelled, failure_value(&RunFailure::new(
                "cancelled",
                "cancelled while running",
            )), false)),
            Interrupted::Lost => None,
        },
    };
    shared.metrics.runs.running.dec();
    lock(&shared.in_flight).remove(&delivery.entry);
    conclude(
        &shared, &delivery, &record, attempt, outcome, started, charge,
    )
    .await;
}

/// What an execution ended with: its status, the output or error, and whether another
/// attempt may succeed; `None` when the run was taken over.
type Outcome = Option<(RunStatus, Value, bool)>;

/// Settles `charge` and records `outcome` (or hands the run back for another attempt).
/// The charge is the run's real tokens when it succeeded, else its estimate (the usage
/// of an execution that ended without an output is unknown); it is settled before the
/// outcome is recorded, so a finished run's tokens are in its submitter's usage.
async fn conclude(
    shared: &Shared,
    delivery: &Delivery,
    record: &RunRecord,
    attempt: u32,
    outcome: Outcome,
    started: Instant,
    charge: Option<RunCharge>,
) {
    let runs = &shared.runs;
    if let Some(charge) = charge {
        let tokens = match &outcome {
            Some((RunStatus::Succeeded, output, _)) => output_tokens(output),
            _ => None,
        };
        charge.settle(tokens).await;
    }
    let Some((status, value, retryable)) = outcome else {
        tracing::info!(run = %record.id, attempt, "the run was taken over by another worker");
        return;
    };
    if retryable && attempt < runs.settings.max_attempts {
        tracing::info!(run = %record.id, attempt, error = %value, "a dependency failed; the run is retried");
        let _ = runs
            .append_event(
                &record.id,
                "retrying",
                &json!({"attempt": attempt, "error": value}),
            )
            .await;
        if let Err(error) = runs.hand_back(&shared.consumer, delivery).await {
            tracing::warn!(%error, run = %record.id, "cannot hand a run back; it is retried after the visibility timeout");
        }
        return;
    }
    match runs.finish(record, attempt, status, &value).await {
        Ok(true) => {
            shared
                .metrics
                .runs
                .finished(status.as_str(), Some(started.elapsed()));
            if let Ok(Some(record)) = runs.load(&record.id).await {
                notify(shared, &record).await;
            }
        }
        Ok(false) => {
            tracing::info!(run = %record.id, attempt, "the run was finished by another attempt")
        }
        Err(error) => {
            // Left pending: taken over after the visibility timeout, and answered from the
            // turn's receipt then.
            tracing::warn!(%error, run = %record.id, "cannot record a run's outcome");
        }
    }
}

fn failure_value(failure: &RunFailure) -> Value {
    serde_json::to_value(failure).unwrap_or(Value::Null)
}

/// Renews the claim on `delivery` every check interval and resolves when the run is
/// cancelled or no longer this attempt's.
async fn watch_claim(shared: &Shared, delivery: &Delivery, attempt: u32) -> Interrupted {
    let runs = &shared.runs;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(
        runs.settings.check_interval_seconds,
    ));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // Checked before renewing: renewing a claim another worker took over would take
        // it back.
        match runs.load(&delivery.run_id).await {
            Ok(Some(record)) => {
                if record.status != RunStatus::Running || record.attempts != attempt {
                    return Interrupted::Lost;
                }
                if record.cancel_requested {
                    return Interrupted::Cancelled;
                }
            }
            Ok(None) => return Interrupted::Lost,
            Err(error) => tracing::debug!(%error, run = %delivery.run_id, "cannot check a run"),
        }
        if let Err(error) = runs.renew(&shared.consumer, delivery).await {
            tracing::debug!(%error, run = %delivery.run_id, "cannot renew a run's claim");
        }
    }
}

/// Posts a finished run to its webhook, if it has one.
async fn notify(shared: &Shared, record: &RunRecord) {
    if let Some(url) = &record.webhook {
        let (attempts, delivered) = webhook::deliver(
            &shared.http,
            &shared.runs.settings,
            url,
            &record.id,
            &record.view(),
        )
        .await;
        tracing::info!(run = %record.id, attempts, delivered, "webhook sent");
    }
}

/// A worker running in its own task; [`WorkerHandle::stop`] drains it.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// Starts a worker over `state`'s queue and agents with `concurrency` slots (`None`
    /// when `concurrency` is 0 or runs are off), draining within `grace` once stopped.
    pub fn spawn(state: &crate::AppState, concurrency: usize, grace: Duration) -> Option<Self> {
        let runs = state.runs.as_ref()?;
        if concurrency == 0 {
            return None;
        }
        let executor = Arc::new(super::TargetExecutor::new(
            Arc::clone(&state.agents),
            Arc::clone(&state.workflows),
        ));
        let worker = Worker::new(
            Arc::clone(runs),
            executor,
            Arc::clone(&state.metrics),
            concurrency,
        )
        .with_limits(Arc::clone(&state.limits));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(worker.run(stopped, grace));
        Some(Self { stop, task })
    }

    /// Stops taking runs and waits until the worker drained (its running runs finished or
    /// were handed back at the grace deadline).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the run worker ended abnormally");
        }
    }
}
