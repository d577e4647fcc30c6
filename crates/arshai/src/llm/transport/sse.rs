//! Server-sent events from a provider: the response body as bytes with a per-read timeout,
//! the SSE framing (`eventsource-stream`), and a driver that turns each event's data into
//! [`StreamEvent`]s through a provider's [`ChunkDecoder`].

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::stream::{self, Stream, StreamExt};

use crate::llm::{LlmError, StreamEvent};

/// What a decoder wants after one event's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// The provider said the answer is complete (OpenAI's `[DONE]`).
    Done,
}

/// Turns one provider's stream chunks into [`StreamEvent`]s.
pub trait ChunkDecoder: Send + 'static {
    /// Decodes the data of one event, appending what it produced to `out`.
    fn data(&mut self, data: &str, out: &mut VecDeque<StreamEvent>) -> Result<Flow, LlmError>;

    /// Called once at the end: after [`Flow::Done`] (`done` is true) or when the body ended
    /// (`done` is false). Emits what was held back (assembled tool calls, the finish event),
    /// or fails when the answer was cut short.
    fn end(&mut self, done: bool, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError>;
}

/// The body of `response` as a stream of byte chunks; a read that takes longer than
/// `read_timeout` ends the stream with [`LlmError::Timeout`], a broken connection with
/// [`LlmError::Connection`].
pub fn response_bytes(
    provider: &'static str,
    response: reqwest::Response,
    read_timeout: Duration,
) -> impl Stream<Item = Result<Bytes, LlmError>> + Send + 'static {
    let body = Box::pin(response.bytes_stream());
    stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        match tokio::time::timeout(read_timeout, body.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
            Ok(Some(Err(error))) => Some((
                Err(LlmError::Connection {
                    provider,
                    message: format!("the stream broke before the answer was complete: {error}"),
                }),
                None,
            )),
            Ok(None) => None,
            Err(_) => Some((
                Err(LlmError::Timeout {
                    provider,
                    after: read_timeout,
                }),
                None,
            )),
        }
    })
}

/// The `data` of each server-sent event in `bytes`. Events without data (comments,
/// keep-alives) are skipped; an invalid frame is a [`LlmError::Decode`] naming `provider`.
pub fn event_data<S>(
    provider: &'static str,
    bytes: S,
) -> impl Stream<Item = Result<String, LlmError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, LlmError>> + Send + 'static,
{
    bytes.eventsource().map(move |event| match event {
        Ok(event) => Ok(event.data),
        Err(EventStreamError::Transport(error)) => Err(error),
        Err(EventStreamError::Utf8(error)) => Err(LlmError::Decode {
            provider,
            message: format!("the event stream is not UTF-8: {error}"),
        }),
        Err(EventStreamError::Parser(error)) => Err(LlmError::Decode {
            provider,
            message: format!("invalid server-sent event framing: {error}"),
        }),
    })
}

/// Runs `decoder` over `data`: yields its events in order, then ends after the finish event
/// or after the first error (nothing follows an error).
pub fn decode<S, D>(
    data: S,
    decoder: D,
) -> impl Stream<Item = Result<StreamEvent, LlmError>> + Send + 'static
where
    S: Stream<Item = Result<String, LlmError>> + Send + 'static,
    D: ChunkDecoder,
{
    struct State<S, D> {
        data: std::pin::Pin<Box<S>>,
        decoder: D,
        pending: VecDeque<StreamEvent>,
        error: Option<LlmError>,
        finished: bool,
    }
    let state = State {
        data: Box::pin(data),
        decoder,
        pending: VecDeque::new(),
        error: None,
        finished: false,
    };
    stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            if let Some(error) = state.error.take() {
                return Some((Err(error), state));
            }
            if state.finished {
                return None;
            }
            let step = match state.data.next().await {
                Some(Ok(data)) => match state.decoder.data(&data, &mut state.pending) {
                    Ok(Flow::Continue) => Ok(()),
                    Ok(Flow::Done) => {
                        state.finished = true;
                        state.decoder.end(true, &mut state.pending)
                    }
                    Err(error) => Err(error),
                },
                Some(Err(error)) => Err(error),
                None => {
                    state.finished = true;
                    state.decoder.end(false, &mut state.pending)
                }
            };
            if let Err(error) = step {
                state.finished = true;
                state.error = Some(error);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lines;

    impl ChunkDecoder for Lines {
        fn data(&mut self, data: &str, out: &mut VecDeque<StreamEvent>) -> Result<Flow, LlmError> {
            if data == "[DONE]" {
                return Ok(Flow::Done);
            }
            out.push_back(StreamEvent::TextDelta(data.to_owned()));
            Ok(Flow::Continue)
        }

        fn end(&mut self, done: bool, _: &mut VecDeque<StreamEvent>) -> Result<(), LlmError> {
            if done {
                Ok(())
            } else {
                Err(LlmError::Connection {
                    provider: "test",
                    message: "cut".into(),
                })
            }
        }
    }

    fn bytes(parts: &[&str]) -> impl Stream<Item = Result<Bytes, LlmError>> + Send + 'static {
        let parts: Vec<_> = parts
            .iter()
            .map(|p| Ok(Bytes::copy_from_slice(p.as_bytes())))
            .collect();
        stream::iter(parts)
    }

    #[tokio::test]
    async fn events_split_across_reads_are_reassembled() {
        let data = event_data(
            "test",
            bytes(&["da", "ta: he", "llo\n", "\n: ping\n\ndata: [DONE]\n\n"]),
        );
        let events: Vec<_> = decode(data, Lines).collect().await;
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0], Ok(StreamEvent::TextDelta(t)) if t == "hello"));
    }

    #[tokio::test]
    async fn a_body_that_ends_early_is_an_error_after_the_events_already_decoded() {
        let data = event_data("test", bytes(&["data: a\n\ndata: b\n\n"]));
        let events: Vec<_> = decode(data, Lines).collect().await;
        assert_eq!(events.len(), 3);
        assert!(matches!(events[2], Err(LlmError::Connection { .. })));
    }
}
