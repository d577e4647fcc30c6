//! Wake-ups for turns waiting on a busy conversation.
//!
//! A waiting turn registers here before it tries the lease; whoever sees the lease released
//! (this process's own commit or release, or — on Redis — the release notice another
//! instance published) wakes it. Waiting therefore needs no polling; the bounded fallback
//! poll in [`super::Turn::begin`] only covers a lost notice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use tokio::sync::Notify;

use super::ConversationKey;

/// Past this many registered conversations, dead entries are pruned on the next insert.
const PRUNE_AT: usize = 1024;

/// The conversations some turn in this process is waiting for.
#[derive(Default)]
pub struct LeaseWakers {
    slots: Mutex<HashMap<ConversationKey, Weak<WakeSlot>>>,
}

/// One conversation's waiters.
#[derive(Default)]
pub struct WakeSlot {
    notify: Notify,
    woken_at: Mutex<Option<Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both guarded values are replaced whole; a poisoned lock is still consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LeaseWakers {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The slot of `key`, shared by every waiter of that conversation in this process.
    pub fn slot(&self, key: &ConversationKey) -> Arc<WakeSlot> {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(key).and_then(Weak::upgrade) {
            return slot;
        }
        if slots.len() >= PRUNE_AT {
            slots.retain(|_, slot| slot.strong_count() > 0);
        }
        let slot = Arc::new(WakeSlot::default());
        slots.insert(key.clone(), Arc::downgrade(&slot));
        slot
    }

    /// Wakes every turn of this process waiting for `key` (its lease was released).
    pub fn wake(&self, key: &ConversationKey) {
        let slot = lock(&self.slots).get(key).and_then(Weak::upgrade);
        if let Some(slot) = slot {
            *lock(&slot.woken_at) = Some(Instant::now());
            slot.notify.notify_waiters();
        }
    }

    /// How many conversations have a live waiter (for tests and diagnostics).
    pub fn waiting(&self) -> usize {
        lock(&self.slots)
            .values()
            .filter(|slot| slot.strong_count() > 0)
            .count()
    }
}

impl WakeSlot {
    /// The notification future; enable it before trying the lease so no wake-up is missed.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// When the conversation was last woken.
    pub fn woken_at(&self) -> Option<Instant> {
        *lock(&self.woken_at)
    }
}
