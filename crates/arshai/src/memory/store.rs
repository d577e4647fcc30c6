//! The [`MemoryStore`] trait.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{Conversation, ConversationKey, ConversationPage, MemoryError};
use crate::llm::Message;

/// Conversation memory shared by every agent and, with a shared backend, every instance.
///
/// All methods take `&self`; stores are shared behind an `Arc`. Writes refresh the sliding
/// TTL; every write increments the conversation's version.
#[async_trait]
pub trait MemoryStore: Send + Sync + 'static {
    /// The backend's name (`memory`, `redis`, …) for errors, logs and metrics.
    fn backend(&self) -> &'static str;

    /// Loads a conversation; `None` when it does not exist (or expired, or was evicted).
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

    /// Takes the conversation's turn lease for `owner` if nobody else holds it; `true` on
    /// success. If `owner` already holds it, it is extended and `true` returned, so an acquire
    /// retried after a lost reply still succeeds.
    async fn try_acquire_lease(
        &self,
        key: &ConversationKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, MemoryError>;

    /// Extends the lease if `owner` still holds it; `false` when it was lost.
    async fn renew_lease(
        &self,
        key: &ConversationKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, MemoryError>;

    /// Releases the lease if `owner` holds it (compare-and-delete); `true` when released.
    async fn release_lease(&self, key: &ConversationKey, owner: &str) -> Result<bool, MemoryError>;

    /// How many conversations the store holds now (approximate for some backends).
    async fn conversation_count(&self) -> Result<u64, MemoryError>;

    /// Closes connections; later calls may fail.
    async fn close(&self) -> Result<(), MemoryError> {
        Ok(())
    }
}
