//! The turn protocol: one agent turn at a time per conversation, across every instance.
//!
//! A turn is two store round trips. [`Turn::begin`] takes the conversation's lease and loads
//! it in one step ([`MemoryStore::begin_turn`]); [`Turn::commit`] appends the turn, checks
//! that this turn still holds the lease (fencing), refreshes the TTL and indexes and
//! releases the lease in one atomic step ([`MemoryStore::commit_turn`]). A turn that fails
//! or is dropped at any await point releases its lease with one command, retried in the
//! background until it succeeds or the lease has expired anyway; nothing half-written is
//! ever visible, because the only write is the atomic commit.
//!
//! Leases are short (5 s by default) and renewed at a third of their lifetime while the
//! turn runs, so a crashed instance blocks its conversations for at most one lease
//! lifetime. A turn waiting for a busy conversation is woken when the lease is released
//! (see [`super::LeaseWakers`]) and polls only as a bounded fallback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Conversation, ConversationKey, MemoryError, MemoryStore};
use crate::llm::Message;

/// What a turn does when another turn holds the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeasePolicy {
    /// Wait for the lease, up to [`LeaseSettings::max_wait`].
    Wait,
    /// Fail at once with [`MemoryError::Busy`] (the server answers 409).
    Reject,
}

/// How turn leases are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How long a lease lives without renewal; it is renewed at a third of this while the
    /// turn runs, so a crashed instance blocks a conversation for at most this long.
    pub ttl: Duration,
    /// What to do when the conversation is busy.
    pub policy: LeasePolicy,
    /// With [`LeasePolicy::Wait`], the longest wait before [`MemoryError::Busy`].
    pub max_wait: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(5),
            policy: LeasePolicy::Wait,
            max_wait: Duration::from_secs(30),
        }
    }
}

/// The longest a waiting turn sleeps between two tries when no wake-up arrives (a lost
/// release notice, or a holder that crashed and whose lease expires on its own).
pub const FALLBACK_POLL: Duration = Duration::from_millis(500);

/// An idempotency key with the fingerprint of the request it was first used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The caller's key (`Idempotency-Key` header).
    pub key: String,
    /// A digest of the request, so a key reused for another request is refused.
    pub fingerprint: String,
}

/// What a committed turn left behind for retries with the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The fingerprint of the request that recorded it.
    pub fingerprint: String,
    /// The recorded answer, as the agent layer serialized it.
    pub body: String,
}

/// What a turn asks of the store when it begins.
#[derive(Debug, Clone, Copy)]
pub struct BeginTurn<'a> {
    /// The turn's owner token (random, one per turn).
    pub owner: &'a str,
    /// The lease's lifetime.
    pub ttl: Duration,
    /// How long a busy answer registers this turn as a waiter (so the holder's release
    /// sends a wake-up).
    pub wait: Duration,
    /// The turn's idempotency key, if the caller sent one.
    pub idempotency: Option<&'a IdempotencyKey>,
    /// Load only this many of the most recent messages (`None`: all that are kept), so a
    /// turn's cost does not grow with the stored conversation.
    pub history: Option<usize>,
}

/// The store's answer to [`BeginTurn`].
#[derive(Debug, Clone, PartialEq)]
pub enum Begun {
    /// The lease is ours; the conversation as stored (version 0 when new).
    Acquired(Conversation),
    /// Another turn holds the lease; it expires within `expires_in` unless renewed.
    Busy {
        /// The holder's remaining lease.
        expires_in: Duration,
    },
    /// A turn with this idempotency key was already committed: its receipt.
    Recorded(Receipt),
}

/// What a turn commits.
#[derive(Debug, Clone, Copy)]
pub struct CommitTurn<'a> {
    /// The owner token the lease was taken with; the commit is refused
    /// ([`MemoryError::LeaseLost`]) unless it still holds the lease.
    pub owner: &'a str,
    /// The version the turn loaded; `None` appends after any other write.
    pub expected_version: Option<u64>,
    /// A random id: a commit retried after a lost reply is applied once.
    pub write_id: &'a str,
    /// The turn's messages, appended in order.
    pub messages: &'a [Message],
    /// The receipt to keep under the turn's idempotency key.
    pub receipt: Option<(&'a IdempotencyKey, &'a str)>,
    /// The conversation's new working memory, written in the same atomic step (so, fenced by
    /// the lease, it can never overwrite a newer one); `None` leaves it as it is.
    pub working_memory: Option<&'a str>,
}

/// How a turn waited for its conversation, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TurnWait {
    /// From the first try to the lease.
    pub waited: Duration,
    /// From the wake-up (the previous holder's release) to the lease, when woken.
    pub handoff: Option<Duration>,
}

/// How [`Turn::begin`] ended.
// Returned once per turn and matched at once: boxing the open turn would only add an
// allocation to every turn.
#[allow(clippy::large_enum_variant)]
pub enum TurnStart {
    /// The lease is held: run the turn, then [`Turn::commit`] it.
    Open(Turn),
    /// The turn was already recorded under its idempotency key.
    Recorded(Receipt),
}

/// A lease taken for `owner` that is released on drop unless it was settled.
struct LeaseGuard {
    store: Arc<dyn MemoryStore>,
    key: ConversationKey,
    owner: String,
    ttl: Duration,
    armed: bool,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = Arc::clone(&self.store);
            let key = self.key.clone();
            let owner = std::mem::take(&mut self.owner);
            let ttl = self.ttl;
            runtime.spawn(async move { release_until_done(store, key, owner, ttl).await });
        }
    }
}

/// Releases a lease, retrying with backoff until the store confirms it or the lease would
/// have expired anyway (so a lease whose release failed because Redis was down is freed as
/// soon as Redis is back).
async fn release_until_done(
    store: Arc<dyn MemoryStore>,
    key: ConversationKey,
    owner: String,
    ttl: Duration,
) {
    let give_up = Instant::now() + ttl;
    let mut pause = Duration::from_millis(20);
    loop {
        match store.release_lease(&key, &owner).await {
            Ok(_) => return,
            Err(error) if Instant::now() + pause >= give_up => {
                tracing::warn!(%error, "could not release a turn lease; it expires on its own");
                return;
            }
            Err(error) => {
                tracing::debug!(%error, "releasing a turn lease failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
    }
}

/// An open turn: its lease (renewed in the background) and the conversation it loaded.
///
/// Commit it with [`Turn::commit`] or give it up with [`Turn::abort`]; dropping it (a
/// cancelled turn) releases the lease in the background.
pub struct Turn {
    guard: LeaseGuard,
    conversation: Conversation,
    loaded_version: u64,
    renewal: JoinHandle<()>,
    lost: Arc<AtomicBool>,
    wait: TurnWait,
}

impl Turn {
    /// Takes the lease on `key` and loads the conversation (one store round trip when it is
    /// free), waiting for a busy conversation under `settings`' policy.
    ///
    /// With an idempotency key whose turn was already committed, returns its receipt
    /// instead; the same key on a different request is [`MemoryError::IdempotencyMismatch`].
    pub async fn begin(
        store: Arc<dyn MemoryStore>,
        key: ConversationKey,
        settings: LeaseSettings,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<TurnStart, MemoryError> {
        Self::begin_with_history(store, key, settings, idempotency, None).await
    }

    /// Like [`Turn::begin`], loading only the `history` most recent messages (`None`: all).
    pub async fn begin_with_history(
        store: Arc<dyn MemoryStore>,
        key: ConversationKey,
        settings: LeaseSettings,
        idempotency: Option<&IdempotencyKey>,
        history: Option<usize>,
    ) -> Result<TurnStart, MemoryError> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let started = Instant::now();
        let deadline = started + settings.max_wait;
        // Armed from the first try: if this future is dropped while a try is in flight
        // (the store may have applied it without the reply being read), the lease is
        // released by owner token.
        let mut guard = LeaseGuard {
            store: Arc::clone(&store),
            key: key.clone(),
            owner: owner.clone(),
            ttl: settings.ttl,
            armed: true,
        };
        let slot = store.lease_wakers().slot(&key);
        let request = BeginTurn {
            owner: &owner,
            ttl: settings.ttl,
            wait: settings.max_wait,
            idempotency,
            history,
        };
        let mut woken = false;
        loop {
            let notified = slot.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match store.begin_turn(&key, &request).await? {
                Begun::Acquired(conversation) => {
                    let acquired = Instant::now();
                    let wait = TurnWait {
                        waited: acquired - started,
                        handoff: woken
                            .then(|| slot.woken_at())
                            .flatten()
                            .map(|at| acquired.into_std().saturating_duration_since(at)),
                    };
                    store.observe_turn_wait(&wait);
                    let lost = Arc::new(AtomicBool::new(false));
                    let renewal = tokio::spawn(renew(
                        Arc::clone(&store),
                        key,
                        owner.clone(),
                        settings.ttl,
                        Arc::clone(&lost),
                    ));
                    return Ok(TurnStart::Open(Turn {
                        guard,
                        loaded_version: conversation.version,
                        conversation,
                        renewal,
                        lost,
                        wait,
                    }));
                }
                Begun::Recorded(receipt) => {
                    guard.armed = false;
                    return match idempotency {
                        Some(asked) if asked.fingerprint != receipt.fingerprint => {
                            Err(MemoryError::IdempotencyMismatch)
                        }
                        _ => Ok(TurnStart::Recorded(receipt)),
                    };
                }
                Begun::Busy { expires_in } => {
                    let now = Instant::now();
                    if settings.policy == LeasePolicy::Reject || now >= deadline {
                        guard.armed = false;
                        return Err(MemoryError::Busy);
                    }
                    // Woken by the release; else retry when the holder's lease would expire
                    // (it crashed), and never sleep past the fallback poll or the deadline.
                    let nap = (expires_in + Duration::from_millis(1))
                        .min(FALLBACK_POLL)
                        .min(deadline - now);
                    woken = tokio::time::timeout(nap, notified).await.is_ok();
                }
            }
        }
    }

    /// The conversation as it was when the lease was taken.
    pub fn conversation(&self) -> &Conversation {
        &self.conversation
    }

    /// Takes the loaded conversation out (the turn still holds its lease).
    pub fn take_conversation(&mut self) -> Conversation {
        std::mem::take(&mut self.conversation)
    }

    /// The conversation's key.
    pub fn key(&self) -> &ConversationKey {
        &self.guard.key
    }

    /// How this turn waited for its lease.
    pub fn wait(&self) -> TurnWait {
        self.wait
    }

    /// Whether a renewal found the lease taken by someone else (the commit will be refused).
    pub fn lease_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Appends `messages` (the turn) and releases the lease, atomically; refused with
    /// [`MemoryError::LeaseLost`] if the lease expired and may belong to another turn.
    ///
    /// A version conflict under a held lease (a write that took no lease, such as a
    /// metadata update) is resolved by appending after it.
    pub async fn commit(
        self,
        messages: &[Message],
        receipt: Option<(&IdempotencyKey, &str)>,
    ) -> Result<u64, MemoryError> {
        self.commit_with_memory(messages, receipt, None).await
    }

    /// Like [`Turn::commit`], replacing the conversation's working memory in the same
    /// atomic step when `working_memory` is given.
    pub async fn commit_with_memory(
        mut self,
        messages: &[Message],
        receipt: Option<(&IdempotencyKey, &str)>,
        working_memory: Option<&str>,
    ) -> Result<u64, MemoryError> {
        self.renewal.abort();
        let write_id = uuid::Uuid::new_v4().simple().to_string();
        let mut commit = CommitTurn {
            owner: &self.guard.owner,
            expected_version: Some(self.loaded_version),
            write_id: &write_id,
            messages,
            receipt,
            working_memory,
        };
        let store = Arc::clone(&self.guard.store);
        let result = match store.commit_turn(&self.guard.key, &commit).await {
            Err(MemoryError::Conflict { expected, actual }) => {
                tracing::warn!(conversation = %self.guard.key.id, expected, actual,
                    "conversation written outside the turn; appending after that write");
                commit.expected_version = None;
                store.commit_turn(&self.guard.key, &commit).await
            }
            other => other,
        };
        match &result {
            // Applied, or refused because the lease is someone else's: nothing to release.
            Ok(_) | Err(MemoryError::LeaseLost) => self.guard.armed = false,
            // Ambiguous or not applied: the guard releases by owner token (a no-op if the
            // commit was applied after all).
            Err(_) => {}
        }
        result
    }

    /// Gives the turn up: releases the lease now (one command), writing nothing.
    pub async fn abort(mut self) {
        self.renewal.abort();
        if self
            .guard
            .store
            .release_lease(&self.guard.key, &self.guard.owner)
            .await
            .is_ok()
        {
            self.guard.armed = false;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

async fn renew(
    store: Arc<dyn MemoryStore>,
    key: ConversationKey,
    owner: String,
    ttl: Duration,
    lost: Arc<AtomicBool>,
) {
    let mut interval = tokio::time::interval(ttl / 3);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        match store.renew_lease(&key, &owner, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::Relaxed);
                tracing::warn!(conversation = %key.id, "turn lease lost before the turn ended");
                return;
            }
            Err(error) => tracing::warn!(%error, "could not renew a turn lease; retrying"),
        }
    }
}
