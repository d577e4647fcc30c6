//! Dedicated inference threads fed by a bounded queue.
//!
//! Inference is CPU-bound for seconds at a time, so it never runs on the async runtime: a
//! fixed set of OS threads takes jobs from a bounded queue, each running them as a batch of
//! up to `batch_size` generations sharing every forward pass ([`Batch`]). A full queue is answered at once
//! with a rate-limited error (the server turns it into 503 + `Retry-After`), never by
//! blocking or by buffering without bound.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::PROVIDER;
use super::batch::Batch;
use super::engine::{Engine, Job};
use crate::llm::LlmError;

/// What a caller is told to wait when the queue is full.
const RETRY_AFTER_FULL: Duration = Duration::from_secs(2);

/// The inference threads and their queue. Dropping the pool closes the queue; each thread
/// finishes its current job and exits.
pub(crate) struct WorkerPool {
    queue: SyncSender<Job>,
    queue_size: usize,
}

impl WorkerPool {
    /// Starts `threads` inference threads over `engine`, each running up to `batch_size`
    /// generations at once, with room for `queue_size` waiting jobs. The first thread loads the weights right away, so the model is warm by the
    /// first request.
    pub(crate) fn start(
        engine: Arc<Engine>,
        threads: usize,
        batch_size: usize,
        queue_size: usize,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = sync_channel::<Job>(queue_size);
        let jobs = Arc::new(Mutex::new(jobs));
        for index in 0..threads {
            let engine = Arc::clone(&engine);
            let jobs = Arc::clone(&jobs);
            std::thread::Builder::new()
                .name(format!("arshai-local-{index}"))
                .spawn(move || work(&engine, &jobs, batch_size))?;
        }
        Ok(Self { queue, queue_size })
    }

    /// Queues `job`, failing at once when the queue is full.
    pub(crate) fn submit(&self, job: Job) -> Result<(), LlmError> {
        self.queue.try_send(job).map_err(|error| match error {
            TrySendError::Full(_) => {
                tracing::warn!(
                    queue_size = self.queue_size,
                    "local model queue is full; request refused"
                );
                LlmError::RateLimited {
                    provider: PROVIDER,
                    retry_after: Some(RETRY_AFTER_FULL),
                }
            }
            TrySendError::Disconnected(_) => LlmError::UpstreamStatus {
                provider: PROVIDER,
                status: 503,
                body_excerpt: "the local model's inference threads have stopped".to_owned(),
                retry_after: None,
            },
        })
    }
}

/// How long a thread whose members all wait for their callers sleeps before looking again.
const STALLED_POLL: Duration = Duration::from_millis(2);

fn work(engine: &Engine, jobs: &Mutex<Receiver<Job>>, batch_size: usize) {
    // Warm up: load the weights before taking the first job (other threads wait for it).
    let _ = engine.weights();
    let mut batch = Batch::new(engine, batch_size);
    loop {
        if batch.is_empty() {
            // Idle: wait for a job. One idle thread at a time waits on the queue; the
            // others wait for the lock. A poisoned lock only means another thread panicked
            // while waiting: keep serving.
            let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
            match next {
                Ok(job) => {
                    if let Some(member) = engine.admit(job) {
                        batch.join(member);
                    }
                }
                Err(_) => return,
            }
        }
        // Busy: take whatever waits, up to the batch size, without blocking (an idle
        // thread holding the lock has the queue; the jobs go to it).
        while batch.has_room() {
            let Ok(queue) = jobs.try_lock() else { break };
            let Ok(job) = queue.try_recv() else { break };
            drop(queue);
            if let Some(member) = engine.admit(job) {
                batch.join(member);
            }
        }
        if !batch.is_empty() && !batch.step() {
            std::thread::sleep(STALLED_POLL);
        }
    }
}
