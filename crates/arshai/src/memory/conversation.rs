//! What a conversation is, and how it is addressed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::llm::Message;

/// The longest conversation id accepted, in characters.
pub const MAX_CONVERSATION_ID_CHARS: usize = 256;

/// A validated conversation id: 1 to 256 characters, none of them a control character.
///
/// Any other character is allowed (unicode, `:`, `{`, `}`, spaces); backends must store
/// such ids safely.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ConversationId(String);

/// Why a conversation id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConversationId {
    /// The id is empty.
    #[error("the conversation id is empty")]
    Empty,
    /// The id is longer than [`MAX_CONVERSATION_ID_CHARS`].
    #[error("the conversation id has {0} characters; at most 256 are allowed")]
    TooLong(usize),
    /// The id contains a control character.
    #[error("the conversation id contains a control character")]
    ControlCharacter,
}

impl ConversationId {
    /// Validates an id.
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidConversationId> {
        let value = value.into();
        if value.is_empty() {
            return Err(InvalidConversationId::Empty);
        }
        let chars = value.chars().count();
        if chars > MAX_CONVERSATION_ID_CHARS {
            return Err(InvalidConversationId::TooLong(chars));
        }
        if value.chars().any(char::is_control) {
            return Err(InvalidConversationId::ControlCharacter);
        }
        Ok(Self(value))
    }

    /// A new random id (a UUID v4 in its simple form).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ConversationId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a conversation lives: its tenant and its id. Tenants never see each other's keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationKey {
    /// The tenant that owns the conversation (`default` when auth is off).
    pub tenant: String,
    /// The conversation's id within the tenant.
    pub id: ConversationId,
}

impl ConversationKey {
    /// The tenant used when authentication is off.
    pub const DEFAULT_TENANT: &'static str = "default";

    /// A key in `tenant`.
    pub fn new(tenant: impl Into<String>, id: ConversationId) -> Self {
        Self {
            tenant: tenant.into(),
            id,
        }
    }
}

/// A stored conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The kept messages, oldest first (the oldest are trimmed past the configured bound).
    pub messages: Vec<Message>,
    /// Free text an agent keeps about the conversation (a running summary, say).
    pub working_memory: Option<String>,
    /// Application metadata.
    pub metadata: BTreeMap<String, String>,
    /// Incremented by every write; `0` means the conversation does not exist yet.
    pub version: u64,
    /// When the conversation was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When it was last written, in milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
}

/// A conversation as it appears in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    /// Its id.
    pub id: ConversationId,
    /// Its version (number of writes).
    pub version: u64,
    /// When it was last written, in milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
}

/// One page of a tenant's conversations, ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationPage {
    /// The conversations on this page.
    pub items: Vec<ConversationSummary>,
    /// Pass this to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert!(ConversationId::parse("abc").is_ok());
        assert!(ConversationId::parse("ünïcødé:{tag}/x y").is_ok());
        assert!(ConversationId::parse("é".repeat(256)).is_ok());
        assert_eq!(
            ConversationId::parse("é".repeat(257)),
            Err(InvalidConversationId::TooLong(257))
        );
        assert_eq!(ConversationId::parse(""), Err(InvalidConversationId::Empty));
        assert_eq!(
            ConversationId::parse("a\nb"),
            Err(InvalidConversationId::ControlCharacter)
        );
    }
}
