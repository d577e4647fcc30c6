//! The Lua scripts that make each conversation write atomic.
//!
//! Each script touches the keys of one hash tag only (the write also touches the `{index}`
//! keys, but only when they are on the same server: standalone and Sentinel), so it runs
//! atomically in Cluster too.
//! Scripts are sent with `EVALSHA` and fall back to `EVAL` on `NOSCRIPT` (a restarted or
//! failed-over server has an empty script cache).

use redis::Script;

/// Lua function shared by the write and the index scripts: records a write in the LRU and listing
/// indexes, drops LRU entries older than the TTL, and pops the least recently written past
/// `max_conversations`. Returns the popped `{member, score, …}`; the caller deletes those
/// conversations (their keys live in other slots in Cluster).
const INDEX_FUNCTION: &str = r#"
local function index_write(lru, tenant_index, member, raw_id, now, ttl, max, tenant_prefix)
  redis.call('ZADD', lru, now, member)
  redis.call('ZADD', tenant_index, 0, raw_id)
  local out = {}
  local function forget(m)
    local at = string.find(m, ':', 1, true)
    if at then
      redis.call('ZREM', tenant_prefix .. string.sub(m, 1, at - 1), string.sub(m, at + 1))
    end
    redis.call('ZREM', lru, m)
  end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', lru, '-inf', '(' .. (now - ttl))) do
    forget(m)
  end
  local excess = redis.call('ZCARD', lru) - max
  if excess > 0 then
    local popped = redis.call('ZRANGE', lru, 0, excess - 1, 'WITHSCORES')
    for i = 1, #popped, 2 do
      forget(popped[i])
      table.insert(out, popped[i])
      table.insert(out, popped[i + 1])
    end
  end
  redis.call('PEXPIRE', lru, ttl)
  redis.call('PEXPIRE', tenant_index, ttl)
  return out
end
"#;

/// Atomic write: retry guard, version check, message append + trim, field updates, version
/// bump, sliding TTL — and, when the index keys are passed too (standalone and Sentinel,
/// where every key is on one server), the index update in the same atomic step.
///
/// KEYS: hash, messages, ops[, lru index, tenant index]. ARGV: expected version (`-1` for
/// none), TTL ms, max messages, now ms, write id, message count `n`, LRU member, raw id, max
/// conversations, tenant-index key prefix, `n` messages, then field/value pairs.
///
/// Returns `{1, version, popped}` on success (`{1, version}` when the write id was already
/// applied: a retry after a lost reply does not write twice), `{0, current version}` on a
/// conflict.
const WRITE_BODY: &str = r#"
local done = redis.call('ZSCORE', KEYS[3], ARGV[5])
if done then return {1, tonumber(done)} end
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local expected = tonumber(ARGV[1])
if expected >= 0 and expected ~= v then return {0, v} end
local ttl = ARGV[2]
local now = ARGV[4]
if v == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'c', now)
end
local first = 11
local n = tonumber(ARGV[6])
if n > 0 then
  for i = first, first + n - 1, 4000 do
    redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 3999, first + n - 1)))
  end
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
end
for i = first + n, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'u', now)
redis.call('ZADD', KEYS[3], v, ARGV[5])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -65)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
local popped = {}
if #KEYS == 5 then
  popped = index_write(KEYS[4], KEYS[5], ARGV[7], ARGV[8], tonumber(now), tonumber(ttl),
    tonumber(ARGV[9]), ARGV[10])
end
return {1, v, popped}
"#;

/// Consistent read of a conversation. KEYS: hash, messages. Returns `{hash fields, messages}`.
pub(crate) const LOAD: &str = r#"
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return {h, {}} end
return {h, redis.call('LRANGE', KEYS[2], 0, -1)}
"#;

/// The index update alone, for Cluster (the `{index}` slot is elsewhere).
///
/// KEYS: lru index, tenant index. ARGV: member (`<tenant>:<raw id>`), raw id, now ms, TTL ms,
/// max conversations, tenant-index key prefix. Returns the popped `{member, score, …}`.
const INDEX_CALL: &str = r#"
return index_write(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5]), ARGV[6])
"#;

/// Deletes an evicted conversation unless it was written after it was evicted.
/// KEYS: hash, messages, ops. ARGV: the eviction's score (last write ms). Returns 1 if deleted.
pub(crate) const EVICT: &str = r#"
local u = tonumber(redis.call('HGET', KEYS[1], 'u') or '0')
if u > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
"#;

/// Takes the lease (`SET NX PX`), or extends it if this owner already holds it, so a retried
/// acquire after a lost reply still succeeds. KEYS: lease. ARGV: owner, TTL ms.
pub(crate) const ACQUIRE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"#;

/// Extends the lease only if `owner` holds it. KEYS: lease. ARGV: owner, TTL ms.
pub(crate) const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// Compare-and-delete: releases the lease only if `owner` holds it. KEYS: lease. ARGV: owner.
pub(crate) const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// A script's source and its SHA1 digest (the `EVALSHA` name).
pub(crate) struct ScriptText {
    /// The Lua source, sent with `EVAL` when the server does not know the digest.
    pub(crate) source: String,
    /// The SHA1 digest of the source, hex.
    pub(crate) sha: String,
}

impl ScriptText {
    fn new(source: impl Into<String>) -> Self {
        let source = source.into();
        let sha = Script::new(&source).get_hash().to_owned();
        Self { source, sha }
    }
}

/// Every script, with its digest computed once.
pub(crate) struct Scripts {
    /// The write (with the index update when all keys are on one server).
    pub(crate) write: ScriptText,
    /// [`LOAD`].
    pub(crate) load: ScriptText,
    /// The index update alone (Cluster).
    pub(crate) index: ScriptText,
    /// [`EVICT`].
    pub(crate) evict: ScriptText,
    /// [`ACQUIRE`].
    pub(crate) acquire: ScriptText,
    /// [`RENEW`].
    pub(crate) renew: ScriptText,
    /// [`RELEASE`].
    pub(crate) release: ScriptText,
}

impl Scripts {
    /// Digests every script.
    pub(crate) fn new() -> Self {
        Self {
            write: ScriptText::new(format!("{INDEX_FUNCTION}{WRITE_BODY}")),
            load: ScriptText::new(LOAD),
            index: ScriptText::new(format!("{INDEX_FUNCTION}{INDEX_CALL}")),
            evict: ScriptText::new(EVICT),
            acquire: ScriptText::new(ACQUIRE),
            renew: ScriptText::new(RENEW),
            release: ScriptText::new(RELEASE),
        }
    }
}
