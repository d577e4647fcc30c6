//! [`CachingClient`]: an [`LlmClient`] decorator that answers repeated deterministic
//! requests from a [`ResponseCache`], streamed or not, and calls the provider once for
//! identical concurrent misses.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};

use super::answer::CachedAnswer;
use super::control::{CacheControl, CacheOutcome};
use super::flight::{FlightGuard, FlightState, Flights, Joined};
use super::key::CacheKey;
use super::settings::{AgentCacheSettings, CacheScope, CacheSettings};
use super::stats::CacheStats;
use super::store::{FillLock, ResponseCache, Stored};
use crate::llm::{
    ChatRequest, ChatResponse, FinishReason, LlmClient, LlmError, Role, StreamEvent, Usage,
};

/// Most keys being filled at once in one client (past it, misses are not coalesced).
const MAX_FLIGHTS: usize = 4_096;

/// One agent's LLM client with a response cache in front.
///
/// A request is looked up only if it is cacheable: deterministic (temperature 0, or the
/// agent opted in with `cache_nondeterministic`), with no tool results among its messages,
/// not bypassed by the current [`CacheControl`], and — for a `tenant`-scoped agent — with
/// a tenant in the control. An answer is stored only if it calls no tools. A hit answers
/// without calling the provider; on [`LlmClient::stream`] it replays as events (text,
/// usage, finish). Identical concurrent misses call the provider once: in this process
/// through a shared flight, across instances (Redis) through a `SET NX PX` fill lock whose
/// waiters poll for the value; every wait is bounded by `single_flight_wait_ms`, after
/// which the waiter calls the provider itself.
///
/// Build one per agent at startup and share it: the single flight is per client.
pub struct CachingClient {
    inner: Arc<dyn LlmClient>,
    cache: Arc<dyn ResponseCache>,
    stats: Arc<CacheStats>,
    agent: String,
    policy: AgentCacheSettings,
    ttl: Duration,
    max_entry_bytes: u64,
    flight_wait: Duration,
    lock_ttl: Duration,
    flights: Arc<Flights>,
}

impl std::fmt::Debug for CachingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingClient")
            .field("agent", &self.agent)
            .field("provider", &self.inner.provider())
            .field("backend", &self.cache.backend())
            .finish()
    }
}

/// A miss being filled: the key, the local flight and the fill lock, if held.
struct Fill {
    key: CacheKey,
    guard: Option<FlightGuard>,
    token: Option<String>,
}

/// What the lookup decided.
enum Prepared {
    /// Answer with this.
    Hit(Stored),
    /// Call the provider; fill the cache afterwards when there is a fill.
    Call(Option<Fill>),
}

impl CachingClient {
    /// Caches `inner`'s answers for `agent` in `cache`, per `policy` (the agent's `cache`
    /// settings) and `settings` (the shared `[cache]` settings).
    pub fn new(
        inner: Arc<dyn LlmClient>,
        cache: Arc<dyn ResponseCache>,
        stats: Arc<CacheStats>,
        agent: impl Into<String>,
        policy: &AgentCacheSettings,
        settings: &CacheSettings,
    ) -> Self {
        Self {
            inner,
            cache,
            stats,
            agent: agent.into(),
            policy: policy.clone(),
            ttl: Duration::from_secs(policy.ttl_seconds.max(1)),
            max_entry_bytes: settings.max_entry_bytes,
            flight_wait: Duration::from_millis(settings.single_flight_wait_ms),
            lock_ttl: Duration::from_millis(settings.lock_ttl_ms.max(1)),
            flights: Flights::new(MAX_FLIGHTS),
        }
    }

    /// The counters this client updates.
    pub fn stats(&self) -> &Arc<CacheStats> {
        &self.stats
    }

    /// The key `request` is cached under, or `None` when it must bypass the cache.
    pub fn key_for(
        &self,
        request: &ChatRequest,
        control: Option<&CacheControl>,
    ) -> Option<CacheKey> {
        if control.is_some_and(CacheControl::bypass) {
            return None;
        }
        let deterministic = request.sampling.temperature == Some(0.0);
        if !deterministic && !self.policy.cache_nondeterministic {
            return None;
        }
        let tool_results = request
            .messages
            .iter()
            .any(|m| m.role == Role::Tool || m.tool_call_id.is_some());
        if tool_results {
            return None;
        }
        let tenant = match self.policy.scope {
            CacheScope::Global => None,
            CacheScope::Tenant => Some(control.and_then(CacheControl::tenant)?),
        };
        let model = request
            .model
            .as_deref()
            .unwrap_or_else(|| self.inner.default_model());
        Some(CacheKey::for_request(
            &self.agent,
            self.inner.provider(),
            model,
            request,
            tenant,
        ))
    }

    fn record(&self, control: Option<&CacheControl>, outcome: CacheOutcome) {
        if let Some(control) = control {
            control.record(outcome);
        }
    }

    fn hit(&self, control: Option<&CacheControl>, stored: Stored, coalesced: bool) -> Prepared {
        self.stats
            .hit(stored.bytes, stored.answer.usage.total_tokens, coalesced);
        self.record(control, CacheOutcome::Hit);
        Prepared::Hit(stored)
    }

    async fn lookup(&self, key: &CacheKey) -> Option<Stored> {
        match self.cache.get(key).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "response cache lookup failed; calling the provider");
                self.stats.error();
                None
            }
        }
    }

    /// Looks `request` up, joins or leads its flight, and takes the fill lock.
    async fn prepare(&self, request: &ChatRequest, control: Option<&CacheControl>) -> Prepared {
        let Some(key) = self.key_for(request, control) else {
            self.stats.bypass();
            self.record(control, CacheOutcome::Bypass);
            return Prepared::Call(None);
        };
        if let Some(stored) = self.lookup(&key).await {
            return self.hit(control, stored, false);
        }
        let guard = match self.flights.join(&key) {
            Joined::Follower(mut receiver) => {
                let waited = tokio::time::timeout(
                    self.flight_wait,
                    receiver.wait_for(|state| matches!(state, FlightState::Done(_))),
                )
                .await;
                if let Ok(Ok(state)) = waited
                    && let FlightState::Done(Some(stored)) = &*state
                {
                    let stored = stored.clone();
                    return self.hit(control, stored, true);
                }
                // The leader failed, produced nothing shareable, or is too slow.
                None
            }
            Joined::Leader(guard) => Some(guard),
            Joined::Untracked => None,
        };
        let mut token = None;
        if guard.is_some() {
            match self.cache.try_lock(&key, self.lock_ttl).await {
                Ok(FillLock::Acquired(held)) => token = Some(held),
                Ok(FillLock::NotShared) => {}
                Ok(FillLock::HeldElsewhere) => {
                    if let Some(stored) = self.wait_elsewhere(&key).await {
                        if let Some(guard) = guard {
                            guard.finish(Some(stored.clone()));
                        }
                        return self.hit(control, stored, true);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "response cache fill lock failed");
                    self.stats.error();
                }
            }
        }
        self.stats.miss();
        self.record(control, CacheOutcome::Miss);
        Prepared::Call(Some(Fill { key, guard, token }))
    }

    /// Polls for the value another instance is filling, at most `single_flight_wait_ms`.
    async fn wait_elsewhere(&self, key: &CacheKey) -> Option<Stored> {
        let deadline = tokio::time::Instant::now() + self.flight_wait;
        let poll = self.cache.poll_interval();
        while tokio::time::Instant::now() + poll <= deadline {
            tokio::time::sleep(poll).await;
            if let Some(stored) = self.lookup(key).await {
                return Some(stored);
            }
        }
        None
    }

    /// Stores the answer of a filled miss (when it can be cached), wakes the local
    /// followers and releases the fill lock.
    async fn complete(&self, fill: Fill, answer: Option<CachedAnswer>) {
        let mut shared = None;
        if let Some(answer) = answer {
            match answer.encode() {
                Ok(encoded) if encoded.len() as u64 <= self.max_entry_bytes => {
                    let bytes = encoded.len() as u64;
                    let answer = Arc::new(answer);
                    match self
                        .cache
                        .put(&fill.key, answer.clone(), encoded, self.ttl)
                        .await
                    {
                        Ok(()) => self.stats.stored(bytes),
                        Err(error) => {
                            tracing::warn!(%error, "response cache store failed");
                            self.stats.error();
                        }
                    }
                    // Followers get the answer even if storing it failed.
                    shared = Some(Stored { answer, bytes });
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "response cache could not encode an answer");
                    self.stats.error();
                }
            }
        }
        if let Some(guard) = fill.guard {
            guard.finish(shared);
        }
        self.release(&fill.key, fill.token).await;
    }

    async fn release(&self, key: &CacheKey, token: Option<String>) {
        if let Some(token) = token
            && let Err(error) = self.cache.unlock(key, &token).await
        {
            // The lock expires by itself after lock_ttl_ms.
            tracing::debug!(%error, "response cache fill lock release failed");
        }
    }

    /// Ends a fill that produced no answer (the call failed or the stream broke).
    async fn abandon(&self, fill: Fill) {
        drop(fill.guard);
        self.release(&fill.key, fill.token).await;
    }
}

/// The answer a stream has produced so far.
#[derive(Default)]
struct Accumulated {
    text: String,
    usage: Usage,
    calls_tools: bool,
}

impl Accumulated {
    fn answer(self, reason: &FinishReason, model: &str) -> Option<CachedAnswer> {
        if self.calls_tools || *reason == FinishReason::ToolCalls {
            return None;
        }
        Some(CachedAnswer {
            text: self.text,
            finish_reason: reason.clone(),
            usage: self.usage,
            model: model.to_owned(),
        })
    }
}

#[async_trait]
impl LlmClient for CachingClient {
    fn provider(&self) -> &'static str {
        self.inner.provider()
    }

    fn default_model(&self) -> &str {
        self.inner.default_model()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let control = CacheControl::current();
        match self.prepare(request, control.as_ref()).await {
            Prepared::Hit(stored) => Ok(stored.answer.to_response()),
            Prepared::Call(None) => self.inner.chat(request).await,
            Prepared::Call(Some(fill)) => {
                let result = self.inner.chat(request).await;
                match &result {
                    Ok(response) => {
                        self.complete(fill, CachedAnswer::from_response(response))
                            .await
                    }
                    Err(_) => self.abandon(fill).await,
                }
                result
            }
        }
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        // The scope is read when the stream is made (an SSE body is often polled by the
        // HTTP server outside the handler's scope), or else when it is first polled.
        let made_in = CacheControl::current();
        stream::once(async move {
            let control = made_in.or_else(CacheControl::current);
            match self.prepare(request, control.as_ref()).await {
                Prepared::Hit(stored) => {
                    stream::iter(stored.answer.events().into_iter().map(Ok)).boxed()
                }
                Prepared::Call(None) => self.inner.stream(request),
                Prepared::Call(Some(fill)) => self.filling_stream(request, fill),
            }
        })
        .flatten()
        .boxed()
    }
}

impl CachingClient {
    /// Streams the provider's answer through, and stores it once it has finished.
    fn filling_stream<'a>(
        &'a self,
        request: &'a ChatRequest,
        fill: Fill,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        let state = (
            self.inner.stream(request),
            Accumulated::default(),
            Some(fill),
        );
        stream::unfold(state, move |(mut inner, mut acc, mut fill)| async move {
            let item = inner.next().await;
            match &item {
                Some(Ok(StreamEvent::TextDelta(text))) => acc.text.push_str(text),
                Some(Ok(StreamEvent::ToolCall(_))) => acc.calls_tools = true,
                Some(Ok(StreamEvent::Usage(usage))) => acc.usage = *usage,
                Some(Ok(StreamEvent::Finish { reason, model })) => {
                    if let Some(fill) = fill.take() {
                        let answer = std::mem::take(&mut acc).answer(reason, model);
                        self.complete(fill, answer).await;
                    }
                }
                Some(Err(_)) | None => {
                    if let Some(fill) = fill.take() {
                        self.abandon(fill).await;
                    }
                }
            }
            item.map(|item| (item, (inner, acc, fill)))
        })
        .boxed()
    }
}
