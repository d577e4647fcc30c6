//! A run's record: what was asked, where it stands, what came out. Kept in Redis as one
//! hash per run (`{prefix}:run:<id>`), written only by the queue's scripts; a finished
//! run's record expires after `runs.retention_seconds`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::usage::RunCaller;
use super::{RunError, Runs};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker executes it.
    Running,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error (or exhausted its attempts).
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [Self; 5] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// What a run executes. Workflows join as a second variant (executed by
/// [`super::executor::TargetExecutor`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RunTarget {
    /// One turn of the named agent.
    Agent {
        /// The agent's name.
        name: String,
    },
    /// One run of the named workflow (its input is the run's input, as a JSON string).
    Workflow {
        /// The workflow's name.
        name: String,
    },
}

impl RunTarget {
    /// The agent's or workflow's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Agent { name } | Self::Workflow { name } => name,
        }
    }

    /// `agent` or `workflow`: the field of the submission that named it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Agent { .. } => "agent",
            Self::Workflow { .. } => "workflow",
        }
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The run's id.
    pub id: String,
    /// The tenant that submitted it.
    pub tenant: String,
    /// What it executes.
    pub target: RunTarget,
    /// The input (for an agent: the user message).
    pub input: String,
    /// The conversation an agent run's turn is recorded in (chosen at submission).
    pub conversation_id: Option<String>,
    /// Where the outcome is posted.
    pub webhook: Option<String>,
    /// The client's idempotency key, when it gave one.
    pub idempotency_key: Option<String>,
    /// Where it stands.
    pub status: RunStatus,
    /// Executions started so far.
    pub attempts: u32,
    /// Submission time, Unix milliseconds.
    pub created_ms: u64,
    /// When its first execution started.
    pub started_ms: Option<u64>,
    /// When it finished.
    pub finished_ms: Option<u64>,
    /// The output of a succeeded run.
    pub output: Option<Value>,
    /// The error of a failed or cancelled run (`{"type","message"}`).
    pub error: Option<Value>,
    /// The worker executing it now.
    pub worker: Option<String>,
    /// Whether a cancellation was asked while it ran.
    pub cancel_requested: bool,
    /// Its entry in its tenant's queue stream.
    pub entry: Option<String>,
    /// Who submitted it, for its limits (its tokens are charged to them).
    pub caller: Option<RunCaller>,
}

fn non_empty(fields: &HashMap<String, String>, name: &str) -> Option<String> {
    fields.get(name).filter(|value| !value.is_empty()).cloned()
}

fn number(fields: &HashMap<String, String>, name: &str) -> Option<u64> {
    fields.get(name).and_then(|value| value.parse().ok())
}

fn json_field(fields: &HashMap<String, String>, name: &str) -> Result<Option<Value>, RunError> {
    non_empty(fields, name)
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|error| RunError::Corrupt(format!("{name}: {error}")))
        })
        .transpose()
}

impl RunRecord {
    /// The hash fields of a new record (status and counters are set by the submit script).
    pub fn new_fields(&self) -> Result<Vec<(String, String)>, RunError> {
        let target = serde_json::to_string(&self.target)
            .map_err(|error| RunError::Corrupt(error.to_string()))?;
        let mut fields = vec![
            ("id".to_owned(), self.id.clone()),
            ("tenant".to_owned(), self.tenant.clone()),
            ("target".to_owned(), target),
            ("input".to_owned(), self.input.clone()),
        ];
        if let Some(caller) = &self.caller {
            let caller = serde_json::to_string(caller)
                .map_err(|error| RunError::Corrupt(error.to_string()))?;
            fields.push(("caller".to_owned(), caller));
        }
        for (name, value) in [
            ("conversation_id", &self.conversation_id),
            ("webhook", &self.webhook),
            ("idempotency_key", &self.idempotency_key),
        ] {
            if let Some(value) = value {
                fields.push((name.to_owned(), value.clone()));
            }
        }
        Ok(fields)
    }

    /// The record a hash holds (`HGETALL`); `None` for an empty hash (no such run).
    pub fn from_fields(fields: &HashMap<String, String>) -> Result<Option<Self>, RunError> {
        let Some(id) = non_empty(fields, "id") else {
            return Ok(None);
        };
        let corrupt = |what: &str| RunError::Corrupt(format!("run {id}: {what}"));
        let target = non_empty(fields, "target").ok_or_else(|| corrupt("no target"))?;
        let target: RunTarget =
            serde_json::from_str(&target).map_err(|error| corrupt(&error.to_string()))?;
        let status = fields
            .get("status")
            .and_then(|status| RunStatus::parse(status))
            .ok_or_else(|| corrupt("no status"))?;
        Ok(Some(Self {
            tenant: non_empty(fields, "tenant").ok_or_else(|| corrupt("no tenant"))?,
            target,
            input: fields.get("input").cloned().unwrap_or_default(),
            conversation_id: non_empty(fields, "conversation_id"),
            webhook: non_empty(fields, "webhook"),
            idempotency_key: non_empty(fields, "idempotency_key"),
            status,
            attempts: number(fields, "attempts")
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            created_ms: number(fields, "created_ms").unwrap_or(0),
            started_ms: number(fields, "started_ms"),
            finished_ms: number(fields, "finished_ms"),
            output: json_field(fields, "output")?,
            error: json_field(fields, "error")?,
            worker: non_empty(fields, "worker"),
            cancel_requested: fields.get("cancel").is_some_and(|flag| flag == "1"),
            entry: non_empty(fields, "entry"),
            caller: json_field(fields, "caller")?
                .map(serde_json::from_value)
                .transpose()
                .map_err(|error| corrupt(&format!("caller: {error}")))?,
            id,
        }))
    }

    /// The run as the API shows it (`GET /v1/runs/{id}`, webhooks).
    pub fn view(&self) -> Value {
        let name = self.target.name();
        let seconds = |from: Option<u64>, to: Option<u64>| match (from, to) {
            (Some(from), Some(to)) => json!(to.saturating_sub(from) as f64 / 1000.0),
            _ => Value::Null,
        };
        json!({
            "run_id": self.id,
            "status": self.status.as_str(),
            self.target.kind(): name,
            "target": self.target,
            "input": self.input,
            "conversation_id": self.conversation_id,
            "webhook": self.webhook,
            "idempotency_key": self.idempotency_key,
            "output": self.output,
            "error": self.error,
            "attempts": self.attempts,
            "cancel_requested": self.cancel_requested,
            "timings": {
                "created_at_ms": self.created_ms,
                "started_at_ms": self.started_ms,
                "finished_at_ms": self.finished_ms,
                "queued_seconds": seconds(Some(self.created_ms), self.started_ms),
                "run_seconds": seconds(self.started_ms, self.finished_ms),
            },
        })
    }
}

/// One page of a tenant's runs, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<RunRecord>,
    /// The id to pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

impl Runs {
    /// The run `run_id` of `tenant` (a run of another tenant is not found).
    pub async fn get(&self, tenant: &str, run_id: &str) -> Result<RunRecord, RunError> {
        match self.load(run_id).await? {
            Some(record) if record.tenant == tenant => Ok(record),
            _ => Err(RunError::NotFound(run_id.to_owned())),
        }
    }

    /// The run `run_id`, whatever its tenant.
    pub(crate) async fn load(&self, run_id: &str) -> Result<Option<RunRecord>, RunError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.keys.record(run_id));
        let fields: HashMap<String, String> = redis::from_redis_value(self.query(&cmd).await?)?;
        RunRecord::from_fields(&fields)
    }

    /// Up to `limit` runs of `tenant` (in `status`, or any), newest first, after the run
    /// `after` of a previous page.
    pub async fn list(
        &self,
        tenant: &str,
        status: Option<RunStatus>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<RunPage, RunError> {
        let index = self.keys.index(tenant, status);
        let start = match after {
            Some(after) => {
                let mut rank = redis::cmd("ZREVRANK");
                rank.arg(&index).arg(after);
                let rank: Option<i64> = redis::from_redis_value(self.query(&rank).await?)?;
                match rank {
                    Some(rank) => rank + 1,
                    None => {
                        return Err(RunError::bad(
                            "after",
                            format!("no run {after:?} in this listing"),
                        ));
                    }
                }
            }
            None => 0,
        };
        let mut range = redis::cmd("ZREVRANGE");
        // One more than asked, to know whether another page follows.
        range.arg(&index).arg(start).arg(start + limit as i64);
        let mut ids: Vec<String> = redis::from_redis_value(self.query(&range).await?)?;
        let more = ids.len() > limit;
        ids.truncate(limit);
        let mut runs = Vec::with_capacity(ids.len());
        for id in &ids {
            match self.load(id).await? {
                Some(record) => runs.push(record),
                None => {
                    // Expired: drop it from the index too.
                    let mut forget = redis::cmd("ZREM");
                    forget.arg(&index).arg(id);
                    self.query(&forget).await?;
                }
            }
        }
        Ok(RunPage {
            runs,
            next: if more { ids.last().cloned() } else { None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_from_its_fields() {
        let record = RunRecord {
            id: "run_1".to_owned(),
            tenant: "acme".to_owned(),
            target: RunTarget::Agent {
                name: "assistant".to_owned(),
            },
            input: "hi".to_owned(),
            conversation_id: Some("c1".to_owned()),
            webhook: None,
            idempotency_key: None,
            status: RunStatus::Queued,
            attempts: 0,
            created_ms: 5,
            started_ms: None,
            finished_ms: None,
            output: None,
            error: None,
            worker: None,
            cancel_requested: false,
            entry: None,
            caller: Some(RunCaller {
                key_id: Some("k1".to_owned()),
                tokens_per_day: Some(50),
                ..RunCaller::default()
            }),
        };
        let mut fields: HashMap<String, String> =
            record.new_fields().unwrap().into_iter().collect();
        fields.insert("status".to_owned(), "queued".to_owned());
        fields.insert("attempts".to_owned(), "0".to_owned());
        fields.insert("created_ms".to_owned(), "5".to_owned());
        assert_eq!(RunRecord::from_fields(&fields).unwrap(), Some(record));
        assert_eq!(RunRecord::from_fields(&HashMap::new()).unwrap(), None);
    }
}
