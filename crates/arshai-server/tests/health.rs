//! Health, liveness and readiness; readiness flips the moment draining starts, while
//! in-flight turns still complete.

mod support;

use std::time::Duration;

use arshai_testkit::Reply;
use serde_json::{Value, json};
use support::TestServer;

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let response = server.http.get(server.url(path)).send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn live_and_ready_answer_when_up() {
    let server = TestServer::start().await;
    assert_eq!(
        get(&server, "/health/live").await,
        (200, json!({"status": "alive"}))
    );
    assert_eq!(
        get(&server, "/health/ready").await,
        (200, json!({"status": "ready"}))
    );
    assert_eq!(
        get(&server, "/health").await,
        (200, json!({"status": "healthy"}))
    );
}

#[tokio::test]
async fn readiness_flips_on_drain_while_in_flight_turns_complete() {
    let mut server = TestServer::start().await;
    server
        .upstream
        .push(Reply::text("finished").delayed(Duration::from_millis(800)));
    let in_flight = {
        let http = server.http.clone();
        let url = server.url("/v1/agents/assistant/messages");
        tokio::spawn(async move {
            let response = http
                .post(url)
                .json(&json!({"message": "slow"}))
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };
    while server.upstream.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.begin_shutdown();
    // Draining starts at once: readiness fails, liveness holds, new turns are refused.
    let mut ready = get(&server, "/health/ready").await;
    for _ in 0..100 {
        if ready.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        ready = get(&server, "/health/ready").await;
    }
    assert_eq!(ready, (503, json!({"status": "draining"})));
    assert_eq!(get(&server, "/health/live").await.0, 200);
    let response = server
        .http
        .post(server.url("/v1/agents/assistant/messages"))
        .json(&json!({"message": "too late"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "shutting_down");
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("finished"));
    assert_eq!(
        server.upstream.request_count(),
        1,
        "the refused turn never ran"
    );
}
