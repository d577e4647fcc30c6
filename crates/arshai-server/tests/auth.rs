//! API keys: missing, wrong and other tenants' keys; tenants never see each other's
//! conversations.

mod support;

use arshai_server::auth::hash_key;
use arshai_server::settings::{ApiKeySettings, AuthSettings};
use arshai_testkit::FakeUpstream;
use serde_json::{Value, json};
use support::{TestServer, settings_for};

const ACME_KEY: &str = "acme-secret-key-1";
const GLOBEX_KEY: &str = "globex-secret-key-2";
const LIMITED_KEY: &str = "limited-secret-key-3";

async fn server_with_auth() -> TestServer {
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = settings_for(&upstream);
    settings.auth = AuthSettings {
        enabled: true,
        keys: vec![
            ApiKeySettings {
                tenant: "acme".to_owned(),
                sha256: None,
                key: Some(ACME_KEY.to_owned()),
                agents: vec![],
                ..Default::default()
            },
            ApiKeySettings {
                tenant: "globex".to_owned(),
                sha256: Some(hash_key(GLOBEX_KEY)),
                key: None,
                agents: vec![],
                ..Default::default()
            },
            ApiKeySettings {
                tenant: "limited".to_owned(),
                sha256: Some(hash_key(LIMITED_KEY)),
                key: None,
                agents: vec!["another-agent".to_owned()],
                ..Default::default()
            },
        ],
        keys_file: None,
    };
    TestServer::start_with(upstream, settings).await
}

async fn post(server: &TestServer, key: Option<&str>, body: Value) -> (u16, String) {
    let mut request = server
        .http
        .post(server.url("/v1/agents/assistant/messages"))
        .json(&body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_401_and_never_echoed() {
    let server = server_with_auth().await;
    let response = server
        .http
        .post(server.url("/v1/agents/assistant/messages"))
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    for wrong in ["nope", "acme-secret-key-", "acme-secret-key-1x", ""] {
        let (status, body) = post(&server, Some(wrong), json!({"message": "hi"})).await;
        assert_eq!(status, 401, "{wrong:?}: {body}");
        assert!(body.contains("unauthorized"), "{body}");
        assert!(wrong.is_empty() || !body.contains(wrong), "{body}");
    }
    // A malformed Authorization header is refused as well.
    let response = server
        .http
        .post(server.url("/v1/agents/assistant/messages"))
        .header("authorization", format!("Basic {ACME_KEY}"))
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        server.upstream.request_count(),
        0,
        "nothing reached the LLM"
    );
    let metrics = server.metrics_text().await;
    assert!(!metrics.contains(ACME_KEY));
}

#[tokio::test]
async fn a_valid_key_works_from_either_header() {
    let server = server_with_auth().await;
    let (status, body) = post(&server, Some(ACME_KEY), json!({"message": "hi"})).await;
    assert_eq!(status, 200, "{body}");
    let response = server
        .http
        .post(server.url("/v1/agents/assistant/messages"))
        .header("x-api-key", GLOBEX_KEY)
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn another_tenants_conversation_is_invisible() {
    let server = server_with_auth().await;
    let (status, _) = post(
        &server,
        Some(ACME_KEY),
        json!({"conversation_id": "shared-id", "message": "acme secret plan"}),
    )
    .await;
    assert_eq!(status, 200);
    // Globex names the same conversation id: it gets its own, empty conversation.
    let (status, _) = post(
        &server,
        Some(GLOBEX_KEY),
        json!({"conversation_id": "shared-id", "message": "what was said?"}),
    )
    .await;
    assert_eq!(status, 200);
    let sent = &server.upstream.requests()[1].body["messages"];
    assert_eq!(
        sent.as_array().unwrap().len(),
        2,
        "system + globex's message only, nothing of acme's: {sent}"
    );
    assert!(!sent.to_string().contains("acme secret plan"));
    // Acme's conversation is intact and did not see globex's turn.
    let (status, _) = post(
        &server,
        Some(ACME_KEY),
        json!({"conversation_id": "shared-id", "message": "continue"}),
    )
    .await;
    assert_eq!(status, 200);
    let sent = server.upstream.requests()[2].body["messages"].to_string();
    assert!(sent.contains("acme secret plan"), "{sent}");
    assert!(!sent.contains("what was said?"), "{sent}");
}

#[tokio::test]
async fn a_key_limited_to_other_agents_is_403() {
    let server = server_with_auth().await;
    let (status, body) = post(&server, Some(LIMITED_KEY), json!({"message": "hi"})).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("forbidden"), "{body}");
    assert_eq!(server.upstream.request_count(), 0);
    // The OpenAI-compatible route names the agent in the body, not the path: refused too.
    let response = server
        .http
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(LIMITED_KEY)
        .json(&json!({"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert_eq!(body["error"]["param"], "model", "{body}");
    assert_eq!(server.upstream.request_count(), 0);
}

#[tokio::test]
async fn health_and_metrics_need_no_key() {
    let server = server_with_auth().await;
    for path in ["/health", "/health/live", "/health/ready", "/metrics"] {
        let response = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn the_rest_of_the_api_is_per_tenant_too() {
    let server = server_with_auth().await;
    let (status, body) = post(
        &server,
        Some(ACME_KEY),
        json!({"conversation_id": "shared-id", "message": "acme only"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let url = server.url("/v1/agents/assistant/conversations/shared-id");
    let read = |key: Option<&'static str>| {
        let mut request = server.http.get(&url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    assert_eq!(read(None).await.unwrap().status(), 401, "no key, no read");
    assert_eq!(
        read(Some(GLOBEX_KEY)).await.unwrap().status(),
        404,
        "another tenant's conversation is absent"
    );
    let own = read(Some(ACME_KEY)).await.unwrap();
    assert_eq!(own.status(), 200);
    let view: Value = own.json().await.unwrap();
    assert_eq!(view["messages"][0]["content"], "acme only");

    let deleted = server
        .http
        .delete(&url)
        .bearer_auth(GLOBEX_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 404, "another tenant cannot delete it");
    assert_eq!(
        read(Some(ACME_KEY)).await.unwrap().status(),
        200,
        "still there"
    );

    let completion = server
        .http
        .post(server.url("/v1/chat/completions"))
        .json(&json!({"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(completion.status(), 401, "chat completions need a key");
    let models = server
        .http
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 401, "listing needs a key");
}
