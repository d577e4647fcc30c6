//! The embedded, single-process memory store.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::notification::RemovalCause;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::conversation::now_ms;
use super::{
    BeginTurn, Begun, CommitTurn, Conversation, ConversationId, ConversationKey, ConversationPage,
    ConversationSummary, LeaseWakers, MemoryError, MemoryStore, Receipt,
};
use crate::llm::Message;

/// Receipts kept per conversation for idempotent retries (the newest win).
pub(crate) const RECEIPTS_KEPT: usize = 64;

/// Limits of an [`InMemoryStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InMemoryStoreConfig {
    /// Sliding TTL: a conversation expires this long after its last write.
    pub ttl: Duration,
    /// At most this many conversations are kept per tenant; the least recently used go first.
    pub max_conversations: u64,
    /// Optional cap over every tenant together; the least recently used go first.
    pub max_conversations_total: Option<u64>,
    /// At most this many messages are kept per conversation; the oldest go first.
    pub max_messages: usize,
}

impl Default for InMemoryStoreConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3600),
            max_conversations: 1000,
            max_conversations_total: None,
            max_messages: 1000,
        }
    }
}

/// A conversation and the receipts of its idempotent turns.
#[derive(Default)]
struct Entry {
    conversation: Conversation,
    receipts: VecDeque<(String, Receipt)>,
    /// The last two commits' write ids and versions (a retried commit is applied once).
    commits: VecDeque<(String, u64)>,
}

type Slot = Arc<Mutex<Entry>>;
type TenantCache = Cache<ConversationId, Slot>;

/// Conversation memory inside this process: one bounded LRU cache per tenant (so a tenant
/// can only evict its own conversations), an optional global cap, and a sliding TTL.
///
/// Writes are atomic per conversation (the cache serializes computations on one key), so
/// concurrent appends never lose a message. Nothing is shared with other instances: use the
/// Redis store to run more than one.
///
/// [`InMemoryStore::builder`] (or [`InMemoryStore::default`]) starts from the defaults of
/// the `[memory]` settings:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use arshai::memory::{InMemoryStore, MemoryStore};
///
/// let store: Arc<dyn MemoryStore> = Arc::new(
///     InMemoryStore::builder()
///         .ttl(Duration::from_secs(600))
///         .max_conversations(100)
///         .build(),
/// );
/// assert_eq!(store.backend(), "memory");
/// ```
pub struct InMemoryStore {
    tenants: Arc<Mutex<HashMap<String, TenantCache>>>,
    global: Option<Cache<ConversationKey, ()>>,
    leases: Mutex<HashMap<ConversationKey, HeldLease>>,
    wakers: LeaseWakers,
    config: InMemoryStoreConfig,
}

struct HeldLease {
    owner: String,
    expires_at: Instant,
}

/// Expiry that slides on writes (create and update) and leaves reads alone, as Redis does
/// with `EXPIRE` on each write.
struct SlideOnWrite(Duration);

impl<K, V> Expiry<K, V> for SlideOnWrite {
    fn expire_after_create(&self, _key: &K, _value: &V, _created_at: Instant) -> Option<Duration> {
        Some(self.0)
    }

    fn expire_after_update(
        &self,
        _key: &K,
        _value: &V,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.0)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a conversation half-written (every
    // mutation is a single push/assign), so a poisoned lock is still safe to use.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl InMemoryStore {
    /// A store with the given limits.
    pub fn new(config: InMemoryStoreConfig) -> Self {
        let tenants: Arc<Mutex<HashMap<String, TenantCache>>> = Arc::default();
        let global = config.max_conversations_total.map(|cap| {
            let tenants = Arc::clone(&tenants);
            Cache::builder()
                .max_capacity(cap)
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(SlideOnWrite(config.ttl))
                .eviction_listener(move |key: Arc<ConversationKey>, _, cause| {
                    if cause == RemovalCause::Size {
                        let cache = lock(&tenants).get(&key.tenant).cloned();
                        if let Some(cache) = cache {
                            cache.invalidate(&key.id);
                        }
                    }
                })
                .build()
        });
        Self {
            tenants,
            global,
            leases: Mutex::new(HashMap::new()),
            wakers: LeaseWakers::new(),
            config,
        }
    }

    /// Applies pending evictions and expirations now (they otherwise run lazily).
    pub fn run_pending_tasks(&self) {
        for cache in self.caches() {
            cache.run_pending_tasks();
        }
        if let Some(global) = &self.global {
            global.run_pending_tasks();
        }
    }

    fn caches(&self) -> Vec<TenantCache> {
        lock(&self.tenants).values().cloned().collect()
    }

    /// The tenant's cache, if it has one.
    fn existing(&self, tenant: &str) -> Option<TenantCache> {
        lock(&self.tenants).get(tenant).cloned()
    }

    /// The tenant's cache, created on first write.
    fn cache(&self, tenant: &str) -> TenantCache {
        let mut tenants = lock(&self.tenants);
        if let Some(cache) = tenants.get(tenant) {
            return cache.clone();
        }
        if tenants.len() >= 1024 {
            tenants.retain(|_, cache| cache.entry_count() > 0);
        }
        let global = self.global.clone();
        let owner = tenant.to_owned();
        let cache = Cache::builder()
            .max_capacity(self.config.max_conversations)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(SlideOnWrite(self.config.ttl))
            .eviction_listener(move |id: Arc<ConversationId>, _, cause| {
                if cause != RemovalCause::Replaced
                    && let Some(global) = &global
                {
                    global.invalidate(&ConversationKey::new(owner.clone(), (*id).clone()));
                }
            })
            .build();
        tenants.insert(tenant.to_owned(), cache.clone());
        cache
    }

    /// The conversation's slot, counted as a use.
    fn get(&self, key: &ConversationKey) -> Option<Slot> {
        let slot = self.existing(&key.tenant)?.get(&key.id)?;
        if let Some(global) = &self.global {
            global.get(key);
        }
        Some(slot)
    }

    /// Runs `write` on the conversation atomically, creating it if needed, and refreshes its
    /// TTL. `write` may refuse by returning an error; then nothing changes.
    fn write(
        &self,
        key: &ConversationKey,
        write: impl FnOnce(&mut Entry) -> Result<(), MemoryError>,
    ) -> Result<u64, MemoryError> {
        let mut outcome = Ok(0);
        self.cache(&key.tenant)
            .entry_by_ref(&key.id)
            .and_compute_with(|existing| {
                let slot = existing.map(|entry| entry.into_value()).unwrap_or_default();
                let mut entry = lock(&slot);
                let before = entry.conversation.version;
                match write(&mut entry) {
                    Ok(()) => {
                        let now = now_ms();
                        let conversation = &mut entry.conversation;
                        if before == 0 {
                            conversation.created_at_ms = now;
                        }
                        conversation.updated_at_ms = now;
                        conversation.version = before + 1;
                        outcome = Ok(conversation.version);
                        drop(entry);
                        Op::Put(slot)
                    }
                    Err(error) => {
                        outcome = Err(error);
                        Op::Nop
                    }
                }
            });
        if outcome.is_ok()
            && let Some(global) = &self.global
        {
            global.insert(key.clone(), ());
        }
        outcome
    }

    fn append_to(
        entry: &mut Entry,
        messages: &[Message],
        expected_version: Option<u64>,
        max_messages: usize,
    ) -> Result<(), MemoryError> {
        let conversation = &mut entry.conversation;
        if let Some(expected) = expected_version
            && expected != conversation.version
        {
            return Err(MemoryError::Conflict {
                expected,
                actual: conversation.version,
            });
        }
        conversation.messages.extend_from_slice(messages);
        let excess = conversation.messages.len().saturating_sub(max_messages);
        if excess > 0 {
            conversation.messages.drain(..excess);
        }
        Ok(())
    }

    fn holds(&self, key: &ConversationKey, owner: &str) -> bool {
        lock(&self.leases)
            .get(key)
            .is_some_and(|held| held.owner == owner && held.expires_at > Instant::now())
    }
}

#[async_trait]
impl MemoryStore for InMemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, MemoryError> {
        Ok(self
            .get(key)
            .map(|slot| lock(&slot).conversation.clone())
            .filter(|conversation| conversation.version > 0))
    }

    async fn append(
        &self,
        key: &ConversationKey,
        messages: &[Message],
        expected_version: Option<u64>,
    ) -> Result<u64, MemoryError> {
        let max_messages = self.config.max_messages;
        self.write(key, |entry| {
            Self::append_to(entry, messages, expected_version, max_messages)
        })
    }

    async fn set_working_memory(
        &self,
        key: &ConversationKey,
        text: &str,
    ) -> Result<u64, MemoryError> {
        self.write(key, |entry| {
            entry.conversation.working_memory = Some(text.to_owned());
            Ok(())
        })
    }

    async fn merge_metadata(
        &self,
        key: &ConversationKey,
        metadata: &BTreeMap<String, String>,
    ) -> Result<u64, MemoryError> {
        self.write(key, |entry| {
            entry
                .conversation
                .metadata
                .extend(metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(())
        })
    }

    async fn delete(&self, key: &ConversationKey) -> Result<bool, MemoryError> {
        let removed = self
            .existing(&key.tenant)
            .and_then(|cache| cache.remove(&key.id))
            .is_some();
        if let Some(global) = &self.global {
            global.invalidate(key);
        }
        Ok(removed)
    }

    async fn list(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ConversationPage, MemoryError> {
        let Some(cache) = self.existing(tenant) else {
            return Ok(ConversationPage::default());
        };
        let mut items: Vec<ConversationSummary> = cache
            .iter()
            .filter(|(id, _)| cursor.is_none_or(|c| id.as_str() > c))
            .filter_map(|(id, slot)| {
                let entry = lock(&slot);
                (entry.conversation.version > 0).then(|| ConversationSummary {
                    id: (*id).clone(),
                    version: entry.conversation.version,
                    updated_at_ms: entry.conversation.updated_at_ms,
                })
            })
            .collect();
        items.sort_by(|a, b| a.id.cmp(&b.id));
        let limit = limit.max(1);
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|item| item.id.as_str().to_owned())
        } else {
            None
        };
        Ok(ConversationPage { items, next_cursor })
    }

    async fn health_check(&self) -> Result<Duration, MemoryError> {
        Ok(Duration::ZERO)
    }

    async fn begin_turn(
        &self,
        key: &ConversationKey,
        request: &BeginTurn<'_>,
    ) -> Result<Begun, MemoryError> {
        let slot = self.get(key);
        if let (Some(asked), Some(slot)) = (request.idempotency, &slot)
            && let Some((_, receipt)) = lock(slot)
                .receipts
                .iter()
                .find(|(key, _)| *key == asked.key)
        {
            return Ok(Begun::Recorded(receipt.clone()));
        }
        let now = Instant::now();
        {
            let mut leases = lock(&self.leases);
            if let Some(held) = leases.get(key)
                && held.expires_at > now
                && held.owner != request.owner
            {
                return Ok(Begun::Busy {
                    expires_in: held.expires_at - now,
                });
            }
            // Leases that expired without a release (a crashed turn) are pruned in bulk, so
            // the table stays bounded by the number of live leases.
            if leases.len() >= 1024 {
                leases.retain(|_, held| held.expires_at > now);
            }
            leases.insert(
                key.clone(),
                HeldLease {
                    owner: request.owner.to_owned(),
                    expires_at: now + request.ttl,
                },
            );
        }
        let conversation = slot
            .map(|slot| {
                let held = lock(&slot);
                let stored = &held.conversation;
                let skip = request
                    .history
                    .map_or(0, |window| stored.messages.len().saturating_sub(window));
                // Only the window is copied out, so a turn's cost does not grow with the
                // stored conversation.
                Conversation {
                    messages: stored.messages[skip..].to_vec(),
                    working_memory: stored.working_memory.clone(),
                    metadata: stored.metadata.clone(),
                    version: stored.version,
                    created_at_ms: stored.created_at_ms,
                    updated_at_ms: stored.updated_at_ms,
                }
            })
            .unwrap_or_default();
        Ok(Begun::Acquired(conversation))
    }

    async fn commit_turn(
        &self,
        key: &ConversationKey,
        commit: &CommitTurn<'_>,
    ) -> Result<u64, MemoryError> {
        if let Some(slot) = self.existing(&key.tenant).and_then(|c| c.get(&key.id))
            && let Some((_, version)) = lock(&slot)
                .commits
                .iter()
                .find(|(id, _)| id == commit.write_id)
        {
            return Ok(*version);
        }
        if !self.holds(key, commit.owner) {
            return Err(MemoryError::LeaseLost);
        }
        let max_messages = self.config.max_messages;
        let version = self.write(key, |entry| {
            Self::append_to(
                entry,
                commit.messages,
                commit.expected_version,
                max_messages,
            )?;
            if let Some(text) = commit.working_memory {
                entry.conversation.working_memory = Some(text.to_owned());
            }
            if entry.commits.len() >= 2 {
                entry.commits.pop_front();
            }
            // The version this write gets (the store bumps it after the closure).
            let version = entry.conversation.version + 1;
            entry
                .commits
                .push_back((commit.write_id.to_owned(), version));
            if let Some((asked, body)) = commit.receipt {
                entry.receipts.retain(|(key, _)| *key != asked.key);
                if entry.receipts.len() >= RECEIPTS_KEPT {
                    entry.receipts.pop_front();
                }
                entry.receipts.push_back((
                    asked.key.clone(),
                    Receipt {
                        fingerprint: asked.fingerprint.clone(),
                        body: body.to_owned(),
                    },
                ));
            }
            Ok(())
        })?;
        self.release_lease(key, commit.owner).await?;
        Ok(version)
    }

    async fn renew_lease(
        &self,
        key: &ConversationKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, MemoryError> {
        let now = Instant::now();
        let mut leases = lock(&self.leases);
        match leases.get_mut(key) {
            Some(held) if held.owner == owner && held.expires_at > now => {
                held.expires_at = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, key: &ConversationKey, owner: &str) -> Result<bool, MemoryError> {
        let released = {
            let mut leases = lock(&self.leases);
            match leases.get(key) {
                Some(held) if held.owner == owner => {
                    leases.remove(key);
                    true
                }
                _ => false,
            }
        };
        if released {
            self.wakers.wake(key);
        }
        Ok(released)
    }

    fn lease_wakers(&self) -> &LeaseWakers {
        &self.wakers
    }

    async fn conversation_count(&self) -> Result<u64, MemoryError> {
        // The caches count lazily; apply pending inserts, evictions and expirations first.
        let mut count = 0;
        for cache in self.caches() {
            cache.run_pending_tasks();
            count += cache.entry_count();
        }
        Ok(count)
    }
}
