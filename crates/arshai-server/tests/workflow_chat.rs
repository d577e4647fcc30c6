//! A workflow called by name through `/v1/chat/completions`, over real HTTP with its agents
//! on the fake upstream: the last user message is its input, its output the assistant's
//! message, its usage the sum of its agent nodes'; streamed as chat chunks; parameters a
//! workflow cannot honour refused naming them; a conversation passed to the run; and the
//! official OpenAI Python SDK on top (when `OPENAI_SDK_TEST_PYTHON` names a Python with it).

mod support;

use std::time::Duration;

use arshai_server::settings::Settings;
use arshai_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};
use support::TestServer;
use support::sse::parse_strict;

const CONFIG: &str = r#"
[providers.openai]
base_url = "UPSTREAM"
api_key = "sk-test-secret"

[providers.retry]
max_retries = 0

[[agents]]
name = "triage"
type = "conversation"
model = "fake-model"
system_prompt = "Answer billing or general."

[[agents]]
name = "billing"
type = "conversation"
model = "fake-model"
system_prompt = "You are the billing desk."

[[agents]]
name = "general"
type = "conversation"
model = "fake-model"
system_prompt = "You are the front desk."

[[workflows]]
name = "desk"
description = "Triage, then the right desk."
entry = "triage"
output = "/reply"

[[workflows.nodes]]
name = "triage"
agent = "triage"
output = "category"
memory = "none"

[[workflows.nodes]]
name = "billing"
agent = "billing"
output = "reply"

[[workflows.nodes]]
name = "general"
agent = "general"
output = "reply"

[[workflows.edges]]
from = "triage"
to = "billing"
when = { pointer = "/category", equals = "billing" }

[[workflows.edges]]
from = "triage"
to = "general"

[[workflows]]
name = "whole"
output = ""

[[workflows.nodes]]
name = "only"
agent = "general"
output = "answer"
memory = "none"
"#;

fn load(upstream: &FakeUpstream) -> Settings {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("arshai.toml");
    std::fs::write(&path, CONFIG.replace("UPSTREAM", &upstream.base_url())).expect("write");
    Settings::load(Some(&path)).expect("the config loads")
}

async fn server() -> TestServer {
    let upstream = FakeUpstream::start().await.expect("upstream");
    let settings = load(&upstream);
    TestServer::start_with(upstream, settings).await
}

async fn chat(server: &TestServer, body: Value) -> (u16, Value) {
    let response = server
        .http
        .post(server.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("request completes");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// The fake upstream's tokens for one call: one per 4 bytes of the messages' JSON, and of
/// the answer (see arshai-testkit's wire.rs).
fn fake_tokens(request: &Value, answer: &str) -> u64 {
    let approx = |text: &str| (text.len() as u64).div_ceil(4).max(1);
    approx(&request["messages"].to_string()) + approx(answer)
}

#[tokio::test]
async fn a_workflow_answers_a_chat_completion_with_its_output_and_summed_usage() {
    let server = server().await;
    server.upstream.push(Reply::text("billing"));
    let (status, body) = chat(
        &server,
        json!({"model": "desk", "messages": [
            {"role": "system", "content": "ignored by the workflow"},
            {"role": "user", "content": "an earlier question"},
            {"role": "assistant", "content": "an earlier answer"},
            {"role": "user", "content": "I was charged twice"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "desk");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: I was charged twice"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");

    let requests = server.upstream.requests();
    assert_eq!(requests.len(), 2, "triage, then billing");
    // The input is the last user message alone.
    let triage = &requests[0].body["messages"];
    assert_eq!(triage.as_array().map(Vec::len), Some(2), "{triage}");
    assert_eq!(triage[1]["content"], "I was charged twice");
    let expected = fake_tokens(&requests[0].body, "billing")
        + fake_tokens(&requests[1].body, "echo: I was charged twice");
    assert_eq!(body["usage"]["total_tokens"], expected, "{body}");
    assert_eq!(
        body["usage"]["total_tokens"].as_u64(),
        Some(
            body["usage"]["prompt_tokens"].as_u64().unwrap_or(0)
                + body["usage"]["completion_tokens"].as_u64().unwrap_or(0)
        )
    );

    let metrics = server.metrics_text().await;
    assert_eq!(
        support::sample(
            &metrics,
            "arshai_workflow_runs_total{workflow=\"desk\",status=\"ok\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_workflow_with_a_json_output_answers_it_serialized() {
    let server = server().await;
    let (status, body) = chat(
        &server,
        json!({"model": "whole", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .expect("text content");
    let state: Value = serde_json::from_str(content).expect("the state, as JSON");
    assert_eq!(state["answer"], "echo: hi", "{state}");
    assert_eq!(state["input"], "hi", "{state}");
}

#[tokio::test]
async fn a_streamed_workflow_sends_its_answer_as_chunks() {
    let server = server().await;
    server.upstream.push(Reply::text("billing"));
    let response = server
        .http
        .post(server.url("/v1/chat/completions"))
        .json(&json!({"model": "desk", "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "refund"}]}))
        .send()
        .await
        .expect("request completes");
    assert_eq!(response.status(), 200);
    let parsed = parse_strict(&response.bytes().await.expect("body"));
    let (last, chunks) = parsed.frames.split_last().expect("frames");
    assert_eq!(last.data, "[DONE]");
    let chunks: Vec<Value> = chunks
        .iter()
        .map(|frame| serde_json::from_str(&frame.data).expect("a JSON chunk"))
        .collect();
    assert!(
        chunks
            .iter()
            .all(|chunk| chunk["object"] == "chat.completion.chunk" && chunk["model"] == "desk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    // The answer only, as the non-streamed call gives it: the triage node's "billing" is
    // not part of it; the billing desk's reply is streamed as it comes.
    assert_eq!(text, "echo: refund");
    let finish = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["finish_reason"].as_str())
        .collect::<Vec<_>>();
    assert_eq!(finish, ["stop"]);
    let usage = &chunks.last().expect("usage chunk")["usage"];
    assert!(
        usage["total_tokens"].as_u64().is_some_and(|t| t > 0),
        "{usage}"
    );
    assert_eq!(server.upstream.request_count(), 2);
    let metrics = server.metrics_text().await;
    assert_eq!(
        support::sample(
            &metrics,
            "arshai_workflow_runs_total{workflow=\"desk\",status=\"ok\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn parameters_a_workflow_cannot_honour_are_refused_naming_them() {
    let server = server().await;
    let hello = json!([{"role": "user", "content": "hello"}]);
    let tool = json!([{"type": "function", "function": {"name": "f"}}]);
    for (param, value) in [
        ("temperature", json!(0.2)),
        ("tools", tool),
        ("n", json!(2)),
        ("response_format", json!({"type": "json_object"})),
        ("max_tokens", json!(5)),
        ("seed", json!(1)),
    ] {
        let mut body = json!({"model": "desk", "messages": hello});
        body[param] = value;
        let (status, body) = chat(&server, body).await;
        assert_eq!(status, 400, "{param}: {body}");
        assert_eq!(body["error"]["code"], "unsupported_parameter", "{body}");
        assert_eq!(body["error"]["param"], param, "{body}");
    }
    let (status, body) = chat(
        &server,
        json!({"model": "desk", "messages": hello, "frobnicate": true}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "frobnicate", "{body}");
    let (status, body) = chat(
        &server,
        json!({"model": "desk", "messages": [{"role": "system", "content": "x"}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "messages", "{body}");
    // Defaults a workflow does honour are accepted.
    let (status, body) = chat(
        &server,
        json!({"model": "whole", "messages": hello, "n": 1, "logprobs": false,
            "response_format": {"type": "text"}, "store": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        server.upstream.request_count(),
        1,
        "refused requests never reach a model"
    );
    let (status, body) = chat(&server, json!({"model": "nowhere", "messages": hello})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
}

#[tokio::test]
async fn a_conversation_header_passes_the_conversation_to_the_run() {
    let server = server().await;
    for (said, category) in [("I am Ada, refund me", "billing"), ("Who am I?", "billing")] {
        server.upstream.push(Reply::text(category));
        let response = server
            .http
            .post(server.url("/v1/chat/completions"))
            .header("x-conversation-id", "desk-chat")
            .json(&json!({"model": "desk", "messages": [{"role": "user", "content": said}]}))
            .send()
            .await
            .expect("request completes");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-conversation-id"], "desk-chat");
    }
    let requests = server.upstream.requests();
    let sent = &requests[3].body["messages"];
    assert_eq!(sent[1]["content"], "I am Ada, refund me", "{sent}");
    assert_eq!(sent[2]["content"], "echo: I am Ada, refund me", "{sent}");
    assert_eq!(sent[3]["content"], "Who am I?", "{sent}");
    let stored: Value = server
        .http
        .get(server.url("/v1/agents/billing/conversations/desk-chat"))
        .send()
        .await
        .expect("request completes")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        stored["messages"].as_array().map(Vec::len),
        Some(4),
        "{stored}"
    );
}

/// The Python SDK script below, run against the server.
const SDK_SCRIPT: &str = r#"
import sys
import openai
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0, timeout=30)
hello = [{"role": "user", "content": "refund"}]
completion = client.chat.completions.create(model="desk", messages=hello)
assert completion.choices[0].message.content == "echo: refund", completion
assert completion.usage.total_tokens > 0, completion
text = "".join(
    chunk.choices[0].delta.content or ""
    for chunk in client.chat.completions.create(model="desk", messages=hello, stream=True)
    if chunk.choices
)
assert text == "echo: refund", text
try:
    client.chat.completions.create(model="desk", messages=hello, temperature=0.1)
    raise AssertionError("temperature was accepted")
except openai.BadRequestError as error:
    assert error.param == "temperature", error
    assert error.code == "unsupported_parameter", error
print("ok")
"#;

#[tokio::test]
async fn the_openai_python_sdk_calls_a_workflow_by_name() {
    let Ok(python) = std::env::var("OPENAI_SDK_TEST_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "OPENAI_SDK_TEST_PYTHON is not set under CI (scripts/test sets it)"
        );
        eprintln!("OPENAI_SDK_TEST_PYTHON is not set: not running the OpenAI SDK check");
        return;
    };
    let server = server().await;
    server.upstream.push(Reply::text("billing"));
    server.upstream.push(Reply::text("echo: refund"));
    server.upstream.push(Reply::text("billing"));
    let run = tokio::process::Command::new(python)
        .arg("-c")
        .arg(SDK_SCRIPT)
        .arg(server.url("/v1"))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the SDK script finishes")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), "ok");
    assert_eq!(server.upstream.request_count(), 4);
}

#[tokio::test]
async fn a_key_must_be_allowed_the_workflow_it_names() {
    use arshai_server::settings::{ApiKeySettings, AuthSettings};

    let upstream = FakeUpstream::start().await.expect("upstream");
    let mut settings = load(&upstream);
    let key = |tenant: &str, key: &str, agents: &[&str]| ApiKeySettings {
        tenant: tenant.to_owned(),
        key: Some(key.to_owned()),
        agents: agents.iter().map(|name| (*name).to_owned()).collect(),
        ..Default::default()
    };
    settings.auth = AuthSettings {
        enabled: true,
        keys: vec![
            key("acme", "sk-desk", &["desk"]),
            key("acme", "sk-triage-only", &["triage"]),
        ],
        keys_file: None,
    };
    let server = TestServer::start_with(upstream, settings).await;
    let ask = |key: &'static str| {
        server
            .http
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": "desk", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let refused = ask("sk-triage-only").await.expect("request completes");
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert_eq!(body["error"]["param"], "model", "{body}");
    assert_eq!(server.upstream.request_count(), 0);
    let allowed = ask("sk-desk").await.expect("request completes");
    assert_eq!(allowed.status(), 200);
    let anonymous = server
        .http
        .post(server.url("/v1/chat/completions"))
        .json(&json!({"model": "desk", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("request completes");
    assert_eq!(anonymous.status(), 401);
}
