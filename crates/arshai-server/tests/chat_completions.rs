//! The OpenAI-compatible API over real HTTP: responses deserialize into strict mirrors of
//! OpenAI's schema, streaming included.

mod support;

use arshai_testkit::Reply;
use serde_json::{Value, json};
use support::TestServer;
use support::openai::{
    ChatCompletion, ChatCompletionChunk, ErrorBody, FinishReason, Model, ModelList, UsageField,
};
use support::sse::parse_strict;

async fn complete(
    server: &TestServer,
    body: Value,
    conversation: Option<&str>,
) -> reqwest::Response {
    let mut request = server
        .http
        .post(server.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(id) = conversation {
        request = request.header("x-conversation-id", id);
    }
    request.send().await.expect("request completes")
}

async fn completion(
    server: &TestServer,
    body: Value,
    conversation: Option<&str>,
) -> ChatCompletion {
    let response = complete(server, body, conversation).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The chunks of a streamed completion; asserts the stream ends with `data: [DONE]`.
async fn chunks(server: &TestServer, body: Value) -> Vec<ChatCompletionChunk> {
    let response = complete(server, body, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    let parsed = parse_strict(&response.bytes().await.unwrap());
    let (done, frames) = parsed.frames.split_last().expect("frames");
    assert_eq!(done.data, "[DONE]");
    assert!(
        parsed.frames.iter().all(|f| f.event.is_none()),
        "OpenAI frames have no event name"
    );
    frames
        .iter()
        .map(|f| serde_json::from_str(&f.data).unwrap_or_else(|e| panic!("{e}: {}", f.data)))
        .collect()
}

fn hello() -> Value {
    json!({"model": "assistant", "messages": [{"role": "user", "content": "Hello there, friend"}]})
}

async fn openai_error(response: reqwest::Response, status: u16) -> ErrorBody {
    assert_eq!(response.status(), status);
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn a_completion_has_openai_s_shape_and_the_agent_s_system_prompt() {
    let server = TestServer::start().await;
    let completion = completion(&server, hello(), None).await;
    assert!(completion.id.starts_with("chatcmpl-"));
    assert_eq!(completion.model, "assistant");
    assert_eq!(completion.choices.len(), 1);
    let choice = &completion.choices[0];
    assert_eq!(choice.index, 0);
    assert_eq!(choice.finish_reason, FinishReason::Stop);
    assert_eq!(
        choice.message.content.as_deref(),
        Some("echo: Hello there, friend")
    );
    let usage = &completion.usage;
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    let sent = &server.upstream.requests()[0].body["messages"];
    assert_eq!(
        sent,
        &json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello there, friend"},
        ])
    );
}

#[tokio::test]
async fn a_streamed_completion_equals_the_plain_one_without_usage() {
    let server = TestServer::start().await;
    let plain = completion(&server, hello(), None).await;
    let mut body = hello();
    body["stream"] = json!(true);
    let chunks = chunks(&server, body).await;
    assert!(chunks.len() >= 3, "role, content…, finish");
    let id = &chunks[0].id;
    assert!(chunks.iter().all(|c| &c.id == id && c.model == "assistant"));
    assert!(chunks.iter().all(|c| c.usage == UsageField::Absent));
    assert!(chunks[0].choices[0].delta.role.is_some());
    let text: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|choice| choice.delta.content.clone())
        .collect();
    assert_eq!(Some(text), plain.choices[0].message.content);
    let finishes: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|choice| choice.finish_reason)
        .collect();
    assert_eq!(finishes, [FinishReason::Stop]);
    assert!(chunks.last().unwrap().choices[0].finish_reason.is_some());
}

#[tokio::test]
async fn a_streamed_completion_with_include_usage_ends_with_a_usage_chunk() {
    let server = TestServer::start().await;
    let plain = completion(&server, hello(), None).await;
    let mut body = hello();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let chunks = chunks(&server, body).await;
    let (last, rest) = chunks.split_last().unwrap();
    assert!(last.choices.is_empty(), "the usage chunk has no choices");
    assert_eq!(last.usage, UsageField::Present(plain.usage.clone()));
    assert!(
        rest.iter()
            .all(|c| c.usage == UsageField::Null && c.choices.len() == 1)
    );
}

#[tokio::test]
async fn without_a_conversation_header_turns_are_stateless() {
    let server = TestServer::start().await;
    let history = json!({"model": "assistant", "messages": [
        {"role": "system", "content": "Caller rules."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "reply one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
    ]});
    completion(&server, history, None).await;
    completion(&server, hello(), None).await;
    let requests = server.upstream.requests();
    assert_eq!(
        requests[0].body["messages"],
        json!([
            {"role": "system", "content": "You are terse."},
            {"role": "system", "content": "Caller rules."},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "reply one"},
            {"role": "user", "content": "two"},
        ])
    );
    assert_eq!(requests[1].body["messages"].as_array().unwrap().len(), 2);
    assert_eq!(server.state.memory.conversation_count().await.unwrap(), 0);
}

#[tokio::test]
async fn x_conversation_id_carries_memory_across_two_calls() {
    let server = TestServer::start().await;
    let say =
        |text: &str| json!({"model": "assistant", "messages": [{"role": "user", "content": text}]});
    let response = complete(&server, say("My name is Ada."), Some("oa-1")).await;
    assert_eq!(response.headers()["x-conversation-id"], "oa-1");
    let _: ChatCompletion = response.json().await.unwrap();
    let mut second = say("What is my name?");
    second["stream"] = json!(true);
    let response = complete(&server, second, Some("oa-1")).await;
    assert_eq!(response.status(), 200);
    parse_strict(&response.bytes().await.unwrap());
    let requests = server.upstream.requests();
    assert_eq!(
        requests[1].body["messages"],
        json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "echo: My name is Ada."},
            {"role": "user", "content": "What is my name?"},
        ])
    );
    let stored: Value = server
        .http
        .get(server.url("/v1/agents/assistant/conversations/oa-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["messages"].as_array().unwrap().len(), 4);
    assert_eq!(stored["version"], 2);
}

#[tokio::test]
async fn an_unknown_model_is_a_404_openai_error() {
    let server = TestServer::start().await;
    let mut body = hello();
    body["model"] = json!("gpt-nobody");
    let error = openai_error(complete(&server, body, None).await, 404).await;
    assert_eq!(error.error.kind, "invalid_request_error");
    assert_eq!(error.error.code.as_deref(), Some("model_not_found"));
    assert_eq!(error.error.param.as_deref(), Some("model"));
    assert!(error.error.message.contains("gpt-nobody"));
    assert_eq!(server.upstream.request_count(), 0);
}

#[tokio::test]
async fn malformed_bodies_are_400_openai_errors() {
    let server = TestServer::start().await;
    let response = server
        .http
        .post(server.url("/v1/chat/completions"))
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    let error = openai_error(response, 400).await;
    assert_eq!(error.error.code.as_deref(), Some("invalid_json"));
    for (body, param) in [
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            None,
        ),
        (json!({"model": "assistant"}), None),
        (json!({"model": "assistant", "messages": "hi"}), None),
        (
            json!({"model": "assistant", "messages": []}),
            Some("messages"),
        ),
        (
            json!({"model": "assistant", "messages": [{"role": "wizard", "content": "x"}]}),
            Some("messages"),
        ),
        (
            json!({"model": "assistant", "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "x"}}]}]}),
            Some("messages"),
        ),
        (
            json!({"model": "assistant", "messages": [{"role": "user", "content": "x"}], "n": 9}),
            Some("n"),
        ),
        (
            json!({"model": "assistant", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}),
            Some("tools"),
        ),
        (
            json!({"model": "assistant", "messages": [{"role": "user", "content": "  "}]}),
            None,
        ),
    ] {
        let error = openai_error(complete(&server, body.clone(), None).await, 400).await;
        assert_eq!(error.error.kind, "invalid_request_error", "{body}");
        assert_eq!(error.error.param.as_deref(), param, "{body}");
    }
    let error = openai_error(complete(&server, hello(), Some("")).await, 400).await;
    assert!(
        error.error.message.contains("X-Conversation-Id"),
        "{}",
        error.error.message
    );
    assert_eq!(server.upstream.request_count(), 0);
}

#[tokio::test]
async fn upstream_failures_are_openai_errors_before_and_during_the_stream() {
    let server = TestServer::start().await;
    server.upstream.push(Reply::status(401));
    let error = openai_error(complete(&server, hello(), None).await, 502).await;
    assert_eq!(error.error.kind, "server_error");
    assert_eq!(error.error.code.as_deref(), Some("upstream_auth"));

    server
        .upstream
        .push(Reply::text("one two three four five").disconnect_after(3));
    let mut body = hello();
    body["stream"] = json!(true);
    let response = complete(&server, body, None).await;
    assert_eq!(response.status(), 200);
    let parsed = parse_strict(&response.bytes().await.unwrap());
    let (last, rest) = parsed.frames.split_last().unwrap();
    let error: ErrorBody = serde_json::from_str(&last.data).unwrap();
    assert_eq!(error.error.kind, "server_error");
    assert!(
        rest.iter().all(|f| f.data != "[DONE]"),
        "no [DONE] after an error"
    );
    for frame in rest {
        let _: ChatCompletionChunk = serde_json::from_str(&frame.data).unwrap();
    }
}

#[tokio::test]
async fn models_lists_the_agents() {
    let server = TestServer::start().await;
    let list: ModelList = server
        .http
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list.data.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["assistant"]);
    let model: Model = server
        .http
        .get(server.url("/v1/models/assistant"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(model.owned_by, "arshai");
    let response = server
        .http
        .get(server.url("/v1/models/nobody"))
        .send()
        .await
        .unwrap();
    let error = openai_error(response, 404).await;
    assert_eq!(error.error.code.as_deref(), Some("model_not_found"));
}
