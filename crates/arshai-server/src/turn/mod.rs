//! The one turn runner every turn route goes through.
//!
//! A route is a codec ([`TurnCodec`]): it reads its wire format into an
//! [`AgentInput`] and writes the turn's output (a whole answer, a stream, or an error) in
//! its wire format. [`run`] does the rest, the same for every route: it applies the
//! request deadline (a whole answer) or the stream bounds (a stream,
//! [`sse::StreamBounds`]), and labels the response with a [`TurnRecord`] (the real agent
//! and type, and the tokens when known) for the metrics and the log line. [`guard`] is the
//! middleware around every turn route: admission, the turn's span and metrics, and the
//! admission slot held until the response body is finished.

pub mod context;
pub mod guard;
mod held_body;
pub mod limits;
mod model_agent;
pub mod sse;

use std::sync::Arc;
use std::time::Duration;

use arshai::agent::{Agent, AgentEvent, AgentInput, AgentOutput, Delivery};
use arshai::cache::{CacheControl, CacheOutcome};
use arshai::llm::Usage;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use futures::StreamExt;

pub use context::TurnContext;
pub use model_agent::model_agent;

use crate::{ApiError, AppState};

/// The header that names a turn's conversation: sent by clients of the OpenAI-compatible
/// API to make a turn stateful, and answered on every turn that has a conversation.
pub const CONVERSATION_ID_HEADER: HeaderName = HeaderName::from_static("x-conversation-id");

/// The header that says how the response cache answered the turn: `hit`, `miss` or
/// `bypass`.
pub const CACHE_HEADER: HeaderName = HeaderName::from_static("x-arshai-cache");

/// What a turn handler reports about its turn, as a response extension, for the log line
/// and the metrics.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    /// The agent's name.
    pub agent: String,
    /// The agent's type (a metrics label).
    pub agent_type: &'static str,
    /// Tokens used, when the turn finished before the response was returned.
    pub usage: Option<Usage>,
}

/// A route's wire format around the turn runner.
pub trait TurnCodec {
    /// The response to a whole answer.
    fn complete(self, output: AgentOutput) -> Response;

    /// The response to a started stream (its first event arrived).
    fn stream(self, events: sse::StartedTurn, bounds: &sse::StreamBounds) -> Response;

    /// The response to a turn that failed before it answered (or before its first event).
    fn fail(self, error: ApiError) -> Response;
}

/// Runs `input` on `agent`, answering through `codec`: whole within
/// `server.request_timeout_seconds` ([`Delivery::Whole`]), or streamed within the stream
/// bounds ([`Delivery::Streamed`]).
///
/// Before the turn, the caller's rate limits and budgets are checked ([`limits`]): a
/// refusal is answered through `codec` (429, or 503 when the backend is unreachable
/// under `fail_closed`). The turn runs in a [`CacheControl`] scope (the caller's tenant,
/// bypassed on `Cache-Control: no-cache`) whose outcome is the [`CACHE_HEADER`]; its
/// reservations are settled with its real usage once the response body ends.
pub async fn run(
    state: &AppState,
    agent: Arc<dyn Agent>,
    input: AgentInput,
    context: &TurnContext,
    codec: impl TurnCodec,
) -> Response {
    let admitted = match state
        .limits
        .admit(&context.caller, limits::estimate(&input))
        .await
    {
        Ok(admitted) => admitted,
        Err(refused) => {
            let mut response = codec.fail(refused.error);
            refused.quotas.write(response.headers_mut());
            return response;
        }
    };
    let usage = Arc::new(limits::TurnUsage::default());
    let control = CacheControl::new(Some(&context.caller.tenant), context.no_cache);
    let mut record = TurnRecord {
        agent: agent.name().to_owned(),
        agent_type: agent.agent_type(),
        usage: None,
    };
    let mut response = match input.delivery {
        Delivery::Whole => {
            let deadline = Duration::from_secs_f64(state.settings.server.request_timeout_seconds);
            match control
                .scope(tokio::time::timeout(deadline, agent.respond(input)))
                .await
            {
                Ok(Ok(output)) => {
                    record.usage = Some(output.usage);
                    usage.record(charged(&control, &output.usage));
                    codec.complete(output)
                }
                Ok(Err(error)) => {
                    usage.record(0);
                    codec.fail(error.into())
                }
                Err(_) => codec.fail(ApiError::RequestTimeout(deadline)),
            }
        }
        Delivery::Streamed => {
            let bounds = sse::StreamBounds::from_settings(&state.settings);
            match control.scope(sse::start(agent.turn(input), bounds)).await {
                Ok(events) => {
                    let (seen, seen_control) = (Arc::clone(&usage), control.clone());
                    let events = events
                        .inspect(move |event| {
                            if let Ok(AgentEvent::Done(output)) = event {
                                seen.record(charged(&seen_control, &output.usage));
                            }
                        })
                        .boxed();
                    codec.stream(events, &bounds)
                }
                Err(error) => {
                    usage.record(0);
                    codec.fail(error)
                }
            }
        }
    };
    let outcome = control.outcome().map_or("bypass", CacheOutcome::as_str);
    response
        .headers_mut()
        .insert(CACHE_HEADER, HeaderValue::from_static(outcome));
    response.extensions_mut().insert(record);
    admitted.settle_with_body(response, usage)
}

/// The provider tokens a turn is charged: none for a cache hit.
fn charged(control: &CacheControl, usage: &Usage) -> u64 {
    match control.outcome() {
        Some(CacheOutcome::Hit) => 0,
        _ => usage.total_tokens,
    }
}

/// Sets the [`CONVERSATION_ID_HEADER`] of `response`.
pub fn name_conversation(response: &mut Response, id: &arshai::memory::ConversationId) {
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(CONVERSATION_ID_HEADER, value);
    }
}
