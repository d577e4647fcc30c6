//! The history window over real HTTP: what reaches the provider is the window of the
//! stored conversation plus the new message, while the store keeps everything.

use std::sync::Arc;

use arshai::agent::{Agent, AgentInput, ConversationAgent, HistoryWindow};
use arshai::llm::openai::{OpenAiClient, OpenAiConfig};
use arshai::llm::{HttpPoolSettings, LlmClient};
use arshai::memory::{
    ConversationId, ConversationKey, InMemoryStore, InMemoryStoreConfig, MemoryStore,
};
use arshai_testkit::{FakeUpstream, UpstreamOptions};

#[tokio::test]
async fn only_the_window_of_the_history_is_sent() {
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        record: true,
        ..UpstreamOptions::default()
    })
    .await
    .unwrap();
    let llm: Arc<dyn LlmClient> = Arc::new(
        OpenAiClient::new(OpenAiConfig {
            provider: "openai",
            base_url: upstream.base_url(),
            api_key: Some("sk-test".into()),
            default_model: "gpt-test".into(),
            extra_headers: Vec::new(),
            http: HttpPoolSettings::default(),
        })
        .unwrap(),
    );
    let memory: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new(InMemoryStoreConfig::default()));
    let agent = Arc::new(
        ConversationAgent::builder("windowed", llm, Arc::clone(&memory))
            .system_prompt("Be brief.")
            .history(HistoryWindow {
                max_messages: Some(3),
                max_tokens: None,
            })
            .build(),
    );
    let id = ConversationId::parse("long").unwrap();
    for n in 0..4 {
        Arc::clone(&agent)
            .respond(AgentInput::new(Some(id.clone()), format!("turn {n}")))
            .await
            .unwrap();
    }
    let requests = upstream.requests();
    let last = requests.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .clone();
    let contents: Vec<&str> = last
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        contents,
        [
            "Be brief.",
            "echo: turn 1",
            "turn 2",
            "echo: turn 2",
            "turn 3"
        ],
        "the system prompt, the 3 most recent stored messages, the new one"
    );
    let stored = memory
        .load(&ConversationKey::new(ConversationKey::DEFAULT_TENANT, id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.messages.len(), 8, "the store keeps every message");
}
