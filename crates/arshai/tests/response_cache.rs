//! The response cache in front of a counting LLM client, in process and on a real
//! `redis-server` (one link per simulated replica).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arshai::cache::{
    AgentCacheSettings, CacheControl, CacheOutcome, CacheScope, CacheSettings, CacheStats,
    CachedAnswer, CachingClient, InProcessCache, RedisCache, ResponseCache,
};
use arshai::limits::FleetRedis;
use arshai::llm::{
    ChatRequest, ChatResponse, FinishReason, LlmClient, LlmError, Message, Sampling, StreamEvent,
    ToolCall, Usage,
};
use arshai::memory::redis::RedisStoreConfig;
use arshai_testkit::RedisServer;
use async_trait::async_trait;
use futures::StreamExt;

/// An upstream that counts its calls, answers after `delay`, and calls a tool when the
/// prompt says so.
struct Counting {
    calls: AtomicUsize,
    delay: Duration,
}

impl Counting {
    fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            calls: AtomicUsize::new(0),
            delay,
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl LlmClient for Counting {
    fn provider(&self) -> &'static str {
        "counting"
    }

    fn default_model(&self) -> &str {
        "counting-1"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.delay).await;
        let prompt = request.messages.last().map_or("", |m| m.content.as_str());
        let tool_calls = if prompt.contains("use a tool") {
            vec![ToolCall {
                id: "call-1".to_owned(),
                name: "lookup".to_owned(),
                arguments: "{}".to_owned(),
            }]
        } else {
            Vec::new()
        };
        Ok(ChatResponse {
            text: format!("answer #{n} to {prompt}"),
            finish_reason: if tool_calls.is_empty() {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            },
            tool_calls,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                total_tokens: 15,
                reasoning_tokens: None,
            },
            model: "counting-1".to_owned(),
            request_id: Some(format!("upstream-{n}")),
            logprobs: None,
        })
    }
}

fn request(prompt: &str, temperature: Option<f32>) -> ChatRequest {
    ChatRequest {
        system: Some("be brief".to_owned()),
        messages: vec![Message::user(prompt)],
        sampling: Sampling {
            temperature,
            ..Sampling::default()
        },
        ..ChatRequest::default()
    }
}

fn client(
    upstream: &Arc<Counting>,
    cache: Arc<dyn ResponseCache>,
    policy: AgentCacheSettings,
) -> CachingClient {
    CachingClient::new(
        upstream.clone(),
        cache,
        Arc::new(CacheStats::default()),
        "support-bot",
        &policy,
        &CacheSettings::default(),
    )
}

async fn redis_config(server: &RedisServer) -> RedisStoreConfig {
    let mut config = RedisStoreConfig::standalone(server.url());
    config.connect_timeout = Duration::from_millis(500);
    config.response_timeout = Duration::from_millis(500);
    config
}

async fn redis_cache(config: &RedisStoreConfig) -> anyhow::Result<Arc<dyn ResponseCache>> {
    let redis = FleetRedis::open(config, 64).await?;
    Ok(Arc::new(RedisCache::new(&redis, &CacheSettings::default())))
}

/// Runs `request` through `client` in a scope for `tenant`; returns the text and outcome.
async fn ask(
    client: &CachingClient,
    request: &ChatRequest,
    tenant: Option<&str>,
    bypass: bool,
) -> anyhow::Result<(String, Option<CacheOutcome>)> {
    let control = CacheControl::new(tenant, bypass);
    let response = control.scope(client.chat(request)).await?;
    Ok((response.text, control.outcome()))
}

/// Miss, then hit, then `no-cache` bypass; the counters agree.
async fn hit_miss_bypass(cache: Arc<dyn ResponseCache>) -> anyhow::Result<()> {
    let upstream = Counting::new(Duration::ZERO);
    let client = client(&upstream, cache, AgentCacheSettings::default());
    let question = request("what is arshai?", Some(0.0));
    let (first, outcome) = ask(&client, &question, Some("acme"), false).await?;
    assert_eq!(outcome, Some(CacheOutcome::Miss));
    let (second, outcome) = ask(&client, &question, Some("acme"), false).await?;
    assert_eq!(outcome, Some(CacheOutcome::Hit));
    assert_eq!(first, second);
    assert_eq!(upstream.calls(), 1);
    let (third, outcome) = ask(&client, &question, Some("acme"), true).await?;
    assert_eq!(outcome, Some(CacheOutcome::Bypass));
    assert_ne!(third, first);
    assert_eq!(upstream.calls(), 2);
    // Another tenant does not see acme's answer (scope = tenant) …
    let (_, outcome) = ask(&client, &question, Some("globex"), false).await?;
    assert_eq!(outcome, Some(CacheOutcome::Miss));
    // … and with no tenant at all a tenant-scoped agent bypasses the cache.
    let (_, outcome) = ask(&client, &question, None, false).await?;
    assert_eq!(outcome, Some(CacheOutcome::Bypass));
    let counters = client.stats().snapshot();
    assert_eq!(
        (counters.hits, counters.misses, counters.bypasses),
        (1, 2, 2)
    );
    assert_eq!(counters.provider_calls_saved, 1);
    assert_eq!(counters.tokens_saved, 15);
    assert_eq!(counters.stored, 2);
    assert!(counters.bytes_stored > 0 && counters.bytes_served > 0);
    Ok(())
}

#[tokio::test]
async fn hit_miss_bypass_in_process() -> anyhow::Result<()> {
    hit_miss_bypass(Arc::new(InProcessCache::new(&CacheSettings::default()))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_miss_bypass_redis() -> anyhow::Result<()> {
    let server = RedisServer::start().await?;
    hit_miss_bypass(redis_cache(&redis_config(&server).await).await?).await
}

/// A streamed hit replays the cached answer as events without calling the provider, and a
/// streamed miss fills the cache for the next call.
async fn streamed_hit_replays(cache: Arc<dyn ResponseCache>) -> anyhow::Result<()> {
    let upstream = Counting::new(Duration::ZERO);
    let client = client(&upstream, cache, AgentCacheSettings::default());
    let control = CacheControl::new(Some("acme"), false);
    let question = request("stream me", Some(0.0));
    // A streamed miss (the counting client replays its chat answer as events) …
    let events: Vec<StreamEvent> = control
        .scope(
            client
                .stream(&question)
                .map(|e| e.expect("event"))
                .collect(),
        )
        .await;
    assert_eq!(control.outcome(), Some(CacheOutcome::Miss));
    // … fills the cache: a streamed hit replays the same events.
    let control = CacheControl::new(Some("acme"), false);
    let replayed: Vec<StreamEvent> = control
        .scope(
            client
                .stream(&question)
                .map(|e| e.expect("event"))
                .collect(),
        )
        .await;
    assert_eq!(control.outcome(), Some(CacheOutcome::Hit));
    assert_eq!(replayed, events);
    assert!(matches!(replayed.last(), Some(StreamEvent::Finish { .. })));
    assert_eq!(upstream.calls(), 1);
    let (text, outcome) = ask(&client, &question, Some("acme"), false).await?;
    assert_eq!(outcome, Some(CacheOutcome::Hit));
    assert_eq!(text, "answer #1 to stream me");
    assert_eq!(upstream.calls(), 1);
    Ok(())
}

#[tokio::test]
async fn streamed_hit_replays_in_process() -> anyhow::Result<()> {
    streamed_hit_replays(Arc::new(InProcessCache::new(&CacheSettings::default()))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_hit_replays_redis() -> anyhow::Result<()> {
    let server = RedisServer::start().await?;
    streamed_hit_replays(redis_cache(&redis_config(&server).await).await?).await
}

/// 50 identical concurrent misses in one process: one upstream call, 49 coalesced hits.
/// On virtual time: the upstream's 2 s answer costs nothing.
#[tokio::test(start_paused = true)]
async fn single_flight_in_process() -> anyhow::Result<()> {
    let upstream = Counting::new(Duration::from_secs(2));
    let cache = Arc::new(InProcessCache::new(&CacheSettings::default()));
    let client = Arc::new(client(&upstream, cache, AgentCacheSettings::default()));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                ask(
                    &client,
                    &request("same question", Some(0.0)),
                    Some("acme"),
                    false,
                )
                .await
            })
        })
        .collect();
    let mut texts = Vec::new();
    for task in tasks {
        texts.push(task.await??.0);
    }
    assert_eq!(upstream.calls(), 1);
    assert!(texts.iter().all(|t| t == "answer #1 to same question"));
    let counters = client.stats().snapshot();
    assert_eq!(
        (counters.misses, counters.hits, counters.coalesced),
        (1, 49, 49)
    );
    Ok(())
}

/// 50 identical concurrent misses spread over 3 replicas (each its own Redis link, cache
/// client and single-flight map): the Redis fill lock makes it one upstream call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_across_replicas_redis() -> anyhow::Result<()> {
    let server = RedisServer::start().await?;
    let config = redis_config(&server).await;
    let upstream = Counting::new(Duration::from_millis(300));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let cache = redis_cache(&config).await?;
        // Warm the link so the race is between replicas, not connection set-ups.
        cache
            .get(&arshai::cache::CacheKey::for_request(
                "a",
                "b",
                "c",
                &request("x", None),
                None,
            ))
            .await?;
        clients.push(Arc::new(client(
            &upstream,
            cache,
            AgentCacheSettings::default(),
        )));
    }
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let client = clients[i % 3].clone();
            tokio::spawn(async move {
                ask(
                    &client,
                    &request("same question", Some(0.0)),
                    Some("acme"),
                    false,
                )
                .await
            })
        })
        .collect();
    let mut texts = Vec::new();
    for task in tasks {
        let (text, outcome) = task.await??;
        assert!(matches!(
            outcome,
            Some(CacheOutcome::Hit | CacheOutcome::Miss)
        ));
        texts.push(text);
    }
    assert_eq!(upstream.calls(), 1);
    assert!(texts.iter().all(|t| t == "answer #1 to same question"));
    let misses: u64 = clients.iter().map(|c| c.stats().snapshot().misses).sum();
    assert_eq!(misses, 1);
    Ok(())
}

/// Non-deterministic requests (temperature unset or above 0) are not cached unless the
/// agent opts in; answers that call tools and requests carrying tool results never are.
#[tokio::test]
async fn only_deterministic_tool_free_turns_are_cached() -> anyhow::Result<()> {
    let upstream = Counting::new(Duration::ZERO);
    let cache: Arc<dyn ResponseCache> = Arc::new(InProcessCache::new(&CacheSettings::default()));
    let strict = client(&upstream, cache.clone(), AgentCacheSettings::default());
    for temperature in [None, Some(0.7)] {
        let question = request("creative", temperature);
        let (a, outcome) = ask(&strict, &question, Some("acme"), false).await?;
        assert_eq!(outcome, Some(CacheOutcome::Bypass));
        let (b, _) = ask(&strict, &question, Some("acme"), false).await?;
        assert_ne!(a, b);
    }
    assert_eq!(upstream.calls(), 4);

    // An answer that calls tools is not stored.
    let tool_turn = request("please use a tool", Some(0.0));
    let (_, outcome) = ask(&strict, &tool_turn, Some("acme"), false).await?;
    assert_eq!(outcome, Some(CacheOutcome::Miss));
    let (_, outcome) = ask(&strict, &tool_turn, Some("acme"), false).await?;
    assert_eq!(outcome, Some(CacheOutcome::Miss));
    assert_eq!(upstream.calls(), 6);

    // A request carrying tool results bypasses the cache.
    let mut with_results = request("what did the tool say?", Some(0.0));
    with_results.messages.insert(
        0,
        Message::tool_calls(
            "",
            vec![ToolCall {
                id: "call-1".to_owned(),
                name: "lookup".to_owned(),
                arguments: "{}".to_owned(),
            }],
        ),
    );
    with_results
        .messages
        .insert(1, Message::tool_result("call-1", "42"));
    let (_, outcome) = ask(&strict, &with_results, Some("acme"), false).await?;
    assert_eq!(outcome, Some(CacheOutcome::Bypass));

    // Opted in: a non-deterministic request is cached, and with scope = global it is shared.
    let opted = client(
        &upstream,
        cache,
        AgentCacheSettings {
            cache_nondeterministic: true,
            scope: CacheScope::Global,
            ..AgentCacheSettings::default()
        },
    );
    let question = request("creative", Some(0.7));
    let (a, outcome) = ask(&opted, &question, Some("acme"), false).await?;
    assert_eq!(outcome, Some(CacheOutcome::Miss));
    let (b, outcome) = ask(&opted, &question, Some("globex"), false).await?;
    assert_eq!(outcome, Some(CacheOutcome::Hit));
    assert_eq!(a, b);
    Ok(())
}

/// The in-process cache holds at most `max_entries`; a cached answer round-trips.
#[tokio::test]
async fn in_process_cache_is_bounded() -> anyhow::Result<()> {
    let settings = CacheSettings {
        max_entries: 10,
        max_bytes: 10_000,
        ..CacheSettings::default()
    };
    let cache = Arc::new(InProcessCache::new(&settings));
    let upstream = Counting::new(Duration::ZERO);
    let client = client(&upstream, cache.clone(), AgentCacheSettings::default());
    for i in 0..200 {
        ask(
            &client,
            &request(&format!("question {i}"), Some(0.0)),
            Some("acme"),
            false,
        )
        .await?;
    }
    cache.run_pending_tasks();
    assert!(cache.entry_count() <= 10, "{} entries", cache.entry_count());
    assert!(cache.weighted_size() <= 10_000);
    let answer = CachedAnswer::from_response(&upstream.chat(&request("x", None)).await?)
        .expect("no tool calls");
    assert_eq!(answer.to_response().text, "answer #201 to x");
    Ok(())
}

/// Redis down: every call goes to the provider (the cache never fails a call), errors are
/// counted, and every wait is bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_falls_through_to_the_provider() -> anyhow::Result<()> {
    let mut server = RedisServer::start().await?;
    let cache = redis_cache(&redis_config(&server).await).await?;
    let upstream = Counting::new(Duration::ZERO);
    let client = client(&upstream, cache, AgentCacheSettings::default());
    let question = request("hello", Some(0.0));
    ask(&client, &question, Some("acme"), false).await?;
    server.kill().await?;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let (_, outcome) = ask(&client, &question, Some("acme"), false).await?;
        assert_eq!(outcome, Some(CacheOutcome::Miss));
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(upstream.calls(), 4);
    assert!(client.stats().snapshot().errors >= 3);
    Ok(())
}

/// The settings reject unknown keys and fill defaults.
#[test]
fn cache_settings_parse_strictly() {
    let agent: AgentCacheSettings =
        serde_json::from_value(serde_json::json!({"ttl_seconds": 60, "scope": "global"}))
            .expect("valid");
    assert_eq!(agent.scope, CacheScope::Global);
    assert!(!agent.cache_nondeterministic);
    assert!(serde_json::from_value::<AgentCacheSettings>(serde_json::json!({"ttl": 1})).is_err());
    let shared: CacheSettings =
        serde_json::from_value(serde_json::json!({"backend": "redis"})).expect("valid");
    assert!(shared.validate().is_ok());
    assert!(serde_json::from_value::<CacheSettings>(serde_json::json!({"size": 1})).is_err());
}

/// An upstream with native streaming: three text deltas, or a failure after the first.
struct Streaming {
    calls: AtomicUsize,
    fail: bool,
}

#[async_trait]
impl LlmClient for Streaming {
    fn provider(&self) -> &'static str {
        "streaming"
    }

    fn default_model(&self) -> &str {
        "streaming-1"
    }

    async fn chat(&self, _request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        unreachable!("only streamed in this test")
    }

    fn stream<'a>(
        &'a self,
        _request: &'a ChatRequest,
    ) -> futures::stream::BoxStream<'a, Result<StreamEvent, LlmError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut events = vec![Ok(StreamEvent::TextDelta("Hel".to_owned()))];
        if self.fail {
            events.push(Err(LlmError::Timeout {
                provider: "streaming",
                after: Duration::from_secs(1),
            }));
        } else {
            events.extend([
                Ok(StreamEvent::TextDelta("lo, ".to_owned())),
                Ok(StreamEvent::TextDelta("world".to_owned())),
                Ok(StreamEvent::Usage(Usage {
                    input_tokens: 3,
                    output_tokens: 3,
                    total_tokens: 6,
                    reasoning_tokens: None,
                })),
                Ok(StreamEvent::Finish {
                    reason: FinishReason::Stop,
                    model: "streaming-1".to_owned(),
                }),
            ]);
        }
        futures::stream::iter(events).boxed()
    }
}

/// A streamed miss assembles the deltas into the cached answer; a stream that fails
/// midway stores nothing.
#[tokio::test]
async fn streamed_misses_store_the_whole_answer_and_failures_nothing() -> anyhow::Result<()> {
    for fail in [false, true] {
        let upstream = Arc::new(Streaming {
            calls: AtomicUsize::new(0),
            fail,
        });
        let cache: Arc<dyn ResponseCache> =
            Arc::new(InProcessCache::new(&CacheSettings::default()));
        let client = CachingClient::new(
            upstream.clone(),
            cache,
            Arc::new(CacheStats::default()),
            "streamer",
            &AgentCacheSettings::default(),
            &CacheSettings::default(),
        );
        let question = request("greet", Some(0.0));
        for _ in 0..2 {
            let control = CacheControl::new(Some("acme"), false);
            let events: Vec<_> = control.scope(client.stream(&question).collect()).await;
            if fail {
                assert!(events.last().is_some_and(Result::is_err));
                assert_eq!(control.outcome(), Some(CacheOutcome::Miss));
            }
        }
        if fail {
            assert_eq!(upstream.calls.load(Ordering::SeqCst), 2);
            assert_eq!(client.stats().snapshot().stored, 0);
        } else {
            assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);
            let control = CacheControl::new(Some("acme"), false);
            let answer = control.scope(client.chat(&question)).await?;
            assert_eq!(control.outcome(), Some(CacheOutcome::Hit));
            assert_eq!(answer.text, "Hello, world");
            assert_eq!(answer.usage.total_tokens, 6);
        }
    }
    Ok(())
}
