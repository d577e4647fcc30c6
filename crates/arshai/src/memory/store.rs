//! The [`MemoryStore`] trait.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    BeginTurn, Begun, CommitTurn, Conversation, ConversationKey, ConversationPage, LeaseWakers,
    MemoryError, TurnWait,
};
use crate::llm::Message;

/// Conversation memory shared by every agent and, with a shared backend, every instance.
///
/// All methods take `&self`; stores are shared behind an `Arc`. Writes refresh the sliding
/// TTL; every write increments the conversation's version. Agent turns go through
/// [`super::Turn`], which uses [`MemoryStore::begin_turn`] and [`MemoryStore::commit_turn`].
#[async_trait]
pub trait MemoryStore: Send + Sync + 'static {
    /// The backend's name (`memory`, `redis`, …) for errors, logs and metrics.
    fn backend(&self) -> &'static str;

    /// Loads a conversation; `None` when it does not exist (or expired, or was evicted).
    /// A load counts as a use for eviction.
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, MemoryError>;

    /// Appends `messages` atomically and returns the new version.
    ///
    /// With `expected_version`, the append happens only if the conversation is at that
    /// version (`0` for a conversation that does not exist yet); otherwise it fails with
    /// [`MemoryError::Conflict`] and writes nothing. Messages past the store's bound are
    /// trimmed, oldest first.
    async fn append(
        &self,
        key: &ConversationKey,
        messages: &[Message],
        expected_version: Option<u64>,
    ) -> Result<u64, MemoryError>;

    /// Replaces the conversation's working memory and returns the new version.
    async fn set_working_memory(
        &self,
        key: &ConversationKey,
        text: &str,
    ) -> Result<u64, MemoryError>;

    /// Merges `metadata` into the conversation's metadata and returns the new version.
    async fn merge_metadata(
        &self,
        key: &ConversationKey,
        metadata: &BTreeMap<String, String>,
    ) -> Result<u64, MemoryError>;

    /// Deletes a conversation; `true` when it existed.
    async fn delete(&self, key: &ConversationKey) -> Result<bool, MemoryError>;

    /// Lists a tenant's conversations in id order, `limit` at a time, after `cursor`.
    async fn list(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ConversationPage, MemoryError>;

    /// Makes a round trip to the backend and returns how long it took.
    async fn health_check(&self) -> Result<Duration, MemoryError>;

    /// In one atomic step: returns the receipt if the request's idempotency key was already
    /// committed; else takes the conversation's lease for `request.owner` if it is free (or
    /// already the owner's: a retried begin succeeds) and returns the conversation; else
    /// registers a waiter and answers [`Begun::Busy`].
    async fn begin_turn(
        &self,
        key: &ConversationKey,
        request: &BeginTurn<'_>,
    ) -> Result<Begun, MemoryError>;

    /// In one atomic step: unless `commit.write_id` was already applied (then its version is
    /// returned), checks that `commit.owner` holds the lease ([`MemoryError::LeaseLost`]
    /// otherwise) and the expected version ([`MemoryError::Conflict`]), appends, trims,
    /// refreshes the TTL and the indexes, keeps the receipt, releases the lease and wakes the
    /// conversation's waiters. Returns the new version.
    async fn commit_turn(
        &self,
        key: &ConversationKey,
        commit: &CommitTurn<'_>,
    ) -> Result<u64, MemoryError>;

    /// Extends the lease if `owner` still holds it; `false` when it was lost.
    async fn renew_lease(
        &self,
        key: &ConversationKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, MemoryError>;

    /// Releases the lease if `owner` holds it (compare-and-delete) and wakes the
    /// conversation's waiters; `true` when released.
    async fn release_lease(&self, key: &ConversationKey, owner: &str) -> Result<bool, MemoryError>;

    /// The registry this store wakes when a lease it sees released had waiters.
    fn lease_wakers(&self) -> &LeaseWakers;

    /// Told how each turn waited for its lease (decorators record it as metrics).
    fn observe_turn_wait(&self, _wait: &TurnWait) {}

    /// How many conversations the store holds now, over every tenant (approximate for some
    /// backends).
    async fn conversation_count(&self) -> Result<u64, MemoryError>;

    /// Closes connections; later calls may fail.
    async fn close(&self) -> Result<(), MemoryError> {
        Ok(())
    }
}
