//! [`CacheKey`]: a SHA-256 over a canonical serialisation of everything that determines
//! an answer.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::llm::ChatRequest;

/// The hash of one request's answer-determining content, hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

/// Bumped whenever the canonical form changes, so old entries are never misread.
const FORMAT: u32 = 2;

impl CacheKey {
    /// The key of `request` sent by `agent` to `provider`'s `model` (the request's model,
    /// or the client's default), for `tenant` (`None`: shared by every tenant).
    ///
    /// It covers the system prompt, every message (role, text, tool calls, tool call id),
    /// the sampling parameters, the tools offered and the response format; never the
    /// request id.
    pub fn for_request(
        agent: &str,
        provider: &str,
        model: &str,
        request: &ChatRequest,
        tenant: Option<&str>,
    ) -> Self {
        // serde_json's maps are sorted (no preserve_order feature), so equal values always
        // serialise to equal bytes.
        let canonical = json!({
            "v": FORMAT,
            "tenant": tenant,
            "agent": agent,
            "provider": provider,
            "model": model,
            "system": request.system,
            "messages": request.messages,
            "sampling": request.sampling,
            "tools": request.tools,
            "response_format": request.response_format,
            "tool_choice": request.tool_choice,
            "parallel_tool_calls": request.parallel_tool_calls,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push_str(&format!("{byte:02x}"));
        }
        Self(hex)
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
