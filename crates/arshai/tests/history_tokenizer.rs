//! The history window's token bound counted by the provider's tokenizer: an agent declared
//! with an OpenAI model counts with `o200k_base` (over real HTTP on the fake upstream, the
//! window it sends is the one that tokenizer gives, longer than the estimate's), and the
//! embedded model's own tokenizer (the real SmolLM2 GGUF that `scripts/fetch-model`
//! fetches) keeps more of an English history than the estimate, never exceeding the bound
//! by its own count.

use std::sync::Arc;

use arshai::agent::{
    AgentInput, AgentRegistry, AgentSettings, HistoryWindow, OpenAiEncoding, Settings,
    TokenCounter, estimated_tokens,
};
use arshai::llm::{LlmClient, Message, Role};
use arshai::memory::MemoryStore;
use arshai::memory::{ConversationId, ConversationKey, InMemoryStore, InMemoryStoreConfig};
use arshai_testkit::FakeUpstream;

fn english(n: usize) -> Vec<Message> {
    let sentences = [
        "Could you tell me when the next train to the airport leaves?",
        "The next one leaves at ten past four from platform two.",
        "Thanks. And how long does the ride take, roughly?",
        "About thirty-five minutes, a little more in the evening rush hour.",
    ];
    (0..n)
        .map(|i| {
            let text = sentences[i % sentences.len()];
            if i % 2 == 0 {
                Message::user(text)
            } else {
                Message::assistant(text)
            }
        })
        .collect()
}

#[tokio::test]
async fn an_agent_on_an_openai_model_windows_its_history_with_o200k() {
    let upstream = FakeUpstream::start().await.expect("upstream");
    let mut settings = Settings::default();
    settings.providers.openai.base_url = Some(upstream.base_url());
    settings.providers.openai.api_key = Some("sk-test".to_owned());
    settings.agents = vec![AgentSettings {
        name: "counted".to_owned(),
        model: Some("gpt-4o-mini".to_owned()),
        history_tokens: Some(150),
        ..AgentSettings::default()
    }];
    let memory: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new(InMemoryStoreConfig::default()));
    let registry = AgentRegistry::from_settings(&settings, Arc::clone(&memory))
        .await
        .expect("agents build");
    let agent = Arc::clone(registry.get("counted").expect("the agent"));
    let id = ConversationId::parse("long").expect("id");
    let turns = english(16);
    for said in turns.iter().step_by(2) {
        Arc::clone(&agent)
            .respond(AgentInput::new(Some(id.clone()), said.content.clone()))
            .await
            .expect("turn");
    }
    let stored = memory
        .load(&ConversationKey::new(ConversationKey::DEFAULT_TENANT, id))
        .await
        .expect("load")
        .expect("stored");
    // The last turn saw the history stored before it: all but its own two messages.
    let before_last = stored.messages[..stored.messages.len() - 2].to_vec();
    let window = HistoryWindow {
        max_messages: Some(arshai::agent::DEFAULT_MAX_MESSAGES),
        max_tokens: Some(150),
    };
    let o200k = TokenCounter::OpenAi(OpenAiEncoding::O200kBase);
    let expected = window.apply_counted(before_last.clone(), &o200k);
    let estimated = window.apply(before_last);
    assert!(
        expected.len() > estimated.len(),
        "{} vs {}",
        expected.len(),
        estimated.len()
    );
    let sent = upstream.requests().last().expect("a request").body["messages"].clone();
    let sent: Vec<&serde_json::Value> = sent
        .as_array()
        .expect("messages")
        .iter()
        .filter(|message| message["role"] != "system")
        .collect();
    // The history sent, then the new user message.
    assert_eq!(sent.len(), expected.len() + 1, "{sent:?}");
    for (sent, kept) in sent.into_iter().zip(&expected) {
        assert_eq!(sent["content"], kept.content.as_str());
    }
}

#[cfg(feature = "local-model")]
#[test]
fn the_embedded_models_tokenizer_bounds_the_history() {
    use arshai::llm::{LocalClient, LocalProviderSettings};

    let settings = LocalProviderSettings {
        threads: 1,
        ..LocalProviderSettings::default()
    };
    let local: Arc<dyn LlmClient> = Arc::new(
        LocalClient::new(&settings)
            .unwrap_or_else(|error| panic!("{error} (run scripts/fetch-model first)")),
    );
    let counter = TokenCounter::for_model(&local, local.default_model());
    assert_eq!(counter.name(), "model", "{counter:?}");
    // The count is the model's own: a ChatML turn, framing included.
    let turn = local
        .count_tokens(Role::User, "Hello there")
        .expect("the embedded model counts");
    assert_eq!(counter.count(&Message::user("Hello there")), turn);
    assert!(turn < estimated_tokens(&Message::user("Hello there")) + 4);

    for budget in [80, 200, 500] {
        let window = HistoryWindow {
            max_messages: None,
            max_tokens: Some(budget),
        };
        let history = english(80);
        let estimated = window.apply(history.clone());
        let counted = window.apply_counted(history.clone(), &counter);
        assert!(
            counted.len() > estimated.len(),
            "{budget} tokens keep {} messages, the estimate {}",
            counted.len(),
            estimated.len()
        );
        let used: usize = counted.iter().map(|m| counter.count(m)).sum();
        assert!(used <= budget, "{used} > {budget}");
        let next = &history[history.len() - counted.len() - 1];
        assert!(
            used + counter.count(next) > budget,
            "the longest tail that fits"
        );
    }
}
