//! [`RedisStore`]: the [`MemoryStore`] contract on Redis.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, ServerErrorKind, Value};
use tokio::sync::Semaphore;

use super::config::RedisStoreConfig;
use super::connection::Link;
use super::keys::{ConversationKeys, KeyLayout};
use super::scripts::{ScriptText, Scripts};
use crate::llm::Message;
use crate::memory::conversation::now_ms;
use crate::memory::{
    BeginTurn, Begun, CommitTurn, Conversation, ConversationId, ConversationKey, ConversationPage,
    ConversationSummary, IdempotencyKey, LeaseWakers, MemoryError, MemoryStore, Receipt,
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

/// Pause between two tries of the wake-up subscription.
const SUBSCRIBE_BACKOFF: Duration = Duration::from_millis(500);
/// Index buckets on Cluster when none are configured.
const DEFAULT_CLUSTER_BUCKETS: u32 = 16;
/// Most evictions a store runs in the background at once on Cluster (more are dropped and
/// left to the TTL).
const MAX_BACKGROUND_EVICTIONS: usize = 64;

/// Conversation memory in Redis, shared by every instance.
///
/// Each conversation write is one Lua script on the conversation's hash tag: retry guard,
/// fencing, version check, append, trim, TTL refresh and version bump happen atomically, so
/// two instances appending to one conversation never lose a message. Every write carries a
/// random write id that the script remembers, so a write retried after a lost reply is
/// applied once. A turn is two scripts: begin (lease + load) and commit (the write +
/// release); see [`crate::memory::Turn`].
///
/// At most `max_in_flight` commands are in flight at once (a semaphore with a bounded wait);
/// every command is bounded by the response timeout. One extra connection per store
/// subscribes to lease-release notices, so turns waiting for a busy conversation on any
/// instance are woken when it is released.
///
/// [`RedisStore::builder`] starts from the defaults of the `[memory]` settings:
///
/// ```no_run
/// use std::time::Duration;
///
/// use arshai::memory::{MemoryStore, RedisStore};
///
/// # async fn run() -> Result<(), arshai::MemoryError> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .key_prefix("myapp")
///     .ttl(Duration::from_secs(600))
///     .max_conversations(100)
///     .open()
///     .await?;
/// let page = store.list("acme", None, 10).await?;
/// # let _ = page;
/// # Ok(())
/// # }
/// ```
pub struct RedisStore {
    core: Arc<Core>,
    subscriber: tokio::task::JoinHandle<()>,
}

struct Core {
    link: Link,
    layout: KeyLayout,
    scripts: Scripts,
    permits: Semaphore,
    evictions: Arc<Semaphore>,
    wakers: LeaseWakers,
    config: RedisStoreConfig,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

impl RedisStore {
    /// Opens a store. Standalone and Sentinel connect on first use (a store can be opened
    /// while Redis is still starting); Cluster reads its slot map now.
    pub async fn open(config: RedisStoreConfig) -> Result<Self, MemoryError> {
        let link = Link::open(&config)
            .await
            .map_err(|error| unavailable(format!("cannot open: {error}")))?;
        let buckets = match (link.is_cluster(), config.index_buckets) {
            (false, _) => 1,
            (true, 0) => DEFAULT_CLUSTER_BUCKETS,
            (true, n) => n,
        };
        let layout = KeyLayout::new(&config.key_prefix, buckets).map_err(unavailable)?;
        let core = Arc::new(Core {
            link,
            layout,
            scripts: Scripts::new(),
            permits: Semaphore::new(config.max_in_flight.max(1)),
            evictions: Arc::new(Semaphore::new(MAX_BACKGROUND_EVICTIONS)),
            wakers: LeaseWakers::new(),
            config,
        });
        let subscriber = tokio::spawn(subscribe(Arc::downgrade(&core)));
        Ok(Self { core, subscriber })
    }

    /// The configuration this store runs with.
    pub fn config(&self) -> &RedisStoreConfig {
        &self.core.config
    }

    #[cfg(test)]
    async fn write_once(
        &self,
        key: &ConversationKey,
        write_id: &str,
        expected_version: Option<u64>,
        messages: &[Message],
    ) -> Result<u64, MemoryError> {
        self.core
            .write(key, &Write::plain(write_id, expected_version, messages))
            .await
    }
}

/// Listens for lease-release notices and wakes this process's waiting turns, reconnecting
/// with a pause after any failure, until the store is dropped.
async fn subscribe(core: Weak<Core>) {
    loop {
        let Some(strong) = core.upgrade() else { return };
        let channel = strong.layout.wake_channel();
        let connect = strong.config.connect_timeout;
        let pubsub = strong.link.pubsub(connect).await;
        drop(strong);
        let mut pubsub = match pubsub {
            Ok(pubsub) => pubsub,
            Err(error) => {
                tracing::debug!(%error, "lease wake-up subscription failed; waiters poll until it is back");
                tokio::time::sleep(SUBSCRIBE_BACKOFF).await;
                continue;
            }
        };
        if let Err(error) = pubsub.subscribe(&channel).await {
            tracing::debug!(%error, "lease wake-up subscription refused");
            tokio::time::sleep(SUBSCRIBE_BACKOFF).await;
            continue;
        }
        let mut notices = pubsub.into_on_message();
        while let Some(notice) = notices.next().await {
            let Some(core) = core.upgrade() else { return };
            if let Ok(member) = notice.get_payload::<String>()
                && let Some(key) = core.layout.key_of_member(&member)
            {
                core.wakers.wake(&key);
            }
        }
        tokio::time::sleep(SUBSCRIBE_BACKOFF).await;
    }
}

/// One conversation write, as the write script takes it.
struct Write<'a> {
    owner: &'a str,
    expected_version: Option<u64>,
    write_id: &'a str,
    messages: &'a [Message],
    fields: Vec<(String, String)>,
    receipt: Option<(&'a IdempotencyKey, &'a str)>,
}

impl<'a> Write<'a> {
    fn plain(write_id: &'a str, expected_version: Option<u64>, messages: &'a [Message]) -> Self {
        Self {
            owner: "",
            expected_version,
            write_id,
            messages,
            fields: Vec::new(),
            receipt: None,
        }
    }
}

impl Core {
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
    /// on. Every command this store sends is idempotent (writes carry a write id; a begin
    /// retried by its owner takes the lease it already holds).
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
        args: &[&[u8]],
    ) -> Result<Value, MemoryError> {
        let build = |name: &str, body: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(body).arg(keys.len()).arg(keys);
            for arg in args {
                cmd.arg(*arg);
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

    /// The per-bucket caps: tenant, global (`0`: none).
    fn caps(&self) -> (u64, u64) {
        let buckets = u64::from(self.layout.buckets());
        let tenant = self.config.max_conversations.max(1).div_ceil(buckets);
        let global = self
            .config
            .max_conversations_total
            .map_or(0, |cap| cap.max(1).div_ceil(buckets));
        (tenant, global)
    }

    /// Every key of one server holds the indexes too (standalone and Sentinel).
    fn one_server(&self) -> bool {
        !self.link.is_cluster()
    }

    /// One atomic conversation write; on Cluster its index updates are sent at the same
    /// time (no extra sequential round trip) and evictions run in the background.
    async fn write(
        self: &Arc<Self>,
        key: &ConversationKey,
        write: &Write<'_>,
    ) -> Result<u64, MemoryError> {
        let keys = self.layout.conversation(key);
        let now = now_ms().to_string();
        let ttl = self.ttl_ms().to_string();
        let (tenant_cap, global_cap) = self.caps();
        let (tenant_cap, global_cap) = (tenant_cap.to_string(), global_cap.to_string());
        let expected = write
            .expected_version
            .map_or_else(|| "-1".to_owned(), |v| v.to_string());
        let max_messages = self.config.max_messages.max(1).to_string();
        let count = write.messages.len().to_string();
        let global_prefix = self.layout.global_tag_prefix();
        let channel = self.layout.wake_channel();
        let (idempotency_key, receipt) = match write.receipt {
            Some((key, body)) => (key.key.as_str(), format!("{}\n{body}", key.fingerprint)),
            None => ("", String::new()),
        };
        let encoded: Vec<Vec<u8>> = write
            .messages
            .iter()
            .map(|message| serde_json::to_vec(message).map_err(corrupt))
            .collect::<Result<_, _>>()?;
        let mut args: Vec<&[u8]> = vec![
            write.owner.as_bytes(),
            expected.as_bytes(),
            ttl.as_bytes(),
            max_messages.as_bytes(),
            now.as_bytes(),
            write.write_id.as_bytes(),
            count.as_bytes(),
            idempotency_key.as_bytes(),
            receipt.as_bytes(),
            keys.tenant_member.as_bytes(),
            key.id.as_str().as_bytes(),
            keys.global_member.as_bytes(),
            tenant_cap.as_bytes(),
            global_cap.as_bytes(),
            keys.tenant_tag_prefix.as_bytes(),
            global_prefix.as_bytes(),
            channel.as_bytes(),
        ];
        args.extend(encoded.iter().map(Vec::as_slice));
        for (field, value) in &write.fields {
            args.push(field.as_bytes());
            args.push(value.as_bytes());
        }
        let mut script_keys: Vec<&str> = keys.own().to_vec();
        let reply = if self.one_server() {
            script_keys.extend([keys.tenant_lru.as_str(), &keys.tenant_ids, &keys.global_lru]);
            self.script(&self.scripts.write, &script_keys, &args)
                .await?
        } else {
            let (reply, indexed) = futures::join!(
                self.script(&self.scripts.write, &script_keys, &args),
                self.index(&keys, &now, &ttl, &tenant_cap, &global_cap),
            );
            if let Err(error) = indexed {
                tracing::warn!(%error, "conversation index update failed; the TTL repairs it");
            }
            reply?
        };
        let reply: Vec<i64> = parse(reply)?;
        match reply.as_slice() {
            [1, version, ..] => {
                if write.owner.is_empty() {
                    // Unfenced writes hold no lease; turns wake their waiters on commit.
                } else {
                    self.wakers.wake(key);
                }
                Ok(*version as u64)
            }
            [0, actual, ..] => Err(MemoryError::Conflict {
                expected: write.expected_version.unwrap_or_default(),
                actual: *actual as u64,
            }),
            [-1, ..] => Err(MemoryError::LeaseLost),
            other => Err(corrupt(format!("unexpected write reply {other:?}"))),
        }
    }

    /// Cluster: updates the tenant's and the global index buckets (two slots, two commands
    /// sent at once) and deletes what they evicted in the background.
    async fn index(
        self: &Arc<Self>,
        keys: &ConversationKeys,
        now: &str,
        ttl: &str,
        tenant_cap: &str,
        global_cap: &str,
    ) -> Result<(), MemoryError> {
        let tenant_keys = [keys.tenant_lru.as_str(), &keys.tenant_ids];
        let tenant_args: [&[u8]; 5] = [
            keys.tenant_member.as_bytes(),
            keys.raw_id.as_bytes(),
            now.as_bytes(),
            ttl.as_bytes(),
            tenant_cap.as_bytes(),
        ];
        let global_keys = [keys.global_lru.as_str()];
        let global_args: [&[u8]; 5] = [
            keys.global_member.as_bytes(),
            b"",
            now.as_bytes(),
            ttl.as_bytes(),
            global_cap.as_bytes(),
        ];
        let tenant = self.script(&self.scripts.index, &tenant_keys, &tenant_args);
        let global = self.script(&self.scripts.index, &global_keys, &global_args);
        let (tenant, global) = futures::join!(tenant, global);
        let mut doomed: Vec<(String, String)> = Vec::new();
        let tenant_of = &keys.global_member[..=keys.global_member.find(':').unwrap_or(0)];
        for (member, score) in parse::<Vec<(String, String)>>(tenant?)? {
            doomed.push((format!("{tenant_of}{member}"), score));
        }
        doomed.extend(parse::<Vec<(String, String)>>(global?)?);
        if !doomed.is_empty() {
            self.evict_later(doomed);
        }
        Ok(())
    }

    /// Deletes evicted conversations (unless written since) off the turn's path, within a
    /// bound on evictions in flight; past it they are left to their TTL.
    fn evict_later(self: &Arc<Self>, doomed: Vec<(String, String)>) {
        let Ok(permit) = Arc::clone(&self.evictions).try_acquire_owned() else {
            tracing::debug!(
                count = doomed.len(),
                "too many evictions in flight; left to the TTL"
            );
            return;
        };
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let _permit = permit;
            for (member, score) in doomed {
                let tag = core.layout.tag_of_member(&member);
                let names = [":h", ":m", ":o", ":i", ":j"].map(|suffix| format!("{tag}{suffix}"));
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                if let Err(error) = core
                    .script(&core.scripts.evict, &names, &[score.as_bytes()])
                    .await
                {
                    tracing::warn!(%error, "could not delete an evicted conversation; its TTL will");
                }
                if let Some(key) = core.layout.key_of_member(&member) {
                    let keys = core.layout.conversation(&key);
                    let mut forget = redis::cmd("ZREM");
                    forget.arg(&keys.global_lru).arg(&keys.global_member);
                    let _ = core.run(&forget).await;
                }
            }
        });
    }

    /// Cluster: marks a read as a use in the conversation's index buckets.
    async fn touch(&self, keys: &ConversationKeys) -> Result<(), MemoryError> {
        let now = now_ms();
        let mut tenant = redis::cmd("ZADD");
        tenant
            .arg(&keys.tenant_lru)
            .arg("XX")
            .arg(now)
            .arg(&keys.tenant_member);
        let mut global = redis::cmd("ZADD");
        global
            .arg(&keys.global_lru)
            .arg("XX")
            .arg(now)
            .arg(&keys.global_member);
        let (a, b) = futures::join!(self.run(&tenant), self.run(&global));
        a?;
        b?;
        Ok(())
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
        let core = &self.core;
        let keys = core.layout.conversation(key);
        let now = now_ms().to_string();
        let args: [&[u8]; 3] = [
            now.as_bytes(),
            keys.tenant_member.as_bytes(),
            keys.global_member.as_bytes(),
        ];
        let reply = if core.one_server() {
            core.script(
                &core.scripts.load,
                &[
                    &keys.hash,
                    &keys.messages,
                    &keys.tenant_lru,
                    &keys.global_lru,
                ],
                &args,
            )
            .await?
        } else {
            let load_keys = [keys.hash.as_str(), &keys.messages];
            let (reply, touched) = futures::join!(
                core.script(&core.scripts.load, &load_keys, &args),
                core.touch(&keys)
            );
            if let Err(error) = touched {
                tracing::debug!(%error, "could not count a read as a use");
            }
            reply?
        };
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
        let write_id = uuid::Uuid::new_v4().simple().to_string();
        self.core
            .write(key, &Write::plain(&write_id, expected_version, messages))
            .await
    }

    async fn set_working_memory(
        &self,
        key: &ConversationKey,
        text: &str,
    ) -> Result<u64, MemoryError> {
        let write_id = uuid::Uuid::new_v4().simple().to_string();
        let mut write = Write::plain(&write_id, None, &[]);
        write.fields = vec![(WORKING_MEMORY.to_owned(), text.to_owned())];
        self.core.write(key, &write).await
    }

    async fn merge_metadata(
        &self,
        key: &ConversationKey,
        metadata: &BTreeMap<String, String>,
    ) -> Result<u64, MemoryError> {
        let write_id = uuid::Uuid::new_v4().simple().to_string();
        let mut write = Write::plain(&write_id, None, &[]);
        write.fields = metadata
            .iter()
            .map(|(name, value)| (format!("{METADATA}{name}"), value.clone()))
            .collect();
        self.core.write(key, &write).await
    }

    async fn delete(&self, key: &ConversationKey) -> Result<bool, MemoryError> {
        let core = &self.core;
        let keys = core.layout.conversation(key);
        let mut del = redis::cmd("DEL");
        del.arg(&keys.hash)
            .arg(&keys.messages)
            .arg(&keys.ops)
            .arg(&keys.receipts)
            .arg(&keys.receipt_order);
        let removed: u64 = parse(core.run(&del).await?)?;
        let mut unindex = redis::cmd("ZREM");
        unindex.arg(&keys.tenant_lru).arg(&keys.tenant_member);
        let mut unlist = redis::cmd("ZREM");
        unlist.arg(&keys.tenant_ids).arg(&keys.raw_id);
        let mut unglobal = redis::cmd("ZREM");
        unglobal.arg(&keys.global_lru).arg(&keys.global_member);
        let (a, b, c) = futures::join!(core.run(&unindex), core.run(&unlist), core.run(&unglobal));
        a?;
        b?;
        c?;
        Ok(removed > 0)
    }

    async fn list(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ConversationPage, MemoryError> {
        let core = &self.core;
        let limit = limit.clamp(1, MAX_PAGE);
        let start = cursor.map_or_else(|| b"-".to_vec(), |c| [b"(", c.as_bytes()].concat());
        // Each bucket's first `limit + 1` ids after the cursor; the page is the smallest of
        // their union (one bucket on standalone and Sentinel).
        let ranges = core.layout.tenant_ids(tenant).into_iter().map(|index| {
            let mut range = redis::cmd("ZRANGE");
            range
                .arg(&index)
                .arg(start.as_slice())
                .arg("+")
                .arg("BYLEX")
                .arg("LIMIT")
                .arg(0)
                .arg(limit + 1);
            async move {
                let ids: Vec<String> = parse(core.run(&range).await?)?;
                Ok::<_, MemoryError>(ids.into_iter().map(move |id| (id, index.clone())))
            }
        });
        let mut ids: Vec<(String, String)> = Vec::new();
        for found in futures::future::join_all(ranges).await {
            ids.extend(found?);
        }
        ids.sort();
        let more = ids.len() > limit;
        ids.truncate(limit);
        let last = ids.last().map(|(id, _)| id.clone());
        // One HMGET per candidate, sent together (they pipeline on the multiplexed link; in
        // Cluster each goes to its slot's node). The in-flight bound still applies.
        let lookups = ids.iter().map(|(raw, index)| async move {
            let Ok(id) = ConversationId::parse(raw.clone()) else {
                return Ok(None);
            };
            let keys = core
                .layout
                .conversation(&ConversationKey::new(tenant, id.clone()));
            let mut fields = redis::cmd("HMGET");
            fields.arg(&keys.hash).arg("v").arg("u");
            let (version, updated): (Option<u64>, Option<u64>) = parse(core.run(&fields).await?)?;
            Ok::<_, MemoryError>(Some((raw, index, id, version, updated)))
        });
        let mut items = Vec::with_capacity(limit);
        for found in futures::future::join_all(lookups).await {
            let Some((raw, index, id, version, updated)) = found? else {
                continue;
            };
            match version {
                Some(version) if version > 0 => items.push(ConversationSummary {
                    id,
                    version,
                    updated_at_ms: updated.unwrap_or_default(),
                }),
                // Expired or evicted: forget it in the listing.
                _ => {
                    let mut forget = redis::cmd("ZREM");
                    forget.arg(index).arg(raw.as_str());
                    core.run(&forget).await?;
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
        let reply = self.core.run(&redis::cmd("PING")).await?;
        match reply {
            Value::SimpleString(pong) if pong == "PONG" => Ok(started.elapsed()),
            other => Err(unavailable(format!("unexpected PING reply {other:?}"))),
        }
    }

    async fn begin_turn(
        &self,
        key: &ConversationKey,
        request: &BeginTurn<'_>,
    ) -> Result<Begun, MemoryError> {
        let core = &self.core;
        let keys = core.layout.conversation(key);
        let ttl = (request.ttl.as_millis().max(1) as u64).to_string();
        let wait = (request.wait.as_millis().max(1) as u64).to_string();
        let idempotency = request.idempotency.map_or("", |k| k.key.as_str());
        let history = request.history.unwrap_or(0).to_string();
        let script_keys = [
            keys.hash.as_str(),
            &keys.messages,
            &keys.lease,
            &keys.waiters,
            &keys.receipts,
        ];
        let reply = core
            .script(
                &core.scripts.begin,
                &script_keys,
                &[
                    request.owner.as_bytes(),
                    ttl.as_bytes(),
                    idempotency.as_bytes(),
                    wait.as_bytes(),
                    history.as_bytes(),
                ],
            )
            .await?;
        let mut parts: Vec<Value> = parse(reply)?;
        if parts.is_empty() {
            return Err(corrupt("empty begin reply"));
        }
        let tag: i64 = parse(parts.remove(0))?;
        match (tag, parts.len()) {
            (1, 2) => {
                let messages: Vec<Vec<u8>> = parse(parts.pop().unwrap_or(Value::Nil))?;
                let fields: Vec<(String, String)> = parse(parts.pop().unwrap_or(Value::Nil))?;
                if fields.is_empty() {
                    return Ok(Begun::Acquired(Conversation::default()));
                }
                Ok(Begun::Acquired(decode(fields, messages)?))
            }
            (0, 1) => {
                let pttl: i64 = parse(parts.remove(0))?;
                Ok(Begun::Busy {
                    expires_in: Duration::from_millis(pttl.max(0) as u64),
                })
            }
            (2, 1) => {
                let stored: String = parse(parts.remove(0))?;
                let (fingerprint, body) = stored
                    .split_once('\n')
                    .ok_or_else(|| corrupt("a receipt without its fingerprint"))?;
                Ok(Begun::Recorded(Receipt {
                    fingerprint: fingerprint.to_owned(),
                    body: body.to_owned(),
                }))
            }
            _ => Err(corrupt(format!("unexpected begin reply tag {tag}"))),
        }
    }

    async fn commit_turn(
        &self,
        key: &ConversationKey,
        commit: &CommitTurn<'_>,
    ) -> Result<u64, MemoryError> {
        self.core
            .write(
                key,
                &Write {
                    owner: commit.owner,
                    expected_version: commit.expected_version,
                    write_id: commit.write_id,
                    messages: commit.messages,
                    fields: commit
                        .working_memory
                        .map(|text| vec![(WORKING_MEMORY.to_owned(), text.to_owned())])
                        .unwrap_or_default(),
                    receipt: commit.receipt,
                },
            )
            .await
    }

    async fn renew_lease(
        &self,
        key: &ConversationKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, MemoryError> {
        let core = &self.core;
        let lease = core.layout.conversation(key).lease;
        let ttl = (ttl.as_millis().max(1) as u64).to_string();
        let reply = core
            .script(
                &core.scripts.renew,
                &[&lease],
                &[owner.as_bytes(), ttl.as_bytes()],
            )
            .await?;
        Ok(parse::<i64>(reply)? == 1)
    }

    async fn release_lease(&self, key: &ConversationKey, owner: &str) -> Result<bool, MemoryError> {
        let core = &self.core;
        let keys = core.layout.conversation(key);
        let channel = core.layout.wake_channel();
        let reply = core
            .script(
                &core.scripts.release,
                &[&keys.lease, &keys.waiters],
                &[
                    owner.as_bytes(),
                    channel.as_bytes(),
                    keys.global_member.as_bytes(),
                ],
            )
            .await?;
        let released = parse::<i64>(reply)? == 1;
        if released {
            core.wakers.wake(key);
        }
        Ok(released)
    }

    fn lease_wakers(&self) -> &LeaseWakers {
        &self.core.wakers
    }

    async fn conversation_count(&self) -> Result<u64, MemoryError> {
        let core = &self.core;
        let since = now_ms().saturating_sub(core.ttl_ms());
        let counts = (0..core.layout.buckets()).map(|bucket| {
            let mut count = redis::cmd("ZCOUNT");
            count
                .arg(core.layout.global_lru(bucket))
                .arg(since)
                .arg("+inf");
            async move { parse::<u64>(core.run(&count).await?) }
        });
        let mut total = 0;
        for count in futures::future::join_all(counts).await {
            total += count?;
        }
        Ok(total)
    }

    async fn close(&self) -> Result<(), MemoryError> {
        self.subscriber.abort();
        self.core.permits.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_retried_write_is_applied_once() -> anyhow::Result<()> {
        let server = arshai_testkit::RedisServer::start().await?;
        let store = RedisStore::open(RedisStoreConfig {
            max_conversations: 10,
            max_messages: 10,
            response_timeout: Duration::from_secs(1),
            ..RedisStoreConfig::standalone(server.url())
        })
        .await?;
        let key = ConversationKey::new("t", ConversationId::parse("c")?);
        let hello = [Message::user("hello")];
        assert_eq!(store.write_once(&key, "w1", Some(0), &hello).await?, 1);
        // The same write again (its reply was lost): same version, no second message, and
        // no conflict although the conversation moved past the expected version.
        assert_eq!(store.write_once(&key, "w1", Some(0), &hello).await?, 1);
        assert_eq!(store.write_once(&key, "w2", None, &hello).await?, 2);
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
