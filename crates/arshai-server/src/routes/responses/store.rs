//! Stored responses: each is kept in its conversation's metadata, in the shared memory
//! store, so every instance can retrieve and continue it.
//!
//! A stored response's id names its conversation: `resp_` + 32 hex digits of its own +
//! the conversation id. Its object is the metadata field `openai.response.<id>`, and the
//! field [`LATEST_FIELD`] names the conversation's latest response; both are written in
//! one metadata merge when the turn has been recorded, before the answer is sent. They
//! live and expire with the conversation (its sliding TTL), and another tenant's
//! response is simply absent.

use std::collections::BTreeMap;
use std::sync::Arc;

use arshai::agent::{Agent, AgentError, AgentEvent, AgentEventStream, AgentInput};
use arshai::llm::Message;
use arshai::memory::{ConversationId, ConversationKey, MemoryStore};
use futures::StreamExt;
use serde_json::Value;

use super::response::ResponseDraft;
use crate::ApiError;
use crate::error::OpenAiError;

/// The metadata field naming the conversation's latest stored response.
pub(super) const LATEST_FIELD: &str = "openai.response.latest";

/// The metadata field holding response `id`'s object.
fn response_field(id: &str) -> String {
    format!("openai.response.{id}")
}

/// The 32 hex digits that make a response's id unique.
const UNIQUE_CHARS: usize = 32;

/// A new response id: in `conversation` when the response is stored.
pub(super) fn new_id(conversation: Option<&ConversationId>) -> String {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    match conversation {
        Some(conversation) => format!("resp_{unique}{}", conversation.as_str()),
        None => format!("resp_{unique}"),
    }
}

/// The conversation a stored response's id names; `None` for an id that names none.
fn conversation_of(id: &str) -> Option<ConversationId> {
    let rest = id.strip_prefix("resp_")?;
    let conversation = rest.get(UNIQUE_CHARS..).filter(|rest| !rest.is_empty())?;
    ConversationId::parse(conversation).ok()
}

/// A stored response, as loaded to be retrieved or continued.
pub(super) struct Stored {
    /// Its conversation.
    pub(super) conversation: ConversationId,
    /// The conversation's messages (with this response's answer last, when it is the
    /// latest).
    pub(super) messages: Vec<Message>,
    /// The response object.
    pub(super) object: Value,
    /// Whether it is the conversation's latest response.
    pub(super) latest: bool,
}

/// Loads stored response `id` of `tenant`; [`ApiError::ResponseNotFound`] (blamed on
/// `param`) when there is none.
pub(super) async fn load(
    memory: &dyn MemoryStore,
    tenant: &str,
    id: &str,
    param: &'static str,
) -> Result<Stored, OpenAiError> {
    let missing = || OpenAiError::with_param(ApiError::ResponseNotFound(id.to_owned()), param);
    let conversation = conversation_of(id).ok_or_else(missing)?;
    let key = ConversationKey::new(tenant, conversation.clone());
    let loaded = memory
        .load(&key)
        .await
        .map_err(|error| OpenAiError::from(ApiError::Agent(error.into())))?
        .ok_or_else(missing)?;
    let object = loaded
        .metadata
        .get(&response_field(id))
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(missing)?;
    Ok(Stored {
        conversation,
        latest: loaded.metadata.get(LATEST_FIELD).map(String::as_str) == Some(id),
        messages: loaded.messages,
        object,
    })
}

/// An agent that, once `inner`'s turn is recorded in its conversation, stores the response
/// object and makes it the conversation's latest, before the turn's last event goes out.
pub(super) struct Recorder {
    inner: Arc<dyn Agent>,
    memory: Arc<dyn MemoryStore>,
    key: ConversationKey,
    draft: ResponseDraft,
}

impl Recorder {
    /// `inner`, storing `draft`'s response in conversation `key`.
    pub(super) fn new(
        inner: Arc<dyn Agent>,
        memory: Arc<dyn MemoryStore>,
        key: ConversationKey,
        draft: ResponseDraft,
    ) -> Self {
        Self {
            inner,
            memory,
            key,
            draft,
        }
    }
}

impl Agent for Recorder {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn agent_type(&self) -> &'static str {
        self.inner.agent_type()
    }

    fn turn(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
        Arc::clone(&self.inner)
            .turn(input)
            .then(move |event| {
                let this = Arc::clone(&self);
                async move {
                    let Ok(AgentEvent::Done(output)) = event else {
                        return event;
                    };
                    let object = this.draft.finished(&output).to_string();
                    let fields = BTreeMap::from([
                        (response_field(&this.draft.id), object),
                        (LATEST_FIELD.to_owned(), this.draft.id.clone()),
                    ]);
                    match this.memory.merge_metadata(&this.key, &fields).await {
                        Ok(_) => Ok(AgentEvent::Done(output)),
                        Err(error) => Err(AgentError::Memory(error)),
                    }
                }
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_id_names_its_conversation_and_an_unstored_one_none() {
        let conversation = ConversationId::generate();
        let stored = new_id(Some(&conversation));
        assert_eq!(conversation_of(&stored), Some(conversation));
        assert_eq!(conversation_of(&new_id(None)), None);
        assert_eq!(conversation_of("resp_"), None);
        assert_eq!(conversation_of("chatcmpl-1"), None);
    }
}
