//! Reading, deleting and listing over real HTTP: `GET /v1/agents`,
//! `GET|DELETE /v1/agents/{agent}/conversations/{id}`.

mod support;

use serde_json::{Value, json};
use support::TestServer;

async fn call(server: &TestServer, method: reqwest::Method, path: &str) -> (u16, Value) {
    let response = server
        .http
        .request(method, server.url(path))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body)
}

#[tokio::test]
async fn agents_are_listed_with_their_type() {
    let server = TestServer::start().await;
    let (status, body) = call(&server, reqwest::Method::GET, "/v1/agents").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"agents": [{"name": "assistant", "type": "conversation"}]})
    );
}

#[tokio::test]
async fn a_conversation_can_be_read_and_deleted() {
    let server = TestServer::start().await;
    let (status, _) = server
        .post(
            "assistant",
            json!({"conversation_id": "c:{1}", "message": "hi"}),
        )
        .await;
    assert_eq!(status, 200);
    let path = "/v1/agents/assistant/conversations/c:%7B1%7D";
    let (status, body) = call(&server, reqwest::Method::GET, path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["conversation_id"], "c:{1}");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "echo: hi"},
        ])
    );
    assert_eq!(body["working_memory"], Value::Null);
    assert_eq!(body["metadata"], json!({}));
    assert_eq!(body["version"], 1);
    assert!(body["created_at_ms"].as_u64().unwrap() > 0);
    assert!(body["updated_at_ms"].as_u64().unwrap() >= body["created_at_ms"].as_u64().unwrap());

    let (status, body) = call(&server, reqwest::Method::DELETE, path).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = call(&server, reqwest::Method::GET, path).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "conversation_not_found");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("no conversation has the id \"")
            && !message.contains("ConversationId("),
        "the id as the client wrote it: {message}"
    );
    let (status, body) = call(&server, reqwest::Method::DELETE, path).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "conversation_not_found");
}

#[tokio::test]
async fn unknown_agents_and_bad_ids_are_refused() {
    let server = TestServer::start().await;
    let (status, body) = call(
        &server,
        reqwest::Method::GET,
        "/v1/agents/nobody/conversations/x",
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "unknown_agent");
    let (status, body) = call(
        &server,
        reqwest::Method::DELETE,
        "/v1/agents/nobody/conversations/x",
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "unknown_agent");
    let long = "x".repeat(257);
    let (status, body) = call(
        &server,
        reqwest::Method::GET,
        &format!("/v1/agents/assistant/conversations/{long}"),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["type"], "invalid_request");
    let (status, _) = call(
        &server,
        reqwest::Method::GET,
        "/v1/agents/assistant/conversations/a%0Ab",
    )
    .await;
    assert_eq!(status, 422);
}
