//! `"stream": true` on the messages endpoint: server-sent events over real HTTP, against the
//! fake upstream's real SSE.

mod support;

use std::time::Duration;

use arshai::memory::LeasePolicy;
use arshai_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};
use support::probe::Probe;
use support::sse::{Frame, parse_strict};
use support::{TestServer, settings_for};

/// POSTs a streamed turn and returns the status, the headers and the strictly parsed body.
async fn stream_turn(
    server: &TestServer,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, support::sse::Parsed) {
    let mut body = body;
    body["stream"] = json!(true);
    let response = server.post_raw("assistant", body.to_string()).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("the stream completes");
    (status, headers, parse_strict(&bytes))
}

fn names(frames: &[Frame]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| f.event.as_deref().unwrap_or("message"))
        .collect()
}

fn data(frame: &Frame) -> Value {
    serde_json::from_str(&frame.data).expect("event data is JSON")
}

async fn get_conversation(server: &TestServer, id: &str) -> (u16, Value) {
    let response = server
        .http
        .get(server.url(&format!("/v1/agents/assistant/conversations/{id}")))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_streamed_turn_equals_the_same_turn_non_streamed() {
    let server = TestServer::start().await;
    let message = "Tell me about the sea and the wind";
    let (status, plain) = server
        .post(
            "assistant",
            json!({"conversation_id": "plain", "message": message}),
        )
        .await;
    assert_eq!(status, 200, "{plain}");

    let (status, headers, parsed) = stream_turn(
        &server,
        json!({"conversation_id": "streamed", "message": message}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(
        headers["x-accel-buffering"], "no",
        "nginx must not buffer a stream"
    );
    assert_eq!(headers["x-conversation-id"], "streamed");
    let kinds = names(&parsed.frames);
    assert!(kinds.len() > 2, "several deltas and a done: {kinds:?}");
    assert_eq!(kinds.last(), Some(&"done"));
    assert!(
        kinds[..kinds.len() - 1].iter().all(|k| *k == "delta"),
        "{kinds:?}"
    );

    let text: String = parsed.frames[..kinds.len() - 1]
        .iter()
        .map(|f| data(f)["text"].as_str().unwrap().to_owned())
        .collect();
    let done = data(parsed.frames.last().unwrap());
    assert_eq!(text, plain["reply"].as_str().unwrap());
    assert_eq!(done["reply"], plain["reply"]);
    assert_eq!(done["usage"], plain["usage"]);
    assert_eq!(done["conversation_id"], "streamed");
    assert_eq!(done["finish_reason"], "stop");

    // Both turns are recorded the same way.
    let (_, a) = get_conversation(&server, "plain").await;
    let (_, b) = get_conversation(&server, "streamed").await;
    assert_eq!(a["messages"], b["messages"]);
    assert_eq!(b["messages"].as_array().unwrap().len(), 2);

    // And the upstream was really asked to stream the second one.
    let requests = server.upstream.requests();
    assert_eq!(requests[1].body["stream"], true);
    assert_ne!(requests[0].body["stream"], true);
}

#[tokio::test]
async fn a_new_streamed_conversation_gets_an_id_before_the_first_event() {
    let server = TestServer::start().await;
    let (status, headers, parsed) = stream_turn(&server, json!({"message": "hi"})).await;
    assert_eq!(status, 200);
    let id = headers["x-conversation-id"].to_str().unwrap().to_owned();
    assert!(!id.is_empty());
    assert_eq!(data(parsed.frames.last().unwrap())["conversation_id"], id);
    let (status, conversation) = get_conversation(&server, &id).await;
    assert_eq!(status, 200, "{conversation}");
}

#[tokio::test]
async fn keep_alive_comments_flow_while_the_upstream_is_slow() {
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = settings_for(&upstream);
    settings.stream.keep_alive_seconds = 0.02;
    let server = TestServer::start_with(upstream, settings).await;
    server
        .upstream
        .push(Reply::text("one two three").chunk_delay(Duration::from_millis(150)));
    let (status, _, parsed) = stream_turn(&server, json!({"message": "hi"})).await;
    assert_eq!(status, 200);
    assert!(parsed.comments > 0, "no keep-alive comment was sent");
    assert_eq!(names(&parsed.frames).last(), Some(&"done"));
}

#[tokio::test]
async fn an_idle_stream_ends_with_an_error_event_and_records_nothing() {
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = settings_for(&upstream);
    settings.stream.idle_timeout_seconds = 0.3;
    settings.providers.http.read_timeout_seconds = 30.0;
    let server = TestServer::start_with(upstream, settings).await;
    server
        .upstream
        .push(Reply::text("one two three four five").stall_after(3));
    let (status, _, parsed) =
        stream_turn(&server, json!({"conversation_id": "idle", "message": "hi"})).await;
    assert_eq!(status, 200);
    let kinds = names(&parsed.frames);
    assert_eq!(kinds.first(), Some(&"delta"));
    assert_eq!(kinds.last(), Some(&"error"), "{kinds:?}");
    let error = data(parsed.frames.last().unwrap());
    assert_eq!(error["error"]["type"], "stream_idle_timeout");
    let (status, _) = get_conversation(&server, "idle").await;
    assert_eq!(status, 404, "a turn that did not finish is not recorded");
}

#[tokio::test]
async fn an_upstream_failure_before_the_first_event_keeps_its_status() {
    let server = TestServer::start().await;
    server.upstream.push(Reply::status(401));
    let mut body = json!({"conversation_id": "early", "message": "hi", "stream": true});
    let response = server.post_raw("assistant", body.to_string()).await;
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "upstream_auth");
    // Bad input is refused before any streaming too.
    body["message"] = json!(" ");
    let response = server.post_raw("assistant", body.to_string()).await;
    assert_eq!(response.status(), 422);
    let response = server
        .post_raw(
            "nobody",
            json!({"message": "hi", "stream": true}).to_string(),
        )
        .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_stream_cut_mid_answer_is_an_error_event_and_records_nothing() {
    let server = TestServer::start().await;
    server
        .upstream
        .push(Reply::text("one two three four five six").disconnect_after(3));
    let (status, _, parsed) =
        stream_turn(&server, json!({"conversation_id": "cut", "message": "hi"})).await;
    assert_eq!(status, 200);
    let kinds = names(&parsed.frames);
    assert_eq!(kinds.first(), Some(&"delta"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"error"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "error").count(), 1);
    assert!(!kinds.contains(&"done"));
    let error = data(parsed.frames.last().unwrap());
    assert!(
        error["error"]["type"]
            .as_str()
            .unwrap()
            .starts_with("upstream"),
        "{error}"
    );
    let (status, _) = get_conversation(&server, "cut").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_client_disconnect_cancels_the_upstream_call_records_nothing_and_frees_the_lease() {
    let upstream = FakeUpstream::start().await.unwrap();
    let probe = Probe::start(upstream.addr()).await;
    let mut settings = settings_for(&upstream);
    settings.providers.openai.base_url = Some(probe.base_url());
    settings.stream.keep_alive_seconds = 0.05;
    // A busy conversation is refused at once: the next turn proves the lease was released.
    settings.memory.turn_policy = LeasePolicy::Reject;
    let server = TestServer::start_with(upstream, settings).await;

    // One complete turn first, not streamed (so no `[DONE]` crosses the probe).
    let (status, _) = server
        .post(
            "assistant",
            json!({"conversation_id": "c", "message": "first"}),
        )
        .await;
    assert_eq!(status, 200);

    let long: Vec<String> = (0..200).map(|i| format!("w{i}")).collect();
    server
        .upstream
        .push(Reply::text(long.join(" ")).chunk_delay(Duration::from_millis(20)));
    let mut response = server
        .post_raw(
            "assistant",
            json!({"conversation_id": "c", "message": "second", "stream": true}).to_string(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("event: delta") {
        let chunk = response.chunk().await.unwrap().expect("a delta arrives");
        seen.extend_from_slice(&chunk);
    }
    drop(response);

    // The server closes its upstream connection before the answer is complete.
    let mut cancelled = false;
    for _ in 0..200 {
        cancelled = probe.connections().iter().any(|c| {
            let text = String::from_utf8_lossy(&c.from_upstream);
            c.closed_by_server && text.contains("chat.completion.chunk") && !text.contains("[DONE]")
        });
        if cancelled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        cancelled,
        "the upstream stream was not cancelled: {:?}",
        probe.connections().len()
    );

    // Nothing of the cancelled turn was recorded, not even the user's message.
    let (status, conversation) = get_conversation(&server, "c").await;
    assert_eq!(status, 200);
    let contents: Vec<&str> = conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["first", "echo: first"]);

    // The lease was released: the next turn is not refused as busy.
    let mut answer = (0, Value::Null);
    for _ in 0..100 {
        answer = server
            .post(
                "assistant",
                json!({"conversation_id": "c", "message": "third"}),
            )
            .await;
        if answer.0 != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer.0, 200, "{}", answer.1);
    let (_, conversation) = get_conversation(&server, "c").await;
    assert_eq!(conversation["messages"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn an_idle_timeout_before_the_first_event_is_a_504() {
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = settings_for(&upstream);
    settings.stream.idle_timeout_seconds = 0.2;
    let server = TestServer::start_with(upstream, settings).await;
    server
        .upstream
        .push(Reply::text("late").delayed(Duration::from_secs(3)));
    let body = json!({"conversation_id": "slow", "message": "hi", "stream": true});
    let response = server.post_raw("assistant", body.to_string()).await;
    assert_eq!(response.status(), 504);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "stream_idle_timeout");
    let (status, _) = get_conversation(&server, "slow").await;
    assert_eq!(status, 404);
}
