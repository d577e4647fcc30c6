//! The embedded, single-process memory store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::conversation::now_ms;
use super::{
    Conversation, ConversationKey, ConversationPage, ConversationSummary, MemoryError, MemoryStore,
};
use crate::llm::Message;

/// Limits of an [`InMemoryStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InMemoryStoreConfig {
    /// Sliding TTL: a conversation expires this long after its last write.
    pub ttl: Duration,
    /// At most this many conversations are kept; the least recently used go first.
    pub max_conversations: u64,
    /// At most this many messages are kept per conversation; the oldest go first.
    pub max_messages: usize,
}

impl Default for InMemoryStoreConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3600),
            max_conversations: 1000,
            max_messages: 1000,
        }
    }
}

type Slot = Arc<Mutex<Conversation>>;

/// Conversation memory inside this process: a bounded LRU cache with a sliding TTL.
///
/// Appends are atomic per conversation (the cache serializes computations on one key), so
/// concurrent appends never lose a message. Nothing is shared with other instances: use the
/// Redis store to run more than one.
pub struct InMemoryStore {
    conversations: Cache<ConversationKey, Slot>,
    leases: Mutex<HashMap<ConversationKey, HeldLease>>,
    config: InMemoryStoreConfig,
}

struct HeldLease {
    owner: String,
    expires_at: Instant,
}

/// Expiry that slides on writes (create and update) and leaves reads alone, as Redis does
/// with `EXPIRE` on each write.
struct SlideOnWrite(Duration);

impl Expiry<ConversationKey, Slot> for SlideOnWrite {
    fn expire_after_create(
        &self,
        _key: &ConversationKey,
        _value: &Slot,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(self.0)
    }

    fn expire_after_update(
        &self,
        _key: &ConversationKey,
        _value: &Slot,
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
        let conversations = Cache::builder()
            .max_capacity(config.max_conversations)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(SlideOnWrite(config.ttl))
            .build();
        Self {
            conversations,
            leases: Mutex::new(HashMap::new()),
            config,
        }
    }

    /// Applies pending evictions and expirations now (they otherwise run lazily).
    pub fn run_pending_tasks(&self) {
        self.conversations.run_pending_tasks();
    }

    /// Runs `write` on the conversation atomically, creating it if needed, and refreshes its
    /// TTL. `write` may refuse by returning an error; then nothing changes.
    fn write(
        &self,
        key: &ConversationKey,
        write: impl FnOnce(&mut Conversation) -> Result<(), MemoryError>,
    ) -> Result<u64, MemoryError> {
        let mut outcome = Ok(0);
        self.conversations
            .entry_by_ref(key)
            .and_compute_with(|existing| {
                let slot = existing.map(|entry| entry.into_value()).unwrap_or_default();
                let mut conversation = lock(&slot);
                let before = conversation.version;
                match write(&mut conversation) {
                    Ok(()) => {
                        let now = now_ms();
                        if before == 0 {
                            conversation.created_at_ms = now;
                        }
                        conversation.updated_at_ms = now;
                        conversation.version = before + 1;
                        outcome = Ok(conversation.version);
                        drop(conversation);
                        Op::Put(slot)
                    }
                    Err(error) => {
                        outcome = Err(error);
                        Op::Nop
                    }
                }
            });
        outcome
    }
}

#[async_trait]
impl MemoryStore for InMemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, MemoryError> {
        Ok(self
            .conversations
            .get(key)
            .map(|slot| lock(&slot).clone())
            .filter(|conversation| conversation.version > 0))
    }

    async fn append(
        &self,
        key: &ConversationKey,
        messages: &[Message],
        expected_version: Option<u64>,
    ) -> Result<u64, MemoryError> {
        let max_messages = self.config.max_messages;
        self.write(key, |conversation| {
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
        })
    }

    async fn set_working_memory(
        &self,
        key: &ConversationKey,
        text: &str,
    ) -> Result<u64, MemoryError> {
        self.write(key, |conversation| {
            conversation.working_memory = Some(text.to_owned());
            Ok(())
        })
    }

    async fn merge_metadata(
        &self,
        key: &ConversationKey,
        metadata: &BTreeMap<String, String>,
    ) -> Result<u64, MemoryError> {
        self.write(key, |conversation| {
            conversation
                .metadata
                .extend(metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(())
        })
    }

    async fn delete(&self, key: &ConversationKey) -> Result<bool, MemoryError> {
        Ok(self.conversations.remove(key).is_some())
    }

    async fn list(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ConversationPage, MemoryError> {
        let mut items: Vec<ConversationSummary> = self
            .conversations
            .iter()
            .filter(|(key, _)| key.tenant == tenant && cursor.is_none_or(|c| key.id.as_str() > c))
            .filter_map(|(key, slot)| {
                let conversation = lock(&slot);
                (conversation.version > 0).then(|| ConversationSummary {
                    id: key.id.clone(),
                    version: conversation.version,
                    updated_at_ms: conversation.updated_at_ms,
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

    async fn try_acquire_lease(
        &self,
        key: &ConversationKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, MemoryError> {
        let now = Instant::now();
        let mut leases = lock(&self.leases);
        // The holder taking it again (a retry after a lost reply) extends it, as in Redis.
        if let Some(held) = leases.get(key)
            && held.expires_at > now
            && held.owner != owner
        {
            return Ok(false);
        }
        // Leases that expired without a release (a crashed turn) are pruned in bulk, so the
        // table stays bounded by the number of live leases.
        if leases.len() >= 1024 {
            leases.retain(|_, held| held.expires_at > now);
        }
        leases.insert(
            key.clone(),
            HeldLease {
                owner: owner.to_owned(),
                expires_at: now + ttl,
            },
        );
        Ok(true)
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
        let mut leases = lock(&self.leases);
        match leases.get(key) {
            Some(held) if held.owner == owner => {
                leases.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn conversation_count(&self) -> Result<u64, MemoryError> {
        // The cache counts lazily; apply pending inserts, evictions and expirations first.
        self.conversations.run_pending_tasks();
        Ok(self.conversations.entry_count())
    }
}
