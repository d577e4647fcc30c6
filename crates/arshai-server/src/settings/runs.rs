//! Durable background runs (`[runs]`, `docs/runs.md`).

use serde::{Deserialize, Serialize};

use arshai::settings::InvalidSetting;

/// Durable background runs on Redis Streams (`[runs]`). Runs need the Redis memory store
/// (`memory.provider = "redis"`): with the in-memory store `POST /v1/runs` answers 503.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunsSettings {
    /// Runs this process executes at once inside `arshai serve`; `0` makes the instance an
    /// API-only node (it accepts and serves runs, other workers execute them).
    /// `arshai worker` uses `worker_concurrency` instead (its flag overrides it).
    pub workers: usize,
    /// Runs one `arshai worker` process executes at once.
    pub worker_concurrency: usize,
    /// Prefix of every run key (the prefix is also the keys' hash tag, so every run key
    /// lives in one Cluster slot); must not contain `{` or `}`.
    pub key_prefix: String,
    /// A run whose worker stopped renewing its claim for this long is taken over by another
    /// worker (`XAUTOCLAIM`), in seconds.
    pub visibility_timeout_seconds: f64,
    /// How often a worker renews its claims, checks for cancellations and looks for runs
    /// to take over, in seconds (well under the visibility timeout).
    pub check_interval_seconds: f64,
    /// Longest a worker or an event follower blocks in one `XREADGROUP`/`XREAD`, in seconds.
    pub block_seconds: f64,
    /// Executions of one run (its first plus take-overs after crashes) before it goes to the
    /// dead-letter stream as failed.
    pub max_attempts: u32,
    /// Most runs of one tenant waiting to start; a submission beyond it is answered 429.
    pub max_queued_per_tenant: u64,
    /// Approximate bound on each queue stream's length (`XADD MAXLEN ~`): finished entries
    /// are deleted at once, so this is only a safety net; it must exceed
    /// `max_queued_per_tenant`.
    pub stream_max_len: u64,
    /// Approximate bound on the events kept per run.
    pub events_max_len: u64,
    /// Approximate bound on the dead-letter stream.
    pub dead_letter_max_len: u64,
    /// How long a finished run's record, events and idempotency key are kept, in seconds.
    pub retention_seconds: u64,
    /// Deadline of one execution of a run, in seconds.
    pub run_timeout_seconds: f64,
    /// The HMAC-SHA256 key of webhook signatures; a run with a `webhook` is refused (400)
    /// while it is unset.
    pub webhook_secret: Option<String>,
    /// Deliveries of one webhook before it is given up (retried on a network error or a
    /// 5xx/429 answer).
    pub webhook_max_attempts: u32,
    /// Deadline of one webhook delivery, in seconds.
    pub webhook_timeout_seconds: f64,
    /// Pause before the first webhook retry, doubled after each, in seconds.
    pub webhook_backoff_seconds: f64,
}

impl Default for RunsSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            worker_concurrency: 16,
            key_prefix: "arshai:runs".to_owned(),
            visibility_timeout_seconds: 30.0,
            check_interval_seconds: 1.0,
            block_seconds: 1.0,
            max_attempts: 3,
            max_queued_per_tenant: 10_000,
            stream_max_len: 100_000,
            events_max_len: 10_000,
            dead_letter_max_len: 10_000,
            retention_seconds: 7 * 24 * 3600,
            run_timeout_seconds: 600.0,
            webhook_secret: None,
            webhook_max_attempts: 5,
            webhook_timeout_seconds: 10.0,
            webhook_backoff_seconds: 1.0,
        }
    }
}

impl RunsSettings {
    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        InvalidSetting::check_seconds([
            (
                "runs.visibility_timeout_seconds",
                self.visibility_timeout_seconds,
            ),
            ("runs.check_interval_seconds", self.check_interval_seconds),
            ("runs.block_seconds", self.block_seconds),
            ("runs.run_timeout_seconds", self.run_timeout_seconds),
            ("runs.webhook_timeout_seconds", self.webhook_timeout_seconds),
            ("runs.webhook_backoff_seconds", self.webhook_backoff_seconds),
        ])?;
        InvalidSetting::check_at_least_one([
            ("runs.worker_concurrency", self.worker_concurrency as u64),
            ("runs.max_attempts", u64::from(self.max_attempts)),
            ("runs.max_queued_per_tenant", self.max_queued_per_tenant),
            ("runs.events_max_len", self.events_max_len),
            ("runs.dead_letter_max_len", self.dead_letter_max_len),
            ("runs.retention_seconds", self.retention_seconds),
            (
                "runs.webhook_max_attempts",
                u64::from(self.webhook_max_attempts),
            ),
        ])?;
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}']) {
            return Err(InvalidSetting::new(
                "runs.key_prefix",
                &self.key_prefix,
                "must be non-empty, without { or }",
            ));
        }
        if self.check_interval_seconds * 2.0 > self.visibility_timeout_seconds {
            return Err(InvalidSetting::new(
                "runs.check_interval_seconds",
                self.check_interval_seconds,
                "must be at most half of runs.visibility_timeout_seconds, so a live worker \
                 renews its claims before they can be taken over",
            ));
        }
        if self.stream_max_len <= self.max_queued_per_tenant {
            return Err(InvalidSetting::new(
                "runs.stream_max_len",
                self.stream_max_len,
                "must exceed runs.max_queued_per_tenant, so trimming never drops a queued run",
            ));
        }
        if let Some(secret) = &self.webhook_secret
            && secret.len() < 16
        {
            return Err(InvalidSetting::new(
                "runs.webhook_secret",
                "(hidden)",
                "must be at least 16 bytes",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::result_large_err)] // figment::Jail fixes the closure error type

    use figment::Jail;

    use super::*;
    use crate::settings::Settings;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(RunsSettings::default().validate(), Ok(()));
    }

    /// A change that makes settings invalid, and the key the error must name.
    type Spoiled = (fn(&mut RunsSettings), &'static str);

    #[test]
    fn inconsistent_settings_name_the_key() {
        let cases: [Spoiled; 5] = [
            (
                |s| s.check_interval_seconds = 20.0,
                "runs.check_interval_seconds",
            ),
            (|s| s.stream_max_len = 10, "runs.stream_max_len"),
            (|s| s.key_prefix = "a{b}".to_owned(), "runs.key_prefix"),
            (
                |s| s.webhook_secret = Some("short".to_owned()),
                "runs.webhook_secret",
            ),
            (|s| s.max_attempts = 0, "runs.max_attempts"),
        ];
        for (spoil, key) in cases {
            let mut settings = RunsSettings::default();
            spoil(&mut settings);
            let error = settings.validate().expect_err(key);
            assert_eq!(error.key, key);
        }
    }

    #[test]
    fn the_file_and_the_environment_set_runs() {
        Jail::expect_with(|jail| {
            jail.create_file("arshai.toml", "[runs]\nworkers = 2\nmax_attempts = 5\n")?;
            jail.set_env("ARSHAI_RUNS__WORKERS", "0");
            let path = jail.directory().join("arshai.toml");
            let settings = Settings::load(Some(&path)).expect("loads");
            assert_eq!(settings.runs.workers, 0, "env beats file");
            assert_eq!(settings.runs.max_attempts, 5, "file beats default");
            jail.set_env("ARSHAI_RUNS__VISIBILITY_TIMEOUT_SECONDS", "-1");
            assert!(Settings::load(Some(&path)).is_err(), "validated on load");
            Ok(())
        });
    }
}
