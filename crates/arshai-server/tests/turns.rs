//! One agent turn end to end over real HTTP, with memory, against the fake upstream.

mod support;

use serde_json::json;
use support::TestServer;

#[tokio::test]
async fn a_multi_turn_conversation_remembers_earlier_turns() {
    let server = TestServer::start().await;

    let (status, first) = server
        .post("assistant", json!({"message": "My name is Ada."}))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["reply"], "echo: My name is Ada.");
    let id = first["conversation_id"]
        .as_str()
        .expect("an id is generated")
        .to_owned();
    assert!(!id.is_empty());
    assert!(first["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let (status, second) = server
        .post(
            "assistant",
            json!({"conversation_id": id, "message": "What is my name?"}),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["conversation_id"], id.as_str());

    let requests = server.upstream.requests();
    assert_eq!(requests.len(), 2);
    let sent = &requests[1].body["messages"];
    assert_eq!(
        sent,
        &json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "echo: My name is Ada."},
            {"role": "user", "content": "What is my name?"},
        ]),
        "the upstream receives the whole history"
    );
    assert_eq!(requests[1].body["model"], "fake-model");
    assert_eq!(
        requests[1].authorization.as_deref(),
        Some("Bearer sk-test-secret")
    );
}

#[tokio::test]
async fn a_client_chosen_conversation_id_is_used_and_kept_apart() {
    let server = TestServer::start().await;
    for (id, text) in [("alpha", "one"), ("beta:{x}", "two"), ("alpha", "three")] {
        let (status, body) = server
            .post("assistant", json!({"conversation_id": id, "message": text}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["conversation_id"], id);
    }
    let last = &server.upstream.requests()[2].body["messages"];
    let contents: Vec<&str> = last
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        ["You are terse.", "one", "echo: one", "three"],
        "beta's turn does not leak into alpha"
    );
}

#[tokio::test]
async fn health_reports_healthy_with_the_seed_body() {
    let server = TestServer::start().await;
    let response = server.http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "healthy"}));
}
