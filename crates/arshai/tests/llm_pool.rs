//! Bounds on calls in flight, over real HTTP: a full host makes callers wait a bounded time,
//! and a stream holds its slot until it is dropped.

use std::sync::Arc;
use std::time::Duration;

use arshai::llm::{
    ChatRequest, ClientFactory, HttpPoolSettings, LlmClient, Message, RetrySettings,
};
use arshai::settings::{ProviderChoice, ProvidersSettings};
use arshai_testkit::{FakeUpstream, Reply};
use futures::StreamExt;

fn client(base_url: String, pool_wait_seconds: f64) -> Arc<dyn LlmClient> {
    let mut settings = ProvidersSettings {
        http: HttpPoolSettings {
            max_in_flight_per_host: 1,
            pool_wait_seconds,
            ..HttpPoolSettings::default()
        },
        retry: RetrySettings {
            max_retries: 0,
            ..RetrySettings::default()
        },
        ..ProvidersSettings::default()
    };
    settings.openai.base_url = Some(base_url);
    ClientFactory::new(settings)
        .client(ProviderChoice::Openai)
        .unwrap()
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user(text)],
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn a_call_that_finds_no_slot_within_the_wait_bound_times_out_without_reaching_upstream() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.push(Reply::text("slow").delayed(Duration::from_secs(1)));
    let client = client(upstream.base_url(), 0.2);
    let first = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.chat(&ask("one")).await })
    };
    // Let the first call take the only slot.
    while upstream.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let error = client.chat(&ask("two")).await.unwrap_err();
    assert_eq!(error.class(), "timeout", "{error}");
    assert_eq!(upstream.request_count(), 1);
    assert_eq!(first.await.unwrap().unwrap().text, "slow");
}

#[tokio::test]
async fn calls_queue_for_the_slot_and_reach_the_upstream_one_at_a_time() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.push(Reply::text("slow").delayed(Duration::from_secs(1)));
    let client = client(upstream.base_url(), 5.0);
    let (one, two) = (ask("one"), ask("two"));
    let (a, b) = tokio::join!(client.chat(&one), client.chat(&two));
    assert!(a.is_ok() && b.is_ok());
    let requests = upstream.requests();
    let gap = requests[1].at.duration_since(requests[0].at);
    assert!(
        gap >= Duration::from_millis(900),
        "the second call went out while the first held the only slot ({gap:?})"
    );
}

#[tokio::test]
async fn a_stream_holds_its_slot_until_it_is_dropped() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.push(Reply::text("a b c d").chunk_delay(Duration::from_millis(100)));
    let client = client(upstream.base_url(), 0.2);
    let request = ask("s");
    let mut events = client.stream(&request);
    assert!(events.next().await.unwrap().is_ok());
    assert_eq!(
        client.chat(&ask("meanwhile")).await.unwrap_err().class(),
        "timeout"
    );
    drop(events);
    assert_eq!(
        client.chat(&ask("after")).await.unwrap().text,
        "echo: after"
    );
}

#[tokio::test]
async fn names_resolve_through_the_caching_resolver() {
    let upstream = FakeUpstream::start().await.unwrap();
    let url = format!("http://localhost:{}/v1", upstream.addr().port());
    let client = client(url, 1.0);
    for _ in 0..3 {
        assert_eq!(client.chat(&ask("hi")).await.unwrap().text, "echo: hi");
    }
}
