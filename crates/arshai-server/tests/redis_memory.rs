//! The server on Redis memory: two instances share conversations, `/health` is a real PING
//! round trip, and an outage is answered with 503 without leaking credentials.

mod support;

use arshai_testkit::{FakeUpstream, RedisServer};
use serde_json::json;
use support::{TestServer, settings_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_conversations_and_health_follows_redis() -> anyhow::Result<()> {
    let mut redis = RedisServer::start_with(&["--requirepass", "s3cret-pw"]).await?;
    let url = format!("redis://:s3cret-pw@127.0.0.1:{}", redis.port());
    let start = |url: String| async move {
        let upstream = FakeUpstream::start().await.expect("upstream");
        let mut settings = settings_for(&upstream);
        settings.memory.redis_url = Some(url);
        settings.memory.redis_response_timeout_seconds = 1.0;
        TestServer::start_with(upstream, settings).await
    };
    let a = start(url.clone()).await;
    let b = start(url).await;
    assert_eq!(a.state.memory.backend(), "redis");

    let (status, first) = a
        .post(
            "assistant",
            json!({"conversation_id": "shared", "message": "I am Ada."}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = b
        .post(
            "assistant",
            json!({"conversation_id": "shared", "message": "Who am I?"}),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    let sent = &b.upstream.requests()[0].body["messages"];
    assert_eq!(sent[1]["content"], "I am Ada.", "instance B sees A's turn");
    assert_eq!(sent[2]["content"], "echo: I am Ada.");

    let health = a.http.get(a.url("/health")).send().await?;
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await?,
        json!({"status": "healthy"})
    );

    redis.kill().await?;
    let health = a.http.get(a.url("/health")).send().await?;
    assert_eq!(health.status(), 503);
    let body = health.text().await?;
    assert!(body.contains("unhealthy"), "{body}");
    assert!(!body.contains("s3cret-pw"), "no credentials in {body}");
    let (status, error) = b
        .post(
            "assistant",
            json!({"conversation_id": "shared", "message": "still there?"}),
        )
        .await;
    assert_eq!(status, 503, "{error}");
    assert!(!error.to_string().contains("s3cret-pw"));

    redis.restart().await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let health = a.http.get(a.url("/health")).send().await?;
        if health.status() == 200 {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "never healthy again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}
