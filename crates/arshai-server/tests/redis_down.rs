//! With Redis stopped, `/health` and readiness answer 503 with the error and turns answer
//! 503 within the configured Redis timeouts instead of hanging; when Redis returns, both
//! recover without a restart. Real `redis-server`, never a mock.

mod support;

use std::time::Duration;

use arshai::settings::MemoryProvider;
use arshai_testkit::{FakeUpstream, RedisServer};
use serde_json::{Value, json};
use support::{TestServer, settings_for};

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let response = server.http.get(server.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn redis_down_is_reported_and_survived_without_a_restart() {
    let mut redis = RedisServer::start().await.expect("redis-server starts");
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = settings_for(&upstream);
    settings.memory.memory_provider = Some(MemoryProvider::Redis);
    settings.memory.redis_url = Some(redis.url());
    settings.memory.redis_connect_timeout_seconds = 0.5;
    settings.memory.redis_response_timeout_seconds = 0.5;
    // Far above the Redis bounds: a 504 here would mean the turn hung until the deadline.
    settings.server.request_timeout_seconds = 60.0;
    let server = TestServer::start_with(upstream, settings).await;

    let (status, body) = server
        .post(
            "assistant",
            json!({"conversation_id": "r1", "message": "before"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get(&server, "/health").await,
        (200, json!({"status": "healthy"}))
    );

    redis.kill().await.unwrap();
    let (status, body) = get(&server, "/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert!(!body["error"].as_str().unwrap().is_empty(), "{body}");
    let (status, body) = get(&server, "/health/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(get(&server, "/health/live").await.0, 200);

    let (status, body) = server
        .post(
            "assistant",
            json!({"conversation_id": "r1", "message": "during"}),
        )
        .await;
    assert_eq!(
        status, 503,
        "answered by the Redis bound, not the request deadline: {body}"
    );
    assert_eq!(body["error"]["type"], "memory_unavailable", "{body}");
    let metrics = server.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("arshai_memory_operation_errors_total{backend=\"redis\"")),
        "{metrics}"
    );

    redis.restart().await.unwrap();
    let mut healthy = false;
    for _ in 0..300 {
        if get(&server, "/health").await.0 == 200 {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "/health recovers once Redis is back");
    assert_eq!(get(&server, "/health/ready").await.0, 200);
    let (status, body) = server
        .post(
            "assistant",
            json!({"conversation_id": "r2", "message": "after"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}
