//! A workflow run's checkpoints in Redis: one hash per run (`{prefix}:ckpt:<run id>`,
//! node path → checkpoint JSON) under the queue's hash tag, so it works on Cluster too.
//! Every attempt of the run reads and writes the same hash: a run taken over after its
//! worker died resumes from its last finished node. The hash expires
//! `runs.retention_seconds` after its last write.

use std::sync::Arc;

use arshai::memory::RedisCommands;
use arshai::workflow::{Checkpoint, CheckpointError, Checkpoints};
use async_trait::async_trait;

use super::eval_on;
use super::scripts::LuaScript;

/// The checkpoints of one workflow run (bounded by the Redis link's response timeout).
pub struct RunCheckpoints {
    redis: Arc<RedisCommands>,
    script: Arc<LuaScript>,
    key: String,
    retention_seconds: u64,
}

impl std::fmt::Debug for RunCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunCheckpoints")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: redis::RedisError) -> CheckpointError {
    CheckpointError::Unavailable(error.to_string())
}

impl RunCheckpoints {
    /// The checkpoints kept in the hash `key`, written with `script`.
    pub(crate) fn new(
        redis: Arc<RedisCommands>,
        script: Arc<LuaScript>,
        key: String,
        retention_seconds: u64,
    ) -> Self {
        Self {
            redis,
            script,
            key,
            retention_seconds,
        }
    }
}

#[async_trait]
impl Checkpoints for RunCheckpoints {
    async fn load(&self, path: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&self.key).arg(path);
        let reply = self.redis.query(&cmd).await.map_err(unavailable)?;
        let text: Option<String> = redis::from_redis_value(reply)
            .map_err(|error| CheckpointError::Corrupt(format!("{path}: {error}")))?;
        text.map(|text| {
            serde_json::from_str(&text)
                .map_err(|error| CheckpointError::Corrupt(format!("{path}: {error}")))
        })
        .transpose()
    }

    async fn save(&self, path: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let body = serde_json::to_string(checkpoint)
            .map_err(|error| CheckpointError::Corrupt(error.to_string()))?;
        eval_on(
            &self.redis,
            &self.script,
            std::slice::from_ref(&self.key),
            &[
                path.to_owned(),
                body,
                self.retention_seconds.max(1).to_string(),
            ],
        )
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}
