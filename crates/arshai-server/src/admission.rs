//! Admission control: a global bound on in-flight agent turns and a bounded wait queue.
//!
//! A turn takes a slot ([`TurnPermit`]) before it runs. When every slot is taken it waits
//! in a queue bounded both in length (`max_queued_turns`) and in time
//! (`queue_timeout_seconds`); beyond either it is refused with 503 and `Retry-After`, so
//! overload is answered at once instead of piling up in memory. Once draining starts, new
//! turns are refused while admitted ones run to completion.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::{Metrics, RejectionLabels};
use crate::settings::AdmissionSettings;

/// Why a turn was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Every slot is taken and the queue is full.
    #[error("the server is at capacity: every turn slot is taken and the queue is full")]
    QueueFull,
    /// The turn waited for a slot longer than the queue timeout.
    #[error("the server is at capacity: no turn slot became free in time")]
    QueueTimeout,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Draining,
}

impl Rejection {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::QueueTimeout => "queue_timeout",
            Self::Draining => "draining",
        }
    }
}

/// The admission controller shared by every turn.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    capacity: usize,
    queued: AtomicUsize,
    max_queued: usize,
    queue_timeout: Duration,
    retry_after: Duration,
    draining: AtomicBool,
    metrics: Arc<Metrics>,
}

/// A slot held by one running turn; dropping it frees the slot.
#[derive(Debug)]
pub struct TurnPermit {
    _slot: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for TurnPermit {
    fn drop(&mut self) {
        self.metrics.turns_in_flight.dec();
    }
}

/// Decrements the queue depth however the wait ends (admitted, timed out, cancelled).
struct QueueSeat<'a>(&'a Admission);

impl Drop for QueueSeat<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.queue_depth.dec();
    }
}

impl Admission {
    /// A controller with the bounds of `settings`.
    pub fn new(settings: &AdmissionSettings, metrics: Arc<Metrics>) -> Self {
        let capacity = settings.max_in_flight_turns.min(Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            queued: AtomicUsize::new(0),
            max_queued: settings.max_queued_turns,
            queue_timeout: Duration::from_secs_f64(settings.queue_timeout_seconds),
            retry_after: Duration::from_secs(settings.retry_after_seconds.max(1)),
            draining: AtomicBool::new(false),
            metrics,
        }
    }

    /// The `Retry-After` to send with a refusal.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// Takes a slot, waiting in the bounded queue if needed.
    pub async fn admit(&self) -> Result<TurnPermit, Rejection> {
        let refused = |rejection: Rejection| {
            self.metrics
                .admission_rejected
                .get_or_create(&RejectionLabels {
                    reason: rejection.reason(),
                })
                .inc();
            Err(rejection)
        };
        if self.draining.load(Ordering::Acquire) {
            return refused(Rejection::Draining);
        }
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => {
                self.metrics.admission_wait.observe(0.0);
                slot
            }
            Err(_) => {
                // Reserve a queue seat first so the queue can never exceed its bound.
                let seat =
                    self.queued
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                            (queued < self.max_queued).then_some(queued + 1)
                        });
                if seat.is_err() {
                    return refused(Rejection::QueueFull);
                }
                self.metrics.queue_depth.inc();
                let _seat = QueueSeat(self);
                let start = Instant::now();
                match tokio::time::timeout(
                    self.queue_timeout,
                    Arc::clone(&self.slots).acquire_owned(),
                )
                .await
                {
                    Ok(Ok(slot)) => {
                        self.metrics
                            .admission_wait
                            .observe(start.elapsed().as_secs_f64());
                        slot
                    }
                    // The semaphore is never closed; treat it as draining if it ever is.
                    Ok(Err(_)) => return refused(Rejection::Draining),
                    Err(_) => return refused(Rejection::QueueTimeout),
                }
            }
        };
        self.metrics.turns_in_flight.inc();
        Ok(TurnPermit {
            _slot: slot,
            metrics: Arc::clone(&self.metrics),
        })
    }

    /// Turns running now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// Turns waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Refuses every new turn from now on.
    pub fn close(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Resolves once every admitted and queued turn has finished.
    pub async fn wait_idle(&self) {
        // The semaphore is fair: this waits behind the queued turns, then for every slot.
        let all = u32::try_from(self.capacity).unwrap_or(u32::MAX);
        if let Ok(slots) = self.slots.acquire_many(all).await {
            drop(slots);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(in_flight: usize, queued: usize, timeout: f64) -> Admission {
        let settings = AdmissionSettings {
            max_in_flight_turns: in_flight,
            max_queued_turns: queued,
            queue_timeout_seconds: timeout,
            ..AdmissionSettings::default()
        };
        Admission::new(&settings, Arc::new(Metrics::new()))
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_length_and_time() {
        let admission = Arc::new(admission(1, 1, 0.05));
        let held = admission.admit().await.unwrap();
        assert_eq!(admission.in_flight(), 1);
        let waiter = tokio::spawn({
            let admission = Arc::clone(&admission);
            async move { admission.admit().await.map(drop) }
        });
        while admission.queued() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(admission.admit().await.unwrap_err(), Rejection::QueueFull);
        assert_eq!(waiter.await.unwrap().unwrap_err(), Rejection::QueueTimeout);
        assert_eq!(admission.queued(), 0);
        drop(held);
        assert_eq!(admission.in_flight(), 0);
        assert!(admission.admit().await.is_ok());
    }

    #[tokio::test]
    async fn a_queued_turn_gets_the_freed_slot() {
        let admission = Arc::new(admission(1, 4, 5.0));
        let held = admission.admit().await.unwrap();
        let waiter = tokio::spawn({
            let admission = Arc::clone(&admission);
            async move { admission.admit().await.map(drop) }
        });
        while admission.queued() == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert!(waiter.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn draining_refuses_new_turns_and_waits_for_running_ones() {
        let admission = Arc::new(admission(2, 4, 5.0));
        let held = admission.admit().await.unwrap();
        admission.close();
        assert_eq!(admission.admit().await.unwrap_err(), Rejection::Draining);
        let idle = tokio::spawn({
            let admission = Arc::clone(&admission);
            async move { admission.wait_idle().await }
        });
        tokio::task::yield_now().await;
        assert!(!idle.is_finished());
        drop(held);
        idle.await.unwrap();
    }
}
