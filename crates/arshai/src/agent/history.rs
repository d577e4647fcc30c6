//! The history window: how much of a stored conversation a turn sends to the model.
//!
//! Two bounds, both on the *history* (the new messages of the turn are always sent): the
//! most recent `max_messages` (the store loads only those: on Redis the tail of the list,
//! not the whole conversation), then as many of those as fit in `max_tokens`, counted by a
//! [`TokenCounter`]: the provider's tokenizer where it is known (OpenAI's `o200k_base` and
//! `cl100k_base` for the models that use them, the embedded model's own), a conservative
//! estimate otherwise (a token per three bytes of text, plus four per message for the role
//! and framing — more than any tokenizer in use counts for English text, so the bound is
//! not overrun). A turn's cost then does not grow with the stored conversation.

use std::sync::Arc;

use crate::llm::{LlmClient, Message, Role};

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
    /// bounds, never starting with a tool result or a tool call whose results were cut;
    /// tokens counted with the conservative estimate.
    pub fn apply(&self, history: Vec<Message>) -> Vec<Message> {
        self.apply_counted(history, &TokenCounter::Estimate)
    }

    /// [`HistoryWindow::apply`], with tokens counted by `counter`. Counting walks back from
    /// the newest message and stops at the first that does not fit, so its cost is bounded
    /// by `max_tokens`, not by the stored history.
    pub fn apply_counted(&self, mut history: Vec<Message>, counter: &TokenCounter) -> Vec<Message> {
        let mut start = self
            .max_messages
            .map_or(0, |max| history.len().saturating_sub(max));
        if let Some(budget) = self.max_tokens {
            let mut used = 0;
            let mut fits = history.len();
            while fits > start {
                used += counter.count(&history[fits - 1]);
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

/// Tokens of framing per message besides its text (role and separators): OpenAI's chat
/// format spends 3 to 4; 4 stays on the safe side.
const FRAMING_TOKENS: usize = 4;

/// An OpenAI tokenizer, embedded in the binary (`tiktoken-rs`): nothing is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenAiEncoding {
    /// `o200k_base`: the GPT-4o, GPT-4.1, GPT-5 and o-series models.
    O200kBase,
    /// `cl100k_base`: GPT-4 and GPT-3.5.
    Cl100kBase,
}

impl OpenAiEncoding {
    /// The encoding `model` uses (an OpenRouter `openai/…` name too), if it is one of these.
    ///
    /// ```
    /// use arshai::agent::OpenAiEncoding;
    ///
    /// assert_eq!(OpenAiEncoding::for_model("gpt-4o-mini"), Some(OpenAiEncoding::O200kBase));
    /// assert_eq!(OpenAiEncoding::for_model("openai/gpt-4"), Some(OpenAiEncoding::Cl100kBase));
    /// assert_eq!(OpenAiEncoding::for_model("claude-3-5-sonnet"), None);
    /// ```
    pub fn for_model(model: &str) -> Option<Self> {
        use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};
        let model = model.strip_prefix("openai/").unwrap_or(model);
        match get_tokenizer(model)? {
            Tokenizer::O200kBase | Tokenizer::O200kHarmony => Some(Self::O200kBase),
            Tokenizer::Cl100kBase => Some(Self::Cl100kBase),
            _ => None,
        }
    }

    /// `o200k_base` or `cl100k_base`.
    pub fn name(self) -> &'static str {
        match self {
            Self::O200kBase => "o200k_base",
            Self::Cl100kBase => "cl100k_base",
        }
    }

    /// The tokenizer, built on first use (a few hundred milliseconds of CPU: call
    /// [`TokenCounter::warm`] off the async runtime first).
    fn bpe(self) -> &'static tiktoken_rs::CoreBPE {
        match self {
            Self::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Self::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        }
    }

    /// The tokens of `text`.
    pub fn count(self, text: &str) -> usize {
        self.bpe().encode_ordinary(text).len()
    }
}

/// How a [`HistoryWindow`] counts the tokens of a message.
#[derive(Clone, Default)]
pub enum TokenCounter {
    /// The conservative estimate ([`estimated_tokens`]), for models whose tokenizer is not
    /// known.
    #[default]
    Estimate,
    /// An OpenAI tokenizer: the text and tool calls encoded, plus the framing.
    OpenAi(OpenAiEncoding),
    /// The client's own count ([`LlmClient::count_tokens`]: the embedded model's tokenizer
    /// over the whole chat turn, framing included).
    Client(Arc<dyn LlmClient>),
}

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TokenCounter {
    /// The counter for `model` on `llm`: the client's own when it knows its tokenizer (the
    /// embedded model), OpenAI's for the OpenAI models of the OpenAI, Azure OpenAI and
    /// OpenRouter providers, the estimate otherwise.
    pub fn for_model(llm: &Arc<dyn LlmClient>, model: &str) -> Self {
        if llm.count_tokens(Role::User, "").is_some() {
            return Self::Client(Arc::clone(llm));
        }
        match llm.provider() {
            "openai" | "azure" | "openrouter" => {
                OpenAiEncoding::for_model(model).map_or(Self::Estimate, Self::OpenAi)
            }
            _ => Self::Estimate,
        }
    }

    /// `estimate`, `o200k_base`, `cl100k_base` or `model` (for logs).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Estimate => "estimate",
            Self::OpenAi(encoding) => encoding.name(),
            Self::Client(_) => "model",
        }
    }

    /// Builds the tokenizer now, if it is built lazily (blocking: run it with
    /// `spawn_blocking`), so that no turn waits for it.
    pub fn warm(&self) {
        if let Self::OpenAi(encoding) = self {
            encoding.count("");
        }
    }

    /// The tokens of `message`.
    pub fn count(&self, message: &Message) -> usize {
        match self {
            Self::Estimate => estimated_tokens(message),
            Self::OpenAi(encoding) => {
                encoding.count(&message.content)
                    + message
                        .tool_calls
                        .iter()
                        .map(|call| encoding.count(&call.name) + encoding.count(&call.arguments))
                        .sum::<usize>()
                    + FRAMING_TOKENS
            }
            Self::Client(llm) => {
                let calls = message
                    .tool_calls
                    .iter()
                    .map(|call| format!("{}{}", call.name, call.arguments))
                    .collect::<String>();
                let text = if calls.is_empty() {
                    std::borrow::Cow::Borrowed(message.content.as_str())
                } else {
                    std::borrow::Cow::Owned(format!("{}{calls}", message.content))
                };
                llm.count_tokens(message.role, &text)
                    .unwrap_or_else(|| estimated_tokens(message))
            }
        }
    }
}

/// A conservative token count of one message.
pub fn estimated_tokens(message: &Message) -> usize {
    let text = message.content.len()
        + message
            .tool_calls
            .iter()
            .map(|call| call.name.len() + call.arguments.len())
            .sum::<usize>();
    text.div_ceil(3) + FRAMING_TOKENS
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

    /// Ordinary English messages of different lengths.
    fn english(n: usize) -> Vec<Message> {
        let sentences = [
            "Could you tell me when the next train to the airport leaves?",
            "The next one leaves at ten past four from platform two.",
            "Thanks. And how long does the ride take, roughly?",
            "About thirty-five minutes, a little more in the evening rush hour.",
            "Great, I will take that one then. Do I need a reservation?",
            "No reservation is needed; buy a ticket at the machine or on board.",
        ];
        (0..n)
            .map(|i| {
                let text = sentences[i % sentences.len()];
                if i % 2 == 0 {
                    Message::user(text)
                } else {
                    Message::assistant(text)
                }
            })
            .collect()
    }

    #[test]
    fn the_openai_tokenizer_keeps_more_than_the_estimate_and_never_exceeds_the_bound() {
        for encoding in [OpenAiEncoding::O200kBase, OpenAiEncoding::Cl100kBase] {
            let counter = TokenCounter::OpenAi(encoding);
            for budget in [40, 100, 257, 600] {
                let window = HistoryWindow {
                    max_messages: None,
                    max_tokens: Some(budget),
                };
                let history = english(60);
                let estimated = window.apply(history.clone());
                let counted = window.apply_counted(history.clone(), &counter);
                assert!(
                    counted.len() > estimated.len(),
                    "{}: {budget} tokens keep {} messages, the estimate {}",
                    encoding.name(),
                    counted.len(),
                    estimated.len()
                );
                let used: usize = counted.iter().map(|m| counter.count(m)).sum();
                assert!(used <= budget, "{}: {used} > {budget}", encoding.name());
                // And it is the longest tail that fits: one more message would not.
                let next = &history[history.len() - counted.len() - 1];
                assert!(used + counter.count(next) > budget);
            }
        }
    }

    #[test]
    fn the_openai_counter_counts_what_tiktoken_counts() {
        let counter = TokenCounter::OpenAi(OpenAiEncoding::O200kBase);
        // "Hello, world!" is 4 tokens in o200k_base: "Hello" "," " world" "!".
        assert_eq!(
            counter.count(&Message::user("Hello, world!")),
            4 + FRAMING_TOKENS
        );
        assert_eq!(
            OpenAiEncoding::for_model("o3-mini"),
            Some(OpenAiEncoding::O200kBase)
        );
        assert_eq!(
            OpenAiEncoding::for_model("gpt-4.1"),
            Some(OpenAiEncoding::O200kBase)
        );
        assert_eq!(
            OpenAiEncoding::for_model("gpt-3.5-turbo"),
            Some(OpenAiEncoding::Cl100kBase)
        );
        assert_eq!(OpenAiEncoding::for_model("fake-model"), None);
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
