//! The provider contract: every provider passes the same behaviour tests against the testkit's
//! fake upstream over real HTTP (chat, stream, tool calls, usage, error classes, faults).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arshai::llm::{
    ChatRequest, CircuitState, ClientFactory, FinishReason, HttpPoolSettings, LlmClient, LlmError,
    LlmEvents, Message, RetrySettings, StreamEvent, StructuredError, chat_structured,
};
use arshai::settings::{ProviderChoice, ProvidersSettings};
use arshai_testkit::{FakeUpstream, Reply};
use futures::StreamExt;

/// The providers under contract.
#[derive(Debug, Clone, Copy)]
enum Provider {
    OpenAi,
    Azure,
    Gemini,
    OpenRouter,
}

struct Harness {
    upstream: FakeUpstream,
    client: Arc<dyn LlmClient>,
    name: &'static str,
    events: Arc<Recorder>,
}

/// Records what the clients report through [`LlmEvents`].
#[derive(Default)]
struct Recorder {
    retries: Mutex<Vec<&'static str>>,
    states: Mutex<Vec<CircuitState>>,
}

impl LlmEvents for Recorder {
    fn retry(&self, _provider: &'static str, class: &'static str) {
        self.retries.lock().unwrap().push(class);
    }

    fn circuit_state(&self, _provider: &'static str, state: CircuitState) {
        self.states.lock().unwrap().push(state);
    }
}

fn http() -> HttpPoolSettings {
    HttpPoolSettings {
        request_timeout_seconds: 1.0,
        read_timeout_seconds: 0.5,
        ..HttpPoolSettings::default()
    }
}

async fn harness(provider: Provider) -> Harness {
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = ProvidersSettings {
        http: http(),
        retry: RetrySettings {
            max_retries: 2,
            base_delay_seconds: 0.01,
            max_delay_seconds: 0.05,
            ..RetrySettings::default()
        },
        ..ProvidersSettings::default()
    };
    let (choice, name) = match provider {
        Provider::OpenAi => {
            settings.openai.base_url = Some(upstream.base_url());
            settings.openai.api_key = Some("sk-test".into());
            settings.openai.model = "gpt-test".into();
            (ProviderChoice::Openai, "openai")
        }
        Provider::Azure => {
            settings.azure.endpoint = Some(upstream.root_url());
            settings.azure.api_key = Some("azure-key".into());
            settings.azure.deployment = Some("gpt4o-deploy".into());
            (ProviderChoice::Azure, "azure")
        }
        Provider::Gemini => {
            settings.gemini.base_url = Some(format!("{}/v1beta", upstream.root_url()));
            settings.gemini.api_key = Some("g-key".into());
            settings.gemini.model = "gemini-test".into();
            (ProviderChoice::Gemini, "gemini")
        }
        Provider::OpenRouter => {
            settings.openrouter.base_url = Some(upstream.base_url());
            settings.openrouter.api_key = Some("or-key".into());
            settings
                .openrouter
                .headers
                .insert("HTTP-Referer".into(), "https://arshai.example".into());
            settings
                .openrouter
                .headers
                .insert("X-Title".into(), "arshai".into());
            (ProviderChoice::Openrouter, "openrouter")
        }
    };
    let events = Arc::new(Recorder::default());
    let client = ClientFactory::with_events(settings, events.clone())
        .client(choice)
        .unwrap();
    Harness {
        upstream,
        client,
        name,
        events,
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

async fn auth_errors_are_not_retried(provider: Provider) {
    for status in [401, 403] {
        let h = harness(provider).await;
        h.upstream.push(Reply::status(status));
        let error = h.client.chat(&ask("hi")).await.unwrap_err();
        assert!(
            matches!(error, LlmError::Auth { status: s, .. } if s == status),
            "{error}"
        );
        assert_eq!(h.upstream.request_count(), 1);
        assert!(h.events.retries.lock().unwrap().is_empty());
    }
}

async fn a_rate_limit_with_retry_after_waits_that_long_then_succeeds(provider: Provider) {
    let h = harness(provider).await;
    h.upstream.push(Reply::status_retry_after(429, "2"));
    let response = h.client.chat(&ask("patience")).await.unwrap();
    assert_eq!(response.text, "echo: patience");
    let requests = h.upstream.requests();
    assert_eq!(requests.len(), 2, "one retry");
    let gap = requests[1].at.duration_since(requests[0].at);
    assert!(
        gap >= Duration::from_millis(1900) && gap < Duration::from_secs(4),
        "the retry came {gap:?} after the 429, not about 2 s"
    );
    assert_eq!(*h.events.retries.lock().unwrap(), vec!["rate_limited"]);
}

async fn request_errors_map_to_their_classes(provider: Provider) {
    let h = harness(provider).await;
    h.upstream.push(Reply::status(400));
    assert_eq!(
        h.client.chat(&ask("a")).await.unwrap_err().class(),
        "bad_request"
    );
    h.upstream.push(Reply::status_message(
        400,
        "This model's maximum context length is 128000 tokens",
    ));
    assert_eq!(
        h.client.chat(&ask("a")).await.unwrap_err().class(),
        "context_length"
    );
    h.upstream.push(Reply::status_retry_after(429, "60"));
    let error = h.client.chat(&ask("a")).await.unwrap_err();
    assert_eq!(error.class(), "rate_limited");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
    h.upstream
        .push(Reply::text("late").delayed(Duration::from_secs(10)));
    h.upstream
        .push(Reply::text("late").delayed(Duration::from_secs(10)));
    h.upstream
        .push(Reply::text("late").delayed(Duration::from_secs(10)));
    assert_eq!(
        h.client.chat(&ask("a")).await.unwrap_err().class(),
        "timeout"
    );
    assert_eq!(h.upstream.request_count(), 6, "timeouts are retried");
}

async fn a_503_storm_is_retried_a_bounded_number_of_times_then_the_circuit_opens(
    provider: Provider,
) {
    let h = harness(provider).await;
    for _ in 0..20 {
        h.upstream.push(Reply::status(503));
    }
    let first = h.client.chat(&ask("a")).await.unwrap_err();
    assert_eq!(first.class(), "upstream_status");
    assert_eq!(h.upstream.request_count(), 3, "one call, two retries");
    // Two more failures reach the threshold (5): the breaker opens during this call.
    let second = h.client.chat(&ask("a")).await.unwrap_err();
    assert_eq!(h.upstream.request_count(), 5);
    assert_eq!(second.class(), "circuit_open", "{second}");
    let third = h.client.chat(&ask("a")).await.unwrap_err();
    assert_eq!(third.class(), "circuit_open");
    let streamed: Vec<_> = h.client.stream(&ask("a")).collect().await;
    assert!(matches!(streamed[..], [Err(LlmError::CircuitOpen { .. })]));
    assert_eq!(h.upstream.request_count(), 5, "an open circuit fails fast");
    assert_eq!(*h.events.states.lock().unwrap(), vec![CircuitState::Open]);
    assert_eq!(h.events.retries.lock().unwrap().len(), 4);
}

async fn a_stream_is_retried_when_it_fails_before_the_first_event(provider: Provider) {
    let h = harness(provider).await;
    h.upstream.push(Reply::status(503));
    h.upstream
        .push(Reply::text("second try").disconnect_after(0));
    let events = collect(h.client.as_ref(), &ask("hi")).await;
    assert!(events.iter().all(Result::is_ok), "{events:?}");
    assert_eq!(text_of(&events), "echo: hi");
    assert_eq!(h.upstream.request_count(), 3);
}

#[derive(Debug, PartialEq, serde::Deserialize, schemars::JsonSchema)]
struct Forecast {
    city: String,
    celsius: i32,
}

/// The schema the provider was asked to enforce, found where its wire format puts it.
fn schema_sent(provider: Provider, body: &serde_json::Value) -> serde_json::Value {
    match provider {
        Provider::OpenAi | Provider::Azure | Provider::OpenRouter => {
            assert_eq!(body["response_format"]["type"], "json_schema");
            assert_eq!(body["response_format"]["json_schema"]["name"], "forecast");
            body["response_format"]["json_schema"]["schema"].clone()
        }
        Provider::Gemini => {
            assert_eq!(
                body["generationConfig"]["responseMimeType"],
                "application/json"
            );
            body["generationConfig"]["responseSchema"].clone()
        }
    }
}

async fn requests_use_the_providers_url_scheme_and_auth(provider: Provider) {
    let h = harness(provider).await;
    h.client.chat(&ask("a")).await.unwrap();
    let _: Vec<_> = h.client.stream(&ask("b")).collect().await;
    let requests = h.upstream.requests();
    let (chat, stream) = (&requests[0], &requests[1]);
    match provider {
        Provider::OpenAi | Provider::OpenRouter => {
            assert_eq!(chat.path, "/v1/chat/completions");
            let key = if matches!(provider, Provider::OpenAi) {
                "sk-test"
            } else {
                "or-key"
            };
            assert_eq!(
                chat.authorization.as_deref(),
                Some(format!("Bearer {key}").as_str())
            );
            assert_eq!(stream.body["stream"], true);
            assert_eq!(stream.body["stream_options"]["include_usage"], true);
            if matches!(provider, Provider::OpenRouter) {
                assert_eq!(chat.header("http-referer"), Some("https://arshai.example"));
                assert_eq!(chat.header("x-title"), Some("arshai"));
            }
        }
        Provider::Azure => {
            assert_eq!(
                chat.path,
                "/openai/deployments/gpt4o-deploy/chat/completions"
            );
            assert_eq!(chat.query.as_deref(), Some("api-version=2024-10-21"));
            assert_eq!(chat.header("api-key"), Some("azure-key"));
            assert_eq!(chat.authorization, None);
            assert_eq!(stream.body["stream"], true);
        }
        Provider::Gemini => {
            assert_eq!(chat.path, "/v1beta/models/gemini-test:generateContent");
            assert_eq!(
                stream.path,
                "/v1beta/models/gemini-test:streamGenerateContent"
            );
            assert_eq!(stream.query.as_deref(), Some("alt=sse"));
            assert_eq!(chat.header("x-goog-api-key"), Some("g-key"));
            assert_eq!(chat.authorization, None);
            assert_eq!(
                chat.body["systemInstruction"]["parts"][0]["text"],
                "be brief"
            );
            assert_eq!(chat.body["contents"][0]["role"], "user");
        }
    }
}

async fn tool_results_go_back_in_the_providers_format(provider: Provider) {
    let h = harness(provider).await;
    h.upstream.push(Reply::tool_calls([
        ("lookup", r#"{"q":"x"}"#),
        ("lookup", r#"{"q":"y"}"#),
    ]));
    h.upstream.push(Reply::text("done"));
    let first = h.client.chat(&ask("find")).await.unwrap();
    assert_eq!(first.finish_reason, FinishReason::ToolCalls);
    assert_eq!(first.tool_calls.len(), 2);
    let mut request = ask("find");
    request
        .messages
        .push(Message::tool_calls("", first.tool_calls.clone()));
    request.messages.push(Message::tool_result(
        first.tool_calls[0].id.clone(),
        "found x",
    ));
    request.messages.push(Message::tool_result(
        first.tool_calls[1].id.clone(),
        "found y",
    ));
    let second = h.client.chat(&request).await.unwrap();
    assert_eq!(second.text, "done");
    let body = &h.upstream.requests()[1].body;
    match provider {
        Provider::Gemini => {
            let contents = body["contents"].as_array().unwrap();
            assert_eq!(contents[1]["role"], "model");
            assert_eq!(contents[1]["parts"][1]["functionCall"]["args"]["q"], "y");
            assert_eq!(contents[2]["role"], "user");
            let response = &contents[2]["parts"][1]["functionResponse"];
            assert_eq!(response["name"], "lookup");
            assert_eq!(response["response"]["result"], "found y");
        }
        _ => {
            let messages = body["messages"].as_array().unwrap();
            assert_eq!(messages[2]["role"], "assistant");
            assert_eq!(
                messages[2]["tool_calls"][1]["function"]["arguments"],
                r#"{"q":"y"}"#
            );
            assert_eq!(messages[4]["role"], "tool");
            assert_eq!(
                messages[4]["tool_call_id"],
                messages[2]["tool_calls"][1]["id"]
            );
            assert_eq!(messages[4]["content"], "found y");
        }
    }
}

async fn structured_output_is_enforced_and_parsed_into_a_type(provider: Provider) {
    let h = harness(provider).await;
    h.upstream
        .push(Reply::text(r#"{"city":"Oslo","celsius":21}"#));
    let (forecast, response) =
        chat_structured::<Forecast>(h.client.as_ref(), &ask("forecast?"), "forecast")
            .await
            .unwrap();
    assert_eq!(
        forecast,
        Forecast {
            city: "Oslo".into(),
            celsius: 21
        }
    );
    assert!(response.usage.total_tokens > 0);
    let schema = schema_sent(provider, &h.upstream.requests()[0].body);
    assert_eq!(schema["properties"]["celsius"]["type"], "integer");

    h.upstream.push(Reply::text(r#"{"city":"Oslo"}"#));
    let error = chat_structured::<Forecast>(h.client.as_ref(), &ask("?"), "forecast")
        .await
        .unwrap_err();
    assert!(
        matches!(error, StructuredError::SchemaMismatch { .. }),
        "{error}"
    );
    h.upstream.push(Reply::text("It will be sunny."));
    let error = chat_structured::<Forecast>(h.client.as_ref(), &ask("?"), "forecast")
        .await
        .unwrap_err();
    assert!(matches!(error, StructuredError::NotJson { .. }), "{error}");
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
            async fn requests_use_the_providers_url_scheme_and_auth() {
                super::requests_use_the_providers_url_scheme_and_auth($provider).await;
            }
            #[tokio::test]
            async fn tool_results_go_back_in_the_providers_format() {
                super::tool_results_go_back_in_the_providers_format($provider).await;
            }
            #[tokio::test]
            async fn structured_output_is_enforced_and_parsed_into_a_type() {
                super::structured_output_is_enforced_and_parsed_into_a_type($provider).await;
            }
            #[tokio::test]
            async fn auth_errors_are_not_retried() {
                super::auth_errors_are_not_retried($provider).await;
            }
            #[tokio::test]
            async fn a_rate_limit_with_retry_after_waits_that_long_then_succeeds() {
                super::a_rate_limit_with_retry_after_waits_that_long_then_succeeds($provider).await;
            }
            #[tokio::test]
            async fn request_errors_map_to_their_classes() {
                super::request_errors_map_to_their_classes($provider).await;
            }
            #[tokio::test]
            async fn a_503_storm_is_retried_a_bounded_number_of_times_then_the_circuit_opens() {
                super::a_503_storm_is_retried_a_bounded_number_of_times_then_the_circuit_opens(
                    $provider,
                )
                .await;
            }
            #[tokio::test]
            async fn a_stream_is_retried_when_it_fails_before_the_first_event() {
                super::a_stream_is_retried_when_it_fails_before_the_first_event($provider).await;
            }
            #[tokio::test]
            async fn malformed_json_is_a_decode_error_naming_the_provider() {
                super::malformed_json_is_a_decode_error_naming_the_provider($provider).await;
            }
        }
    };
}

contract!(openai, Provider::OpenAi);
contract!(azure, Provider::Azure);
contract!(gemini, Provider::Gemini);
contract!(openrouter, Provider::OpenRouter);
