//! The settlement queue: settles are taken off the response path and applied in batches.
//!
//! A finished call hands its reservations to a bounded queue and returns at once; one
//! task takes whatever has queued up (at most [`MAX_BATCH`]) and applies it — on Redis one
//! script per tenant for the whole batch ([`super::redis_gate::RedisGate::settle_many`]),
//! so under load a settle costs a fraction of a round trip instead of two. When the queue
//! is full (Redis far behind) a settle is dropped and counted: its budget reservation is
//! released by `reservation_ttl_seconds` and its rate estimate stays charged, so a drop
//! never lets a caller through that the limits would refuse.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::{Notify, mpsc};

use super::budget::Budgets;
use super::budget_terms::BudgetReservation;
use super::decision::TokenReservation;
use super::rate_limiter::RateLimiter;
use super::redis_gate::RedisGate;
use super::stats::LimitStats;

/// Settles waiting at most; beyond it a settle is dropped (and counted).
pub(crate) const QUEUE_CAPACITY: usize = 65_536;
/// Settles applied in one batch at most.
pub(crate) const MAX_BATCH: usize = 512;
/// One tenant's settles in one script at most (bounds the script's arguments).
const MAX_PER_SCRIPT: usize = 128;

/// One finished call's reservations and its real usage.
#[derive(Debug)]
pub(crate) struct Settlement {
    pub(crate) rate: Option<TokenReservation>,
    pub(crate) budget: Option<BudgetReservation>,
    pub(crate) actual: u64,
}

impl Settlement {
    fn tenant(&self) -> &str {
        self.rate
            .as_ref()
            .map(|rate| rate.tenant.as_str())
            .or(self.budget.as_ref().map(|budget| budget.tenant.as_str()))
            .unwrap_or_default()
    }
}

/// Where settles are applied: the two fronts, and the combined Redis scripts when both
/// live in Redis.
pub(crate) struct Settler {
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) budgets: Arc<Budgets>,
    pub(crate) redis: Option<Arc<RedisGate>>,
}

/// The sending side of the queue, and how far its task has got.
pub(crate) struct SettlementQueue {
    sender: Option<mpsc::Sender<Settlement>>,
    pending: Arc<AtomicUsize>,
    drained: Arc<Notify>,
    stats: Arc<LimitStats>,
}

impl SettlementQueue {
    /// Starts the queue's task on the current runtime (without one, settles are dropped
    /// and counted).
    pub(crate) fn start(settler: Settler, stats: Arc<LimitStats>) -> Self {
        let pending = Arc::new(AtomicUsize::new(0));
        let drained = Arc::new(Notify::new());
        let sender = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
            runtime.spawn(run(
                settler,
                receiver,
                Arc::clone(&pending),
                Arc::clone(&drained),
            ));
            sender
        });
        Self {
            sender,
            pending,
            drained,
            stats,
        }
    }

    /// Queues `settlement` without waiting.
    pub(crate) fn push(&self, settlement: Settlement) {
        let Some(sender) = &self.sender else {
            self.drop_one("no runtime to apply it on");
            return;
        };
        self.pending.fetch_add(1, Ordering::AcqRel);
        if sender.try_send(settlement).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.drop_one("the settlement queue is full");
        }
    }

    fn drop_one(&self, why: &'static str) {
        let dropped = self.stats.settle_dropped();
        // One line per power of two, so a flood does not flood the log too.
        if dropped.is_power_of_two() {
            tracing::warn!(dropped, why, "limit settle dropped");
        }
    }

    /// Waits until every queued settle is applied, at most `within`; whether it was.
    pub(crate) async fn flush(&self, within: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.drained.notified();
                if self.pending.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }
}

async fn run(
    settler: Settler,
    mut receiver: mpsc::Receiver<Settlement>,
    pending: Arc<AtomicUsize>,
    drained: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let applied = batch.len();
        settler.apply(std::mem::take(&mut batch)).await;
        if pending.fetch_sub(applied, Ordering::AcqRel) == applied {
            drained.notify_waiters();
        }
    }
}

impl Settler {
    async fn apply(&self, batch: Vec<Settlement>) {
        match &self.redis {
            Some(redis) => {
                let mut by_tenant: HashMap<String, Vec<Settlement>> = HashMap::new();
                for settlement in batch {
                    by_tenant
                        .entry(settlement.tenant().to_owned())
                        .or_default()
                        .push(settlement);
                }
                let scripts = by_tenant.iter().flat_map(|(tenant, settlements)| {
                    settlements
                        .chunks(MAX_PER_SCRIPT)
                        .map(move |chunk| self.apply_on_redis(redis, tenant, chunk))
                });
                join_all(scripts).await;
            }
            None => {
                join_all(
                    batch
                        .into_iter()
                        .map(|settlement| self.apply_one(settlement)),
                )
                .await;
            }
        }
    }

    async fn apply_on_redis(&self, redis: &RedisGate, tenant: &str, chunk: &[Settlement]) {
        let tokens: u64 = chunk
            .iter()
            .filter(|s| s.budget.as_ref().is_some_and(|b| !b.cells.is_empty()))
            .map(|s| s.actual)
            .sum();
        match redis.settle_many(tenant, chunk).await {
            Ok(()) => self.budgets.count_settled(Ok(tokens)),
            Err(error) => {
                tracing::warn!(%error, settles = chunk.len(), "limit settles failed");
                self.budgets.count_settled(Err(()));
            }
        }
    }

    async fn apply_one(&self, settlement: Settlement) {
        if let Some(rate) = settlement.rate
            && let Err(error) = self.limiter.settle(rate, settlement.actual).await
        {
            tracing::warn!(%error, "rate limit settle failed");
        }
        if let Some(budget) = settlement.budget
            && let Err(error) = self.budgets.settle(budget, settlement.actual).await
        {
            tracing::warn!(%error, "budget settle failed");
        }
    }
}
