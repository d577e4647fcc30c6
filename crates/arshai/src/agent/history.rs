//! The history window: how much of a stored conversation a turn sends to the model.
//!
//! Two bounds, both on the *history* (the new messages of the turn are always sent): the
//! most recent `max_messages` (the store loads only those: on Redis the tail of the list,
//! not the whole conversation), then as many of those as fit in `max_tokens`, counted with a
//! conservative estimate (a token per three bytes of text, plus four per message for the
//! role and framing — more than any tokenizer in use counts for English text, so the bound
//! is not overrun). A turn's cost then does not grow with the stored conversation.

use crate::llm::{Message, Role};

/// The bounds on the history a turn sends to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryWindow {
    /// At most this many of the most recent stored messages (`None`: every kept message).
    pub max_messages: Option<usize>,
    /// At most this many (estimated) tokens of history (`None`: no token bound).
    pub max_tokens: Option<usize>,
}

impl Default for HistoryWindow {
    /// The 100 most recent messages, no token bound.
    fn default() -> Self {
        Self {
            max_messages: Some(DEFAULT_MAX_MESSAGES),
            max_tokens: None,
        }
    }
}

/// The default bound on history messages.
pub const DEFAULT_MAX_MESSAGES: usize = 100;

impl HistoryWindow {
    /// Every stored message, no bound (the behaviour before windows existed).
    pub const UNBOUNDED: Self = Self {
        max_messages: None,
        max_tokens: None,
    };

    /// Cuts `history` (oldest first) to the window: the most recent messages within both
    /// bounds, never starting with a tool result or a tool call whose results were cut.
    pub fn apply(&self, mut history: Vec<Message>) -> Vec<Message> {
        let mut start = self
            .max_messages
            .map_or(0, |max| history.len().saturating_sub(max));
        if let Some(budget) = self.max_tokens {
            let mut used = 0;
            let mut fits = history.len();
            while fits > start {
                used += estimated_tokens(&history[fits - 1]);
                if used > budget {
                    break;
                }
                fits -= 1;
            }
            start = fits;
        }
        // A window that starts inside a tool exchange would send results without their
        // call (providers refuse that): start at the next user or plain assistant message.
        while start < history.len() && starts_inside_tool_exchange(&history[start]) {
            start += 1;
        }
        history.drain(..start);
        history
    }
}

fn starts_inside_tool_exchange(message: &Message) -> bool {
    message.role == Role::Tool || !message.tool_calls.is_empty()
}

/// A conservative token count of one message.
pub fn estimated_tokens(message: &Message) -> usize {
    let text = message.content.len()
        + message
            .tool_calls
            .iter()
            .map(|call| call.name.len() + call.arguments.len())
            .sum::<usize>();
    text.div_ceil(3) + 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolCall;

    fn texts(messages: &[Message]) -> Vec<&str> {
        messages.iter().map(|m| m.content.as_str()).collect()
    }

    fn conversation(n: usize) -> Vec<Message> {
        (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    Message::user(format!("u{i}"))
                } else {
                    Message::assistant(format!("a{i}"))
                }
            })
            .collect()
    }

    #[test]
    fn keeps_the_most_recent_messages() {
        let window = HistoryWindow {
            max_messages: Some(3),
            max_tokens: None,
        };
        assert_eq!(texts(&window.apply(conversation(6))), ["a3", "u4", "a5"]);
        assert_eq!(window.apply(conversation(2)).len(), 2);
        assert_eq!(HistoryWindow::UNBOUNDED.apply(conversation(500)).len(), 500);
    }

    #[test]
    fn the_token_bound_cuts_from_the_oldest_and_is_never_exceeded() {
        let history: Vec<Message> = (0..10).map(|_| Message::user("x".repeat(30))).collect();
        // 30 bytes → 10 tokens, + 4 framing = 14 per message.
        let window = HistoryWindow {
            max_messages: None,
            max_tokens: Some(50),
        };
        let kept = window.apply(history);
        assert_eq!(
            kept.len(),
            3,
            "3 × 14 = 42 fits in 50, 4 × 14 = 56 does not"
        );
        assert!(kept.iter().map(estimated_tokens).sum::<usize>() <= 50);
        let none = HistoryWindow {
            max_messages: None,
            max_tokens: Some(4),
        };
        assert!(none.apply(conversation(4)).is_empty());
    }

    #[test]
    fn a_window_never_starts_inside_a_tool_exchange() {
        let call = ToolCall {
            id: "c1".into(),
            name: "clock".into(),
            arguments: "{}".into(),
        };
        let history = vec![
            Message::user("what time is it?"),
            Message::tool_calls(String::new(), vec![call]),
            Message::tool_result("c1", "noon"),
            Message::assistant("It is noon."),
            Message::user("thanks"),
        ];
        for max in 2..=4 {
            let kept = HistoryWindow {
                max_messages: Some(max),
                max_tokens: None,
            }
            .apply(history.clone());
            assert_eq!(texts(&kept), ["It is noon.", "thanks"], "window of {max}");
        }
    }
}
