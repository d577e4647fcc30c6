//! # arshai
//!
//! A framework for conversational AI agents, built for running many stateless instances
//! behind a load balancer. The crate follows Arshai's three layers:
//!
//! 1. [`llm`] — one [`llm::LlmClient`] trait over every provider: typed requests, responses,
//!    usage accounting and typed errors.
//! 2. [`agent`] — the [`agent::Agent`] trait and [`agent::ConversationAgent`], which keeps a
//!    conversation's history in a [`memory::MemoryStore`] and calls an LLM for each turn.
//! 3. [`memory`] — conversation memory with sliding TTL, `max_conversations` and atomic,
//!    versioned appends, so that no message is lost when instances race on a conversation.
//!
//! [`workflow`] sits on top: graphs of agent, tool, workflow and function nodes with a JSON
//! state passed between them, declared in settings or built in code.
//!
//! Fleet controls sit beside the layers: [`cache`] (a response cache, an
//! [`llm::LlmClient`] decorator) and [`limits`] (rate limits and token budgets), each in
//! process or in Redis, exact across replicas.
//!
//! Each layer owns its settings section; [`settings`] loads them: defaults < TOML file <
//! environment.

pub mod agent;
pub mod cache;
mod invalid_setting;
pub mod limits;
pub mod llm;
pub mod memory;
pub mod settings;
pub mod workflow;

pub use agent::Settings;
pub use agent::{Agent, AgentError, AgentInput, AgentOutput, ConversationAgent};
pub use invalid_setting::InvalidSetting;
pub use llm::{ChatRequest, ChatResponse, LlmClient, LlmError, Message, Role, Usage};
pub use memory::{ConversationId, ConversationKey, MemoryError, MemoryStore};
