//! The official OpenAI Python SDK, unchanged, against the server (see `openai_sdk.py`).
//!
//! Needs a Python with the `openai` package: `scripts/test` makes one and names it in
//! `OPENAI_SDK_TEST_PYTHON` (not under `ARSHAI_`, which the settings loader owns). Without
//! that variable the test says so and does nothing.

mod support;

use std::time::Duration;

use arshai_testkit::Reply;
use support::TestServer;

#[tokio::test]
async fn the_openai_python_sdk_works_unchanged() {
    let Ok(python) = std::env::var("OPENAI_SDK_TEST_PYTHON") else {
        eprintln!("OPENAI_SDK_TEST_PYTHON is not set: not running the OpenAI SDK check");
        return;
    };
    let server = TestServer::start().await;
    server
        .upstream
        .push(Reply::text("one two three four five").disconnect_after(3));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_sdk.py");
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
    assert!(stdout.contains("works unchanged"), "{stdout}");

    // The SDK's conversation header reached the memory: the second call saw the first.
    let requests = server.upstream.requests();
    let last_memory_call = requests
        .iter()
        .rev()
        .find(|r| r.body["messages"].to_string().contains("What is my name?"))
        .expect("the memory call reached the upstream");
    assert_eq!(
        last_memory_call.body["messages"].as_array().unwrap().len(),
        4,
        "system, both user messages and the first answer"
    );
}
