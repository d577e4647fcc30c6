//! What a streamed turn emits, and the stream type that carries it.

use futures::channel::mpsc;
use futures::stream::{self, BoxStream, StreamExt};
use futures::{Future, FutureExt, SinkExt};

use super::AgentError;
use crate::llm::{FinishReason, ToolCall, Usage};
use crate::memory::ConversationId;

/// How many events a producer may run ahead of a slow consumer before it waits.
const EVENT_BUFFER: usize = 32;

/// One event of a streamed turn, in order: text deltas and tool events as they happen, then
/// exactly one [`AgentEvent::Done`] when the turn succeeded.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// The next piece of the answer's text.
    TextDelta(String),
    /// The model asked for a tool call (complete, arguments assembled).
    ToolCall(ToolCall),
    /// A tool call's result, as it was sent back to the model.
    ToolResult {
        /// The id of the call it answers.
        call_id: String,
        /// The tool's name.
        name: String,
        /// The result text sent to the model.
        content: String,
    },
    /// The turn finished and, when it belongs to a conversation, is recorded.
    Done(TurnSummary),
}

/// How a turn ended: the last event of a successful streamed turn (and, serialized, the
/// receipt an idempotent retry answers with).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TurnSummary {
    /// The conversation the turn was recorded in; `None` for a stateless turn.
    pub conversation_id: Option<ConversationId>,
    /// The answer: the text of the model's last call (with tools, text the model wrote
    /// before calling them was streamed as deltas but is not part of the answer).
    pub reply: String,
    /// Tokens used by every LLM call of the turn.
    pub usage: Usage,
    /// The model that answered.
    pub model: String,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
}

/// A streamed turn: events in order; an `Err` item ends it. Dropping the stream cancels the
/// turn (and its upstream call).
pub type AgentEventStream = BoxStream<'static, Result<AgentEvent, AgentError>>;

/// Where a turn's producer sends its events.
///
/// Sending waits while the consumer is [`EVENT_BUFFER`] events behind, so a slow client
/// slows the producer instead of growing a queue.
#[derive(Debug, Clone)]
pub struct EventSender(mpsc::Sender<Result<AgentEvent, AgentError>>);

impl EventSender {
    /// Sends one item; `false` when the consumer is gone (the producer should stop).
    pub async fn send(&mut self, item: Result<AgentEvent, AgentError>) -> bool {
        self.0.send(item).await.is_ok()
    }
}

/// A stream of the events `produce` sends, driven by the stream itself: the producer runs
/// only while the stream is polled, in the consumer's task, and is dropped with the stream.
/// That is what makes a client disconnect cancel the turn and its upstream call.
pub fn event_stream<F, Fut>(produce: F) -> AgentEventStream
where
    F: FnOnce(EventSender) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(EVENT_BUFFER);
    let producer = produce(EventSender(sender))
        .into_stream()
        .filter_map(|()| async { None });
    // `select` ends when both sides end: the producer finished and every event was read.
    stream::select(receiver, producer).boxed()
}

/// Runs a streamed turn to its end and returns its summary; the text deltas are dropped
/// (the summary holds the whole reply).
pub async fn collect_turn(mut events: AgentEventStream) -> Result<TurnSummary, AgentError> {
    while let Some(event) = events.next().await {
        if let AgentEvent::Done(summary) = event? {
            return Ok(summary);
        }
    }
    Err(AgentError::Incomplete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_arrive_in_order_and_the_stream_ends_with_the_producer() {
        let events = event_stream(|mut tx| async move {
            for text in ["a", "b", "c"] {
                assert!(tx.send(Ok(AgentEvent::TextDelta(text.into()))).await);
            }
        });
        let texts: Vec<AgentEvent> = events.map(|e| e.unwrap()).collect().await;
        assert_eq!(
            texts,
            ["a", "b", "c"].map(|t| AgentEvent::TextDelta(t.into()))
        );
    }

    #[tokio::test]
    async fn dropping_the_stream_drops_the_producer() {
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        let mut events = event_stream(|mut tx| async move {
            let _guard = dropped_tx;
            assert!(tx.send(Ok(AgentEvent::TextDelta("x".into()))).await);
            std::future::pending::<()>().await;
        });
        assert!(events.next().await.is_some());
        drop(events);
        // The sender inside the producer is dropped with it.
        assert!(dropped_rx.await.is_err());
    }

    #[tokio::test]
    async fn a_stream_without_done_is_incomplete() {
        let events = event_stream(|mut tx| async move {
            tx.send(Ok(AgentEvent::TextDelta("x".into()))).await;
        });
        assert!(matches!(
            collect_turn(events).await,
            Err(AgentError::Incomplete)
        ));
    }
}
