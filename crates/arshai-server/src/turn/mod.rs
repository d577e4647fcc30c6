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

pub mod guard;
pub mod sse;

use std::sync::Arc;
use std::time::Duration;

use arshai::agent::{Agent, AgentInput, AgentOutput, Delivery};
use arshai::llm::Usage;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

use crate::{ApiError, AppState};

/// The header that names a turn's conversation: sent by clients of the OpenAI-compatible
/// API to make a turn stateful, and answered on every turn that has a conversation.
pub const CONVERSATION_ID_HEADER: HeaderName = HeaderName::from_static("x-conversation-id");

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
pub async fn run(
    state: &AppState,
    agent: Arc<dyn Agent>,
    input: AgentInput,
    codec: impl TurnCodec,
) -> Response {
    let mut record = TurnRecord {
        agent: agent.name().to_owned(),
        agent_type: agent.agent_type(),
        usage: None,
    };
    let mut response = match input.delivery {
        Delivery::Whole => {
            let deadline = Duration::from_secs_f64(state.settings.server.request_timeout_seconds);
            match tokio::time::timeout(deadline, agent.respond(input)).await {
                Ok(Ok(output)) => {
                    record.usage = Some(output.usage);
                    codec.complete(output)
                }
                Ok(Err(error)) => codec.fail(error.into()),
                Err(_) => codec.fail(ApiError::RequestTimeout(deadline)),
            }
        }
        Delivery::Streamed => {
            let bounds = sse::StreamBounds::from_settings(&state.settings);
            match sse::start(agent.turn(input), bounds).await {
                Ok(events) => codec.stream(events, &bounds),
                Err(error) => codec.fail(error),
            }
        }
    };
    response.extensions_mut().insert(record);
    response
}

/// Sets the [`CONVERSATION_ID_HEADER`] of `response`.
pub fn name_conversation(response: &mut Response, id: &arshai::memory::ConversationId) {
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(CONVERSATION_ID_HEADER, value);
    }
}
