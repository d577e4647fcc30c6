//! The official OpenAI Python SDK (major 3), unchanged, against the server (see
//! `openai_sdk.py`), and LangChain's `ChatOpenAI` on top of it (`sdk/langchain_sdk.py`).
//!
//! Needs a Python with `openai` and `langchain-openai`: `scripts/test` makes one and names it
//! in `OPENAI_SDK_TEST_PYTHON` (not under `ARSHAI_`, which the settings loader owns). Without
//! that variable the tests say so and do nothing, except under `CI`, where they fail.

mod support;

use std::time::Duration;

use arshai_server::settings::{ApiKeySettings, AuthSettings};
use arshai_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};
use support::{TestServer, settings_for};

const KEY: &str = "sdk-key-all-agents";
const LIMITED_KEY: &str = "sdk-key-other-agent-only";
const RATED_KEY: &str = "sdk-key-one-request-a-minute";

fn python() -> Option<String> {
    match std::env::var("OPENAI_SDK_TEST_PYTHON") {
        Ok(python) => Some(python),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("OPENAI_SDK_TEST_PYTHON is not set under CI (scripts/test sets it)")
        }
        Err(_) => {
            eprintln!("OPENAI_SDK_TEST_PYTHON is not set: not running the OpenAI SDK checks");
            None
        }
    }
}

fn key(tenant: &str, key: &str) -> ApiKeySettings {
    ApiKeySettings {
        tenant: tenant.to_owned(),
        key: Some(key.to_owned()),
        ..Default::default()
    }
}

/// A server with auth on: one key for every agent, one for another agent only, one rated
/// at a request a minute.
async fn server() -> TestServer {
    let upstream = FakeUpstream::start().await.expect("upstream starts");
    let mut settings = settings_for(&upstream);
    settings.auth = AuthSettings {
        enabled: true,
        keys: vec![
            key("sdk", KEY),
            ApiKeySettings {
                agents: vec!["another-agent".to_owned()],
                ..key("limited", LIMITED_KEY)
            },
            ApiKeySettings {
                requests_per_minute: Some(1),
                ..key("rated", RATED_KEY)
            },
        ],
        keys_file: None,
    };
    TestServer::start_with(upstream, settings).await
}

/// Runs `script` with the server's base URL and `args`; returns its stdout.
async fn run(python: &str, script: &str, server: &TestServer, args: &[&str]) -> String {
    let run = tokio::process::Command::new(python)
        .arg(script)
        .arg(server.url("/v1"))
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the SDK script finishes")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    stdout
}

fn last_message(body: &Value) -> &Value {
    body["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .unwrap_or_else(|| panic!("no messages in {body}"))
}

#[tokio::test]
async fn the_openai_python_sdk_works_unchanged() {
    let Some(python) = python() else { return };
    let server = server().await;
    let upstream = &server.upstream;
    for reply in [
        Reply::text("one two three four five").disconnect_after(3),
        Reply::text("Plain answer."),
        Reply::text("Streamed answer here."),
        Reply::text("Hello Ada."),
        Reply::text("Your name is Ada."),
        Reply::text(r#"{"city": "Oslo", "temperature_c": 21}"#),
        Reply::tool_call("get_weather", r#"{"city":"Oslo"}"#),
        Reply::text("Sunny in Oslo."),
        Reply::text("first"),
        Reply::text("second"),
        Reply::text("Stopped answer."),
        Reply::text("Within the limit."),
    ] {
        upstream.push(reply);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_sdk.py");
    let stdout = run(&python, script, &server, &[KEY, LIMITED_KEY, RATED_KEY]).await;
    assert!(stdout.contains("works unchanged"), "{stdout}");

    let requests = upstream.requests();
    assert_eq!(
        requests.len(),
        12,
        "every scripted reply was asked for, and no refused call reached the upstream"
    );
    // The SDK's conversation header reached the memory: the second call saw the first.
    assert_eq!(
        requests[4].body["messages"].as_array().unwrap().len(),
        4,
        "system, both user messages and the first answer: {}",
        requests[4].body
    );
    // parse(): the Pydantic model went up as a strict json_schema.
    let format = &requests[5].body["response_format"];
    assert_eq!(format["type"], "json_schema", "{format}");
    assert_eq!(format["json_schema"]["name"], "Weather", "{format}");
    assert_eq!(format["json_schema"]["strict"], true, "{format}");
    let schema = &format["json_schema"]["schema"];
    assert_eq!(schema["properties"]["city"]["type"], "string", "{format}");
    assert_eq!(
        schema["properties"]["temperature_c"]["type"], "integer",
        "{format}"
    );
    assert_eq!(schema["required"], json!(["city", "temperature_c"]));
    // The tool round trip: the tool went up, then its result under the call's id.
    assert_eq!(
        requests[6].body["tools"][0]["function"]["name"],
        "get_weather"
    );
    let result = last_message(&requests[7].body);
    assert_eq!(result["role"], "tool", "{result}");
    assert_eq!(result["content"], "sunny, 21C", "{result}");
    let call_id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("tool call id: "))
        .expect("the script printed the call's id");
    assert_eq!(result["tool_call_id"], call_id, "{result}");
    // n=2 is two runs of the same request.
    assert_eq!(last_message(&requests[8].body)["content"], "Hello there");
    assert_eq!(last_message(&requests[9].body)["content"], "Hello there");
    // stop reached the upstream as sent.
    assert_eq!(requests[10].body["stop"], json!(["END", "STOP"]));
}

#[tokio::test]
async fn langchain_chat_openai_binds_tools_and_returns_structured_output() {
    let Some(python) = python() else { return };
    let server = TestServer::start().await;
    let upstream = &server.upstream;
    for reply in [
        Reply::tool_call("get_weather", r#"{"city":"Oslo"}"#),
        Reply::text("Sunny in Oslo."),
        Reply::text(r#"{"city": "Oslo", "temperature_c": 21}"#),
        Reply::tool_call("Weather", r#"{"city":"Bergen","temperature_c":12}"#),
    ] {
        upstream.push(reply);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/langchain_sdk.py");
    let stdout = run(&python, script, &server, &[]).await;
    assert!(stdout.contains("works unchanged"), "{stdout}");

    let requests = upstream.requests();
    assert_eq!(requests.len(), 4, "every scripted reply was asked for");
    // bind_tools: the tool's schema went up; its result came back under the call's id.
    let tool = &requests[0].body["tools"][0]["function"];
    assert_eq!(tool["name"], "get_weather", "{tool}");
    assert_eq!(tool["parameters"]["properties"]["city"]["type"], "string");
    let result = last_message(&requests[1].body);
    assert_eq!(result["role"], "tool", "{result}");
    assert_eq!(result["content"], "sunny, 21C", "{result}");
    let call_id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("tool call id: "))
        .expect("the script printed the call's id");
    assert_eq!(result["tool_call_id"], call_id, "{result}");
    // The default structured output: a json_schema response format named after the model.
    let format = &requests[2].body["response_format"];
    assert_eq!(format["type"], "json_schema", "{format}");
    assert_eq!(format["json_schema"]["name"], "Weather", "{format}");
    assert_eq!(
        format["json_schema"]["schema"]["properties"]["temperature_c"]["type"], "integer",
        "{format}"
    );
    // Function calling: the model as the one tool, forced.
    let forced = &requests[3].body;
    assert_eq!(
        forced["tools"][0]["function"]["name"], "Weather",
        "{forced}"
    );
    assert_eq!(
        forced["tool_choice"]["function"]["name"], "Weather",
        "{forced}"
    );
}
