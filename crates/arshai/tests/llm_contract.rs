//! The provider contract: every provider passes the same behaviour tests against the testkit's
//! fake upstream over real HTTP (chat, stream, tool calls, usage, error classes, faults).

use std::sync::Arc;
use std::time::Duration;

use arshai::llm::openai::{OpenAiClient, OpenAiConfig};
use arshai::llm::{
    ChatRequest, FinishReason, HttpPoolSettings, LlmClient, LlmError, Message, StreamEvent,
};
use arshai_testkit::{FakeUpstream, Reply};
use futures::StreamExt;

/// The providers under contract.
#[derive(Debug, Clone, Copy)]
enum Provider {
    OpenAi,
}

struct Harness {
    upstream: FakeUpstream,
    client: Arc<dyn LlmClient>,
    name: &'static str,
}

fn http() -> HttpPoolSettings {
    HttpPoolSettings {
        request_timeout_seconds: 5.0,
        read_timeout_seconds: 0.5,
        ..HttpPoolSettings::default()
    }
}

async fn harness(provider: Provider) -> Harness {
    let upstream = FakeUpstream::start().await.unwrap();
    let (client, name): (Arc<dyn LlmClient>, &'static str) = match provider {
        Provider::OpenAi => (
            Arc::new(
                OpenAiClient::new(OpenAiConfig {
                    provider: "openai",
                    base_url: upstream.base_url(),
                    api_key: Some("sk-test".into()),
                    default_model: "gpt-test".into(),
                    http: http(),
                })
                .unwrap(),
            ),
            "openai",
        ),
    };
    Harness {
        upstream,
        client,
        name,
    }
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        system: Some("be brief".into()),
        messages: vec![Message::user(text)],
        ..ChatRequest::default()
    }
}

async fn collect(
    client: &dyn LlmClient,
    request: &ChatRequest,
) -> Vec<Result<StreamEvent, LlmError>> {
    client.stream(request).collect().await
}

fn text_of(events: &[Result<StreamEvent, LlmError>]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::TextDelta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

async fn chat_answers_with_text_and_usage(provider: Provider) {
    let h = harness(provider).await;
    let response = h.client.chat(&ask("hello there")).await.unwrap();
    assert_eq!(response.text, "echo: hello there");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert!(response.usage.input_tokens > 0);
    assert!(response.usage.output_tokens > 0);
    assert_eq!(
        response.usage.total_tokens,
        response.usage.input_tokens + response.usage.output_tokens
    );
}

async fn stream_delivers_text_in_several_deltas_then_usage_then_finish(provider: Provider) {
    let h = harness(provider).await;
    h.upstream.push(Reply::text("one two three four"));
    let events = collect(h.client.as_ref(), &ask("hi")).await;
    let deltas = events
        .iter()
        .filter(|e| matches!(e, Ok(StreamEvent::TextDelta(_))))
        .count();
    assert!(deltas >= 4, "{events:?}");
    assert_eq!(text_of(&events), "one two three four");
    let n = events.len();
    assert!(
        matches!(&events[n - 2], Ok(StreamEvent::Usage(u)) if u.total_tokens > 0),
        "{events:?}"
    );
    assert!(
        matches!(
            &events[n - 1],
            Ok(StreamEvent::Finish {
                reason: FinishReason::Stop,
                ..
            })
        ),
        "{events:?}"
    );
}

async fn stream_assembles_several_tool_calls_split_across_chunks(provider: Provider) {
    let h = harness(provider).await;
    h.upstream.push(Reply::tool_calls([
        ("weather", r#"{"city":"Oslo","unit":"celsius"}"#),
        ("time", r#"{"zone":"Europe/Oslo"}"#),
    ]));
    let events = collect(h.client.as_ref(), &ask("weather and time?")).await;
    let calls: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::ToolCall(c)) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 2, "{events:?}");
    assert_eq!(calls[0].name, "weather");
    let args: serde_json::Value = serde_json::from_str(&calls[0].arguments).unwrap();
    assert_eq!(args["city"], "Oslo");
    assert_eq!(calls[1].name, "time");
    assert!(matches!(
        events.last(),
        Some(Ok(StreamEvent::Finish { .. }))
    ));
}

async fn chat_returns_several_tool_calls(provider: Provider) {
    let h = harness(provider).await;
    h.upstream.push(Reply::tool_calls([
        ("a", r#"{"x":1}"#),
        ("b", r#"{"y":2}"#),
    ]));
    let response = h.client.chat(&ask("go")).await.unwrap();
    assert_eq!(response.tool_calls.len(), 2);
    assert_eq!(response.tool_calls[1].name, "b");
    let args: serde_json::Value = serde_json::from_str(&response.tool_calls[1].arguments).unwrap();
    assert_eq!(args["y"], 2);
}

async fn a_stream_cut_mid_answer_is_an_error_after_the_text_already_sent(provider: Provider) {
    let h = harness(provider).await;
    h.upstream
        .push(Reply::text("alpha beta gamma delta epsilon").disconnect_after(3));
    let events = collect(h.client.as_ref(), &ask("hi")).await;
    assert!(!text_of(&events).is_empty(), "{events:?}");
    let last = events.last().unwrap();
    assert!(
        matches!(last, Err(LlmError::Connection { .. })),
        "{events:?}"
    );
    assert_eq!(
        h.upstream.request_count(),
        1,
        "a cut stream is never retried"
    );
}

async fn a_malformed_stream_chunk_is_a_decode_error_naming_the_provider(provider: Provider) {
    let h = harness(provider).await;
    h.upstream
        .push(Reply::text("alpha beta gamma").malformed_chunk_after(2));
    let events = collect(h.client.as_ref(), &ask("hi")).await;
    let error = events.iter().find_map(|e| e.as_ref().err()).unwrap();
    assert_eq!(error.class(), "decode", "{error}");
    assert!(error.to_string().contains(h.name), "{error}");
    assert!(events.last().unwrap().is_err(), "nothing follows an error");
}

async fn a_stalled_stream_times_out_per_read(provider: Provider) {
    let h = harness(provider).await;
    h.upstream
        .push(Reply::text("alpha beta gamma").stall_after(2));
    let events = collect(h.client.as_ref(), &ask("hi")).await;
    assert!(
        matches!(events.last(), Some(Err(LlmError::Timeout { .. }))),
        "{events:?}"
    );
}

async fn a_slow_but_flowing_stream_is_not_cut(provider: Provider) {
    let h = harness(provider).await;
    // Every gap (0.2 s) is under the read timeout (0.5 s), the whole answer is not.
    h.upstream
        .push(Reply::text("a b c d e").chunk_delay(Duration::from_millis(200)));
    let events = collect(h.client.as_ref(), &ask("hi")).await;
    assert_eq!(text_of(&events), "a b c d e");
    assert!(events.iter().all(Result::is_ok), "{events:?}");
}

async fn malformed_json_is_a_decode_error_naming_the_provider(provider: Provider) {
    let h = harness(provider).await;
    h.upstream.push(Reply::Malformed);
    let error = h.client.chat(&ask("hi")).await.unwrap_err();
    assert_eq!(error.class(), "decode");
    assert!(error.to_string().contains(h.name), "{error}");
}

macro_rules! contract {
    ($module:ident, $provider:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn chat_answers_with_text_and_usage() {
                super::chat_answers_with_text_and_usage($provider).await;
            }
            #[tokio::test]
            async fn stream_delivers_text_in_several_deltas_then_usage_then_finish() {
                super::stream_delivers_text_in_several_deltas_then_usage_then_finish($provider)
                    .await;
            }
            #[tokio::test]
            async fn stream_assembles_several_tool_calls_split_across_chunks() {
                super::stream_assembles_several_tool_calls_split_across_chunks($provider).await;
            }
            #[tokio::test]
            async fn chat_returns_several_tool_calls() {
                super::chat_returns_several_tool_calls($provider).await;
            }
            #[tokio::test]
            async fn a_stream_cut_mid_answer_is_an_error_after_the_text_already_sent() {
                super::a_stream_cut_mid_answer_is_an_error_after_the_text_already_sent($provider)
                    .await;
            }
            #[tokio::test]
            async fn a_malformed_stream_chunk_is_a_decode_error_naming_the_provider() {
                super::a_malformed_stream_chunk_is_a_decode_error_naming_the_provider($provider)
                    .await;
            }
            #[tokio::test]
            async fn a_stalled_stream_times_out_per_read() {
                super::a_stalled_stream_times_out_per_read($provider).await;
            }
            #[tokio::test]
            async fn a_slow_but_flowing_stream_is_not_cut() {
                super::a_slow_but_flowing_stream_is_not_cut($provider).await;
            }
            #[tokio::test]
            async fn malformed_json_is_a_decode_error_naming_the_provider() {
                super::malformed_json_is_a_decode_error_naming_the_provider($provider).await;
            }
        }
    };
}

contract!(openai, Provider::OpenAi);
