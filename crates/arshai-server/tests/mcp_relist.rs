//! An MCP server's tool list follows the server, against the official Python `mcp` SDK
//! server (`tests/mcp/server.py`) over stdio: after a crash and reconnect the restarted
//! server's tools are listed again (a new tool offered and callable, a dropped one gone),
//! and a `notifications/tools/list_changed` lists them again without a reconnect.
//!
//! Needs `MCP_SDK_TEST_PYTHON` (see `mcp_tools.rs`); without it the tests say so and do
//! nothing, except under CI, where they fail.

mod support;

use std::io::Write;
use std::time::Duration;

use arshai_server::AppState;
use arshai_server::settings::Settings;
use arshai_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};
use support::TestServer;

const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/server.py");

fn python() -> Option<String> {
    match std::env::var("MCP_SDK_TEST_PYTHON") {
        Ok(python) => Some(python),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("MCP_SDK_TEST_PYTHON is not set under CI (scripts/test sets it)")
        }
        Err(_) => {
            eprintln!("MCP_SDK_TEST_PYTHON is not set: not running the MCP checks");
            None
        }
    }
}

/// A server with the agent `calc` on the MCP test server, which counts its starts in a
/// file of `dir`.
async fn serve(python: &str, dir: &tempfile::TempDir) -> TestServer {
    let generations = dir.path().join("generations");
    let upstream = FakeUpstream::start().await.expect("upstream");
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    write!(
        file,
        r#"[providers.openai]
base_url = "{}"
api_key = "sk-test"

[[agents]]
name = "calc"
type = "conversation"
model = "fake-model"
tools = [{{ mcp = {{ name = "calc", command = "{python}", args = ["{SERVER}", "stdio"], env = {{ ARSHAI_MCP_GENERATIONS = "{}" }}, call_timeout_seconds = 20 }} }}]
"#,
        upstream.base_url(),
        generations.display()
    )
    .expect("write");
    let settings = Settings::load(Some(file.path())).expect("settings load");
    let state = AppState::from_settings(settings)
        .await
        .expect("state builds");
    TestServer::start_state(upstream, state).await
}

/// One turn in which the model calls `calls`: the tools it was offered and the results it
/// was sent back.
async fn call_tools(server: &TestServer, calls: &[(&str, Value)]) -> (Vec<String>, Vec<Value>) {
    let before = server.upstream.requests().len();
    if !calls.is_empty() {
        server.upstream.push(Reply::tool_calls(
            calls.iter().map(|(name, args)| (*name, args.to_string())),
        ));
    }
    let (status, body) = server
        .post("calc", json!({"message": "use the tools"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let requests = server.upstream.requests();
    let offered = requests[before].body["tools"]
        .as_array()
        .expect("tools offered")
        .iter()
        .map(|tool| {
            tool["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let last = &requests.last().expect("a request").body;
    let results = last["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|message| message["role"] == "tool")
        .map(|message| {
            let text = message["content"].as_str().unwrap_or_default();
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        })
        .collect();
    (offered, results)
}

#[tokio::test]
async fn a_restarted_mcp_server_is_listed_again_and_its_new_tools_offered() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let server = serve(&python, &dir).await;

    let (offered, results) = call_tools(&server, &[("crash", json!({}))]).await;
    assert_eq!(offered, ["add", "crash", "fail", "hang", "learn", "whoami"]);
    assert!(results[0]["error"].is_string(), "{results:?}");

    // The next call reconnects (a new process, which lists other tools) and lists again.
    let (_, results) = call_tools(&server, &[("add", json!({"a": 1, "b": 2}))]).await;
    assert_eq!(results, [json!("1 + 2 = 3")]);

    let (offered, results) = call_tools(
        &server,
        &[
            ("multiply", json!({"a": 6, "b": 7})),
            ("fail", json!({"reason": "x"})),
        ],
    )
    .await;
    assert_eq!(
        offered,
        ["add", "crash", "hang", "learn", "multiply", "whoami"]
    );
    assert_eq!(results[0], "6 * 7 = 42");
    let gone = results[1]["error"].as_str().unwrap_or_default();
    assert!(gone.contains("no tool named \"fail\""), "{results:?}");
}

#[tokio::test]
async fn a_tool_list_changed_notification_lists_the_tools_again() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let server = serve(&python, &dir).await;

    let (offered, results) = call_tools(&server, &[("learn", json!({}))]).await;
    assert!(
        !offered.iter().any(|name| name == "multiply"),
        "{offered:?}"
    );
    assert_eq!(results, [json!("learned multiply")]);

    // The notification is handled beside the call: wait (bounded) for a turn offering it.
    let mut offered = Vec::new();
    for _ in 0..50 {
        offered = call_tools(&server, &[]).await.0;
        if offered.iter().any(|name| name == "multiply") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        offered,
        [
            "add", "crash", "fail", "hang", "learn", "multiply", "whoami"
        ]
    );
    let (_, results) = call_tools(&server, &[("multiply", json!({"a": 3, "b": 4}))]).await;
    assert_eq!(results, [json!("3 * 4 = 12")]);
    // No reconnect: the same, first, process answers.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("generations")).expect("generations"),
        "1"
    );
}
