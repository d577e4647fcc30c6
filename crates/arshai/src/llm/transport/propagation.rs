//! Headers propagated on every outgoing provider request, such as W3C `traceparent`.
//!
//! The library does not depend on a tracing backend: an application that exports traces
//! installs a [`HeaderPropagator`] once ([`set_propagator`]), and the HTTP providers ask it
//! for headers each time they send a request, inside the caller's current span. With none
//! installed, nothing is added.

use std::sync::{Arc, OnceLock};

/// Computes headers for one outgoing request from the current context (the current
/// `tracing` span, say).
pub trait HeaderPropagator: Send + Sync {
    /// The headers to add, as (name, value) pairs; names in lower case.
    fn headers(&self) -> Vec<(String, String)>;
}

static PROPAGATOR: OnceLock<Arc<dyn HeaderPropagator>> = OnceLock::new();

/// Installs the process's propagator. Returns `false` (and keeps the first) when one was
/// installed already.
pub fn set_propagator(propagator: Arc<dyn HeaderPropagator>) -> bool {
    PROPAGATOR.set(propagator).is_ok()
}

/// Adds the propagated headers to `builder`.
pub(crate) fn propagate(mut builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    if let Some(propagator) = PROPAGATOR.get() {
        for (name, value) in propagator.headers() {
            builder = builder.header(name, value);
        }
    }
    builder
}
