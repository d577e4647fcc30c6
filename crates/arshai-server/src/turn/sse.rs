//! What every server-sent event response shares: the wait for the first event, the idle
//! timeout and the request deadline, and keep-alive comments.
//!
//! A streamed turn that fails before its first event (unknown conversation state, busy
//! conversation, upstream refusal) answers with a plain JSON error and its real status; once
//! the first event is out, the status is 200 and a failure becomes the stream's last event.

use std::convert::Infallible;
use std::time::Duration;

use arshai::agent::{AgentError, AgentEvent, AgentEventStream};
use axum::http::{HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use tokio::time::Instant;

use crate::ApiError;
use crate::settings::Settings;

/// A turn's events once its first one arrived; errors are [`ApiError`]s, and the stream
/// ends after the first error or after [`AgentEvent::Done`].
pub type StartedTurn = stream::BoxStream<'static, Result<AgentEvent, ApiError>>;

/// The time bounds of one stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamBounds {
    /// The longest quiet time between two events.
    pub idle: Duration,
    /// When the whole stream must have ended.
    pub deadline: Instant,
    /// `server.request_timeout_seconds`, for the error message.
    pub total: Duration,
    /// Interval of keep-alive comments.
    pub keep_alive: Duration,
}

impl StreamBounds {
    /// The bounds the settings give a stream starting now.
    pub fn from_settings(settings: &Settings) -> Self {
        let total = Duration::from_secs_f64(settings.server.request_timeout_seconds);
        Self {
            idle: Duration::from_secs_f64(settings.stream.idle_timeout_seconds),
            deadline: Instant::now() + total,
            total,
            keep_alive: Duration::from_secs_f64(settings.stream.keep_alive_seconds),
        }
    }

    /// The next event of `events`, or the error of whichever bound passes first.
    async fn next(
        &self,
        events: &mut AgentEventStream,
    ) -> Result<Option<Result<AgentEvent, AgentError>>, ApiError> {
        let idle_at = Instant::now() + self.idle;
        match tokio::time::timeout_at(idle_at.min(self.deadline), events.next()).await {
            Ok(next) => Ok(next),
            Err(_) if self.deadline <= idle_at => Err(ApiError::RequestTimeout(self.total)),
            Err(_) => Err(ApiError::StreamIdle(self.idle)),
        }
    }
}

/// Waits for the turn's first event. An error (or a bound passing) before it is returned
/// as `Err` so the handler answers with its status; otherwise the whole turn is returned,
/// first event included, under `bounds`.
pub async fn start(
    mut events: AgentEventStream,
    bounds: StreamBounds,
) -> Result<StartedTurn, ApiError> {
    let first = match bounds.next(&mut events).await? {
        Some(Ok(event)) => event,
        Some(Err(error)) => return Err(error.into()),
        None => return Err(AgentError::Incomplete.into()),
    };
    let done = matches!(first, AgentEvent::Done(_));
    let first = stream::once(async move { Ok(first) });
    let rest = stream::unfold(
        (events, done, false),
        move |(mut events, done, failed)| async move {
            if done || failed {
                return None;
            }
            let item = match bounds.next(&mut events).await {
                Ok(Some(Ok(event))) => {
                    let done = matches!(event, AgentEvent::Done(_));
                    return Some((Ok(event), (events, done, false)));
                }
                Ok(Some(Err(error))) => ApiError::Agent(error),
                // The agent stopped without saying it was done.
                Ok(None) => ApiError::Agent(AgentError::Incomplete),
                Err(bound) => bound,
            };
            Some((Err(item), (events, done, true)))
        },
    );
    Ok(first.chain(rest).boxed())
}

/// An SSE response over `frames`, with keep-alive comments every `bounds.keep_alive`, and
/// `X-Accel-Buffering: no` so that nginx (and ingress-nginx) pass each event on at once
/// even where `proxy_buffering` is on.
pub fn response<S>(frames: S, bounds: &StreamBounds) -> Response
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let mut response = Sse::new(frames)
        .keep_alive(
            KeepAlive::new()
                .interval(bounds.keep_alive)
                .text("keep-alive"),
        )
        .into_response();
    response
        .headers_mut()
        .insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    response
}

/// The header nginx reads to turn response buffering off for one response.
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arshai::agent::{AgentEvent, AgentEventStream};
    use futures::StreamExt;
    use futures::stream;

    use super::*;

    fn bounds(idle: u64, total: u64) -> StreamBounds {
        StreamBounds {
            idle: Duration::from_secs(idle),
            deadline: Instant::now() + Duration::from_secs(total),
            total: Duration::from_secs(total),
            keep_alive: Duration::from_secs(15),
        }
    }

    /// Deltas every `every` seconds, forever.
    fn ticking(every: u64) -> AgentEventStream {
        stream::unfold((), move |()| async move {
            tokio::time::sleep(Duration::from_secs(every)).await;
            Some((Ok(AgentEvent::TextDelta("x".into())), ()))
        })
        .boxed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_first_event_is_an_idle_timeout() {
        let started = Instant::now();
        let result = start(stream::pending().boxed(), bounds(60, 300)).await;
        assert!(matches!(result, Err(ApiError::StreamIdle(_))));
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_keeps_talking_still_ends_at_the_deadline() {
        let started = Instant::now();
        let events = start(ticking(7), bounds(60, 300)).await.unwrap();
        let items: Vec<_> = events.collect().await;
        let (last, deltas) = items.split_last().unwrap();
        assert!(matches!(last, Err(ApiError::RequestTimeout(_))), "{last:?}");
        assert_eq!(
            deltas.len(),
            42,
            "a delta every 7 s until the 300 s deadline"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_falls_silent_midway_is_an_idle_timeout() {
        let talk_then_stop = ticking(1).take(3).chain(stream::pending()).boxed();
        let items: Vec<_> = start(talk_then_stop, bounds(60, 300))
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(items.len(), 4);
        assert!(matches!(items[3], Err(ApiError::StreamIdle(_))));
    }
}
