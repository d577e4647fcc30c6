//! Tools declared in TOML, served over HTTP: the HTTP request tool against a real local
//! server (allowed host, refused host, a redirect off the allow-list, an oversized body),
//! the clock, an agent calling another agent as a tool, and invalid tool configs refused
//! at start-up with a message naming the problem.

mod support;

use std::io::Write;

use arshai_server::AppState;
use arshai_server::settings::Settings;
use arshai_testkit::{FakeUpstream, Reply};
use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use serde_json::{Value, json};
use support::TestServer;
use tokio::net::TcpListener;

/// Settings from `agents` (TOML) with the OpenAI provider pointed at `upstream`.
fn settings(upstream: &FakeUpstream, agents: &str) -> Result<Settings, String> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "[providers.openai]\nbase_url = \"{}\"\napi_key = \"sk-test\"\n\n{agents}",
        upstream.base_url()
    )
    .unwrap();
    Settings::load(Some(file.path())).map_err(|e| e.to_string())
}

async fn serve(agents: &str) -> TestServer {
    let upstream = FakeUpstream::start().await.unwrap();
    let settings = settings(&upstream, agents).expect("settings load");
    let state = AppState::from_settings(settings)
        .await
        .expect("state builds");
    TestServer::start_state(upstream, state).await
}

/// A small HTTP server the tool calls: `/small`, `/big` (10 000 bytes), `/echo` (POST),
/// `/away` (a redirect to the same server under the name `localhost`).
async fn tool_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app =
        Router::new()
            .route("/small", get(|| async { "hello from the tool server" }))
            .route("/big", get(|| async { "é".repeat(5_000) }))
            .route(
                "/echo",
                post(|body: String| async move { format!("got {body}") }),
            )
            .route(
                "/away",
                get(move || async move {
                    Redirect::temporary(&format!("http://localhost:{port}/small"))
                }),
            );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// The results of the tool calls the model was sent, in order, as JSON.
fn tool_results(request: &Value) -> Vec<Value> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            let text = m["content"].as_str().unwrap();
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn the_http_tool_reaches_allowed_hosts_only_and_cuts_big_bodies() {
    let port = tool_server().await;
    let server = serve(&format!(
        r#"
[[agents]]
name = "fetcher"
type = "conversation"
model = "fake-model"
tools = [{{ http = {{ allow_hosts = ["127.0.0.1:{port}"], max_response_bytes = 101 }} }}]
"#
    ))
    .await;
    let base = format!("http://127.0.0.1:{port}");
    server.upstream.push(Reply::tool_calls([
        (
            "http_request",
            json!({"url": format!("{base}/small")}).to_string(),
        ),
        (
            "http_request",
            json!({"url": format!("http://localhost:{port}/small")}).to_string(),
        ),
        (
            "http_request",
            json!({"url": format!("{base}/big")}).to_string(),
        ),
        (
            "http_request",
            json!({"method": "POST", "url": format!("{base}/echo"), "body": "{\"a\":1}"})
                .to_string(),
        ),
        (
            "http_request",
            json!({"url": format!("{base}/away")}).to_string(),
        ),
        (
            "http_request",
            json!({"url": "http://127.0.0.1:1/nothing-here"}).to_string(),
        ),
    ]));
    let (status, body) = server
        .post("fetcher", json!({"message": "fetch them"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"], "echo: fetch them");

    let requests = server.upstream.requests();
    assert_eq!(requests.len(), 2);
    let offered = &requests[0].body["tools"][0]["function"];
    assert_eq!(offered["name"], "http_request");
    assert!(
        offered["description"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}"))
    );
    let results = tool_results(&requests[1].body);
    assert_eq!(results.len(), 6, "{results:?}");
    assert_eq!(
        results[0],
        json!({"status": 200, "body": "hello from the tool server", "truncated": false})
    );
    // A host off the list is refused before any request, as a result the model reads.
    let refused = results[1]["error"].as_str().unwrap();
    assert!(
        refused.contains("localhost") && refused.contains("allow-list"),
        "{refused}"
    );
    // 101 bytes fall inside a two-byte character: the body is cut to whole characters.
    assert_eq!(results[2]["status"], 200);
    assert_eq!(results[2]["truncated"], true);
    assert_eq!(results[2]["body"], "é".repeat(50));
    assert_eq!(results[3]["body"], "got {\"a\":1}");
    // A redirect to a host off the list is not followed.
    let redirect = results[4]["error"].as_str().unwrap();
    assert!(
        redirect.contains("redirect") && redirect.contains("allow-list"),
        "{redirect}"
    );
    // The port is part of the allowed entry: another port of the same host is refused.
    assert!(
        results[5]["error"].as_str().unwrap().contains("allow-list"),
        "{:?}",
        results[5]
    );
}

#[tokio::test]
async fn the_clock_tells_utc_and_local_time_and_its_calls_are_streamed() {
    let server = serve(
        r#"
[[agents]]
name = "timekeeper"
type = "conversation"
model = "fake-model"
tools = ["clock"]
"#,
    )
    .await;
    server.upstream.push(Reply::tool_calls([
        ("current_time", "{}"),
        ("current_time", r#"{"utc_offset": "+05:30"}"#),
        ("current_time", r#"{"utc_offset": "Mars/Olympus"}"#),
    ]));
    let before = chrono::Utc::now();
    let response = server
        .post_raw(
            "timekeeper",
            json!({"conversation_id": "clock", "message": "what time is it?", "stream": true})
                .to_string(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let after = chrono::Utc::now();
    let parsed = support::sse::parse_strict(&response.bytes().await.unwrap());
    let kinds: Vec<&str> = parsed
        .frames
        .iter()
        .map(|f| f.event.as_deref().unwrap())
        .collect();
    assert_eq!(
        kinds[..6],
        [
            "tool_call",
            "tool_call",
            "tool_call",
            "tool_result",
            "tool_result",
            "tool_result"
        ]
    );
    let result = |i: usize| -> Value {
        let frame: Value = serde_json::from_str(&parsed.frames[i].data).unwrap();
        serde_json::from_str(frame["content"].as_str().unwrap()).unwrap()
    };
    let parse =
        |text: &Value| chrono::DateTime::parse_from_rfc3339(text.as_str().unwrap()).unwrap();
    let utc = parse(&result(3)["utc"]);
    // To the millisecond: the tool's time is within the request.
    assert!(
        utc.timestamp_millis() >= before.timestamp_millis() && utc <= after,
        "{utc}"
    );
    let local = result(4);
    let shifted = parse(&local["local"]);
    assert_eq!(shifted.offset().local_minus_utc(), 330 * 60);
    assert!(local["local"].as_str().unwrap().ends_with("+05:30"));
    assert!(
        result(5)["error"]
            .as_str()
            .unwrap()
            .contains("Mars/Olympus")
    );
    assert_eq!(kinds.last(), Some(&"done"));

    // The conversation keeps the question and the answer.
    let stored: Value = server
        .http
        .get(server.url("/v1/agents/timekeeper/conversations/clock"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages = stored["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{stored}");
    assert_eq!(messages[1]["content"], "echo: what time is it?");
}

#[tokio::test]
async fn an_agent_calls_another_agent_as_a_tool_in_a_turn_of_its_own() {
    let server = serve(
        r#"
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
description = "Finds facts about a topic."
system_prompt = "You research."
"#,
    )
    .await;
    server.upstream.push(Reply::tool_call(
        "researcher",
        r#"{"message": "facts about otters"}"#,
    ));
    let (status, body) = server
        .post(
            "lead",
            json!({"conversation_id": "c1", "message": "tell me about otters"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"], "echo: tell me about otters");

    let requests = server.upstream.requests();
    assert_eq!(requests.len(), 3);
    let offered = &requests[0].body["tools"][0]["function"];
    assert_eq!(offered["name"], "researcher");
    assert_eq!(offered["description"], "Finds facts about a topic.");
    // The researcher's own turn: its system prompt, only the message it was sent.
    let inner = requests[1].body["messages"].as_array().unwrap();
    assert_eq!(
        inner[0],
        json!({"role": "system", "content": "You research."})
    );
    assert_eq!(inner[1]["content"], "facts about otters");
    assert_eq!(inner.len(), 2, "{inner:?}");
    // Its answer is the tool result the lead's model reads.
    assert_eq!(
        tool_results(&requests[2].body),
        [Value::String("echo: facts about otters".into())]
    );
    // The researcher's turn was stateless: it recorded nothing.
    let listed: Value = server
        .http
        .get(server.url("/v1/agents/lead/conversations/c1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn invalid_tool_configs_are_refused_naming_the_problem() {
    let upstream = FakeUpstream::start().await.unwrap();
    let cases = [
        (
            r#"[[agents]]
name = "a"
type = "conversation"
tools = [{ agent = "b" }]
[[agents]]
name = "b"
type = "conversation"
tools = [{ agent = "c" }]
[[agents]]
name = "c"
type = "conversation"
tools = [{ agent = "a" }]"#,
            vec!["cycle", "a -> b -> c -> a"],
        ),
        (
            r#"[[agents]]
name = "a"
type = "conversation"
tools = [{ agent = "ghost" }]"#,
            vec!["agents[0].tools[0].agent", "no agent named \"ghost\""],
        ),
        (
            r#"[[agents]]
name = "a"
type = "conversation"
tools = [{ http = { allow_hosts = [] } }]"#,
            vec!["agents[0].tools[0].http.allow_hosts"],
        ),
        (
            r#"[[agents]]
name = "a"
type = "conversation"
tools = [{ mcp = { name = "m" } }]"#,
            vec!["agents[0].tools[0].mcp.command", "exactly one of command"],
        ),
        (
            r#"[[agents]]
name = "a"
type = "conversation"
tool_timeout_seconds = 10
tools = [{ mcp = { name = "m", command = "x", call_timeout_seconds = 10 } }]"#,
            vec![
                "agents[0].tools[0].mcp.call_timeout_seconds",
                "below the agent's tool_timeout_seconds",
            ],
        ),
        (
            r#"[[agents]]
name = "a"
type = "conversation"
tools = [{ shell = "rm -rf /" }]"#,
            vec!["shell"],
        ),
        (
            r#"[[agents]]
name = "a"
type = "conversation"
tools = ["clock", "clock"]"#,
            vec![],
        ),
    ];
    for (toml, expected) in cases {
        match settings(&upstream, toml) {
            Err(message) => {
                assert!(!expected.is_empty(), "refused at load: {message}");
                for part in &expected {
                    assert!(message.contains(part), "{message:?} should name {part:?}");
                }
            }
            Ok(settings) => {
                // Valid on its own; refused when the agents are built.
                let error = AppState::from_settings(settings)
                    .await
                    .err()
                    .expect("refused");
                assert!(expected.is_empty(), "{toml}: {error}");
                assert!(error.to_string().contains("current_time"), "{error}");
            }
        }
    }
}
