//! `POST /v1/responses` and `GET /v1/responses/{id}`: the OpenAI Responses API over our
//! agents, so the official SDKs (and the openai-agents SDK, whose default transport it is)
//! work unchanged.
//!
//! `model` names an agent; the agent's system prompt (and tools) apply first, then
//! `instructions`, then the input items. With `store` (the default) the turn runs on a
//! conversation: a new one, or, with `previous_response_id`, that response's (which must
//! be the conversation's latest: branching is refused). The response object is kept with
//! its conversation ([`store`]) so any instance can retrieve and continue it. Without
//! `store` the turn is stateless (over the previous response's conversation, when one is
//! named). Calls to the caller's function tools end the turn as `function_call` output
//! items; the caller answers them with `function_call_output` items. Streaming follows
//! OpenAI's typed events ([`events`]). Errors use OpenAI's error object.

mod events;
mod request;
mod response;
mod store;

use std::convert::Infallible;
use std::sync::Arc;

use arshai::agent::{AgentOutput, ConversationRef};
use arshai::memory::{ConversationId, ConversationKey};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};

pub use request::{Input, ResponsesRequest};
use response::ResponseDraft;

use crate::auth::Tenant;
use crate::error::OpenAiError;
use crate::extract::{IdempotencyKey, JsonBody, PathParams};
use crate::request_id::RequestId;
use crate::turn::sse::{self, StartedTurn, StreamBounds};
use crate::turn::{self, TurnCodec, TurnContext};
use crate::{ApiError, AppState};

/// `POST /v1/responses`.
pub async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    context: TurnContext,
    request_id: RequestId,
    idempotency: IdempotencyKey,
    body: Result<JsonBody<ResponsesRequest>, ApiError>,
) -> Result<Response, OpenAiError> {
    let JsonBody(request) = body?;
    let agent = turn::model_agent(&state, &context.caller, &request.model)?;
    let stores = request.stores();
    let (conversation, history) = match &request.previous_response_id {
        Some(previous) => {
            let stored =
                store::load(&*state.memory, &tenant.0, previous, "previous_response_id").await?;
            if !stored.latest {
                return Err(OpenAiError::with_param(
                    ApiError::InvalidRequest(format!(
                        "response {previous:?} is not the latest response of its conversation; \
                         continue from the latest one (branching is not supported)"
                    )),
                    "previous_response_id",
                ));
            }
            if stores {
                (ConversationRef::Id(stored.conversation), Vec::new())
            } else {
                (ConversationRef::Stateless, stored.messages)
            }
        }
        None if stores => (ConversationRef::New, Vec::new()),
        None => (ConversationRef::Stateless, Vec::new()),
    };
    let mut input = request.to_input(tenant.0.clone(), conversation, history, request_id.0)?;
    // Stateless turns record nothing, so only a conversation's turn needs the key.
    if stores {
        input.idempotency_key = idempotency.0;
    }
    let conversation_id = input.pin_conversation();
    let draft = ResponseDraft::new(store::new_id(conversation_id.as_ref()), &request);
    let agent = match &conversation_id {
        Some(id) => Arc::new(store::Recorder::new(
            agent,
            Arc::clone(&state.memory),
            ConversationKey::new(tenant.0, id.clone()),
            draft.clone(),
        )),
        None => agent,
    };
    let codec = Responses {
        draft,
        conversation_id,
    };
    Ok(turn::run(&state, agent, input, &context, codec).await)
}

/// `GET /v1/responses/{id}`: a stored response of the caller's tenant.
pub async fn retrieve(
    State(state): State<AppState>,
    tenant: Tenant,
    PathParams(id): PathParams<String>,
) -> Result<Json<serde_json::Value>, OpenAiError> {
    let stored = store::load(&*state.memory, &tenant.0, &id, "response_id").await?;
    Ok(Json(stored.object))
}

/// The Responses API's wire format of a turn.
struct Responses {
    draft: ResponseDraft,
    conversation_id: Option<ConversationId>,
}

impl Responses {
    fn named(&self, mut response: Response) -> Response {
        if let Some(id) = &self.conversation_id {
            turn::name_conversation(&mut response, id);
        }
        response
    }
}

impl TurnCodec for Responses {
    fn complete(self, output: AgentOutput) -> Response {
        self.named(Json(self.draft.finished(&output)).into_response())
    }

    fn stream(self, events: StartedTurn, bounds: &StreamBounds) -> Response {
        let mut writer = events::EventWriter::new(self.draft.clone());
        let opening = writer.opening();
        let frames = stream::iter(opening)
            .chain(
                events
                    .scan(writer, |writer, item| {
                        futures::future::ready(Some(writer.frames(item)))
                    })
                    .flat_map(stream::iter),
            )
            .map(Ok::<_, Infallible>);
        self.named(sse::response(frames, bounds))
    }

    fn fail(self, error: ApiError) -> Response {
        OpenAiError::from(error).into_response()
    }
}
