//! What the HTTP providers share:
//!
//! - `http_pool` — the pooled HTTP client and its timeouts ([`crate::llm::build_http_client`]).
//! - `dns_cache` — a DNS cache in front of the system resolver.
//! - `endpoint` — a provider's checked base URL and its request headers.
//! - `sse` — server-sent events: framing, read timeouts, chunk decoding.
//! - `propagation` — headers added to every upstream request ([`crate::llm::set_propagator`]).

pub(super) mod dns_cache;
pub(super) mod endpoint;
pub(super) mod http_pool;
pub(super) mod propagation;
pub mod sse;
