//! What a streamed turn emits, and the stream type that carries it.

use futures::channel::mpsc;
use futures::stream::{self, BoxStream, StreamExt};
use futures::{Future, FutureExt, SinkExt};

use super::{AgentError, AgentOutput};
use crate::llm::ToolCall;

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
    Done(AgentOutput),
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

/// Runs a streamed turn to its end and returns its output; the text deltas are dropped
/// (the output holds the whole reply).
pub async fn collect_turn(mut events: AgentEventStream) -> Result<AgentOutput, AgentError> {
    while let Some(event) = events.next().await {
        if let AgentEvent::Done(summary) = event? {
            return Ok(summary);
        }
    }
    Err(AgentError::Incomplete)
}

/// The turn of an agent that computes its whole answer at once: `answer`'s reply as one
/// text delta, then [`AgentEvent::Done`] (or its error). The simplest way to implement
/// [`crate::agent::Agent::turn`].
///
/// ```
/// use std::sync::Arc;
///
/// use arshai::agent::{Agent, AgentEventStream, AgentInput, AgentOutput, answer_once};
///
/// struct Echo;
///
/// impl Agent for Echo {
///     fn name(&self) -> &str { "echo" }
///     fn agent_type(&self) -> &'static str { "echo" }
///     fn turn(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
///         answer_once(async move {
///             let said = input.messages.last().map(|m| m.content.clone()).unwrap_or_default();
///             Ok(AgentOutput::text(said, "echo"))
///         })
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let output = Arc::new(Echo).respond(AgentInput::new(None, "hi")).await.unwrap();
/// assert_eq!(output.reply, "hi");
/// # });
/// ```
pub fn answer_once<Fut>(answer: Fut) -> AgentEventStream
where
    Fut: Future<Output = Result<AgentOutput, AgentError>> + Send + 'static,
{
    event_stream(move |mut events| async move {
        match answer.await {
            Ok(output) => {
                if !output.reply.is_empty()
                    && !events
                        .send(Ok(AgentEvent::TextDelta(output.reply.clone())))
                        .await
                {
                    return;
                }
                events.send(Ok(AgentEvent::Done(output))).await;
            }
            Err(error) => {
                events.send(Err(error)).await;
            }
        }
    })
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

    #[tokio::test]
    async fn an_answer_once_is_one_delta_then_done_or_its_error() {
        let output = AgentOutput {
            conversation_id: None,
            reply: "whole".into(),
            usage: crate::llm::Usage::default(),
            model: "m".into(),
            finish_reason: crate::llm::FinishReason::Stop,
            tool_calls: Vec::new(),
            logprobs: None,
        };
        let expected = output.clone();
        let events: Vec<AgentEvent> = answer_once(async move { Ok(output) })
            .map(|e| e.unwrap())
            .collect()
            .await;
        assert_eq!(
            events,
            [
                AgentEvent::TextDelta("whole".into()),
                AgentEvent::Done(expected)
            ]
        );
        let failed = collect_turn(answer_once(async {
            Err(AgentError::InvalidInput("no".into()))
        }))
        .await;
        assert!(matches!(failed, Err(AgentError::InvalidInput(_))));
    }
}
