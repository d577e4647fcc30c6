//! Agent types chosen by name in the TOML settings and served over HTTP: a
//! `working_memory` agent keeps a revised memory of each conversation, visible in
//! `GET …/conversations/{id}`, and sends only its history window.

mod support;

use std::io::Write;

use arshai_server::AppState;
use arshai_server::settings::Settings;
use arshai_testkit::{FakeUpstream, UpstreamOptions};
use serde_json::{Value, json};
use support::{TestServer, sample};

#[tokio::test]
async fn a_working_memory_agent_declared_in_toml_keeps_its_memory() {
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        record: true,
        ..UpstreamOptions::default()
    })
    .await
    .unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        r#"
[providers.openai]
base_url = "{}"
api_key = "sk-test"

[[agents]]
name = "notes"
type = "working_memory"
system_prompt = "Be brief."
history_messages = 2
memory_every_turns = 1
"#,
        upstream.base_url()
    )
    .unwrap();
    let settings = Settings::load(Some(file.path())).unwrap();
    let state = AppState::from_settings(settings).await.unwrap();
    let server = TestServer::start_state(upstream, state).await;

    let (status, body) = server
        .post(
            "notes",
            json!({"conversation_id": "ada", "message": "I am Ada."}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The fake upstream echoes: the answer, then the revision of the (empty) memory.
    assert_eq!(server.upstream.request_count(), 2);
    let conversation: Value = server
        .http
        .get(server.url("/v1/agents/notes/conversations/ada"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let memory = conversation["working_memory"].as_str().unwrap();
    assert!(memory.contains("User: I am Ada."), "{conversation}");

    for n in 0..2 {
        let (status, _) = server
            .post(
                "notes",
                json!({"conversation_id": "ada", "message": format!("turn {n}")}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let requests = server.upstream.requests();
    let last_answer = &requests[requests.len() - 2].body["messages"];
    let sent: Vec<&str> = last_answer
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        sent.len(),
        4,
        "system, 2 history messages, the new one: {sent:?}"
    );
    assert!(sent[0].starts_with("Be brief.") && sent[0].contains("What you know"));
    assert_eq!(sent[3], "turn 1");

    let metrics = server.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            "arshai_requests_total{agent_type=\"working_memory\",status=\"200\"}"
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn memory_settings_need_the_working_memory_type() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        r#"
[[agents]]
name = "plain"
type = "conversation"
memory_every_turns = 2
"#
    )
    .unwrap();
    let error = Settings::load(Some(file.path())).unwrap_err().to_string();
    assert!(error.contains("working_memory"), "{error}");
}
