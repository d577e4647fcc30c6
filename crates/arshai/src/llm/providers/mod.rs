//! The providers: each translates [`crate::llm::ChatRequest`] to its wire format and back.
//!
//! - [`openai`] — OpenAI Chat Completions and every OpenAI-compatible endpoint by base URL.
//! - [`azure`] — Azure OpenAI (OpenAI's wire format under Azure's URL scheme and auth).
//! - [`gemini`] — Google Gemini `generateContent`, JSON and server-sent events.
//! - [`openrouter`] — OpenRouter (an OpenAI-compatible endpoint with its own headers).
//! - `local` — the embedded local model, in-process (feature `local-model`); its settings in
//!   `local_settings`, present with or without the feature.

pub mod azure;
pub mod gemini;
mod lenient_json;
#[cfg(feature = "local-model")]
pub mod local;
pub(super) mod local_settings;
pub mod openai;
pub mod openrouter;
