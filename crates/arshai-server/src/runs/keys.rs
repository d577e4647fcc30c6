//! The Redis key layout of the run queue.
//!
//! Every key starts with `{<prefix>}`, one hash tag, so the scripts that touch a run's
//! record, its tenant's queue and indexes, and its events together work on Cluster too
//! (every run key lives in one slot: the queue scales with the Redis it is given, not across
//! shards). Tenants and idempotency keys are escaped, so two names never make one key.

use sha2::{Digest, Sha256};

use super::record::RunStatus;

/// The consumer group every worker reads the queue streams in.
pub const GROUP: &str = "workers";

/// The key names of one queue.
#[derive(Debug, Clone)]
pub struct RunKeys {
    tag: String,
}

/// `text` with `%`, `{`, `}` and `:` percent-escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out
}

impl RunKeys {
    /// The layout under `prefix` (validated by the settings: no braces).
    pub fn new(prefix: &str) -> Self {
        Self {
            tag: format!("{{{prefix}}}"),
        }
    }

    /// A run's record (a hash).
    pub fn record(&self, run_id: &str) -> String {
        format!("{}:run:{run_id}", self.tag)
    }

    /// A run's events (a stream).
    pub fn events(&self, run_id: &str) -> String {
        format!("{}:events:{run_id}", self.tag)
    }

    /// A tenant's queue (a stream read by the [`GROUP`]).
    pub fn queue(&self, tenant: &str) -> String {
        format!("{}:queue:{}", self.tag, escape(tenant))
    }

    /// How many runs of a tenant wait to start (a counter).
    pub fn queued(&self, tenant: &str) -> String {
        format!("{}:queued:{}", self.tag, escape(tenant))
    }

    /// A tenant's runs in `status`, by creation time (a sorted set); `None`: every status.
    pub fn index(&self, tenant: &str, status: Option<RunStatus>) -> String {
        let status = status.map_or("all", RunStatus::as_str);
        format!("{}:index:{}:{status}", self.tag, escape(tenant))
    }

    /// The tenants that have a queue (a set of tenant names).
    pub fn tenants(&self) -> String {
        format!("{}:tenants", self.tag)
    }

    /// The run a tenant's idempotency key submitted (a string, `<run id> <fingerprint>`).
    pub fn idempotency(&self, tenant: &str, key: &str) -> String {
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("{}:idem:{}:{hex}", self.tag, escape(tenant))
    }

    /// A workflow run's node checkpoints (a hash: node path → checkpoint JSON).
    pub fn checkpoints(&self, run_id: &str) -> String {
        format!("{}:ckpt:{run_id}", self.tag)
    }

    /// Runs that exhausted their attempts (a stream).
    pub fn dead_letter(&self) -> String {
        format!("{}:dead", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_escaped_and_every_key_shares_one_hash_tag() {
        let keys = RunKeys::new("arshai:runs");
        assert_eq!(keys.queue("a:b"), "{arshai:runs}:queue:a%3Ab");
        assert_ne!(keys.queue("a:b"), keys.queue("a%3Ab"));
        for key in [
            keys.record("r"),
            keys.events("r"),
            keys.checkpoints("r"),
            keys.queued("t"),
            keys.index("t", Some(RunStatus::Queued)),
            keys.tenants(),
            keys.idempotency("t", "k"),
            keys.dead_letter(),
        ] {
            assert!(key.starts_with("{arshai:runs}:"), "{key}");
        }
    }
}
