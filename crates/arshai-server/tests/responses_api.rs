//! `POST /v1/responses` and `GET /v1/responses/{id}` over real HTTP against the fake
//! upstream, and the official `openai` and `openai-agents` Python SDKs against them
//! (`sdk/responses_sdk.py`, run when `OPENAI_SDK_TEST_PYTHON` names a Python with both).

mod support;

use std::time::Duration;

use arshai_testkit::{FakeUpstream, RedisServer, Reply};
use serde_json::{Value, json};
use support::sse::parse_strict;
use support::{TestServer, settings_for};

async fn create(server: &TestServer, body: Value) -> (u16, Value) {
    let response = server
        .http
        .post(server.url("/v1/responses"))
        .json(&body)
        .send()
        .await
        .expect("request completes");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn retrieve(server: &TestServer, id: &str) -> (u16, Value) {
    let response = server
        .http
        .get(server.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .expect("request completes");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn last_upstream_messages(server: &TestServer) -> Vec<Value> {
    let requests = server.upstream.requests();
    let last = requests.last().expect("the upstream was called");
    last.body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_string_input_is_answered_as_a_stored_response_object() {
    let server = TestServer::start().await;
    server.upstream.push(Reply::text("Hello there."));
    let (status, body) = create(
        &server,
        json!({"model": "assistant", "input": "Hi!", "instructions": "Be kind.",
            "metadata": {"trace": "t1"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "assistant");
    assert_eq!(body["metadata"]["trace"], "t1");
    assert_eq!(body["output"][0]["type"], "message");
    assert_eq!(body["output"][0]["role"], "assistant");
    assert_eq!(body["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(body["output"][0]["content"][0]["text"], "Hello there.");
    assert_eq!(
        body["usage"]["total_tokens"].as_u64().unwrap(),
        body["usage"]["input_tokens"].as_u64().unwrap()
            + body["usage"]["output_tokens"].as_u64().unwrap()
    );
    // The agent's system prompt first, then the instructions, then the input.
    let messages = last_upstream_messages(&server);
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "system", "user"], "{messages:?}");
    assert_eq!(messages[0]["content"], "You are terse.");
    assert_eq!(messages[1]["content"], "Be kind.");
    assert_eq!(messages[2]["content"], "Hi!");

    let id = body["id"].as_str().unwrap();
    let (status, stored) = retrieve(&server, id).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored, body, "the stored object is the answered one");
}

#[tokio::test]
async fn a_client_function_tool_call_ends_the_turn_and_its_output_continues_it() {
    let server = TestServer::start().await;
    server
        .upstream
        .push(Reply::tool_call("get_weather", r#"{"city":"Paris"}"#));
    let tools = json!([{"type": "function", "name": "get_weather", "description": "Weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": false}]);
    let (status, first) = create(
        &server,
        json!({"model": "assistant", "tools": tools, "tool_choice": "auto",
            "parallel_tool_calls": false,
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]}]}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let calls: Vec<&Value> = first["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "function_call")
        .collect();
    assert_eq!(calls.len(), 1, "{first}");
    assert_eq!(calls[0]["name"], "get_weather");
    assert_eq!(calls[0]["arguments"], r#"{"city":"Paris"}"#);
    let call_id = calls[0]["call_id"].as_str().unwrap().to_owned();
    let sent = &server.upstream.requests()[0].body;
    assert_eq!(
        sent["tools"][0]["function"]["name"], "get_weather",
        "{sent}"
    );
    assert_eq!(sent["parallel_tool_calls"], false, "{sent}");

    server.upstream.push(Reply::text("Sunny in Paris."));
    let (status, second) = create(
        &server,
        json!({"model": "assistant", "tools": tools, "previous_response_id": first["id"],
            "input": [{"type": "function_call_output", "call_id": call_id, "output": "sunny"}]}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["output"][0]["content"][0]["text"], "Sunny in Paris.");
    assert_eq!(second["previous_response_id"], first["id"]);
    let messages = last_upstream_messages(&server);
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool"],
        "{messages:?}"
    );
    assert_eq!(messages[2]["tool_calls"][0]["id"], call_id.as_str());
    assert_eq!(messages[3]["tool_call_id"], call_id.as_str());
    assert_eq!(messages[3]["content"], "sunny");

    // Continuing an older response would branch the conversation: refused.
    let (status, refused) = create(
        &server,
        json!({"model": "assistant", "previous_response_id": first["id"], "input": "again"}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "previous_response_id");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("branching"),
        "{refused}"
    );
}

#[tokio::test]
async fn input_items_replay_a_whole_exchange_statelessly_with_store_false() {
    let server = TestServer::start().await;
    server.upstream.push(Reply::text("Done."));
    let (status, body) = create(
        &server,
        json!({"model": "assistant", "store": false, "input": [
            {"role": "developer", "content": "Use tools."},
            {"type": "message", "role": "user", "content": "Weather?"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "w",
                "arguments": "{}", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_a", "output": "rain"},
            {"type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "It rains.", "annotations": []}]},
            {"role": "user", "content": "Thanks"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["store"], false);
    let messages = last_upstream_messages(&server);
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "system",
            "user",
            "assistant",
            "tool",
            "assistant",
            "user"
        ],
        "{messages:?}"
    );
    // Not stored: it cannot be retrieved.
    let (status, missing) = retrieve(&server, body["id"].as_str().unwrap()).await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["error"]["code"], "response_not_found");
}

#[tokio::test]
async fn an_unknown_previous_response_is_a_404_naming_the_parameter() {
    let server = TestServer::start().await;
    let unknown = format!("resp_{}{}", "0".repeat(32), "f".repeat(32));
    let (status, body) = create(
        &server,
        json!({"model": "assistant", "previous_response_id": unknown, "input": "hi"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["param"], "previous_response_id");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(server.upstream.requests().is_empty());
}

#[tokio::test]
async fn unsupported_parameters_are_refused_by_name_and_harmless_ones_accepted() {
    let server = TestServer::start().await;
    for (name, value) in [
        ("top_logprobs", json!(3)),
        ("conversation", json!("conv_1")),
        ("include", json!(["message.output_text.logprobs"])),
        ("truncation", json!("auto")),
        ("background", json!(true)),
        ("max_tool_calls", json!(2)),
    ] {
        let mut request = json!({"model": "assistant", "input": "hi"});
        request[name] = value;
        let (status, body) = create(&server, request).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error"]["param"], name, "{body}");
    }
    let (status, body) = create(
        &server,
        json!({"model": "assistant", "input": "hi", "tools": [{"type": "web_search"}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "tools");
    assert!(server.upstream.requests().is_empty());

    server.upstream.push(Reply::text("ok"));
    let (status, body) = create(
        &server,
        json!({"model": "assistant", "input": "hi", "include": [], "truncation": "disabled",
            "prompt_cache_key": "k", "service_tier": "auto", "reasoning": null,
            "text": {"format": {"type": "json_schema", "name": "answer", "strict": true,
                "schema": {"type": "object", "properties": {"a": {"type": "string"}},
                    "required": ["a"], "additionalProperties": false}}},
            "temperature": 0.5, "max_output_tokens": 50, "user": "u1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sent = &server.upstream.requests()[0].body;
    assert_eq!(sent["response_format"]["type"], "json_schema", "{sent}");
    assert_eq!(sent["response_format"]["json_schema"]["name"], "answer");
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["user"], "u1");
    assert_eq!(body["text"]["format"]["type"], "json_schema");
}

#[tokio::test]
async fn a_streamed_response_sends_the_typed_events_in_order() {
    let server = TestServer::start().await;
    server.upstream.push(Reply::text("one two three"));
    let response = server
        .http
        .post(server.url("/v1/responses"))
        .json(&json!({"model": "assistant", "input": "count", "stream": true}))
        .send()
        .await
        .expect("request completes");
    assert_eq!(response.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(30), response.bytes())
        .await
        .expect("the stream ends")
        .expect("body");
    let parsed = parse_strict(&body);
    let events: Vec<Value> = parsed
        .frames
        .iter()
        .map(|frame| serde_json::from_str(&frame.data).expect("JSON data"))
        .collect();
    for (frame, event) in parsed.frames.iter().zip(&events) {
        assert_eq!(frame.event.as_deref(), event["type"].as_str());
    }
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    let deltas = kinds
        .iter()
        .filter(|k| **k == "response.output_text.delta")
        .count();
    assert!(deltas >= 1, "{kinds:?}");
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(kinds, expected);
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], index as u64);
    }
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "one two three");
    let completed = events.last().unwrap();
    assert_eq!(completed["response"]["status"], "completed");
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        "one two three"
    );
    assert!(
        completed["response"]["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let id = completed["response"]["id"].as_str().unwrap();
    assert_eq!(events[0]["response"]["id"], id);
    let (status, stored) = retrieve(&server, id).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["output"], completed["response"]["output"]);
}

#[tokio::test]
async fn a_streamed_client_tool_call_is_a_function_call_item() {
    let server = TestServer::start().await;
    server
        .upstream
        .push(Reply::tool_call("lookup", r#"{"q":"x"}"#));
    let response = server
        .http
        .post(server.url("/v1/responses"))
        .json(
            &json!({"model": "assistant", "input": "find x", "stream": true,
            "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]}),
        )
        .send()
        .await
        .expect("request completes");
    let body = response.bytes().await.expect("body");
    let events: Vec<Value> = parse_strict(&body)
        .frames
        .iter()
        .map(|frame| serde_json::from_str(&frame.data).expect("JSON data"))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(events[5]["item"]["name"], "lookup");
    assert_eq!(events[5]["item"]["arguments"], r#"{"q":"x"}"#);
    assert_eq!(events[6]["response"]["output"][0]["type"], "function_call");
}

#[tokio::test]
async fn a_failure_after_the_stream_started_is_response_failed() {
    let server = TestServer::start().await;
    server
        .upstream
        .push(Reply::text("one two three four").disconnect_after(2));
    let response = server
        .http
        .post(server.url("/v1/responses"))
        .json(&json!({"model": "assistant", "input": "count", "stream": true}))
        .send()
        .await
        .expect("request completes");
    assert_eq!(response.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(30), response.bytes())
        .await
        .expect("the stream ends")
        .expect("body");
    let events: Vec<Value> = parse_strict(&body)
        .frames
        .iter()
        .map(|frame| serde_json::from_str(&frame.data).expect("JSON data"))
        .collect();
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{events:?}");
    assert_eq!(last["response"]["status"], "failed");
    assert!(last["response"]["error"]["message"].is_string(), "{last}");
    assert!(
        !events.iter().any(|e| e["type"] == "response.completed"),
        "{events:?}"
    );
}

#[tokio::test]
async fn another_tenants_response_is_absent_and_keys_are_checked() {
    use arshai_server::settings::{ApiKeySettings, AuthSettings};
    let upstream = FakeUpstream::start().await.expect("upstream");
    let mut settings = settings_for(&upstream);
    let key = |tenant: &str, agents: Vec<String>| ApiKeySettings {
        tenant: tenant.to_owned(),
        key: Some(format!("{tenant}-secret-key")),
        agents,
        ..Default::default()
    };
    settings.auth = AuthSettings {
        enabled: true,
        keys: vec![
            key("acme", vec![]),
            key("globex", vec![]),
            key("limited", vec!["another-agent".to_owned()]),
        ],
        keys_file: None,
    };
    let server = TestServer::start_with(upstream, settings).await;
    let send = |key: Option<&'static str>, request: reqwest::RequestBuilder| async move {
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        let response = request.send().await.expect("request completes");
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.expect("JSON body"))
    };
    let post = || {
        server
            .http
            .post(server.url("/v1/responses"))
            .json(&json!({"model": "assistant", "input": "hi"}))
    };
    let (status, body) = send(None, post()).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
    let (status, body) = send(Some("limited-secret-key"), post()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["param"], "model");

    server.upstream.push(Reply::text("hello"));
    let (status, created) = send(Some("acme-secret-key"), post()).await;
    assert_eq!(status, 200, "{created}");
    let get = || {
        server.http.get(server.url(&format!(
            "/v1/responses/{}",
            created["id"].as_str().unwrap()
        )))
    };
    let (status, own) = send(Some("acme-secret-key"), get()).await;
    assert_eq!(status, 200, "{own}");
    let (status, other) = send(Some("globex-secret-key"), get()).await;
    assert_eq!(status, 404, "{other}");
    assert_eq!(other["error"]["code"], "response_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_another_instance_retrieves_and_continues_a_response() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let url = format!("redis://127.0.0.1:{}", redis.port());
    let start = |url: String| async move {
        let upstream = FakeUpstream::start().await.expect("upstream");
        let mut settings = settings_for(&upstream);
        settings.memory.redis_url = Some(url);
        TestServer::start_with(upstream, settings).await
    };
    let a = start(url.clone()).await;
    let b = start(url).await;
    assert_eq!(b.state.memory.backend(), "redis");

    a.upstream.push(Reply::text("Hello Ada."));
    let (status, first) = create(&a, json!({"model": "assistant", "input": "I am Ada."})).await;
    assert_eq!(status, 200, "{first}");
    let id = first["id"].as_str().unwrap();
    let (status, stored) = retrieve(&b, id).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored, first);

    b.upstream.push(Reply::text("You are Ada."));
    let (status, second) = create(
        &b,
        json!({"model": "assistant", "input": "Who am I?", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let messages = last_upstream_messages(&b);
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["You are terse.", "I am Ada.", "Hello Ada.", "Who am I?"]
    );
    // The first response is no longer the latest: continuing it again is refused.
    let (status, refused) = create(
        &a,
        json!({"model": "assistant", "input": "again", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "previous_response_id");
    Ok(())
}

#[tokio::test]
async fn the_openai_and_openai_agents_python_sdks_work_unchanged() {
    let Ok(python) = std::env::var("OPENAI_SDK_TEST_PYTHON") else {
        eprintln!("OPENAI_SDK_TEST_PYTHON is not set: not running the Responses SDK check");
        return;
    };
    let server = TestServer::start().await;
    let upstream = &server.upstream;
    // openai: plain, streamed, a function tool round trip (two calls), previous_response_id.
    upstream.push(Reply::text("Plain answer."));
    upstream.push(Reply::text("Streamed answer."));
    upstream.push(Reply::tool_call("get_weather", r#"{"city":"Paris"}"#));
    upstream.push(Reply::text("It is sunny in Paris."));
    upstream.push(Reply::text("Your name is Ada."));
    // openai-agents: the tool call, then the structured answer.
    upstream.push(Reply::tool_call("add", r#"{"a":2,"b":3}"#));
    upstream.push(Reply::text(r#"{"answer":5,"explanation":"2 plus 3"}"#));
    // openai-agents, streamed: the same two.
    upstream.push(Reply::tool_call("add", r#"{"a":2,"b":3}"#));
    upstream.push(Reply::text(r#"{"answer":5,"explanation":"still 5"}"#));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/responses_sdk.py");
    let run = tokio::process::Command::new(python)
        .arg(script)
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
    assert!(stdout.contains("responses sdk ok"), "{stdout}");

    let requests = upstream.requests();
    assert_eq!(requests.len(), 9, "every scripted reply was asked for");
    // The agents SDK's second call carried the tool's result, and its output type.
    let last = &requests[6].body;
    let messages = last["messages"].as_array().unwrap();
    let tool = messages
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("the tool result reached the model");
    assert_eq!(tool["content"], "5", "{last}");
    assert_eq!(last["response_format"]["type"], "json_schema", "{last}");
    let streamed = &requests[8].body;
    assert_eq!(streamed["stream"], true, "{streamed}");
    assert!(
        streamed["messages"]
            .to_string()
            .contains("And 2 + 3 again?"),
        "{streamed}"
    );
    // previous_response_id: the later call saw the earlier exchange.
    let remembered = requests[4].body["messages"].to_string();
    assert!(remembered.contains("It is sunny in Paris."), "{remembered}");
    assert!(remembered.contains("Weather in Paris?"), "{remembered}");
}
