//! An agent calling another agent as a tool passes the caller's context, over real HTTP on
//! the fake upstream: the inner agent's model call carries the caller's request id, and the
//! inner turn's tokens are part of the outer turn's usage, so the caller's budget is
//! charged with them. (That the inner turn runs in the caller's tenant is tested next to
//! the tool, `agent::tools::agent_tool`.)

mod support;

use std::io::Write;
use std::time::Duration;

use arshai_server::AppState;
use arshai_server::settings::{ApiKeySettings, AuthSettings, Settings};
use arshai_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};
use support::TestServer;

const KEY: &str = "sk-acme-lead";

const AGENTS: &str = r#"
[[agents]]
name = "lead"
type = "conversation"
model = "fake-model"
system_prompt = "You lead."
tools = [{ agent = "researcher" }]

[[agents]]
name = "researcher"
type = "conversation"
model = "fake-model"
system_prompt = "You research."
"#;

fn settings(upstream: &FakeUpstream) -> Settings {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    write!(
        file,
        "[providers.openai]\nbase_url = \"{}\"\napi_key = \"sk-test\"\n\n{AGENTS}",
        upstream.base_url()
    )
    .expect("write");
    let mut settings = Settings::load(Some(file.path())).expect("settings load");
    settings.auth = AuthSettings {
        enabled: true,
        keys: vec![ApiKeySettings {
            tenant: "acme".to_owned(),
            key: Some(KEY.to_owned()),
            id: Some("acme-lead".to_owned()),
            tokens_per_day: Some(1_000_000),
            ..Default::default()
        }],
        keys_file: None,
    };
    settings
}

/// The fake upstream's prompt tokens for one request: one per 4 bytes of its messages' JSON
/// (arshai-testkit's wire.rs).
fn prompt_tokens(request: &Value) -> u64 {
    (request["messages"].to_string().len() as u64)
        .div_ceil(4)
        .max(1)
}

/// The key's settled daily usage, once it is `expected` (a settle lands when the response
/// body has been sent, so it is polled, for at most 10 s).
async fn settled_usage(server: &TestServer, expected: u64) -> u64 {
    let mut used = 0;
    for _ in 0..100 {
        let usage: Value = server
            .http
            .get(server.url("/v1/usage"))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("JSON");
        used = usage["budgets"][0]["used"].as_u64().unwrap_or(0);
        if used == expected && usage["budgets"][0]["reserved"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    used
}

#[tokio::test]
async fn an_agent_tool_carries_the_callers_request_id_and_its_tokens_count_for_the_caller() {
    let upstream = FakeUpstream::start().await.expect("upstream");
    let settings = settings(&upstream);
    let state = AppState::from_settings(settings)
        .await
        .expect("state builds");
    let server = TestServer::start_state(upstream, state).await;
    server.upstream.push(Reply::tool_call(
        "researcher",
        r#"{"message": "facts about otters"}"#,
    ));
    let response = server
        .http
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-request-id", "req-outer-1")
        .json(&json!({"model": "lead", "messages": [
            {"role": "user", "content": "tell me about otters"}]}))
        .send()
        .await
        .expect("request completes");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: tell me about otters"
    );

    let requests = server.upstream.requests();
    assert_eq!(requests.len(), 3, "lead, researcher, lead");
    assert_eq!(
        requests[1].body["messages"][1]["content"],
        "facts about otters"
    );
    for request in &requests {
        assert_eq!(request.request_id.as_deref(), Some("req-outer-1"));
    }
    // The researcher's prompt tokens are part of the lead's usage.
    let prompts: u64 = requests.iter().map(|r| prompt_tokens(&r.body)).sum();
    assert_eq!(body["usage"]["prompt_tokens"], prompts, "{body}");
    let total = body["usage"]["total_tokens"].as_u64().expect("total");
    assert_eq!(
        total,
        prompts
            + body["usage"]["completion_tokens"]
                .as_u64()
                .expect("completion")
    );
    // And the key's budget is charged with all of it.
    assert_eq!(settled_usage(&server, total).await, total);
}
