//! The turn protocol over real HTTP, on real Redis: clients that go away mid-turn (streamed
//! or not) leave nothing locked and nothing recorded; an instance killed with SIGKILL blocks
//! its conversations for at most one lease; an `Idempotency-Key` makes a retry return the
//! recorded answer instead of recording the turn twice.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use arshai_testkit::{FakeUpstream, RedisServer, UpstreamOptions};
use serde_json::{Value, json};
use support::{TestServer, settings_for};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Long enough that only an explicit release frees a conversation within the bounds below.
const LEASE_SECONDS: f64 = 30.0;

async fn instance(redis: &RedisServer, latency: Duration) -> TestServer {
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        latency,
        record: true,
        ..UpstreamOptions::default()
    })
    .await
    .expect("upstream");
    let mut settings = settings_for(&upstream);
    settings.memory.redis_url = Some(redis.url());
    settings.memory.turn_lease_seconds = LEASE_SECONDS;
    TestServer::start_with(upstream, settings).await
}

async fn history(server: &TestServer, id: &str) -> Vec<String> {
    let response = server
        .http
        .get(server.url(&format!("/v1/agents/assistant/conversations/{id}")))
        .send()
        .await
        .expect("get");
    if response.status() == 404 {
        return Vec::new();
    }
    let body: Value = response.json().await.expect("json");
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A client gives up on a slow turn on instance A; the next turn on the same conversation,
/// on instance B, runs at once, and only B's turn is recorded.
async fn a_client_that_leaves_frees_the_conversation(stream: bool) {
    let redis = RedisServer::start().await.expect("redis");
    let slow = instance(&redis, Duration::from_secs(3)).await;
    let fast = instance(&redis, Duration::ZERO).await;
    let body = json!({"conversation_id": "left", "message": "abandoned", "stream": stream});
    let gone = slow
        .http
        .post(slow.url("/v1/agents/assistant/messages"))
        .json(&body)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up before the answer");
    // The slow instance's upstream saw the turn: it was under way when the client left.
    assert_eq!(slow.upstream.requests().len(), 1);
    let started = Instant::now();
    let (status, reply) = fast
        .post(
            "assistant",
            json!({"conversation_id": "left", "message": "next"}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{reply}");
    println!("stream={stream}: the next turn took {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "the next turn waited {took:?} (the lease is {LEASE_SECONDS} s)"
    );
    assert_eq!(history(&fast, "left").await, ["next", "echo: next"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_a_turn_frees_the_conversation() {
    a_client_that_leaves_frees_the_conversation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_a_stream_frees_the_conversation() {
    a_client_that_leaves_frees_the_conversation(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_retry_returns_the_recorded_turn() {
    let redis = RedisServer::start().await.expect("redis");
    let a = instance(&redis, Duration::ZERO).await;
    let b = instance(&redis, Duration::ZERO).await;
    let send = |server: &TestServer, key: &str, message: &str, stream: bool| {
        server
            .http
            .post(server.url("/v1/agents/assistant/messages"))
            .header("Idempotency-Key", key)
            .json(&json!({"message": message, "stream": stream}))
            .send()
    };
    let first = send(&a, "order-42", "hello", false).await.expect("first");
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.expect("json");
    // The retry goes to another instance, as a load balancer may send it.
    let retry = send(&b, "order-42", "hello", false).await.expect("retry");
    assert_eq!(retry.status(), 200);
    let retry: Value = retry.json().await.expect("json");
    assert_eq!(retry, first, "the retry answers with the recorded turn");
    // Streamed, the retry replays the recorded answer as events.
    let streamed = send(&b, "order-42", "hello", true)
        .await
        .expect("stream")
        .text()
        .await
        .expect("text");
    assert!(streamed.contains("event: done"), "{streamed}");
    assert!(streamed.contains("echo: hello"), "{streamed}");
    let id = first["conversation_id"].as_str().expect("id");
    assert_eq!(history(&a, id).await, ["hello", "echo: hello"]);
    assert_eq!(a.upstream.requests().len() + b.upstream.requests().len(), 1);

    let reused = send(&a, "order-42", "something else", false)
        .await
        .expect("reused");
    assert_eq!(reused.status(), 422);
    let reused: Value = reused.json().await.expect("json");
    assert_eq!(reused["error"]["type"], "idempotency_key_reused");

    let bad = send(&a, "has space", "hello", false).await.expect("bad");
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.expect("json");
    assert_eq!(bad["error"]["type"], "invalid_header");

    // Chat completions with a conversation: the same holds.
    let complete = |server: &TestServer| {
        server
            .http
            .post(server.url("/v1/chat/completions"))
            .header("Idempotency-Key", "chat-1")
            .header("X-Conversation-Id", "chat")
            .json(&json!({"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let one: Value = complete(&a).await.expect("one").json().await.expect("json");
    let two: Value = complete(&b).await.expect("two").json().await.expect("json");
    assert_eq!(one["choices"], two["choices"]);
    assert_eq!(history(&a, "chat").await, ["hi", "echo: hi"]);
}

/// The real binary, killed with SIGKILL in the middle of a turn, blocks that conversation
/// for at most its (short, default) lease; another instance then serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_blocks_its_conversation_for_at_most_one_lease() {
    let redis = RedisServer::start().await.expect("redis");
    let slow = FakeUpstream::start_with(UpstreamOptions {
        latency: Duration::from_secs(60),
        record: true,
        ..UpstreamOptions::default()
    })
    .await
    .expect("upstream");
    let config = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(
        config.path(),
        format!(
            r#"
[server]
port = 0

[memory]
redis_url = "{}"

[providers.openai]
base_url = "{}"
api_key = "sk-test-secret"

[[agents]]
name = "assistant"
type = "conversation"
model = "fake-model"
"#,
            redis.url(),
            slow.base_url()
        ),
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_arshai"))
        .args(["serve", "--config"])
        .arg(config.path())
        .env("ARSHAI_LOG_FORMAT", "json")
        .env_remove("REDIS_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("line") {
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && event["message"] == "arshai is serving"
            {
                return event["address"].as_str().expect("address").to_owned();
            }
        }
        panic!("the binary exited before serving");
    })
    .await
    .expect("serving within 30 s");
    let doomed = tokio::spawn(
        reqwest::Client::new()
            .post(format!("http://{address}/v1/agents/assistant/messages"))
            .json(&json!({"conversation_id": "crashed", "message": "lost"}))
            .send(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the turn never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("exited");
    let killed = Instant::now();
    assert!(
        doomed.await.expect("task").is_err(),
        "the client lost its turn"
    );

    let upstream = FakeUpstream::start().await.expect("upstream");
    let mut settings = settings_for(&upstream);
    settings.memory.redis_url = Some(redis.url());
    let survivor = TestServer::start_with(upstream, settings).await;
    let (status, reply) = survivor
        .post(
            "assistant",
            json!({"conversation_id": "crashed", "message": "after"}),
        )
        .await;
    let blocked = killed.elapsed();
    assert_eq!(status, 200, "{reply}");
    println!("blocked {blocked:?} after the kill");
    assert!(
        blocked <= Duration::from_millis(5_800),
        "blocked {blocked:?}; the default lease is 5 s"
    );
    assert_eq!(
        history(&survivor, "crashed").await,
        ["after", "echo: after"]
    );
}
