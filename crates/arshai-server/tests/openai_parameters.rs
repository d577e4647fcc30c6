//! Every OpenAI parameter is honoured or refused by name, never dropped: what reaches the
//! (fake, real-HTTP) upstream is asserted per parameter, for the OpenAI wire and for Gemini's
//! mapping; client tools end the turn in OpenAI's shape and continue it; image parts;
//! upstream 4xx and auth errors in OpenAI's shape.

mod support;

use arshai::llm::ProviderChoice;
use arshai::settings::AgentSettings;
use arshai_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};
use support::TestServer;
use support::openai::ChatCompletion;
use support::sse::parse_strict;

async fn post(server: &TestServer, body: Value, conversation: Option<&str>) -> reqwest::Response {
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

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A server with the `assistant` agent on the OpenAI wire and `gem` on Gemini's.
async fn server() -> TestServer {
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = support::settings_for(&upstream);
    settings.providers.gemini.base_url = Some(format!("{}/v1beta", upstream.root_url()));
    settings.providers.gemini.api_key = Some("g-key".into());
    settings.providers.gemini.model = "gemini-test".into();
    settings.agents.push(AgentSettings {
        name: "gem".to_owned(),
        provider: ProviderChoice::Gemini,
        ..AgentSettings::default()
    });
    TestServer::start_with(upstream, settings).await
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn every_parameter_reaches_the_openai_upstream_as_sent() {
    let server = server().await;
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}},
        "required": ["n"], "additionalProperties": false});
    let body = json!({
        "model": "assistant", "messages": user("hi"),
        "temperature": 0.5, "top_p": 0.9, "max_completion_tokens": 77,
        "stop": ["three", "END"], "seed": 42,
        "presence_penalty": 0.25, "frequency_penalty": -0.5,
        "logit_bias": {"1234": -100, "99": 5},
        "logprobs": true, "top_logprobs": 2,
        "parallel_tool_calls": false, "user": "end-user-7",
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Looks up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
        "response_format": {"type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": true}},
        "store": false, "service_tier": "auto", "metadata": null,
    });
    server.upstream.push(Reply::text("{\"n\": 1}"));
    let completion = json_of(post(&server, body, None).await, 200).await;
    let sent = &server.upstream.requests()[0].body;
    for (param, expected) in [
        ("temperature", json!(0.5)),
        ("top_p", json!(0.9)),
        ("max_tokens", json!(77)),
        ("stop", json!(["three", "END"])),
        ("seed", json!(42)),
        ("presence_penalty", json!(0.25)),
        ("frequency_penalty", json!(-0.5)),
        ("logit_bias", json!({"1234": -100.0, "99": 5.0})),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(2)),
        ("parallel_tool_calls", json!(false)),
        ("user", json!("end-user-7")),
        (
            "tool_choice",
            json!({"type": "function", "function": {"name": "lookup"}}),
        ),
        (
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}}),
        ),
    ] {
        assert_eq!(
            sent[param], expected,
            "{param} as the upstream received it: {sent}"
        );
    }
    assert_eq!(sent["tools"][0]["function"]["name"], "lookup");
    assert_eq!(
        sent["tools"][0]["function"]["parameters"]["properties"]["q"]["type"],
        "string"
    );
    // No parameter reached the upstream that the caller did not send (or we did not map).
    let mut keys: Vec<&str> = sent
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "frequency_penalty",
            "logit_bias",
            "logprobs",
            "max_tokens",
            "messages",
            "model",
            "parallel_tool_calls",
            "presence_penalty",
            "response_format",
            "seed",
            "stop",
            "temperature",
            "tool_choice",
            "tools",
            "top_logprobs",
            "top_p",
            "user"
        ]
    );
    // The log probabilities come back as the provider wrote them.
    let logprobs = &completion["choices"][0]["logprobs"]["content"];
    assert_eq!(logprobs[0]["logprob"], json!(-0.25), "{completion}");
    assert_eq!(logprobs[0]["top_logprobs"].as_array().unwrap().len(), 2);
    let typed: ChatCompletion = serde_json::from_value(completion).unwrap();
    assert_eq!(
        typed.choices[0].message.content.as_deref(),
        Some("{\"n\": 1}")
    );
}

#[tokio::test]
async fn json_object_mode_reaches_the_upstream() {
    let server = server().await;
    let body = json!({"model": "assistant", "messages": user("hi"),
        "response_format": {"type": "json_object"}, "stop": "x"});
    json_of(post(&server, body, None).await, 200).await;
    let sent = &server.upstream.requests()[0].body;
    assert_eq!(sent["response_format"], json!({"type": "json_object"}));
    assert_eq!(sent["stop"], json!(["x"]));
}

#[tokio::test]
async fn gemini_gets_the_parameters_mapped_and_refuses_what_it_cannot_do_by_name() {
    let server = server().await;
    let body = json!({"model": "gem", "messages": user("hi"), "stop": ["END"], "seed": 7,
        "presence_penalty": 0.5, "frequency_penalty": 0.25, "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "lookup"}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a",
            "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}}});
    json_of(post(&server, body, None).await, 200).await;
    let sent = &server.upstream.requests()[0].body;
    let config = &sent["generationConfig"];
    assert_eq!(config["stopSequences"], json!(["END"]), "{sent}");
    assert_eq!(config["seed"], json!(7));
    assert_eq!(config["presencePenalty"], json!(0.5));
    assert_eq!(config["frequencyPenalty"], json!(0.25));
    assert_eq!(config["responseMimeType"], "application/json");
    assert_eq!(
        config["responseSchema"]["properties"]["n"]["type"],
        "integer"
    );
    assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "ANY");
    for (param, value) in [
        ("logit_bias", json!({"1": 5})),
        ("logprobs", json!(true)),
        ("user", json!("u")),
        ("parallel_tool_calls", json!(false)),
    ] {
        let mut body = json!({"model": "gem", "messages": user("hi")});
        body[param] = value;
        let error = json_of(post(&server, body, None).await, 400).await;
        assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
        assert_eq!(error["error"]["param"], param, "{error}");
        assert_eq!(error["error"]["code"], "unsupported_parameter");
    }
    assert_eq!(
        server.upstream.request_count(),
        1,
        "refusals send nothing upstream"
    );
}

#[tokio::test]
async fn unknown_or_unsupported_parameters_are_refused_by_name() {
    let server = server().await;
    for (extra, param) in [
        (json!({"reasoning_effort": "high"}), "reasoning_effort"),
        (json!({"modalities": ["audio"]}), "modalities"),
        (json!({"functions": [{"name": "f"}]}), "functions"),
        (json!({"store": true}), "store"),
        (json!({"service_tier": "flex"}), "service_tier"),
        (json!({"n": 0}), "n"),
        (json!({"n": 2, "stream": true}), "n"),
        (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
        (json!({"tool_choice": "sometimes"}), "tool_choice"),
        (json!({"tools": [{"type": "web_search"}]}), "tools"),
        (json!({"logprobs": true, "stream": true}), "logprobs"),
    ] {
        let mut body = json!({"model": "assistant", "messages": user("hi")});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let error = json_of(post(&server, body.clone(), None).await, 400).await;
        assert_eq!(error["error"]["param"], param, "{body} -> {error}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
    let error = json_of(
        post(
            &server,
            json!({"model": "assistant", "messages": user("hi"), "n": 2}),
            Some("conv-1"),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(error["error"]["param"], "n");
    assert_eq!(server.upstream.request_count(), 0);
}

#[tokio::test]
async fn n_choices_are_independent_runs_with_their_usage_summed() {
    let server = server().await;
    server.upstream.push(Reply::text("first"));
    server.upstream.push(Reply::text("second"));
    let body = json!({"model": "assistant", "messages": user("hi"), "n": 2});
    let completion: ChatCompletion =
        serde_json::from_value(json_of(post(&server, body, None).await, 200).await).unwrap();
    assert_eq!(completion.choices.len(), 2);
    let mut texts: Vec<String> = completion
        .choices
        .iter()
        .map(|choice| choice.message.content.clone().unwrap_or_default())
        .collect();
    texts.sort();
    assert_eq!(texts, ["first", "second"]);
    assert_eq!(
        completion
            .choices
            .iter()
            .map(|c| c.index)
            .collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(server.upstream.request_count(), 2);
    let usage = completion.usage;
    let single: ChatCompletion = serde_json::from_value(
        json_of(
            post(
                &server,
                json!({"model": "assistant", "messages": user("hi")}),
                None,
            )
            .await,
            200,
        )
        .await,
    )
    .unwrap();
    assert_eq!(usage.prompt_tokens, 2 * single.usage.prompt_tokens);
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

#[tokio::test]
async fn a_client_tool_call_ends_the_turn_in_openai_s_shape_and_the_results_continue_it() {
    let server = server().await;
    server
        .upstream
        .push(Reply::tool_call("get_weather", r#"{"city":"Oslo"}"#));
    let body = json!({"model": "assistant", "messages": user("Weather in Oslo?"), "tools": weather_tool()});
    let completion = json_of(post(&server, body, None).await, 200).await;
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{completion}");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Oslo"}"#);
    let call_id = call["id"].as_str().unwrap().to_owned();
    let sent = &server.upstream.requests()[0].body;
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");

    // The follow-up (stateless: the whole exchange) reaches the model with the result.
    server.upstream.push(Reply::text("Sunny in Oslo."));
    let messages = json!([
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21C"},
    ]);
    let body = json!({"model": "assistant", "messages": messages, "tools": weather_tool()});
    let completion = json_of(post(&server, body, None).await, 200).await;
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "Sunny in Oslo."
    );
    let sent = &server.upstream.requests()[1].body;
    let sent_messages = sent["messages"].as_array().unwrap();
    let last = sent_messages.last().unwrap();
    assert_eq!(last["role"], "tool");
    assert_eq!(last["tool_call_id"], call_id.as_str());
    assert_eq!(last["content"], "sunny, 21C");
}

#[tokio::test]
async fn a_streamed_client_tool_call_is_sent_as_tool_call_deltas() {
    let server = server().await;
    server
        .upstream
        .push(Reply::tool_call("get_weather", r#"{"city":"Oslo"}"#));
    let body = json!({"model": "assistant", "messages": user("Weather?"), "tools": weather_tool(), "stream": true});
    let response = post(&server, body, None).await;
    assert_eq!(response.status(), 200);
    let parsed = parse_strict(&response.bytes().await.unwrap());
    let chunks: Vec<Value> = parsed
        .frames
        .iter()
        .filter(|frame| frame.data != "[DONE]")
        .map(|frame| serde_json::from_str(&frame.data).unwrap())
        .collect();
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(deltas.len(), 1, "{chunks:?}");
    assert_eq!(deltas[0]["index"], 0);
    assert_eq!(deltas[0]["function"]["name"], "get_weather");
    assert_eq!(deltas[0]["function"]["arguments"], r#"{"city":"Oslo"}"#);
    let finish = chunks
        .iter()
        .find_map(|chunk| chunk["choices"][0]["finish_reason"].as_str())
        .unwrap();
    assert_eq!(finish, "tool_calls");
}

#[tokio::test]
async fn with_a_conversation_pending_client_calls_are_stored_and_matched_by_id() {
    let server = server().await;
    let conversation = "weather-conv";
    server
        .upstream
        .push(Reply::tool_call("get_weather", r#"{"city":"Oslo"}"#));
    let body = json!({"model": "assistant", "messages": user("Weather?"), "tools": weather_tool()});
    let completion = json_of(post(&server, body, Some(conversation)).await, 200).await;
    let call_id = completion["choices"][0]["message"]["tool_calls"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A new question before answering the pending call is refused; so is a wrong id.
    let refused = [
        json!([{"role": "user", "content": "And tomorrow?"}]),
        json!([{"role": "tool", "tool_call_id": "call_unknown", "content": "x"}]),
    ];
    for messages in refused {
        let body = json!({"model": "assistant", "messages": messages, "tools": weather_tool()});
        let error = json_of(post(&server, body, Some(conversation)).await, 400).await;
        assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    }
    assert_eq!(server.upstream.request_count(), 1);

    // Only the result is sent; the stored history supplies the rest.
    server.upstream.push(Reply::text("Sunny."));
    let messages = json!([{"role": "tool", "tool_call_id": call_id, "content": "sunny"}]);
    let body = json!({"model": "assistant", "messages": messages, "tools": weather_tool()});
    let completion = json_of(post(&server, body, Some(conversation)).await, 200).await;
    assert_eq!(completion["choices"][0]["message"]["content"], "Sunny.");
    let sent = &server.upstream.requests()[1].body["messages"];
    let roles: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool"], "{sent}");
    assert_eq!(sent[2]["tool_calls"][0]["id"], call_id.as_str());
}

#[tokio::test]
async fn image_parts_go_to_providers_that_take_them_and_are_refused_by_name_otherwise() {
    let server = server().await;
    let content = json!([
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
    ]);
    let body = json!({"model": "assistant", "messages": [{"role": "user", "content": content}]});
    json_of(post(&server, body, None).await, 200).await;
    let sent = &server.upstream.requests()[0].body["messages"][1]["content"];
    assert_eq!(sent[0], json!({"type": "text", "text": "What is this?"}));
    assert_eq!(
        sent[1],
        json!({"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}})
    );

    // Gemini takes data URLs inline, and refuses links by name.
    let data = json!([{"type": "text", "text": "this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]);
    let body = json!({"model": "gem", "messages": [{"role": "user", "content": data}]});
    json_of(post(&server, body, None).await, 200).await;
    let parts = &server.upstream.requests()[1].body["contents"][0]["parts"];
    assert_eq!(
        parts[1]["inlineData"],
        json!({"mimeType": "image/png", "data": "iVBORw0KGgo="})
    );
    let body = json!({"model": "gem", "messages": [{"role": "user", "content": content}]});
    let error = json_of(post(&server, body, None).await, 400).await;
    assert_eq!(error["error"]["param"], "messages", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data: URLs")
    );

    // Parts we do not know are refused by name.
    let audio = json!([{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]);
    let body = json!({"model": "assistant", "messages": [{"role": "user", "content": audio}]});
    let error = json_of(post(&server, body, None).await, 400).await;
    assert_eq!(error["error"]["param"], "messages");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input_audio")
    );
}

#[tokio::test]
async fn an_upstream_4xx_is_a_400_invalid_request_error_never_a_502() {
    let server = server().await;
    server.upstream.push(Reply::status_message(
        400,
        "Unrecognized request argument supplied: foo",
    ));
    let error = json_of(
        post(
            &server,
            json!({"model": "assistant", "messages": user("hi")}),
            None,
        )
        .await,
        400,
    )
    .await;
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    assert_eq!(error["error"]["code"], "upstream_bad_request");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unrecognized request argument")
    );
}
