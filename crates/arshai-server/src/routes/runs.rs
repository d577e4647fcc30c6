//! Durable background runs (`docs/runs.md`):
//!
//! - `POST /v1/runs` `{"agent", "input", "conversation_id"?, "webhook"?, "idempotency_key"?}`
//!   → 202 `{"run_id", "status": "queued"}` (200 with the existing run for a repeated
//!   idempotency key, from the body or the `Idempotency-Key` header);
//! - `GET /v1/runs/{id}` — the run (status, output, error, attempts, timings);
//! - `GET /v1/runs/{id}/events` — server-sent events: what happened so far, then live, from
//!   any instance, until the run's final event (`Last-Event-ID` resumes);
//! - `POST /v1/runs/{id}/cancel` — cancels a queued run at once, a running one shortly;
//! - `GET /v1/runs?status=&limit=&after=` — the tenant's runs, newest first, paged.
//!
//! Runs are the caller's tenant's: another tenant's run is not found. A submission is
//! checked against the caller's rate limits and budgets like a turn (at its input's
//! estimate); the run's real tokens are charged to them when it executes. A
//! run names an `agent` (one turn) or a `workflow` (one run of it, its input a JSON string).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Map, Value, json};

use arshai::agent::conversation_for_key;
use arshai::memory::ConversationId;

use crate::auth::{Caller, Tenant};
use crate::extract::{IdempotencyKey, JsonBody, MAX_KEY_LEN, PathParams};
use crate::runs::queue::{Cancelled, Submitted};
use crate::runs::usage::{self, RunCaller};
use crate::runs::{RunError, RunRecord, RunStatus, RunTarget, Runs, events};
use crate::turn::limits::TurnUsage;
use crate::{ApiError, AppState};

/// Longest run id accepted in a path (ids are `run_` and 32 hex digits).
const MAX_RUN_ID_LEN: usize = 64;
/// Default and largest page of `GET /v1/runs`.
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;
/// The fields of a submission.
const FIELDS: [&str; 6] = [
    "agent",
    "workflow",
    "input",
    "conversation_id",
    "webhook",
    "idempotency_key",
];

fn queue(state: &AppState) -> Result<&Arc<Runs>, ApiError> {
    state
        .runs
        .as_ref()
        .ok_or(ApiError::Run(RunError::Unavailable))
}

fn optional_string(
    body: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, RunError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(RunError::bad(name, format!("`{name}` must be a string"))),
    }
}

/// A submission read from its JSON body.
struct Submission {
    target: RunTarget,
    input: String,
    conversation_id: Option<ConversationId>,
    webhook: Option<String>,
    idempotency_key: Option<String>,
}

fn read_submission(
    state: &AppState,
    body: &Value,
    header_key: Option<String>,
) -> Result<Submission, ApiError> {
    let Some(body) = body.as_object() else {
        return Err(RunError::bad("body", "the body must be a JSON object").into());
    };
    if let Some(unknown) = body.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(RunError::bad(
            "body",
            format!(
                "unknown field `{unknown}`; expected one of {}",
                FIELDS.join(", ")
            ),
        )
        .into());
    }
    let agent = optional_string(body, "agent")?.filter(|name| !name.is_empty());
    let workflow = optional_string(body, "workflow")?.filter(|name| !name.is_empty());
    let target = match (agent, workflow) {
        (Some(_), Some(_)) => {
            return Err(RunError::bad(
                "workflow",
                "name either an `agent` or a `workflow`, not both",
            )
            .into());
        }
        (None, None) => {
            return Err(RunError::bad(
                "agent",
                "`agent` (an agent's name) or `workflow` (a workflow's name) is required",
            )
            .into());
        }
        (Some(agent), None) if state.agents.get(&agent).is_none() => {
            return Err(ApiError::UnknownAgent(agent));
        }
        (None, Some(workflow)) if state.workflows.get(&workflow).is_none() => {
            return Err(ApiError::UnknownWorkflow(workflow));
        }
        (Some(name), None) => RunTarget::Agent { name },
        (None, Some(name)) => RunTarget::Workflow { name },
    };
    let input = optional_string(body, "input")?
        .filter(|input| !input.trim().is_empty())
        .ok_or_else(|| {
            RunError::bad(
                "input",
                "`input` (the user message) must be a non-empty string",
            )
        })?;
    let conversation_id = optional_string(body, "conversation_id")?
        .map(|id| {
            ConversationId::parse(id)
                .map_err(|error| RunError::bad("conversation_id", error.to_string()))
        })
        .transpose()?;
    let webhook = optional_string(body, "webhook")?;
    if let Some(url) = &webhook {
        let parsed = reqwest::Url::parse(url).map_err(|error| {
            RunError::bad("webhook", format!("`webhook` is not a URL: {error}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(RunError::bad("webhook", "`webhook` must be an http or https URL").into());
        }
        if state.settings.runs.webhook_secret.is_none() {
            return Err(RunError::bad(
                "webhook",
                "this server signs webhooks with runs.webhook_secret, which is not set",
            )
            .into());
        }
    }
    let idempotency_key = match (optional_string(body, "idempotency_key")?, header_key) {
        (Some(key), _) if key.is_empty() || key.len() > MAX_KEY_LEN => {
            return Err(RunError::bad(
                "idempotency_key",
                format!("`idempotency_key` must be 1 to {MAX_KEY_LEN} bytes"),
            )
            .into());
        }
        (Some(key), _) => Some(key),
        (None, header) => header,
    };
    Ok(Submission {
        target,
        input,
        conversation_id,
        webhook,
        idempotency_key,
    })
}

/// What identifies a submission for its idempotency key.
fn fingerprint(submission: &Submission) -> String {
    let text = json!([
        submission.target,
        submission.input,
        submission
            .conversation_id
            .as_ref()
            .map(ConversationId::as_str),
        submission.webhook,
    ])
    .to_string();
    crate::auth::hash_key(&text)[..32].to_owned()
}

/// `POST /v1/runs`.
pub async fn submit(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    caller: Caller,
    idempotency: IdempotencyKey,
    body: Result<JsonBody<Value>, ApiError>,
) -> Result<Response, ApiError> {
    let runs = queue(&state)?;
    let JsonBody(body) = body?;
    let submission = read_submission(&state, &body, idempotency.0)?;
    let name = submission.target.name();
    if !caller.may_use(name) {
        return Err(ApiError::Forbidden(format!(
            "this key may not use the {} {name:?}",
            submission.target.kind()
        )));
    }
    let id = format!("run_{}", uuid::Uuid::new_v4().simple());
    // The turn's conversation is chosen now, so the run's record names it from the start;
    // a new one is derived from the run id (the turn's idempotency key).
    let conversation_id = submission
        .conversation_id
        .clone()
        .unwrap_or_else(|| conversation_for_key(&id));
    let record = RunRecord {
        id: id.clone(),
        tenant,
        target: submission.target.clone(),
        input: submission.input.clone(),
        conversation_id: Some(conversation_id.as_str().to_owned()),
        webhook: submission.webhook.clone(),
        idempotency_key: submission.idempotency_key.clone(),
        status: RunStatus::Queued,
        attempts: 0,
        created_ms: 0,
        started_ms: None,
        finished_ms: None,
        output: None,
        error: None,
        worker: None,
        cancel_requested: false,
        entry: None,
        caller: Some(RunCaller::of(&caller)),
    };
    // A submission is checked against the caller's rate limits and budgets as a turn is,
    // at its input's estimate, and settled with no tokens: the request counts, and the
    // run's real tokens are charged when it executes (`runs::usage`).
    let admitted = match state
        .limits
        .admit(&caller, usage::estimate(&submission.input))
        .await
    {
        Ok(admitted) => admitted,
        Err(refused) => {
            let mut response = refused.error.into_response();
            refused.quotas.write(response.headers_mut());
            return Ok(response);
        }
    };
    let response = match queue_run(runs, &record, &submission, &conversation_id).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    let no_tokens = Arc::new(TurnUsage::default());
    no_tokens.record(0);
    Ok(admitted.settle_with_body(response, no_tokens))
}

/// Queues `record`: 202, or 200 with the run its idempotency key already submitted.
async fn queue_run(
    runs: &Runs,
    record: &RunRecord,
    submission: &Submission,
    conversation_id: &ConversationId,
) -> Result<Response, ApiError> {
    match runs.submit(record, &fingerprint(submission)).await? {
        Submitted::Queued => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "run_id": record.id,
                "status": "queued",
                "conversation_id": conversation_id,
            })),
        )
            .into_response()),
        Submitted::Existing(existing) => {
            let record = runs.get(&record.tenant, &existing).await?;
            Ok((
                StatusCode::OK,
                Json(json!({
                    "run_id": record.id,
                    "status": record.status.as_str(),
                    "conversation_id": record.conversation_id,
                })),
            )
                .into_response())
        }
    }
}

fn run_id(id: String) -> Result<String, ApiError> {
    if id.is_empty() || id.len() > MAX_RUN_ID_LEN {
        return Err(RunError::NotFound(id).into());
    }
    Ok(id)
}

/// `GET /v1/runs/{id}`.
pub async fn get_run(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let runs = queue(&state)?;
    let record = runs.get(&tenant, &run_id(id)?).await?;
    Ok(Json(record.view()))
}

/// `POST /v1/runs/{id}/cancel`.
pub async fn cancel_run(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let runs = queue(&state)?;
    let id = run_id(id)?;
    Ok(match runs.cancel(&tenant, &id).await? {
        Cancelled::Now => (
            StatusCode::OK,
            Json(json!({"run_id": id, "status": "cancelled"})),
        )
            .into_response(),
        Cancelled::Requested => (
            StatusCode::ACCEPTED,
            Json(json!({"run_id": id, "status": "running", "cancel_requested": true})),
        )
            .into_response(),
        Cancelled::AlreadyFinished(status) => {
            return Err(RunError::AlreadyFinished(status).into());
        }
    })
}

/// `GET /v1/runs/{id}/events`.
pub async fn run_events(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let runs = queue(&state)?;
    let id = run_id(id)?;
    runs.get(&tenant, &id).await?;
    let after = match headers.get("last-event-id") {
        None => "0-0".to_owned(),
        Some(value) => {
            let text = value.to_str().unwrap_or_default();
            let valid = text.split_once('-').is_some_and(|(ms, seq)| {
                !ms.is_empty()
                    && !seq.is_empty()
                    && ms.bytes().all(|b| b.is_ascii_digit())
                    && seq.bytes().all(|b| b.is_ascii_digit())
            });
            if !valid {
                return Err(ApiError::InvalidHeader(
                    "Last-Event-ID must be an event id this endpoint sent (<ms>-<seq>)".to_owned(),
                ));
            }
            text.to_owned()
        }
    };
    let frames = events::follow(Arc::clone(runs), id, after).map(|event| {
        Ok::<_, Infallible>(
            Event::default()
                .id(event.id)
                .event(event.kind)
                .data(event.data),
        )
    });
    let keep_alive = Duration::from_secs_f64(state.settings.stream.keep_alive_seconds);
    Ok(Sse::new(frames)
        .keep_alive(KeepAlive::new().interval(keep_alive))
        .into_response())
}

/// `GET /v1/runs`.
pub async fn list_runs(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<std::collections::HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let runs = queue(&state)?;
    let Query(query) = query.map_err(|error| RunError::bad("query", error.body_text()))?;
    if let Some(unknown) = query
        .keys()
        .find(|key| !["status", "limit", "after"].contains(&key.as_str()))
    {
        return Err(RunError::bad(
            "query",
            format!("unknown parameter `{unknown}`; expected status, limit or after"),
        )
        .into());
    }
    let status = query
        .get("status")
        .map(|name| {
            RunStatus::parse(name).ok_or_else(|| {
                RunError::bad(
                    "status",
                    "`status` must be queued, running, succeeded, failed or cancelled",
                )
            })
        })
        .transpose()?;
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE).contains(limit))
            .ok_or_else(|| RunError::bad("limit", format!("`limit` must be 1 to {MAX_PAGE}")))?,
    };
    let page = runs
        .list(
            &tenant,
            status,
            limit,
            query.get("after").map(String::as_str),
        )
        .await?;
    Ok(Json(json!({
        "data": page.runs.iter().map(RunRecord::view).collect::<Vec<_>>(),
        "next": page.next,
    })))
}
