//! One Redis link for the fleet controls (rate limits, budgets, the response cache): the
//! memory store's standalone / Sentinel / Cluster [`Link`], with a bound on commands in
//! flight, a bound on every reply, and Lua scripts sent by digest.

use std::time::Duration;

use redis::{Cmd, ErrorKind, RedisError, Script, ServerErrorKind, Value};
use tokio::sync::Semaphore;

use crate::memory::redis::{Link, RedisStoreConfig};

/// Why a command to Redis did not produce a reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    /// No reply within the response timeout, or no in-flight slot within the pool wait.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The link could not be opened.
    #[error("cannot open the redis link: {0}")]
    Open(String),
}

/// A Lua script and its SHA1 digest.
pub(crate) struct LuaScript {
    source: String,
    sha: String,
}

impl LuaScript {
    /// Digests `source` once.
    pub(crate) fn new(source: impl Into<String>) -> Self {
        let source = source.into();
        let sha = Script::new(&source).get_hash().to_owned();
        Self { source, sha }
    }
}

/// A bounded, self-reconnecting Redis link shared by the tasks of one process.
pub(crate) struct ScriptLink {
    link: Link,
    permits: Semaphore,
    pool_wait: Duration,
    response_timeout: Duration,
}

impl ScriptLink {
    /// Opens a link to the Redis that `config` describes (only its topology, database and
    /// timeouts are used), with at most `max_in_flight` commands in flight.
    pub(crate) async fn open(
        config: &RedisStoreConfig,
        max_in_flight: usize,
    ) -> Result<Self, LinkError> {
        let link = Link::open(config)
            .await
            .map_err(|error| LinkError::Open(error.to_string()))?;
        Ok(Self {
            link,
            permits: Semaphore::new(max_in_flight.max(1)),
            pool_wait: config.pool_wait,
            response_timeout: config.response_timeout,
        })
    }

    /// Sends one command, bounded by the pool wait and the response timeout.
    pub(crate) async fn query(&self, cmd: &Cmd) -> Result<Value, LinkError> {
        let _permit = tokio::time::timeout(self.pool_wait, self.permits.acquire())
            .await
            .map_err(|_| LinkError::Timeout(self.pool_wait))?
            .map_err(|_| LinkError::Open("the link is closed".to_owned()))?;
        match tokio::time::timeout(self.response_timeout, self.link.query(cmd)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(LinkError::Timeout(self.response_timeout)),
        }
    }

    /// Runs `script` by digest, sending its source when the server does not know it (a
    /// restarted or failed-over server starts with an empty script cache).
    pub(crate) async fn eval(
        &self,
        script: &LuaScript,
        keys: &[&str],
        args: &[String],
    ) -> Result<Value, LinkError> {
        let build = |name: &str, body: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(body).arg(keys.len()).arg(keys).arg(args);
            cmd
        };
        match self.query(&build("EVALSHA", &script.sha)).await {
            Err(LinkError::Redis(error))
                if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
            {
                self.query(&build("EVAL", &script.source)).await
            }
            other => other,
        }
    }
}

/// `text` with `%`, `{`, `}` and `:` percent-escaped, so it can be a key segment or a hash
/// tag and two different texts never make the same key.
pub(crate) fn escape(text: &str) -> String {
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

/// The hash tag of `tenant`'s limit keys under `prefix`: every rate cell and budget of one
/// tenant shares it, so one script can check (or settle) them all on Cluster too.
pub(crate) fn tenant_tag(prefix: &str, tenant: &str) -> String {
    format!("{{{prefix}:{}}}", escape(tenant))
}

/// A Redis link for the fleet controls, shared by the rate limiter, the budgets and the
/// response cache of one instance (open one per instance: it multiplexes every task's
/// commands over one connection per server).
#[derive(Clone)]
pub struct FleetRedis {
    pub(crate) link: std::sync::Arc<ScriptLink>,
}

impl std::fmt::Debug for FleetRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetRedis")
    }
}

impl FleetRedis {
    /// Opens a link to the Redis `config` describes (its topology, database and timeouts;
    /// the memory section's configuration can be reused as it is), with at most
    /// `max_in_flight` commands in flight. Standalone and Sentinel connect on first use.
    pub async fn open(
        config: &RedisStoreConfig,
        max_in_flight: usize,
    ) -> Result<Self, super::LimitError> {
        let link = ScriptLink::open(config, max_in_flight)
            .await
            .map_err(|error| super::LimitError::Unavailable {
                what: "fleet redis",
                message: error.to_string(),
            })?;
        Ok(Self {
            link: std::sync::Arc::new(link),
        })
    }
}

/// The integers of a script's array reply.
pub(crate) fn integers(value: Value) -> Result<Vec<i64>, LinkError> {
    let bad = || {
        LinkError::Redis(RedisError::from((
            ErrorKind::Parse,
            "a limits script answered something other than an array of integers",
        )))
    };
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Int(n) => Ok(n),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}
