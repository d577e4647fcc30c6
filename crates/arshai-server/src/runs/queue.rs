//! The queue: a Redis Stream per tenant read by one consumer group ([`keys::GROUP`]).
//!
//! Submitting adds the run's id to its tenant's stream (`XADD … MAXLEN ~`) within the
//! tenant's bound; workers read the tenants' streams together, one entry per tenant per read
//! (`XREADGROUP … COUNT 1 STREAMS t1 t2 …`), so one tenant's backlog never hides another's
//! runs; a worker renews the claims it holds (`XCLAIM … JUSTID` resets their idle time) and
//! takes over entries idle longer than the visibility timeout (`XAUTOCLAIM`), which are the
//! runs of a worker that died. A finished run's entry is acknowledged and deleted at once.

use std::collections::HashMap;

use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{FromRedisValue, Value};

use super::keys::GROUP;
use super::record::{RunRecord, RunStatus};
use super::{RunError, Runs, now_ms};
use arshai::memory::RedisCommands;

/// A run taken from the queue by a worker, not yet started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The tenant whose stream it came from.
    pub tenant: String,
    /// The run's id.
    pub run_id: String,
    /// Its stream entry.
    pub entry: String,
}

/// What submitting a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// The run was queued.
    Queued,
    /// The idempotency key had already submitted this run (its id).
    Existing(String),
}

/// What starting a delivered run decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Execute it as attempt `n` (the fence of its outcome).
    Run(u32),
    /// It exhausted its attempts and went to the dead-letter stream.
    Dead,
    /// Nothing to do (finished, cancelled, or expired); the entry was acknowledged.
    Skip,
}

/// What cancelling a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It was queued and is now cancelled.
    Now,
    /// It is running: its worker stops it shortly.
    Requested,
    /// It had already finished with this status.
    AlreadyFinished(RunStatus),
}

fn parse<T: FromRedisValue>(value: Value) -> Result<T, RunError> {
    Ok(redis::from_redis_value(value)?)
}

fn deliveries(tenant: &str, ids: Vec<StreamId>) -> Vec<Delivery> {
    ids.into_iter()
        .filter_map(|id| {
            let run_id = id.get::<String>("run")?;
            Some(Delivery {
                tenant: tenant.to_owned(),
                run_id,
                entry: id.id,
            })
        })
        .collect()
}

impl Runs {
    /// Queues `record` (status, attempts and timings are set here), deduplicated by the
    /// client's idempotency key with `fingerprint` (a key reused for another request is
    /// refused).
    pub async fn submit(
        &self,
        record: &RunRecord,
        fingerprint: &str,
    ) -> Result<Submitted, RunError> {
        let tenant = &record.tenant;
        let idempotency = record
            .idempotency_key
            .as_deref()
            .map(|key| self.keys.idempotency(tenant, key));
        let keys = vec![
            self.keys.record(&record.id),
            self.keys.queue(tenant),
            self.keys.tenants(),
            self.keys.queued(tenant),
            idempotency
                .clone()
                .unwrap_or_else(|| self.keys.record(&record.id)),
            self.keys.index(tenant, None),
            self.keys.index(tenant, Some(RunStatus::Queued)),
            self.keys.events(&record.id),
        ];
        let settings = &self.settings;
        let mut args = vec![
            record.id.clone(),
            tenant.clone(),
            settings.max_queued_per_tenant.to_string(),
            settings.stream_max_len.to_string(),
            GROUP.to_owned(),
            now_ms().to_string(),
            settings.retention_seconds.to_string(),
            if idempotency.is_some() { "1" } else { "0" }.to_owned(),
            fingerprint.to_owned(),
            settings.events_max_len.to_string(),
        ];
        for (field, value) in record.new_fields()? {
            args.push(field);
            args.push(value);
        }
        let reply: (String, String) = parse(self.eval(&self.scripts.submit, &keys, &args).await?)?;
        match reply.0.as_str() {
            "queued" => Ok(Submitted::Queued),
            "full" => Err(RunError::QueueFull(reply.1.parse().unwrap_or(0))),
            "existing" => {
                let (id, recorded) = reply.1.split_once(' ').unwrap_or((&reply.1, ""));
                if recorded == fingerprint {
                    Ok(Submitted::Existing(id.to_owned()))
                } else {
                    Err(RunError::IdempotencyMismatch)
                }
            }
            other => Err(RunError::Corrupt(format!("submit answered {other:?}"))),
        }
    }

    /// Cancels the run `run_id` of `tenant`.
    pub async fn cancel(&self, tenant: &str, run_id: &str) -> Result<Cancelled, RunError> {
        // The tenant check: a run of another tenant does not exist for this caller.
        self.get(tenant, run_id).await?;
        let keys = vec![
            self.keys.record(run_id),
            self.keys.queue(tenant),
            self.keys.queued(tenant),
            self.keys.index(tenant, Some(RunStatus::Queued)),
            self.keys.index(tenant, Some(RunStatus::Cancelled)),
            self.keys.events(run_id),
        ];
        let args = vec![
            now_ms().to_string(),
            self.settings.retention_seconds.to_string(),
            run_id.to_owned(),
            self.settings.events_max_len.to_string(),
        ];
        let reply: String = parse(self.eval(&self.scripts.cancel, &keys, &args).await?)?;
        match reply.as_str() {
            "cancelled" => Ok(Cancelled::Now),
            "cancelling" => Ok(Cancelled::Requested),
            "missing" => Err(RunError::NotFound(run_id.to_owned())),
            other => other
                .strip_prefix("finished:")
                .and_then(RunStatus::parse)
                .map(Cancelled::AlreadyFinished)
                .ok_or_else(|| RunError::Corrupt(format!("cancel answered {other:?}"))),
        }
    }

    /// The tenants that have a queue.
    pub async fn tenants(&self) -> Result<Vec<String>, RunError> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.keys.tenants());
        let mut tenants: Vec<String> = parse(self.query(&cmd).await?)?;
        tenants.sort();
        Ok(tenants)
    }

    /// New entries for `consumer`: at most one per tenant of `tenants`, blocking up to the
    /// block time on `link` (a dedicated link) when every stream is empty.
    pub async fn read_new(
        &self,
        link: &RedisCommands,
        consumer: &str,
        tenants: &[String],
    ) -> Result<Vec<Delivery>, RunError> {
        if tenants.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(u64::try_from(self.block().as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS");
        let by_stream: HashMap<String, &String> = tenants
            .iter()
            .map(|tenant| (self.keys.queue(tenant), tenant))
            .collect();
        for tenant in tenants {
            cmd.arg(self.keys.queue(tenant));
        }
        for _ in tenants {
            cmd.arg(">");
        }
        let reply = match link.query(&cmd).await {
            Ok(reply) => reply,
            // A queue whose group is gone (Redis restarted without persistence): recreate it.
            Err(error) if error.code() == Some("NOGROUP") => {
                for tenant in tenants {
                    self.ensure_group(tenant).await?;
                }
                return Ok(Vec::new());
            }
            Err(error) => return Err(error.into()),
        };
        let reply: Option<StreamReadReply> = parse(reply)?;
        let mut out = Vec::new();
        for stream in reply.map(|reply| reply.keys).unwrap_or_default() {
            if let Some(tenant) = by_stream.get(&stream.key) {
                out.extend(deliveries(tenant, stream.ids));
            }
        }
        Ok(out)
    }

    /// Creates `tenant`'s consumer group (and stream) when missing.
    async fn ensure_group(&self, tenant: &str) -> Result<(), RunError> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(self.keys.queue(tenant))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self.query(&cmd).await {
            Err(RunError::Backend(message)) if message.contains("BUSYGROUP") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Takes over up to `count` of `tenant`'s entries idle longer than the visibility
    /// timeout (their worker died, or handed them back).
    pub async fn reclaim(
        &self,
        consumer: &str,
        tenant: &str,
        count: usize,
    ) -> Result<Vec<Delivery>, RunError> {
        let idle = (self.settings.visibility_timeout_seconds * 1000.0) as u64;
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(self.keys.queue(tenant))
            .arg(GROUP)
            .arg(consumer)
            .arg(idle)
            .arg("0-0")
            .arg("COUNT")
            .arg(count.max(1));
        let reply = match self.query(&cmd).await {
            Ok(reply) => reply,
            Err(RunError::Backend(message)) if message.contains("NOGROUP") => {
                self.ensure_group(tenant).await?;
                return Ok(Vec::new());
            }
            Err(error) => return Err(error),
        };
        let reply: StreamAutoClaimReply = parse(reply)?;
        Ok(deliveries(tenant, reply.claimed))
    }

    /// Renews `consumer`'s claim on `delivery` (resets its idle time), so it is not taken
    /// over while this worker is alive.
    pub async fn renew(&self, consumer: &str, delivery: &Delivery) -> Result<(), RunError> {
        self.claim(consumer, delivery, None).await
    }

    /// Hands `delivery` back: its idle time is set past the visibility timeout, so the next
    /// worker that looks takes it over at once (a draining worker's unfinished runs).
    pub async fn hand_back(&self, consumer: &str, delivery: &Delivery) -> Result<(), RunError> {
        let idle = (self.settings.visibility_timeout_seconds * 1000.0) as u64 + 1;
        self.claim(consumer, delivery, Some(idle)).await
    }

    async fn claim(
        &self,
        consumer: &str,
        delivery: &Delivery,
        idle_ms: Option<u64>,
    ) -> Result<(), RunError> {
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(self.keys.queue(&delivery.tenant))
            .arg(GROUP)
            .arg(consumer)
            .arg(0)
            .arg(&delivery.entry);
        if let Some(idle) = idle_ms {
            cmd.arg("IDLE").arg(idle);
        }
        cmd.arg("JUSTID");
        self.query(&cmd).await.map(|_| ())
    }

    /// Starts `delivery` for `consumer`: counts the attempt, and moves a queued run to
    /// running (or a run past its attempts to the dead-letter stream).
    pub async fn start(&self, consumer: &str, delivery: &Delivery) -> Result<Start, RunError> {
        let (tenant, run_id) = (&delivery.tenant, &delivery.run_id);
        let keys = vec![
            self.keys.record(run_id),
            self.keys.queue(tenant),
            self.keys.queued(tenant),
            self.keys.index(tenant, Some(RunStatus::Queued)),
            self.keys.index(tenant, Some(RunStatus::Running)),
            self.keys.index(tenant, Some(RunStatus::Failed)),
            self.keys.dead_letter(),
            self.keys.events(run_id),
        ];
        let settings = &self.settings;
        let args = vec![
            consumer.to_owned(),
            now_ms().to_string(),
            settings.max_attempts.to_string(),
            delivery.entry.clone(),
            GROUP.to_owned(),
            settings.retention_seconds.to_string(),
            settings.dead_letter_max_len.to_string(),
            run_id.clone(),
            settings.events_max_len.to_string(),
        ];
        let (verdict, attempt): (String, u32) =
            parse(self.eval(&self.scripts.start, &keys, &args).await?)?;
        Ok(match verdict.as_str() {
            "run" => Start::Run(attempt),
            "dead" => Start::Dead,
            _ => Start::Skip,
        })
    }

    /// Records the outcome of attempt `fence` of `record`: `Ok(false)` when the run is no
    /// longer this attempt's (another worker took it over, or it was finished).
    pub async fn finish(
        &self,
        record: &RunRecord,
        fence: u32,
        status: RunStatus,
        value: &serde_json::Value,
    ) -> Result<bool, RunError> {
        let tenant = &record.tenant;
        let field = if status == RunStatus::Succeeded {
            "output"
        } else {
            "error"
        };
        let data = serde_json::json!({"status": status.as_str(), field: value});
        let keys = vec![
            self.keys.record(&record.id),
            self.keys.queue(tenant),
            self.keys.index(tenant, Some(RunStatus::Running)),
            self.keys.index(tenant, Some(status)),
            self.keys.events(&record.id),
        ];
        let args = vec![
            fence.to_string(),
            status.as_str().to_owned(),
            field.to_owned(),
            value.to_string(),
            now_ms().to_string(),
            GROUP.to_owned(),
            self.settings.retention_seconds.to_string(),
            record.id.clone(),
            data.to_string(),
            self.settings.events_max_len.to_string(),
        ];
        let done: i64 = parse(self.eval(&self.scripts.finish, &keys, &args).await?)?;
        Ok(done == 1)
    }

    /// Waiting runs of `tenant` and the submission time of the oldest (Unix ms).
    pub async fn backlog(&self, tenant: &str) -> Result<(u64, Option<u64>), RunError> {
        let mut count = redis::cmd("ZCARD");
        count.arg(self.keys.index(tenant, Some(RunStatus::Queued)));
        let waiting: u64 = parse(self.query(&count).await?)?;
        let mut oldest = redis::cmd("ZRANGE");
        oldest
            .arg(self.keys.index(tenant, Some(RunStatus::Queued)))
            .arg(0)
            .arg(0)
            .arg("WITHSCORES");
        let first: Vec<(String, f64)> = parse(self.query(&oldest).await?)?;
        Ok((waiting, first.first().map(|(_, score)| *score as u64)))
    }

    /// Refreshes the backlog gauges of `metrics` (`arshai_runs_queued{queue}` and the oldest
    /// waiting run's age) from every tenant's queue.
    pub async fn refresh_gauges(
        &self,
        metrics: &crate::metrics::RunMetrics,
    ) -> Result<(), RunError> {
        let now = now_ms();
        for tenant in self.tenants().await? {
            let (waiting, oldest) = self.backlog(&tenant).await?;
            let labels = crate::metrics::QueueLabels { queue: tenant };
            metrics
                .queued
                .get_or_create(&labels)
                .set(i64::try_from(waiting).unwrap_or(i64::MAX));
            let age = oldest.map_or(0.0, |at| now.saturating_sub(at) as f64 / 1000.0);
            metrics.oldest_age.get_or_create(&labels).set(age);
        }
        Ok(())
    }
}
