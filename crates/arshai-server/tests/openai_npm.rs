//! The official `openai` npm package, unchanged, run by node as a real process against the
//! server (see `npm/script.mjs`): chat, streaming, a client tool round trip, a typed error.
//!
//! Needs node and `npm ci` of `npm/package.json`: `scripts/test` installs them beside the
//! build and names the install in `OPENAI_NPM_DIR`. Without that variable the test says so
//! and does nothing, except under `CI`, where it fails.

mod support;

use std::time::Duration;

use arshai_testkit::Reply;
use support::TestServer;

fn npm_dir() -> Option<String> {
    match std::env::var("OPENAI_NPM_DIR") {
        Ok(dir) => Some(dir),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("OPENAI_NPM_DIR is not set under CI (scripts/test sets it)")
        }
        Err(_) => {
            eprintln!("OPENAI_NPM_DIR is not set: not running the openai npm check");
            None
        }
    }
}

#[tokio::test]
async fn the_openai_npm_package_works_unchanged() {
    let Some(dir) = npm_dir() else { return };
    let server = TestServer::start().await;
    let upstream = &server.upstream;
    for reply in [
        Reply::text("Plain answer."),
        Reply::text("Streamed answer here."),
        Reply::tool_call("get_weather", r#"{"city":"Oslo"}"#),
        Reply::text("Sunny in Oslo."),
    ] {
        upstream.push(reply);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/npm/script.mjs");
    let run = tokio::process::Command::new("node")
        .arg(script)
        .arg(server.url("/v1"))
        .env("OPENAI_NPM_DIR", &dir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the node script finishes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("works unchanged"), "{stdout}");

    let requests = upstream.requests();
    assert_eq!(requests.len(), 4, "every scripted reply was asked for");
    assert_eq!(requests[1].body["stream"], true, "{}", requests[1].body);
    assert_eq!(
        requests[2].body["tools"][0]["function"]["name"],
        "get_weather"
    );
    let result = requests[3].body["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .expect("the follow-up has messages");
    assert_eq!(result["role"], "tool", "{result}");
    assert_eq!(result["content"], "sunny, 21C", "{result}");
    let call_id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("tool call id: "))
        .expect("the script printed the call's id");
    assert_eq!(result["tool_call_id"], call_id, "{result}");
}
