//! [`RedisStore`]: the [`MemoryStore`] contract on Redis.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, ServerErrorKind, Value};
use tokio::sync::Semaphore;

use super::config::RedisStoreConfig;
use super::connection::Link;
use super::keys::{ConversationKeys, KeyLayout};
use super::scripts::{ScriptText, Scripts};
use crate::llm::Message;
use crate::memory::conversation::now_ms;
use crate::memory::{
    Conversation, ConversationId, ConversationKey, ConversationPage, ConversationSummary,
    MemoryError, MemoryStore,
};

const BACKEND: &str = "redis";

/// Hash field of the working memory.
const WORKING_MEMORY: &str = "w";
/// Prefix of metadata fields in the conversation hash.
const METADATA: &str = "x:";
/// Largest page `list` returns (each entry costs a lookup).
const MAX_PAGE: usize = 1000;
/// Pause before the one retry of a failed idempotent operation.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Conversation memory in Redis, shared by every instance.
///
/// Each conversation write is one Lua script on the conversation's hash tag: version check,
/// append, trim, TTL refresh and version bump happen atomically, so two instances appending
/// to one conversation never lose a message. Every write carries a random write id that the
/// script remembers, so a write retried after a lost reply is applied once.
///
/// At most `max_in_flight` commands are in flight at once (a semaphore with a bounded wait);
/// every command is bounded by the response timeout.
pub struct RedisStore {
    link: Link,
    layout: KeyLayout,
    scripts: Scripts,
    permits: Semaphore,
    config: RedisStoreConfig,
}

/// Removes `user:password@` from anything that looks like a URL, so that errors never carry
/// credentials.
fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        out.push_str(&rest[..at + 3]);
        rest = &rest[at + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '/' || c == ',' || c == ')')
            .unwrap_or(rest.len());
        if let Some(userinfo) = rest[..end].rfind('@') {
            out.push_str("***@");
            rest = &rest[userinfo + 1..];
        }
    }
    out.push_str(rest);
    out
}

fn unavailable(message: impl AsRef<str>) -> MemoryError {
    MemoryError::Unavailable {
        backend: BACKEND,
        message: scrub(message.as_ref()),
    }
}

fn corrupt(what: impl std::fmt::Display) -> MemoryError {
    MemoryError::Corrupt(what.to_string())
}

/// Whether an operation that failed this way may be sent again.
fn is_transient(error: &RedisError) -> bool {
    error.is_timeout()
        || error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.kind(),
            ErrorKind::Server(
                ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::BusyLoading
            )
        )
}

fn parse<T: FromRedisValue>(value: Value) -> Result<T, MemoryError> {
    redis::from_redis_value(value).map_err(corrupt)
}

impl RedisStore {
    /// Opens a store. Standalone and Sentinel connect on first use (a store can be opened
    /// while Redis is still starting); Cluster reads its slot map now.
    pub async fn open(config: RedisStoreConfig) -> Result<Self, MemoryError> {
        let layout = KeyLayout::new(&config.key_prefix).map_err(unavailable)?;
        let link = Link::open(&config)
            .await
            .map_err(|error| unavailable(format!("cannot open: {error}")))?;
        Ok(Self {
            link,
            layout,
            scripts: Scripts::new(),
            permits: Semaphore::new(config.max_in_flight.max(1)),
            config,
        })
    }

    /// The configuration this store runs with.
    pub fn config(&self) -> &RedisStoreConfig {
        &self.config
    }

    /// One attempt: an in-flight slot (bounded wait), then the command (bounded wait).
    async fn attempt(&self, cmd: &Cmd) -> Result<Value, Result<RedisError, MemoryError>> {
        let _permit = tokio::time::timeout(self.config.pool_wait, self.permits.acquire())
            .await
            .map_err(|_| {
                Err(MemoryError::Timeout {
                    backend: BACKEND,
                    after: self.config.pool_wait,
                })
            })?
            .map_err(|_| Err(unavailable("the store is closed")))?;
        match tokio::time::timeout(self.config.response_timeout, self.link.query(cmd)).await {
            Ok(result) => result.map_err(Ok),
            Err(_) => Err(Err(MemoryError::Timeout {
                backend: BACKEND,
                after: self.config.response_timeout,
            })),
        }
    }

    /// Runs `cmd`, retrying once after a transient failure when `redis_retry_on_timeout` is
    /// on. Every command this store sends is idempotent (writes carry a write id).
    async fn run(&self, cmd: &Cmd) -> Result<Value, MemoryError> {
        self.run_raw(cmd).await.map_err(|failure| self.map(failure))
    }

    /// [`Self::run`], keeping a Redis error as it is for callers that look at it.
    async fn run_raw(&self, cmd: &Cmd) -> Result<Value, Result<RedisError, MemoryError>> {
        let attempts = if self.config.retry_on_timeout { 2 } else { 1 };
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(cmd).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            let retry = attempt < attempts
                && match &failure {
                    Ok(error) => is_transient(error),
                    Err(MemoryError::Timeout { .. }) => true,
                    Err(_) => false,
                };
            if !retry {
                return Err(failure);
            }
            attempt += 1;
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }

    fn map(&self, failure: Result<RedisError, MemoryError>) -> MemoryError {
        match failure {
            Ok(error) if error.is_timeout() => MemoryError::Timeout {
                backend: BACKEND,
                after: self.config.response_timeout,
            },
            Ok(error) => unavailable(error.to_string()),
            Err(error) => error,
        }
    }

    /// Runs a script by digest, sending its source once if the server does not know it
    /// (a restarted or failed-over server starts with an empty script cache).
    async fn script(
        &self,
        script: &ScriptText,
        keys: &[&str],
        args: Vec<Vec<u8>>,
    ) -> Result<Value, MemoryError> {
        let build = |name: &str, body: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(body).arg(keys.len()).arg(keys);
            for arg in &args {
                cmd.arg(arg.as_slice());
            }
            cmd
        };
        match self.run_raw(&build("EVALSHA", &script.sha)).await {
            Err(Ok(error)) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.run(&build("EVAL", &script.source)).await
            }
            other => other.map_err(|failure| self.map(failure)),
        }
    }

    fn ttl_ms(&self) -> u64 {
        self.config.ttl.as_millis().max(1) as u64
    }

    /// One atomic write to a conversation and its index update (atomic together on
    /// standalone and Sentinel; one after the other on Cluster).
    async fn write(
        &self,
        key: &ConversationKey,
        expected_version: Option<u64>,
        messages: &[Message],
        fields: Vec<(String, String)>,
    ) -> Result<u64, MemoryError> {
        let write_id = uuid::Uuid::new_v4().simple().to_string();
        self.write_once(key, &write_id, expected_version, messages, fields)
            .await
    }

    /// [`Self::write`] under a given write id: a second call with the same id (a retry after
    /// a lost reply) returns the first call's version and writes nothing.
    async fn write_once(
        &self,
        key: &ConversationKey,
        write_id: &str,
        expected_version: Option<u64>,
        messages: &[Message],
        fields: Vec<(String, String)>,
    ) -> Result<u64, MemoryError> {
        let keys = self.layout.conversation(key);
        let now = now_ms();
        // Where every key is on one server, the index update joins the atomic write.
        let combined = !self.link.is_cluster();
        let mut args: Vec<Vec<u8>> = Vec::with_capacity(10 + messages.len() + 2 * fields.len());
        args.push(
            expected_version
                .map_or_else(|| "-1".to_owned(), |v| v.to_string())
                .into_bytes(),
        );
        args.push(self.ttl_ms().to_string().into_bytes());
        args.push(self.config.max_messages.max(1).to_string().into_bytes());
        args.push(now.to_string().into_bytes());
        args.push(write_id.as_bytes().to_vec());
        args.push(messages.len().to_string().into_bytes());
        args.push(keys.lru_member.clone().into_bytes());
        args.push(key.id.as_str().as_bytes().to_vec());
        args.push(self.config.max_conversations.to_string().into_bytes());
        args.push(self.layout.tenant_index_prefix().into_bytes());
        for message in messages {
            args.push(serde_json::to_vec(message).map_err(corrupt)?);
        }
        for (field, value) in fields {
            args.push(field.into_bytes());
            args.push(value.into_bytes());
        }
        let lru = self.layout.lru_index();
        let mut script_keys = vec![keys.hash.as_str(), &keys.messages, &keys.ops];
        if combined {
            script_keys.extend([lru.as_str(), &keys.tenant_index]);
        }
        let reply = self.script(&self.scripts.write, &script_keys, args).await?;
        let mut reply: Vec<Value> = parse(reply)?;
        let popped = if reply.len() > 2 { reply.pop() } else { None };
        let (applied, version): (i64, u64) = parse(Value::Array(reply))?;
        if applied == 0 {
            return Err(MemoryError::Conflict {
                expected: expected_version.unwrap_or_default(),
                actual: version,
            });
        }
        // The write is applied: what follows keeps the bound, and failing the call now would
        // invite a retry that writes the messages twice. A failure is logged; the TTL and the
        // next writes' index updates repair it.
        let follow_up = if combined {
            match popped.map(parse::<Vec<(String, String)>>).transpose() {
                Ok(popped) => self.evict(popped.unwrap_or_default()).await,
                Err(error) => Err(error),
            }
        } else {
            self.index(key, &keys, now).await
        };
        if let Err(error) = follow_up {
            tracing::warn!(%error, "conversation written, but its index update or eviction failed");
        }
        Ok(version)
    }

    /// Records the write in the LRU and listing indexes and deletes what they evicted.
    async fn index(
        &self,
        key: &ConversationKey,
        keys: &ConversationKeys,
        now: u64,
    ) -> Result<(), MemoryError> {
        let lru = self.layout.lru_index();
        let reply = self
            .script(
                &self.scripts.index,
                &[&lru, &keys.tenant_index],
                vec![
                    keys.lru_member.clone().into_bytes(),
                    key.id.as_str().as_bytes().to_vec(),
                    now.to_string().into_bytes(),
                    self.ttl_ms().to_string().into_bytes(),
                    self.config.max_conversations.to_string().into_bytes(),
                    self.layout.tenant_index_prefix().into_bytes(),
                ],
            )
            .await?;
        let evicted: Vec<(String, String)> = parse(reply)?;
        self.evict(evicted).await
    }

    /// Deletes the conversations the index popped, unless written since.
    async fn evict(&self, popped: Vec<(String, String)>) -> Result<(), MemoryError> {
        for (member, score) in popped {
            let Some((_, tag)) = self.layout.keys_of_member(&member) else {
                tracing::warn!("skipping an LRU index entry that is not a conversation");
                continue;
            };
            let (hash, messages, ops) =
                (format!("{tag}:h"), format!("{tag}:m"), format!("{tag}:o"));
            self.script(
                &self.scripts.evict,
                &[&hash, &messages, &ops],
                vec![score.into_bytes()],
            )
            .await?;
        }
        Ok(())
    }

    async fn lease_script(
        &self,
        script: &ScriptText,
        key: &ConversationKey,
        owner: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, MemoryError> {
        let lease = self.layout.conversation(key).lease;
        let mut args = vec![owner.as_bytes().to_vec()];
        if let Some(ttl) = ttl {
            args.push((ttl.as_millis().max(1) as u64).to_string().into_bytes());
        }
        let reply = self.script(script, &[&lease], args).await?;
        let done: i64 = parse(reply)?;
        Ok(done == 1)
    }
}

/// Builds a conversation from its hash fields and message list.
fn decode(
    fields: Vec<(String, String)>,
    raw_messages: Vec<Vec<u8>>,
) -> Result<Conversation, MemoryError> {
    let mut conversation = Conversation::default();
    for (field, value) in fields {
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| corrupt(format!("field {field} is not a number")))
        };
        match field.as_str() {
            "v" => conversation.version = number()?,
            "c" => conversation.created_at_ms = number()?,
            "u" => conversation.updated_at_ms = number()?,
            WORKING_MEMORY => conversation.working_memory = Some(value),
            other => {
                if let Some(name) = other.strip_prefix(METADATA) {
                    conversation.metadata.insert(name.to_owned(), value);
                }
            }
        }
    }
    conversation.messages = raw_messages
        .iter()
        .map(|raw| serde_json::from_slice(raw).map_err(corrupt))
        .collect::<Result<_, _>>()?;
    Ok(conversation)
}

#[async_trait]
impl MemoryStore for RedisStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, MemoryError> {
        let keys = self.layout.conversation(key);
        let reply = self
            .script(
                &self.scripts.load,
                &[&keys.hash, &keys.messages],
                Vec::new(),
            )
            .await?;
        let (fields, messages): (Vec<(String, String)>, Vec<Vec<u8>>) = parse(reply)?;
        if fields.is_empty() {
            return Ok(None);
        }
        let conversation = decode(fields, messages)?;
        Ok((conversation.version > 0).then_some(conversation))
    }

    async fn append(
        &self,
        key: &ConversationKey,
        messages: &[Message],
        expected_version: Option<u64>,
    ) -> Result<u64, MemoryError> {
        self.write(key, expected_version, messages, Vec::new())
            .await
    }

    async fn set_working_memory(
        &self,
        key: &ConversationKey,
        text: &str,
    ) -> Result<u64, MemoryError> {
        self.write(
            key,
            None,
            &[],
            vec![(WORKING_MEMORY.to_owned(), text.to_owned())],
        )
        .await
    }

    async fn merge_metadata(
        &self,
        key: &ConversationKey,
        metadata: &BTreeMap<String, String>,
    ) -> Result<u64, MemoryError> {
        let fields = metadata
            .iter()
            .map(|(name, value)| (format!("{METADATA}{name}"), value.clone()))
            .collect();
        self.write(key, None, &[], fields).await
    }

    async fn delete(&self, key: &ConversationKey) -> Result<bool, MemoryError> {
        let keys = self.layout.conversation(key);
        let mut del = redis::cmd("DEL");
        del.arg(&keys.hash).arg(&keys.messages).arg(&keys.ops);
        let removed: u64 = parse(self.run(&del).await?)?;
        let mut unindex = redis::cmd("ZREM");
        unindex.arg(self.layout.lru_index()).arg(&keys.lru_member);
        self.run(&unindex).await?;
        let mut unlist = redis::cmd("ZREM");
        unlist.arg(&keys.tenant_index).arg(key.id.as_str());
        self.run(&unlist).await?;
        Ok(removed > 0)
    }

    async fn list(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ConversationPage, MemoryError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let index = self.layout.tenant_index(tenant);
        let mut range = redis::cmd("ZRANGE");
        range
            .arg(&index)
            .arg(cursor.map_or_else(|| b"-".to_vec(), |c| [b"(", c.as_bytes()].concat()))
            .arg("+")
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(limit + 1);
        let ids: Vec<String> = parse(self.run(&range).await?)?;
        let more = ids.len() > limit;
        let candidates: Vec<String> = ids.into_iter().take(limit).collect();
        let last = candidates.last().cloned();
        // One HMGET per candidate, sent together (they pipeline on the multiplexed link; in
        // Cluster each goes to its slot's node). The in-flight bound still applies.
        let lookups = candidates.iter().map(|raw| async move {
            let Ok(id) = ConversationId::parse(raw.clone()) else {
                return Ok(None);
            };
            let keys = self
                .layout
                .conversation(&ConversationKey::new(tenant, id.clone()));
            let mut fields = redis::cmd("HMGET");
            fields.arg(&keys.hash).arg("v").arg("u");
            let (version, updated): (Option<u64>, Option<u64>) = parse(self.run(&fields).await?)?;
            Ok::<_, MemoryError>(Some((raw, id, version, updated)))
        });
        let mut items = Vec::with_capacity(limit);
        for found in futures::future::join_all(lookups).await {
            let Some((raw, id, version, updated)) = found? else {
                continue;
            };
            match version {
                Some(version) if version > 0 => items.push(ConversationSummary {
                    id,
                    version,
                    updated_at_ms: updated.unwrap_or_default(),
                }),
                // Expired: forget it in the listing (the LRU index drops it on its own).
                _ => {
                    let mut forget = redis::cmd("ZREM");
                    forget.arg(&index).arg(raw.as_str());
                    self.run(&forget).await?;
                }
            }
        }
        Ok(ConversationPage {
            items,
            next_cursor: if more { last } else { None },
        })
    }

    async fn health_check(&self) -> Result<Duration, MemoryError> {
        let started = tokio::time::Instant::now();
        let reply = self.run(&redis::cmd("PING")).await?;
        match reply {
            Value::SimpleString(pong) if pong == "PONG" => Ok(started.elapsed()),
            other => Err(unavailable(format!("unexpected PING reply {other:?}"))),
        }
    }

    async fn try_acquire_lease(
        &self,
        key: &ConversationKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, MemoryError> {
        self.lease_script(&self.scripts.acquire, key, owner, Some(ttl))
            .await
    }

    async fn renew_lease(
        &self,
        key: &ConversationKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, MemoryError> {
        self.lease_script(&self.scripts.renew, key, owner, Some(ttl))
            .await
    }

    async fn release_lease(&self, key: &ConversationKey, owner: &str) -> Result<bool, MemoryError> {
        self.lease_script(&self.scripts.release, key, owner, None)
            .await
    }

    async fn conversation_count(&self) -> Result<u64, MemoryError> {
        let mut count = redis::cmd("ZCOUNT");
        count
            .arg(self.layout.lru_index())
            .arg(now_ms().saturating_sub(self.ttl_ms()))
            .arg("+inf");
        parse(self.run(&count).await?)
    }

    async fn close(&self) -> Result<(), MemoryError> {
        self.permits.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::memory::RedisTopology;

    #[tokio::test]
    async fn a_retried_write_is_applied_once() -> anyhow::Result<()> {
        let server = arshai_testkit::RedisServer::start().await?;
        let store = RedisStore::open(RedisStoreConfig {
            topology: RedisTopology::Standalone { url: server.url() },
            db: 0,
            key_prefix: "t".to_owned(),
            ttl: Duration::from_secs(60),
            max_conversations: 10,
            max_messages: 10,
            max_in_flight: 4,
            pool_wait: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            retry_on_timeout: true,
        })
        .await?;
        let key = ConversationKey::new("t", ConversationId::parse("c")?);
        let hello = [Message::user("hello")];
        assert_eq!(
            store
                .write_once(&key, "w1", Some(0), &hello, Vec::new())
                .await?,
            1
        );
        // The same write again (its reply was lost): same version, no second message, and
        // no conflict although the conversation moved past the expected version.
        assert_eq!(
            store
                .write_once(&key, "w1", Some(0), &hello, Vec::new())
                .await?,
            1
        );
        assert_eq!(
            store
                .write_once(&key, "w2", None, &hello, Vec::new())
                .await?,
            2
        );
        let loaded = store.load(&key).await?.expect("stored");
        assert_eq!(loaded.messages.len(), 2);
        assert_eq!(loaded.version, 2);
        Ok(())
    }

    #[test]
    fn credentials_never_reach_error_messages() {
        assert_eq!(
            scrub("cannot open redis://user:s3cret@host:6379/0: refused"),
            "cannot open redis://***@host:6379/0: refused"
        );
        assert_eq!(scrub("plain error"), "plain error");
        assert_eq!(scrub("redis://host:1 down"), "redis://host:1 down");
    }
}
