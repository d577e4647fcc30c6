//! The Lua scripts of the turn protocol and of every conversation write.
//!
//! Each script touches the keys of one hash tag only — except on standalone and Sentinel,
//! where every key is on one server and the write and begin scripts also update the index
//! keys (and delete what the indexes evict) in the same atomic step. On Cluster the index
//! scripts run separately, sent together with the write so they add no sequential round
//! trip.
//!
//! Scripts are sent with `EVALSHA` and fall back to `EVAL` on `NOSCRIPT` (a restarted or
//! failed-over server has an empty script cache).

use redis::Script;

/// Lua helpers shared by the scripts that update indexes.
///
/// `index_use` records a use of `member` at `now` in one LRU sorted set and, once the set is
/// past `cap`, drops entries older than the TTL and pops the least recently used past `cap`,
/// never `member` itself. Without a cap (0), entries older than the TTL are dropped on about
/// one write in 128 (by timestamp), which bounds the set without a scan per write. It returns
/// the popped `{member, score, …}`.
const INDEX_FUNCTIONS: &str = r#"
local function index_use(zset, member, now, ttl, cap)
  redis.call('ZADD', zset, now, member)
  local out = {}
  if cap == 0 then
    if now % 128 == 0 then
      redis.call('ZREMRANGEBYSCORE', zset, '-inf', '(' .. (now - ttl))
    end
  elseif redis.call('ZCARD', zset) > cap then
    redis.call('ZREMRANGEBYSCORE', zset, '-inf', '(' .. (now - ttl))
    local excess = redis.call('ZCARD', zset) - cap
    if excess > 0 then
      local popped = redis.call('ZRANGE', zset, 0, excess, 'WITHSCORES')
      for i = 1, #popped, 2 do
        if popped[i] ~= member and #out < 2 * excess then
          redis.call('ZREM', zset, popped[i])
          table.insert(out, popped[i])
          table.insert(out, popped[i + 1])
        end
      end
    end
  end
  redis.call('PEXPIRE', zset, ttl)
  return out
end
local function unescape(s)
  return (string.gsub(s, '%%(%x%x)', function(h) return string.char(tonumber(h, 16)) end))
end
local function drop_conversation(tag)
  redis.call('DEL', tag .. ':h', tag .. ':m', tag .. ':o', tag .. ':i', tag .. ':j')
end
"#;

/// The index update of a write where every key is on one server.
///
/// `index_all(tenant_lru, tenant_ids, global_lru, id_member, raw_id, global_member, now, ttl,
/// tenant_cap, global_cap, tenant_tag_prefix, global_tag_prefix)`: records the use in the
/// tenant's and the global LRU and in the tenant's listing, and deletes the conversations
/// either LRU evicts.
const INDEX_ALL: &str = r#"
local function index_all(tlru, tids, glru, id_member, raw_id, gmember, now, ttl, tcap, gcap,
    tprefix, gprefix)
  redis.call('ZADD', tids, 0, raw_id)
  redis.call('PEXPIRE', tids, ttl)
  local popped = index_use(tlru, id_member, now, ttl, tcap)
  local tenant_of = string.sub(gmember, 1, string.find(gmember, ':', 1, true))
  for i = 1, #popped, 2 do
    redis.call('ZREM', tids, unescape(popped[i]))
    redis.call('ZREM', glru, tenant_of .. popped[i])
    drop_conversation(tprefix .. popped[i] .. '}')
  end
  local gpopped = index_use(glru, gmember, now, ttl, gcap)
  for i = 1, #gpopped, 2 do
    drop_conversation(gprefix .. gpopped[i] .. '}')
  end
  return #popped / 2 + #gpopped / 2
end
"#;

/// Begins a turn: the receipt of an already committed idempotency key; else the lease
/// (`SET PX` unless another owner holds it) and the conversation; else a waiter flag and
/// the holder's remaining lease.
///
/// KEYS: hash, messages, lease, waiters, receipts. ARGV: owner, lease TTL ms, idempotency
/// key (`''`: none), waiter flag TTL ms, messages to load (the most recent; `0`: all).
///
/// Returns `{2, receipt}`, `{0, lease PTTL}` or `{1, hash fields, messages}`. The turn's
/// commit records its use in the indexes, so the begin does not.
const BEGIN: &str = r#"
if ARGV[3] ~= '' then
  local receipt = redis.call('HGET', KEYS[5], ARGV[3])
  if receipt then return {2, receipt} end
end
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[3]) ~= ARGV[1] then
    redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
    return {0, redis.call('PTTL', KEYS[3])}
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return {1, h, {}} end
local first = 0
if tonumber(ARGV[5]) > 0 then first = -tonumber(ARGV[5]) end
return {1, h, redis.call('LRANGE', KEYS[2], first, -1)}
"#;

/// Every conversation write, a turn's commit included: retry guard, fencing, version
/// check, append + trim, field updates, version bump, sliding TTL, receipt, lease release
/// and wake-up — and, when the index keys are passed too (standalone and Sentinel), the
/// index update and evictions in the same atomic step.
///
/// KEYS: hash, messages, ops, lease, waiters, receipts, receipt order[, tenant lru, tenant
/// ids, global lru]. ARGV: 1 owner (`''`: an unfenced write that takes no lease), 2 expected
/// version (`-1`: none), 3 TTL ms, 4 max messages, 5 now ms, 6 write id, 7 message count
/// `n`, 8 idempotency key (`''`: none), 9 receipt, 10 id member, 11 raw id, 12 global member,
/// 13 tenant cap per bucket, 14 global cap per bucket (0: none), 15 tenant tag prefix,
/// 16 global tag prefix, 17 wake channel, then `n` messages, then field/value pairs.
///
/// Returns `{1, version, evicted}` (`{1, version}` when the write id was already applied: a
/// retry after a lost reply does not write twice), `{0, current version}` on a conflict,
/// `{-1, 0}` when the owner no longer holds the lease (nothing written).
///
/// About 15 Redis calls for a turn's commit on one server (8 for the conversation, 7 for
/// its indexes); unfenced writes also keep the last 64 write ids in the ops set.
const WRITE_BODY: &str = r#"
local fenced = ARGV[1] ~= ''
local v
local last = false
if fenced then
  -- A turn's commit: its retry guard is the hash's last two write ids (a retry follows its
  -- first attempt within the response timeout), then the lease check (fencing).
  local h = redis.call('HMGET', KEYS[1], 'v', 'lw', 'pw')
  if h[2] == ARGV[6] or h[3] == ARGV[6] then return {1, tonumber(h[1])} end
  if redis.call('GET', KEYS[4]) ~= ARGV[1] then return {-1, 0} end
  v = tonumber(h[1] or '0')
  last = h[2]
else
  local done = redis.call('ZSCORE', KEYS[3], ARGV[6])
  if done then return {1, tonumber(done)} end
  local h = redis.call('HMGET', KEYS[1], 'v', 'lw')
  v = tonumber(h[1] or '0')
  last = h[2]
end
local expected = tonumber(ARGV[2])
if expected >= 0 and expected ~= v then return {0, v} end
local ttl = ARGV[3]
local now = ARGV[5]
if v == 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[6], KEYS[7])
  redis.call('HSET', KEYS[1], 'c', now)
end
local first = 18
local n = tonumber(ARGV[7])
if n > 0 then
  for i = first, first + n - 1, 4000 do
    redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 3999, first + n - 1)))
  end
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
end
for i = first + n, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
v = v + 1
redis.call('HSET', KEYS[1], 'v', v, 'u', now, 'lw', ARGV[6], 'pw', last or '')
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
if not fenced then
  redis.call('ZADD', KEYS[3], v, ARGV[6])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -65)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[6], ARGV[8], ARGV[9])
  redis.call('ZADD', KEYS[7], v, ARGV[8])
  local old = redis.call('ZRANGE', KEYS[7], 0, -65)
  if #old > 0 then
    redis.call('HDEL', KEYS[6], unpack(old))
    redis.call('ZREM', KEYS[7], unpack(old))
  end
  redis.call('PEXPIRE', KEYS[6], ttl)
  redis.call('PEXPIRE', KEYS[7], ttl)
end
if fenced and redis.call('UNLINK', KEYS[4], KEYS[5]) == 2 then
  redis.call('PUBLISH', ARGV[17], ARGV[12])
end
local evicted = 0
if #KEYS == 10 then
  evicted = index_all(KEYS[8], KEYS[9], KEYS[10], ARGV[10], ARGV[11], ARGV[12],
    tonumber(now), tonumber(ttl), tonumber(ARGV[13]), tonumber(ARGV[14]), ARGV[15], ARGV[16])
end
return {1, v, evicted}
"#;

/// Consistent read of a conversation, counted as a use where the indexes are passed
/// (standalone and Sentinel). KEYS: hash, messages[, tenant lru, global lru]. ARGV: now ms,
/// id member, global member. Returns `{hash fields, messages}`.
const LOAD: &str = r#"
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return {h, {}} end
if #KEYS > 2 then
  redis.call('ZADD', KEYS[3], 'XX', ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[4], 'XX', ARGV[1], ARGV[3])
end
return {h, redis.call('LRANGE', KEYS[2], 0, -1)}
"#;

/// One index update alone, for Cluster (each bucket is its own slot).
///
/// KEYS: lru[, listing]. ARGV: member, raw id (for the listing), now ms, TTL ms, cap per
/// bucket (0: none). Returns the popped `{member, score, …}`, already removed from the
/// listing; the caller deletes those conversations (their keys live in other slots).
const INDEX_CALL: &str = r#"
if #KEYS > 1 then
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
local popped = index_use(KEYS[1], ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5]))
if #KEYS > 1 then
  for i = 1, #popped, 2 do redis.call('ZREM', KEYS[2], unescape(popped[i])) end
end
return popped
"#;

/// Deletes an evicted conversation unless it was written after it was evicted.
/// KEYS: hash, messages, ops, receipts, receipt order. ARGV: the eviction's score (last use
/// ms). Returns 1 if deleted.
const EVICT: &str = r#"
local u = tonumber(redis.call('HGET', KEYS[1], 'u') or '0')
if u > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return 1
"#;

/// Extends the lease only if `owner` holds it. KEYS: lease. ARGV: owner, TTL ms.
const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// Compare-and-delete: releases the lease only if `owner` holds it, and publishes a wake-up
/// if a turn was waiting. KEYS: lease, waiters. ARGV: owner, wake channel, global member.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if redis.call('DEL', KEYS[2]) == 1 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
  return 1
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
    /// [`BEGIN`].
    pub(crate) begin: ScriptText,
    /// Every write ([`WRITE_BODY`], with the index update where all keys share a server).
    pub(crate) write: ScriptText,
    /// [`LOAD`].
    pub(crate) load: ScriptText,
    /// [`INDEX_CALL`] (Cluster).
    pub(crate) index: ScriptText,
    /// [`EVICT`].
    pub(crate) evict: ScriptText,
    /// [`RENEW`].
    pub(crate) renew: ScriptText,
    /// [`RELEASE`].
    pub(crate) release: ScriptText,
}

impl Scripts {
    /// Digests every script.
    pub(crate) fn new() -> Self {
        Self {
            begin: ScriptText::new(BEGIN),
            write: ScriptText::new(format!("{INDEX_FUNCTIONS}{INDEX_ALL}{WRITE_BODY}")),
            load: ScriptText::new(LOAD),
            index: ScriptText::new(format!("{INDEX_FUNCTIONS}{INDEX_CALL}")),
            evict: ScriptText::new(EVICT),
            renew: ScriptText::new(RENEW),
            release: ScriptText::new(RELEASE),
        }
    }
}
