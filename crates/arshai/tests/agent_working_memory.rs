//! The working-memory agent over real HTTP: after each turn the model revises the memory,
//! which is committed with the turn and carried by the next turn's prompt.

use std::sync::Arc;

use arshai::agent::{Agent, AgentInput, ConversationAgent, HistoryWindow, WorkingMemory};
use arshai::llm::openai::{OpenAiClient, OpenAiConfig};
use arshai::llm::{HttpPoolSettings, LlmClient};
use arshai::memory::{
    ConversationId, ConversationKey, InMemoryStore, InMemoryStoreConfig, MemoryStore,
};
use arshai_testkit::{FakeUpstream, Reply, UpstreamOptions};

fn client(upstream: &FakeUpstream) -> Arc<dyn LlmClient> {
    Arc::new(
        OpenAiClient::new(OpenAiConfig {
            provider: "openai",
            base_url: upstream.base_url(),
            api_key: Some("sk-test".into()),
            default_model: "gpt-test".into(),
            extra_headers: Vec::new(),
            http: HttpPoolSettings::default(),
        })
        .unwrap(),
    )
}

#[tokio::test]
async fn the_memory_is_revised_committed_and_carried_by_the_next_prompt() {
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        record: true,
        ..UpstreamOptions::default()
    })
    .await
    .unwrap();
    let memory: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new(InMemoryStoreConfig::default()));
    let agent = Arc::new(
        ConversationAgent::builder("notes", client(&upstream), Arc::clone(&memory))
            .system_prompt("Be brief.")
            .history(HistoryWindow {
                max_messages: Some(2),
                max_tokens: None,
            })
            .working_memory(WorkingMemory::default())
            .build(),
    );
    assert_eq!(agent.agent_type(), "working_memory");
    let id = ConversationId::parse("remembered").unwrap();
    let key = ConversationKey::new(ConversationKey::DEFAULT_TENANT, id.clone());

    upstream.push(Reply::text("Nice to meet you, Ada."));
    upstream.push(Reply::text("The user is called Ada."));
    let first = Arc::clone(&agent)
        .respond(AgentInput::new(Some(id.clone()), "I am Ada."))
        .await
        .unwrap();
    assert_eq!(first.reply, "Nice to meet you, Ada.");
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2, "the answer, then the revision");
    let revision = requests[1].body["messages"][1]["content"].as_str().unwrap();
    assert!(
        revision.contains("(empty)")
            && revision.contains("User: I am Ada.")
            && revision.contains("Assistant: Nice to meet you, Ada."),
        "the revision sees the old memory and the new exchange: {revision}"
    );
    assert!(first.usage.total_tokens > 0);
    let stored = memory.load(&key).await.unwrap().unwrap();
    assert_eq!(
        stored.working_memory.as_deref(),
        Some("The user is called Ada.")
    );
    assert_eq!(stored.version, 1, "memory and turn in one write");

    // The next turn's prompt carries the memory; a failed revision keeps the old memory
    // and still records the turn.
    upstream.push(Reply::text("Your name is Ada."));
    upstream.push(Reply::status(400));
    let second = Arc::clone(&agent)
        .respond(AgentInput::new(Some(id.clone()), "What is my name?"))
        .await
        .unwrap();
    assert_eq!(second.reply, "Your name is Ada.");
    let requests = upstream.requests();
    let system = requests[2].body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("The user is called Ada."), "{system}");
    let stored = memory.load(&key).await.unwrap().unwrap();
    assert_eq!(stored.messages.len(), 4, "both turns are recorded");
    assert_eq!(
        stored.working_memory.as_deref(),
        Some("The user is called Ada."),
        "a failed revision leaves the memory as it was"
    );
}
