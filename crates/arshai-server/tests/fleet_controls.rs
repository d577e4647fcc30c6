//! Rate limits, token budgets and the response cache, wired into the server, over HTTP:
//! in-process servers on real sockets sharing one real `redis-server`.

mod support;

use std::time::Duration;

use arshai::cache::AgentCacheSettings;
use arshai::limits::{LimitsBackend, RateLimits};
use arshai_server::settings::{ApiKeySettings, AuthSettings, Settings};
use arshai_testkit::{FakeUpstream, RedisServer};
use serde_json::{Value, json};
use support::{TestServer, settings_for};

const KEY: &str = "sk-acme-limited";

/// Settings with Redis memory, Redis limits and one key of tenant `acme`.
fn fleet_settings(upstream: &FakeUpstream, redis: &RedisServer, key: ApiKeySettings) -> Settings {
    let mut settings = settings_for(upstream);
    settings.memory.redis_url = Some(redis.url());
    settings.memory.redis_response_timeout_seconds = 1.0;
    settings.memory.redis_connect_timeout_seconds = 1.0;
    settings.limits.backend = LimitsBackend::Redis;
    settings.auth = AuthSettings {
        enabled: true,
        keys: vec![key],
        keys_file: None,
    };
    settings
}

fn acme_key() -> ApiKeySettings {
    ApiKeySettings {
        tenant: "acme".to_owned(),
        key: Some(KEY.to_owned()),
        id: Some("acme-1".to_owned()),
        ..Default::default()
    }
}

async fn post(server: &TestServer, body: Value) -> reqwest::Response {
    server
        .http
        .post(server.url("/v1/agents/assistant/messages"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .expect("request completes")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name)?.to_str().ok()
}

/// 300 requests spread over 3 instances in parallel on a key limited to 60 per minute:
/// exactly 60 succeed, and every refusal is a 429 `rate_limited` with `Retry-After` and
/// the `x-ratelimit-*-requests` headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_per_minute_hold_across_three_instances() {
    let redis = RedisServer::start().await.expect("redis starts");
    let mut servers = Vec::new();
    for _ in 0..3 {
        let upstream = FakeUpstream::start().await.expect("upstream starts");
        let key = ApiKeySettings {
            requests_per_minute: Some(60),
            ..acme_key()
        };
        let settings = fleet_settings(&upstream, &redis, key);
        servers.push(TestServer::start_with(upstream, settings).await);
    }
    let servers = std::sync::Arc::new(servers);
    let mut tasks = Vec::new();
    for index in 0..300 {
        let servers = std::sync::Arc::clone(&servers);
        tasks.push(tokio::spawn(async move {
            let server = &servers[index % 3];
            let response = post(server, json!({"message": format!("hello {index}")})).await;
            let status = response.status().as_u16();
            let limit = header(&response, "x-ratelimit-limit-requests").map(str::to_owned);
            let remaining = header(&response, "x-ratelimit-remaining-requests").map(str::to_owned);
            let reset = header(&response, "x-ratelimit-reset-requests").map(str::to_owned);
            let retry_after = header(&response, "retry-after").map(str::to_owned);
            let body: Value = response.json().await.expect("JSON body");
            (status, limit, remaining, reset, retry_after, body)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        let (status, limit, remaining, reset, retry_after, body) = task.await.expect("task");
        assert_eq!(limit.as_deref(), Some("60"), "status {status}: {body}");
        assert!(remaining.is_some() && reset.is_some());
        match status {
            200 => ok += 1,
            429 => {
                refused += 1;
                assert_eq!(body["error"]["type"], "rate_limited", "{body}");
                let after: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
                assert!((1..=60).contains(&after), "Retry-After {after}");
                assert_eq!(remaining.as_deref(), Some("0"));
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!((ok, refused), (60, 240));
    let metrics = servers[0].metrics_text().await;
    assert!(support::sample(&metrics, "arshai_ratelimit_refused_total").unwrap_or(0.0) > 0.0);
}

/// Tokens per minute are charged with the fake upstream's real usage once each turn
/// settles: a key with room for about three turns is refused (429, tokens headers) after
/// a few, on the OpenAI route in OpenAI's error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_per_minute_are_charged_with_the_real_usage() {
    let redis = RedisServer::start().await.expect("redis starts");
    let upstream = FakeUpstream::start().await.expect("upstream starts");
    let key = ApiKeySettings {
        tokens_per_minute: Some(300),
        ..acme_key()
    };
    let settings = fleet_settings(&upstream, &redis, key);
    let server = TestServer::start_with(upstream, settings).await;
    let body = json!({"model": "assistant", "messages": [{"role": "user", "content": "tell me something"}]});
    let mut used = Vec::new();
    let mut refusal = None;
    for _ in 0..20 {
        let response = server
            .http
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .expect("request completes");
        let status = response.status().as_u16();
        let limit = header(&response, "x-ratelimit-limit-tokens").map(str::to_owned);
        assert_eq!(limit.as_deref(), Some("300"));
        let retry_after = header(&response, "retry-after").map(str::to_owned);
        let json: Value = response.json().await.expect("JSON");
        if status == 429 {
            refusal = Some((json, retry_after));
            break;
        }
        assert_eq!(status, 200, "{json}");
        used.push(json["usage"]["total_tokens"].as_u64().expect("usage"));
        // The settle runs when the body ends: let it land.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (json, retry_after) = refusal.expect("refused within 20 turns");
    assert_eq!(json["error"]["type"], "rate_limit_exceeded", "{json}");
    assert_eq!(json["error"]["code"], "rate_limited", "{json}");
    assert!(retry_after.is_some());
    let total: u64 = used.iter().sum();
    let per_turn = used[0];
    assert!(per_turn > 20, "the turn's usage is real: {per_turn}");
    // Admitted while the charged usage (less what drained) left room: never far past 300.
    assert!(total <= 300 + per_turn, "{used:?}");
    assert!(
        total + per_turn > 300 - 30,
        "refused only when full: {used:?}"
    );
}

/// A cached agent over HTTP: miss, then hit (no provider call), `no-cache` bypass;
/// a streamed hit is replayed as SSE; hits are recorded in their conversations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_answers_repeated_turns_over_http() {
    let upstream = FakeUpstream::start().await.expect("upstream starts");
    let mut settings = settings_for(&upstream);
    settings.agents[0].temperature = Some(0.0);
    settings.agents[0].cache = Some(AgentCacheSettings::default());
    let server = TestServer::start_with(upstream, settings).await;
    let send = |body: Value, no_cache: bool| {
        let mut request = server
            .http
            .post(server.url("/v1/agents/assistant/messages"))
            .json(&body);
        if no_cache {
            request = request.header("cache-control", "no-cache");
        }
        request.send()
    };
    let first = send(json!({"message": "what is 2 + 2?"}), false)
        .await
        .expect("sent");
    assert_eq!(header(&first, "x-arshai-cache"), Some("miss"));
    let first: Value = first.json().await.expect("JSON");
    assert_eq!(server.upstream.request_count(), 1);

    let second = send(json!({"message": "what is 2 + 2?"}), false)
        .await
        .expect("sent");
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-arshai-cache"), Some("hit"));
    let second: Value = second.json().await.expect("JSON");
    assert_eq!(second["reply"], first["reply"]);
    assert_eq!(
        server.upstream.request_count(),
        1,
        "a hit calls no provider"
    );

    let bypass = send(json!({"message": "what is 2 + 2?"}), true)
        .await
        .expect("sent");
    assert_eq!(header(&bypass, "x-arshai-cache"), Some("bypass"));
    assert_eq!(server.upstream.request_count(), 2);

    // A streamed hit: SSE events with the cached text, no provider call.
    let streamed = send(json!({"message": "what is 2 + 2?", "stream": true}), false)
        .await
        .expect("sent");
    assert_eq!(header(&streamed, "x-arshai-cache"), Some("hit"));
    assert!(
        header(&streamed, "content-type")
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let text = streamed.text().await.expect("SSE body");
    let reply = first["reply"].as_str().expect("reply");
    assert!(
        text.contains("event: done") || text.contains("done"),
        "{text}"
    );
    assert!(text.contains(&reply[..reply.len().min(10)]), "{text}");
    assert_eq!(server.upstream.request_count(), 2);

    // The hit is in its conversation like any turn.
    let id = second["conversation_id"].as_str().expect("id");
    let conversation: Value = server
        .http
        .get(server.url(&format!("/v1/agents/assistant/conversations/{id}")))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    let messages = conversation["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{conversation}");
    assert_eq!(messages[1]["content"], first["reply"], "{conversation}");

    let metrics = server.metrics_text().await;
    assert_eq!(
        support::sample(&metrics, "arshai_cache_hits_total"),
        Some(2.0)
    );
    assert_eq!(
        support::sample(&metrics, "arshai_cache_misses_total"),
        Some(1.0)
    );
}

/// Redis down under `fail_closed`: a turn is answered 503 `limits_unavailable` with
/// `Retry-After`, and the provider is never called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_under_fail_closed_is_503() {
    let mut redis = RedisServer::start().await.expect("redis starts");
    let upstream = FakeUpstream::start().await.expect("upstream starts");
    let mut settings = fleet_settings(&upstream, &redis, acme_key());
    settings.limits.key = RateLimits {
        requests_per_minute: Some(100),
        tokens_per_minute: None,
    };
    let server = TestServer::start_with(upstream, settings).await;
    let ok = post(&server, json!({"message": "hi"})).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(header(&ok, "x-ratelimit-limit-requests"), Some("100"));
    redis.kill().await.expect("redis stops");
    let down = post(&server, json!({"message": "hi again"})).await;
    assert_eq!(down.status(), 503);
    assert!(header(&down, "retry-after").is_some());
    let body: Value = down.json().await.expect("JSON");
    assert_eq!(body["error"]["type"], "limits_unavailable", "{body}");
    assert_eq!(server.upstream.request_count(), 1);
}

/// `GET /v1/usage`: the caller's budgets, with the settled usage of its turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_shows_the_callers_budgets() {
    let redis = RedisServer::start().await.expect("redis starts");
    let upstream = FakeUpstream::start().await.expect("upstream starts");
    let key = ApiKeySettings {
        tokens_per_day: Some(100_000),
        ..acme_key()
    };
    let mut settings = fleet_settings(&upstream, &redis, key);
    settings.limits.tenant_budget.tokens_per_month = Some(1_000_000);
    let server = TestServer::start_with(upstream, settings).await;
    let turn: Value = post(&server, json!({"message": "count me"}))
        .await
        .json()
        .await
        .expect("JSON");
    let spent = turn["usage"]["total_tokens"].as_u64().expect("usage");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let usage: Value = server
        .http
        .get(server.url("/v1/usage"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert_eq!(usage["tenant"], "acme");
    assert_eq!(usage["key_id"], "acme-1");
    let budgets = usage["budgets"].as_array().expect("budgets");
    assert_eq!(budgets.len(), 2, "{usage}");
    for budget in budgets {
        assert_eq!(budget["used"], spent, "{usage}");
        assert_eq!(budget["reserved"], 0, "{usage}");
    }
    let anonymous = server
        .http
        .get(server.url("/v1/usage"))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 401);
}

/// A spent budget: the turn that crosses it is admitted (default, non-strict), the next is
/// 429 `budget_exceeded` with `Retry-After` (until the period's end), in OpenAI's shape on
/// `/v1/chat/completions`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_is_429_budget_exceeded() {
    let redis = RedisServer::start().await.expect("redis starts");
    let upstream = FakeUpstream::start().await.expect("upstream starts");
    let key = ApiKeySettings {
        tokens_per_day: Some(10),
        ..acme_key()
    };
    let settings = fleet_settings(&upstream, &redis, key);
    let server = TestServer::start_with(upstream, settings).await;
    let first = post(&server, json!({"message": "spend it all"})).await;
    assert_eq!(first.status(), 200);
    drop(first.text().await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = post(&server, json!({"message": "one more"})).await;
    assert_eq!(second.status(), 429);
    let after: u64 = header(&second, "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=86_400).contains(&after), "{after}");
    let body: Value = second.json().await.expect("JSON");
    assert_eq!(body["error"]["type"], "budget_exceeded", "{body}");
    let openai = server
        .http
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(openai.status(), 429);
    let body: Value = openai.json().await.expect("JSON");
    assert_eq!(body["error"]["type"], "rate_limit_exceeded", "{body}");
    assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
    assert_eq!(server.upstream.request_count(), 1);
}

/// Redis down under `fail_open`: the turn is admitted, counted and served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_under_fail_open_admits_and_counts() {
    let mut redis = RedisServer::start().await.expect("redis starts");
    let upstream = FakeUpstream::start().await.expect("upstream starts");
    let mut settings = fleet_settings(&upstream, &redis, acme_key());
    // Conversations in this process; only the limits are on the (dead) Redis.
    settings.memory.memory_provider = Some(arshai::settings::MemoryProvider::Memory);
    settings.limits.fail_mode = arshai::limits::FailMode::FailOpen;
    settings.limits.budget_fail_mode = arshai::limits::FailMode::FailOpen;
    settings.limits.key.requests_per_minute = Some(100);
    settings.limits.key_budget.tokens_per_day = Some(100_000);
    let server = TestServer::start_with(upstream, settings).await;
    redis.kill().await.expect("redis stops");
    let response = post(&server, json!({"message": "hi"})).await;
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    assert_eq!(status, 200, "{body}");
    let metrics = server.metrics_text().await;
    assert_eq!(
        support::sample(&metrics, "arshai_ratelimit_fail_open_total"),
        Some(1.0)
    );
    assert_eq!(
        support::sample(&metrics, "arshai_budget_fail_open_total"),
        Some(1.0)
    );
}

/// 50 identical concurrent turns on a cached agent: one upstream call (single flight),
/// every answer the same; a non-deterministic agent (temperature unset) is never cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_concurrent_turns_call_the_provider_once() {
    let upstream = FakeUpstream::start().await.expect("upstream starts");
    upstream.push(arshai_testkit::Reply::text("forty-two").delayed(Duration::from_millis(300)));
    let mut settings = settings_for(&upstream);
    settings.agents[0].temperature = Some(0.0);
    settings.agents[0].cache = Some(AgentCacheSettings::default());
    let mut random = settings.agents[0].clone();
    random.name = "random".to_owned();
    random.temperature = None;
    settings.agents.push(random);
    let server = std::sync::Arc::new(TestServer::start_with(upstream, settings).await);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let server = std::sync::Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            server
                .post("assistant", json!({"message": "the answer?"}))
                .await
        }));
    }
    for task in tasks {
        let (status, body) = task.await.expect("task");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["reply"], "forty-two", "{body}");
    }
    assert_eq!(server.upstream.request_count(), 1);

    for _ in 0..2 {
        let response = server
            .post_raw("random", json!({"message": "again"}).to_string())
            .await;
        assert_eq!(header(&response, "x-arshai-cache"), Some("bypass"));
    }
    assert_eq!(server.upstream.request_count(), 3);
}
