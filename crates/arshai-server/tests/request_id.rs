//! `X-Request-Id` is accepted, generated when absent or malformed, returned, and sent on the
//! upstream call.

mod support;

use serde_json::json;
use support::TestServer;

async fn turn_with(server: &TestServer, id: Option<&str>) -> reqwest::Response {
    let mut request = server
        .http
        .post(server.url("/v1/agents/assistant/messages"))
        .json(&json!({"message": "hi"}));
    if let Some(id) = id {
        request = request.header("x-request-id", id);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_client_id_is_returned_and_reaches_the_upstream() {
    let server = TestServer::start().await;
    let response = turn_with(&server, Some("trace-0042")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "trace-0042");
    let sent = server.upstream.requests();
    assert_eq!(sent[0].request_id.as_deref(), Some("trace-0042"));
}

#[tokio::test]
async fn an_id_is_generated_when_absent_or_malformed_and_is_the_one_sent_upstream() {
    let server = TestServer::start().await;
    let too_long = "x".repeat(200);
    for (index, id) in [None, Some("has space"), Some(too_long.as_str())]
        .into_iter()
        .enumerate()
    {
        let response = turn_with(&server, id).await;
        assert_eq!(response.status(), 200);
        let returned = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(returned.len(), 32, "{returned}");
        assert_ne!(Some(returned.as_str()), id);
        let sent = server.upstream.requests();
        assert_eq!(sent[index].request_id.as_deref(), Some(returned.as_str()));
    }
}

#[tokio::test]
async fn every_response_carries_an_id_even_errors_and_health() {
    let server = TestServer::start().await;
    for path in ["/health", "/metrics", "/nowhere"] {
        let response = server.http.get(server.url(path)).send().await.unwrap();
        assert!(response.headers().contains_key("x-request-id"), "{path}");
    }
    let response = server
        .http
        .post(server.url("/v1/agents/nobody/messages"))
        .header("x-request-id", "err-1")
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], "err-1");
}
