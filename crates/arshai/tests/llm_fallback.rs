//! The fallback chain over real HTTP: the primary provider fails, the next one answers.

use arshai::llm::{ChatRequest, ClientFactory, Message, RetrySettings, StreamEvent};
use arshai::settings::{ProviderChoice, ProvidersSettings};
use arshai_testkit::{FakeUpstream, Reply};
use futures::StreamExt;

fn settings(primary: &FakeUpstream, secondary: &FakeUpstream) -> ProvidersSettings {
    let mut settings = ProvidersSettings {
        retry: RetrySettings {
            max_retries: 1,
            base_delay_seconds: 0.01,
            ..RetrySettings::default()
        },
        fallback: vec![ProviderChoice::Gemini],
        ..ProvidersSettings::default()
    };
    settings.openai.base_url = Some(primary.base_url());
    settings.openai.api_key = Some("sk".into());
    settings.gemini.base_url = Some(format!("{}/v1beta", secondary.root_url()));
    settings.gemini.api_key = Some("g".into());
    settings
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        model: Some("gpt-primary-only".into()),
        messages: vec![Message::user(text)],
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn a_failing_primary_falls_back_to_the_next_provider_with_its_own_model() {
    let (primary, secondary) = (
        FakeUpstream::start().await.unwrap(),
        FakeUpstream::start().await.unwrap(),
    );
    for _ in 0..4 {
        primary.push(Reply::status(503));
    }
    let client = ClientFactory::new(settings(&primary, &secondary))
        .client(ProviderChoice::Openai)
        .unwrap();
    let response = client.chat(&ask("hello")).await.unwrap();
    assert_eq!(response.text, "echo: hello");
    assert_eq!(primary.request_count(), 2, "the primary was retried once");
    let sent = &secondary.requests()[0];
    assert_eq!(
        sent.path, "/v1beta/models/gemini-2.0-flash:generateContent",
        "the fallback uses its own default model"
    );

    let events: Vec<_> = client.stream(&ask("streamed")).collect().await;
    assert!(events.iter().all(Result::is_ok), "{events:?}");
    assert!(matches!(
        events.last(),
        Some(Ok(StreamEvent::Finish { .. }))
    ));
}

#[tokio::test]
async fn a_request_error_does_not_fall_back() {
    let (primary, secondary) = (
        FakeUpstream::start().await.unwrap(),
        FakeUpstream::start().await.unwrap(),
    );
    primary.push(Reply::status(400));
    let client = ClientFactory::new(settings(&primary, &secondary))
        .client(ProviderChoice::Openai)
        .unwrap();
    let error = client.chat(&ask("bad")).await.unwrap_err();
    assert_eq!(error.class(), "bad_request");
    assert_eq!(secondary.request_count(), 0);
}
