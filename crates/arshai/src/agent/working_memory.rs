//! Working memory: a running summary of the conversation that the model revises after
//! turns, so the prompt can carry the summary plus the last few messages instead of the
//! whole history.
//!
//! The revision is one non-streaming model call over the previous memory and the new
//! exchange. It runs inside the turn, under its lease, and is committed in the same atomic
//! step as the turn's messages ([`crate::memory::Turn::commit_with_memory`]), so it is
//! fenced like the turn: it can never overwrite a newer revision. A revision that fails
//! (the model errs) is logged and skipped: the turn is still recorded, and the memory stays
//! as it was until the next revision.

use crate::llm::{ChatRequest, LlmClient, LlmError, Message, Role, Sampling, Usage};

/// The instructions of the revision call when none are configured.
pub const DEFAULT_INSTRUCTIONS: &str = "You maintain the working memory of a conversation: \
the facts, preferences, decisions and open questions worth remembering. Given the current \
memory and the newest exchange, write the updated memory as short plain-text notes. Keep what \
still holds, drop what the exchange made obsolete, add what is new. Answer with the notes only.";

/// How an agent keeps its conversations' working memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingMemory {
    /// Revise after every this many writes to the conversation (1: after every turn).
    pub every_turns: u32,
    /// The revision call's system prompt.
    pub instructions: String,
    /// Bound on the revision's length, in tokens.
    pub max_tokens: Option<u32>,
}

impl Default for WorkingMemory {
    fn default() -> Self {
        Self {
            every_turns: 1,
            instructions: DEFAULT_INSTRUCTIONS.to_owned(),
            max_tokens: Some(256),
        }
    }
}

impl WorkingMemory {
    /// Whether the turn that will make the conversation's version `next_version` revises.
    pub fn is_due(&self, next_version: u64) -> bool {
        next_version.is_multiple_of(u64::from(self.every_turns.max(1)))
    }

    /// The revised memory (and the call's usage) from `previous` and the new `exchange`.
    pub(crate) async fn revise(
        &self,
        llm: &dyn LlmClient,
        model: Option<String>,
        previous: Option<&str>,
        exchange: &[Message],
        request_id: Option<String>,
    ) -> Result<(String, Usage), LlmError> {
        let mut prompt = String::from("Current memory:\n");
        prompt.push_str(match previous {
            Some(notes) if !notes.trim().is_empty() => notes,
            _ => "(empty)",
        });
        prompt.push_str("\n\nNewest exchange:\n");
        for message in exchange {
            let speaker = match message.role {
                Role::User => "User",
                Role::Assistant => "Assistant",
                Role::System => "System",
                Role::Tool => "Tool",
            };
            prompt.push_str(speaker);
            prompt.push_str(": ");
            prompt.push_str(&message.content);
            prompt.push('\n');
        }
        prompt.push_str("\nWrite the updated memory.");
        let request = ChatRequest {
            model,
            system: Some(self.instructions.clone()),
            messages: vec![Message::user(prompt)],
            sampling: Sampling {
                temperature: Some(0.0),
                max_tokens: self.max_tokens,
                ..Sampling::default()
            },
            request_id,
            ..ChatRequest::default()
        };
        let response = llm.chat(&request).await?;
        Ok((response.text.trim().to_owned(), response.usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_due_every_n_writes() {
        let every_third = WorkingMemory {
            every_turns: 3,
            ..WorkingMemory::default()
        };
        let due: Vec<u64> = (1..=9).filter(|v| every_third.is_due(*v)).collect();
        assert_eq!(due, [3, 6, 9]);
        let zero = WorkingMemory {
            every_turns: 0,
            ..WorkingMemory::default()
        };
        assert!(zero.is_due(1), "0 is read as every turn");
    }
}
