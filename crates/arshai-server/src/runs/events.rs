//! A run's events: one Redis Stream per run (`{prefix}:events:<id>`), appended by the
//! worker executing it and by the state-change scripts, kept `runs.retention_seconds`.
//!
//! Any instance can serve them: [`follow`] replays what happened so far, then follows live
//! with `XREAD BLOCK` (each read bounded by `runs.block_seconds`, on a dedicated link) until
//! the run's final event (`succeeded`, `failed` or `cancelled`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use redis::streams::StreamReadReply;
use serde_json::Value;
use tokio::time::Instant;

use super::{RunError, Runs};
use arshai::memory::RedisCommands;

/// One event of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEvent {
    /// Its stream id (the SSE `id`, for `Last-Event-ID`).
    pub id: String,
    /// `queued`, `running`, `delta`, `tool_call`, `tool_result`, `succeeded`, `failed`,
    /// `cancelled`.
    pub kind: String,
    /// Its JSON data.
    pub data: String,
}

impl RunEvent {
    /// Whether it is the run's last event.
    pub fn is_final(&self) -> bool {
        matches!(self.kind.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

/// Most events read at once.
const READ_COUNT: usize = 256;

impl Runs {
    /// Appends an event to `run_id`'s stream.
    pub async fn append_event(
        &self,
        run_id: &str,
        kind: &str,
        data: &Value,
    ) -> Result<(), RunError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys.events(run_id))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.settings.events_max_len)
            .arg("*")
            .arg("type")
            .arg(kind)
            .arg("data")
            .arg(data.to_string());
        self.query(&cmd).await.map(|_| ())
    }

    /// Events of `run_id` after `after` (a stream id, `0-0` for all), waiting up to the
    /// block time on `link` when there is none yet.
    pub async fn events_after(
        &self,
        link: &RedisCommands,
        run_id: &str,
        after: &str,
    ) -> Result<Vec<RunEvent>, RunError> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(u64::try_from(self.block().as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(self.keys.events(run_id))
            .arg(after);
        let reply: Option<StreamReadReply> = redis::from_redis_value(link.query(&cmd).await?)?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|stream| stream.ids)
            .map(|entry| RunEvent {
                kind: entry.get("type").unwrap_or_default(),
                data: entry.get("data").unwrap_or_default(),
                id: entry.id,
            })
            .collect())
    }

    /// How long following one run may last: every attempt's deadline and take-over wait.
    fn follow_bound(&self) -> Duration {
        let settings = &self.settings;
        let per_attempt = settings.run_timeout_seconds + settings.visibility_timeout_seconds;
        Duration::from_secs_f64(per_attempt * f64::from(settings.max_attempts + 1))
    }
}

struct Following {
    runs: Arc<Runs>,
    link: Option<RedisCommands>,
    run_id: String,
    last: String,
    buffer: VecDeque<RunEvent>,
    done: bool,
    deadline: Instant,
}

/// The events of `run_id` after `after` (`0-0`: from the start), then live ones, until its
/// final event. A read that fails ends the stream with an `error` event (the client
/// reconnects with `Last-Event-ID`).
pub fn follow(runs: Arc<Runs>, run_id: String, after: String) -> impl Stream<Item = RunEvent> {
    let deadline = Instant::now() + runs.follow_bound();
    let state = Following {
        runs,
        link: None,
        run_id,
        last: after,
        buffer: VecDeque::new(),
        done: false,
        deadline,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.buffer.pop_front() {
                state.done = event.is_final();
                return Some((event, state));
            }
            if state.done || Instant::now() >= state.deadline {
                return None;
            }
            match state.read().await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(error) => {
                    state.done = true;
                    let body = serde_json::json!({"error": {
                        "type": error.parts().1, "message": error.to_string()}});
                    return Some((
                        RunEvent {
                            id: state.last.clone(),
                            kind: "error".to_owned(),
                            data: body.to_string(),
                        },
                        state,
                    ));
                }
            }
        }
    })
}

impl Following {
    /// Reads the next events into the buffer; `Ok(false)` when the run is gone.
    async fn read(&mut self) -> Result<bool, RunError> {
        if self.link.is_none() {
            self.link = Some(self.runs.blocking_link().await?);
        }
        let Some(link) = &self.link else {
            return Ok(false);
        };
        let events = self
            .runs
            .events_after(link, &self.run_id, &self.last)
            .await?;
        if events.is_empty() && self.runs.load(&self.run_id).await?.is_none() {
            return Ok(false);
        }
        if let Some(last) = events.last() {
            self.last = last.id.clone();
        }
        self.buffer.extend(events);
        Ok(true)
    }
}
