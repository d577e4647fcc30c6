//! The [`Agent`] trait's default streamed turns, on an agent that only implements `process`.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;

use super::*;
use crate::llm::{Message, Usage};
use crate::memory::ConversationId;

struct Fixed;

#[async_trait]
impl Agent for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }

    fn agent_type(&self) -> &'static str {
        "fixed"
    }

    async fn process(&self, input: AgentInput) -> Result<AgentOutput, AgentError> {
        if input.message == "fail" {
            return Err(AgentError::InvalidInput("fail".into()));
        }
        Ok(AgentOutput {
            conversation_id: input
                .conversation_id
                .unwrap_or_else(ConversationId::generate),
            reply: format!("re: {}", input.message),
            usage: Usage {
                input_tokens: 1,
                output_tokens: 2,
                total_tokens: 3,
                reasoning_tokens: None,
            },
            model: "m".into(),
        })
    }
}

fn id(text: &str) -> ConversationId {
    ConversationId::parse(text).unwrap()
}

#[tokio::test]
async fn the_default_stream_replays_process() {
    let agent: Arc<dyn Agent> = Arc::new(Fixed);
    let events: Vec<_> = agent
        .process_stream(AgentInput::new(Some(id("c")), "hi"))
        .collect()
        .await;
    let events: Vec<AgentEvent> = events.into_iter().map(Result::unwrap).collect();
    assert_eq!(events[0], AgentEvent::TextDelta("re: hi".into()));
    let AgentEvent::Done(summary) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(summary.conversation_id, Some(id("c")));
    assert_eq!(summary.reply, "re: hi");
    assert_eq!(summary.usage.total_tokens, 3);
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn the_default_stream_ends_with_the_error() {
    let agent: Arc<dyn Agent> = Arc::new(Fixed);
    let events: Vec<_> = agent
        .process_stream(AgentInput::new(None, "fail"))
        .collect()
        .await;
    assert!(matches!(
        events.as_slice(),
        [Err(AgentError::InvalidInput(_))]
    ));
}

#[tokio::test]
async fn the_default_turn_covers_one_user_message_and_refuses_the_rest() {
    let agent: Arc<dyn Agent> = Arc::new(Fixed);
    let mut request = TurnRequest::stateless(vec![Message::user("hi")]);
    request.conversation_id = Some(id("c"));
    let summary = collect_turn(Arc::clone(&agent).turn_stream(request))
        .await
        .unwrap();
    assert_eq!(summary.reply, "re: hi");

    let stateless = TurnRequest::stateless(vec![Message::user("hi")]);
    assert!(matches!(
        collect_turn(Arc::clone(&agent).turn_stream(stateless)).await,
        Err(AgentError::Unsupported(_))
    ));
    let mut several = TurnRequest::stateless(vec![Message::user("a"), Message::user("b")]);
    several.conversation_id = Some(id("c"));
    assert!(matches!(
        collect_turn(agent.turn_stream(several)).await,
        Err(AgentError::Unsupported(_))
    ));
}
