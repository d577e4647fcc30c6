//! [`CacheControl`]: the per-turn scope through which the server tells the cache who is
//! asking and whether to bypass it, and reads back what the cache did.
//!
//! ```ignore
//! let control = CacheControl::new(Some(tenant), no_cache_header);
//! let answer = control.scope(agent.run(input)).await;
//! response.headers("x-arshai-cache", control.outcome().map_or("bypass", CacheOutcome::as_str));
//! ```
//!
//! The scope is a `tokio::task_local!`: every [`super::CachingClient`] call made by the
//! future passed to [`CacheControl::scope`] (on the same task) sees it. A stream takes the
//! scope it was created in (or else the one it is first polled in), so an SSE body polled
//! later by the HTTP server still reports into the turn's control. Work spawned onto other
//! tasks does not inherit the scope: wrap it in `control.scope(…)` again. A call outside any
//! scope has no tenant: it is cached only by agents whose scope is `global`, and its outcome
//! is only counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// What the cache did for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheOutcome {
    /// Answered from the cache (or from an identical call in flight): the provider was not
    /// called.
    Hit,
    /// Looked up and not found: the provider was called (and the answer stored when it can
    /// be).
    Miss,
    /// Not looked up: `Cache-Control: no-cache`, a non-deterministic request, a turn with
    /// tool results, or no tenant for a tenant-scoped agent.
    Bypass,
}

impl CacheOutcome {
    /// `hit`, `miss` or `bypass`: the `x-arshai-cache` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Hit => 1,
            Self::Miss => 2,
            Self::Bypass => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Hit),
            2 => Some(Self::Miss),
            3 => Some(Self::Bypass),
            _ => None,
        }
    }
}

tokio::task_local! {
    static CONTROL: CacheControl;
}

/// The cache's view of one turn: the tenant, the bypass flag, and the outcome of the last
/// cached call made in it. Cheap to clone (clones share the outcome).
#[derive(Debug, Clone, Default)]
pub struct CacheControl {
    tenant: Option<Arc<str>>,
    bypass: bool,
    outcome: Arc<AtomicU8>,
}

impl CacheControl {
    /// A scope for `tenant`; `bypass` (from `Cache-Control: no-cache`) skips the cache for
    /// every call in it.
    pub fn new(tenant: Option<&str>, bypass: bool) -> Self {
        Self {
            tenant: tenant.map(Arc::from),
            bypass,
            outcome: Arc::new(AtomicU8::new(0)),
        }
    }

    /// Runs `future` with this scope set.
    pub async fn scope<F: std::future::Future>(&self, future: F) -> F::Output {
        CONTROL.scope(self.clone(), future).await
    }

    /// The outcome of the last cached call in the scope; `None` when no call went through
    /// a [`super::CachingClient`].
    pub fn outcome(&self) -> Option<CacheOutcome> {
        CacheOutcome::from_code(self.outcome.load(Ordering::Relaxed))
    }

    /// The tenant.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Whether the cache is bypassed.
    pub fn bypass(&self) -> bool {
        self.bypass
    }

    /// The scope the current task runs in, if any.
    pub(crate) fn current() -> Option<Self> {
        CONTROL.try_with(Clone::clone).ok()
    }

    /// Records what the cache did.
    pub(crate) fn record(&self, outcome: CacheOutcome) {
        self.outcome.store(outcome.code(), Ordering::Relaxed);
    }
}
