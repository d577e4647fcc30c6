//! Durable background runs on Redis Streams (`docs/runs.md`).
//!
//! A run is submitted (`POST /v1/runs`, [`crate::routes::runs`]), queued on its tenant's
//! stream, executed by any worker of the fleet, and its events can be followed from any
//! instance:
//!
//! - [`record`]: the run's record (a Redis hash that expires after the retention period).
//! - [`queue`]: submission, cancellation, and the consumer-group side a worker uses (read,
//!   take over after the visibility timeout, renew, hand back, start, finish).
//! - [`scripts`]: the Lua scripts that make every state change atomic.
//! - [`events`]: the per-run event stream (replay, then follow live).
//! - [`checkpoints`]: a workflow run's per-node checkpoints, so a retried run resumes.
//! - [`executor`]: what a run executes ([`RunTarget`]) and the [`RunExecutor`] that does it.
//! - [`worker`]: the bounded worker loop (inside `arshai serve`, or alone as `arshai worker`).
//! - [`usage`]: a run's real tokens settled against its submitter's budgets and limits.
//! - [`webhook`]: the signed completion callback, with bounded retries.
//! - [`keys`]: the key layout.
//!
//! Execution is at least once (a run whose worker died is executed again), results are
//! effectively once: an agent run's turn uses the run id as its idempotency key, so a second
//! execution finds the first one's receipt instead of appending to the conversation again,
//! and only the current attempt may record the outcome (the scripts fence on the attempt).
//! A workflow run checkpoints each finished node: a retried run resumes from its last
//! checkpoint, and its agent nodes' turns are keyed by the run id and node path.

pub mod checkpoints;
pub mod error;
pub mod events;
pub mod executor;
pub mod keys;
pub mod queue;
pub mod record;
pub mod scripts;
pub mod usage;
pub mod webhook;
pub mod worker;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arshai::memory::{MemoryProvider, RedisCommands, RedisStoreConfig};
use redis::{Cmd, ErrorKind, ServerErrorKind, Value};

pub use error::RunError;
pub use executor::{RunExecutor, RunFailure, TargetExecutor};
pub use record::{RunRecord, RunStatus, RunTarget};

use crate::settings::{RunsSettings, Settings};
use keys::RunKeys;
use scripts::{LuaScript, RunScripts};

/// The run queue of one process: its Redis link, settings, key layout and scripts.
#[derive(Debug)]
pub struct Runs {
    redis: Arc<RedisCommands>,
    redis_config: RedisStoreConfig,
    /// The `[runs]` settings.
    pub settings: RunsSettings,
    /// The key layout.
    pub keys: RunKeys,
    scripts: RunScripts,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

impl Runs {
    /// Opens the queue on the memory store's Redis; `None` when the settings choose the
    /// in-memory store (runs are then refused with 503).
    pub async fn open(settings: &Settings) -> Result<Option<Arc<Self>>, RunError> {
        if settings.memory.effective_provider() != MemoryProvider::Redis {
            return Ok(None);
        }
        let redis_config = RedisStoreConfig::from_settings(&settings.memory);
        let redis = RedisCommands::open(&redis_config)
            .await
            .map_err(|error| RunError::Backend(error.to_string()))?;
        Ok(Some(Arc::new(Self {
            redis: Arc::new(redis),
            redis_config,
            settings: settings.runs.clone(),
            keys: RunKeys::new(&settings.runs.key_prefix),
            scripts: RunScripts::new(),
        })))
    }

    /// A dedicated link for blocking reads (`XREADGROUP`/`XREAD BLOCK`), whose response
    /// timeout covers the block.
    pub(crate) async fn blocking_link(&self) -> Result<RedisCommands, RunError> {
        let mut config = self.redis_config.clone();
        config.response_timeout += self.block();
        RedisCommands::open(&config)
            .await
            .map_err(|error| RunError::Backend(error.to_string()))
    }

    /// The longest block of one read.
    pub(crate) fn block(&self) -> Duration {
        Duration::from_secs_f64(self.settings.block_seconds)
    }

    /// Sends one command.
    pub(crate) async fn query(&self, cmd: &Cmd) -> Result<Value, RunError> {
        Ok(self.redis.query(cmd).await?)
    }

    /// Runs `script` by digest, by source when Redis does not know it (a restarted server
    /// starts with an empty script cache).
    pub(crate) async fn eval(
        &self,
        script: &LuaScript,
        keys: &[String],
        args: &[String],
    ) -> Result<Value, RunError> {
        Ok(eval_on(&self.redis, script, keys, args).await?)
    }

    /// The checkpoint store of workflow run `run_id` (its records expire
    /// `runs.retention_seconds` after the last one was written).
    pub fn checkpoints(&self, run_id: &str) -> checkpoints::RunCheckpoints {
        checkpoints::RunCheckpoints::new(
            Arc::clone(&self.redis),
            Arc::clone(&self.scripts.checkpoint),
            self.keys.checkpoints(run_id),
            self.settings.retention_seconds,
        )
    }
}

/// Runs `script` on `redis` by digest, by source when Redis does not know it.
pub(crate) async fn eval_on(
    redis: &RedisCommands,
    script: &LuaScript,
    keys: &[String],
    args: &[String],
) -> Result<Value, redis::RedisError> {
    let build = |name: &str, body: &str| {
        let mut cmd = redis::cmd(name);
        cmd.arg(body).arg(keys.len()).arg(keys).arg(args);
        cmd
    };
    match redis.query(&build("EVALSHA", &script.sha)).await {
        Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            redis.query(&build("EVAL", &script.source)).await
        }
        other => other,
    }
}
