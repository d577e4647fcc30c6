//! Every bad input gets a specific status and a JSON error, and loses nothing.

mod support;

use std::time::Duration;

use arshai_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};
use support::{TestServer, settings_for};

fn error_type(body: &Value) -> &str {
    body["error"]["type"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn malformed_json_is_400() {
    let server = TestServer::start().await;
    let response = server.post_raw("assistant", "{\"message\": ").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_type(&body), "invalid_json");
    assert!(body["error"]["message"].as_str().unwrap().contains("JSON"));
    assert_eq!(server.upstream.request_count(), 0);
}

#[tokio::test]
async fn wrong_shapes_are_422() {
    let server = TestServer::start().await;
    for body in [json!({}), json!({"message": 5}), json!([1, 2])] {
        let (status, answer) = server.post("assistant", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert_eq!(error_type(&answer), "invalid_request");
    }
}

#[tokio::test]
async fn an_empty_message_is_422() {
    let server = TestServer::start().await;
    for message in ["", "   \n"] {
        let (status, body) = server.post("assistant", json!({"message": message})).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("empty"));
    }
    assert_eq!(server.upstream.request_count(), 0);
}

#[tokio::test]
async fn an_invalid_conversation_id_is_422() {
    let server = TestServer::start().await;
    for id in [
        json!(""),
        json!("x".repeat(257)),
        json!("a\u{0}b"),
        json!(42),
    ] {
        let (status, body) = server
            .post("assistant", json!({"conversation_id": id, "message": "hi"}))
            .await;
        assert_eq!(status, 422, "{id} -> {body}");
        assert_eq!(error_type(&body), "invalid_request");
    }
    assert_eq!(server.upstream.request_count(), 0);
}

#[tokio::test]
async fn an_unknown_agent_is_404() {
    let server = TestServer::start().await;
    let (status, body) = server.post("nobody", json!({"message": "hi"})).await;
    assert_eq!(status, 404);
    assert_eq!(error_type(&body), "unknown_agent");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nobody")
    );
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(server.url("/v2/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_type(&body), "not_found");
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = settings_for(&upstream);
    settings.server.max_body_bytes = 1024;
    let server = TestServer::start_with(upstream, settings).await;
    let big = json!({"message": "x".repeat(4096)}).to_string();
    let response = server.post_raw("assistant", big).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_type(&body), "body_too_large");
    assert_eq!(server.upstream.request_count(), 0);
}

#[tokio::test]
async fn an_upstream_failure_is_502_and_records_nothing() {
    let server = TestServer::start().await;
    server.upstream.push(Reply::status(500));
    let (status, body) = server
        .post(
            "assistant",
            json!({"conversation_id": "c1", "message": "hi"}),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(error_type(&body), "upstream_error");

    // The failed turn left no half-written history: the next turn starts clean.
    let (status, _) = server
        .post(
            "assistant",
            json!({"conversation_id": "c1", "message": "again"}),
        )
        .await;
    assert_eq!(status, 200);
    let sent = &server.upstream.requests()[1].body["messages"];
    assert_eq!(
        sent.as_array().unwrap().len(),
        2,
        "system + the new message only: {sent}"
    );
}

#[tokio::test]
async fn malformed_upstream_json_is_502() {
    let server = TestServer::start().await;
    server.upstream.push(Reply::Malformed);
    let (status, body) = server.post("assistant", json!({"message": "hi"})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(error_type(&body), "upstream_decode");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("openai")
    );
}

#[tokio::test]
async fn an_upstream_timeout_is_504() {
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = settings_for(&upstream);
    settings.providers.http.request_timeout_seconds = 0.2;
    let server = TestServer::start_with(upstream, settings).await;
    server
        .upstream
        .push(Reply::text("late").delayed(Duration::from_secs(3)));
    let (status, body) = server.post("assistant", json!({"message": "hi"})).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(error_type(&body), "upstream_timeout");
}

#[tokio::test]
async fn an_upstream_rate_limit_is_503_with_retry_after() {
    let server = TestServer::start().await;
    server.upstream.push(Reply::status_retry_after(429, "7"));
    let response = server
        .post_raw("assistant", json!({"message": "hi"}).to_string())
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_type(&body), "upstream_rate_limited");
}

#[tokio::test]
async fn upstream_auth_failures_are_502_and_never_leak_the_key() {
    let server = TestServer::start().await;
    server.upstream.push(Reply::status(401));
    let response = server
        .post_raw("assistant", json!({"message": "hi"}).to_string())
        .await;
    assert_eq!(response.status(), 502);
    let text = response.text().await.unwrap();
    assert!(text.contains("upstream_auth"), "{text}");
    assert!(!text.contains("sk-test-secret"), "{text}");
}

#[tokio::test]
async fn an_unreachable_upstream_is_502() {
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = settings_for(&upstream);
    // A port nobody listens on: bind one, note it, and free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    settings.providers.openai.base_url = Some(format!("http://{closed}/v1"));
    let server = TestServer::start_with(upstream, settings).await;
    let (status, body) = server.post("assistant", json!({"message": "hi"})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(error_type(&body), "upstream_unreachable");
}

#[tokio::test]
async fn path_segments_that_are_not_utf8_are_a_json_400() {
    let server = TestServer::start().await;
    for (method, path) in [
        ("GET", "/v1/agents/assistant/conversations/%FF"),
        ("POST", "/v1/agents/%FF/messages"),
        ("GET", "/v1/models/%FF"),
    ] {
        let request = match method {
            "GET" => server.http.get(server.url(path)),
            _ => server
                .http
                .post(server.url(path))
                .header("content-type", "application/json")
                .body(json!({"message": "hi"}).to_string()),
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 400, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_type(&body), "invalid_path", "{method} {path}: {body}");
    }
    assert_eq!(
        server.upstream.request_count(),
        0,
        "nothing reached the model"
    );
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405() {
    let server = TestServer::start().await;
    for (method, path) in [
        (reqwest::Method::GET, "/v1/chat/completions"),
        (reqwest::Method::DELETE, "/v1/agents"),
        (reqwest::Method::PUT, "/v1/agents/assistant/messages"),
    ] {
        let response = server
            .http
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_type(&body), "method_not_allowed", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(method.as_str()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_415_and_records_nothing() {
    let server = TestServer::start().await;
    let response = server
        .http
        .post(server.url("/v1/agents/assistant/messages"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(json!({"message": "hi"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_type(&body), "unsupported_media_type", "{body}");
    assert_eq!(server.upstream.request_count(), 0);
    // Without a Content-Type the body is read as JSON (curl-style clients).
    let response = server
        .http
        .post(server.url("/v1/agents/assistant/messages"))
        .body(json!({"message": "hi"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
