//! With no provider key, the server answers with the embedded local model, end to end.
//! Needs the model file: `scripts/fetch-model` (run by `scripts/test`) puts it in `models/`.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arshai_server::settings::Settings;
use arshai_testkit::FakeUpstream;
use serde_json::json;
use support::TestServer;

#[tokio::test]
async fn with_no_provider_key_the_assistant_answers_with_the_local_model() {
    // Default settings: no OpenAI key or base URL, no agents declared (so the default
    // `assistant` agent with provider `auto`). The fake upstream is started only because the
    // test harness wants one; nothing may call it.
    let upstream = FakeUpstream::start().await.expect("upstream starts");
    let server = TestServer::start_with(upstream, Settings::default()).await;

    let (status, body) = server
        .post(
            "assistant",
            json!({"message": "What is the capital of France?"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let reply = body["reply"].as_str().expect("a reply");
    assert!(reply.contains("Paris"), "{reply:?}");
    let usage = &body["usage"];
    assert!(
        usage["input_tokens"].as_u64().expect("input") > 10,
        "{usage}"
    );
    assert!(
        usage["output_tokens"].as_u64().expect("output") > 0,
        "{usage}"
    );

    // The conversation continues on the same model, with its history in the prompt.
    let id = body["conversation_id"].as_str().expect("an id").to_owned();
    let (status, second) = server
        .post(
            "assistant",
            json!({"conversation_id": id, "message": "And of Italy?"}),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert!(
        second["usage"]["input_tokens"].as_u64() > usage["input_tokens"].as_u64(),
        "the second prompt carries the first turn: {second}"
    );
    assert!(
        server.upstream.requests().is_empty(),
        "no HTTP provider is called"
    );
}

#[test]
fn the_binary_refuses_to_start_when_the_model_file_is_missing() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_arshai"))
        .args(["serve", "--port", "0"])
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env(
            "ARSHAI_PROVIDERS__LOCAL__MODEL_PATH",
            "/nonexistent/dir/model.gguf",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Bounded: a server that wrongly starts is killed and the test fails.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().expect("output");
    let status = status.expect("the server exits instead of serving without a model");
    assert!(!status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/dir/model.gguf"), "{stderr}");
    assert!(stderr.contains("scripts/fetch-model"), "{stderr}");
}
