//! The fleet controls on workflows, over real HTTP with the agents on the fake upstream:
//! a workflow run counts against the caller's rate limits and budgets like a turn (on its
//! own route and called by name through `/v1/chat/completions`), with the same 429s and
//! `x-ratelimit-*` headers; and a cached agent answers a workflow's node from the cache.

mod support;

use arshai_server::settings::Settings;
use arshai_testkit::FakeUpstream;
use serde_json::{Value, json};
use support::TestServer;

const CONFIG: &str = r#"
[providers.openai]
base_url = "UPSTREAM"
api_key = "sk-test-secret"

[providers.retry]
max_retries = 0

[limits]
tenant = { requests_per_minute = 3 }

[[agents]]
name = "desk"
type = "conversation"
model = "fake-model"
temperature = 0.0
cache = { ttl_seconds = 600 }

[[workflows]]
name = "answer"

[[workflows.nodes]]
name = "reply"
agent = "desk"
memory = "none"
"#;

fn load(upstream: &FakeUpstream, config: &str) -> Settings {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("arshai.toml");
    std::fs::write(&path, config.replace("UPSTREAM", &upstream.base_url())).expect("write");
    Settings::load(Some(&path)).expect("the config loads")
}

async fn server(config: &str) -> TestServer {
    let upstream = FakeUpstream::start().await.expect("upstream");
    let settings = load(&upstream, config);
    TestServer::start_with(upstream, settings).await
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn workflow_runs_count_against_the_rate_limits_on_both_routes() {
    let server = server(CONFIG).await;
    let run = || {
        server
            .http
            .post(server.url("/v1/workflows/answer/runs"))
            .json(&json!({"input": "hello"}))
            .send()
    };
    let chat = || {
        server
            .http
            .post(server.url("/v1/chat/completions"))
            .json(&json!({"model": "answer", "messages": [{"role": "user", "content": "hello"}]}))
            .send()
    };
    let first = run().await.expect("sent");
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(header(&first, "x-ratelimit-remaining-requests"), Some("2"));
    let second = chat().await.expect("sent");
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-ratelimit-remaining-requests"), Some("1"));
    assert_eq!(run().await.expect("sent").status(), 200);

    // The tenant's 3 requests are spent, whichever route spent them.
    let refused = run().await.expect("sent");
    assert_eq!(refused.status(), 429);
    assert!(header(&refused, "retry-after").is_some());
    assert_eq!(
        header(&refused, "x-ratelimit-remaining-requests"),
        Some("0")
    );
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["type"], "rate_limited", "{body}");
    let refused = chat().await.expect("sent");
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["type"], "rate_limit_exceeded", "{body}");
}

#[tokio::test]
async fn a_cached_agent_answers_a_workflow_node_from_the_cache() {
    let config = CONFIG.replace("[limits]\ntenant = { requests_per_minute = 3 }\n", "");
    let server = server(&config).await;
    let run = || async {
        let response = server
            .http
            .post(server.url("/v1/workflows/answer/runs"))
            .json(&json!({"input": "what are your opening hours?"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.expect("JSON")
    };
    let first = run().await;
    assert_eq!(server.upstream.request_count(), 1);
    let second = run().await;
    assert_eq!(second["output"], first["output"], "{second}");
    assert_eq!(
        server.upstream.request_count(),
        1,
        "the second run's node was answered from the cache"
    );
    let metrics = server.metrics_text().await;
    assert_eq!(
        support::sample(&metrics, "arshai_cache_hits_total"),
        Some(1.0),
        "{metrics}"
    );
}
