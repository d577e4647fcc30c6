//! Conversation memory.
//!
//! [`MemoryStore`] is the contract every backend keeps: versioned, atomic appends (two
//! instances appending to one conversation never lose a message), a sliding TTL refreshed on
//! every write, `max_conversations` with least-recently-used eviction, a bound on the
//! messages kept per conversation, and turn leases that serialize agent turns across
//! instances (see [`Turn`]: two round trips per turn, fenced, cancellation-safe).

mod conversation;
mod error;
mod factory;
mod in_memory;
mod in_memory_builder;
pub mod redis;
mod settings;
mod store;
mod turn;
mod wake;

pub use conversation::{
    Conversation, ConversationId, ConversationKey, ConversationPage, ConversationSummary,
    InvalidConversationId, MAX_CONVERSATION_ID_CHARS,
};
pub use error::MemoryError;
pub use factory::open_store;
pub use in_memory::{InMemoryStore, InMemoryStoreConfig};
pub use in_memory_builder::InMemoryStoreBuilder;
pub use redis::{RedisCommands, RedisStore, RedisStoreBuilder, RedisStoreConfig, RedisTopology};
pub use settings::{MemoryProvider, MemorySettings};
pub use store::MemoryStore;
pub use turn::{
    BeginTurn, Begun, CommitTurn, FALLBACK_POLL, IdempotencyKey, LeasePolicy, LeaseSettings,
    Receipt, Turn, TurnStart, TurnWait,
};
pub use wake::{LeaseWakers, WakeSlot};
