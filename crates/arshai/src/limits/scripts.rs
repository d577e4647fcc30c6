//! The Lua scripts of the Redis backends: one script per check, so every replica's check
//! and charge of the same subject is one atomic step on the server. Every key of one check
//! shares the tenant's hash tag, so on Cluster a check is one slot, one node.
//!
//! Time is the server's (`TIME`), never a replica's clock, so replicas with skewed clocks
//! still share one timeline.

use super::redis_link::LuaScript;

/// GCRA check of every cell, all or nothing ([`super::cells`] has the arithmetic). Each
/// cell is a hash `{l: level, t: updated µs}`.
///
/// KEYS: the cells. ARGV: period (µs), then `limit, cost` per cell.
/// Returns `{allowed, refusing cell (1-based, 0: none), wait µs, remaining₁, reset µs₁, …}`.
pub(crate) const RATE_CHECK: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local epsilon = 0.000001
local n = #KEYS
local levels, limits = {}, {}
local refused, wait = 0, 0
for i = 1, n do
  local limit = tonumber(ARGV[2 * i])
  local cost = tonumber(ARGV[2 * i + 1])
  local stored = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = tonumber(stored[1]) or 0
  local at = tonumber(stored[2]) or now
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  level = level - elapsed * limit / period
  if level < 0 then level = 0 end
  local over = level + cost - limit
  if over > epsilon then
    if refused == 0 then refused = i end
    local w = over * period / limit
    if w > wait then wait = w end
  end
  levels[i], limits[i] = level, limit
end
local out = {refused == 0 and 1 or 0, refused, math.ceil(wait)}
for i = 1, n do
  local level, limit = levels[i], limits[i]
  local reset = level * period / limit
  if refused == 0 then
    level = level + tonumber(ARGV[2 * i + 1])
    reset = level * period / limit
    redis.call('HSET', KEYS[i], 'l', string.format('%.17g', level), 't', string.format('%.0f', now))
    redis.call('PEXPIRE', KEYS[i], math.ceil(reset / 1000) + 1000)
  end
  local remaining = math.floor(limit - level + epsilon)
  if remaining < 0 then remaining = 0 end
  if remaining > limit then remaining = limit end
  table.insert(out, remaining)
  table.insert(out, math.ceil(reset))
end
return out
"#;

/// Moves token cells by the difference between the real usage and the estimate, never
/// below empty.
///
/// KEYS: the cells. ARGV: period (µs), then `limit, delta` per cell (delta may be negative).
pub(crate) const RATE_ADJUST: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i])
  local delta = tonumber(ARGV[2 * i + 1])
  local stored = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = tonumber(stored[1]) or 0
  local at = tonumber(stored[2]) or now
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  level = level - elapsed * limit / period
  if level < 0 then level = 0 end
  level = level + delta
  if level < 0 then level = 0 end
  redis.call('HSET', KEYS[i], 'l', string.format('%.17g', level), 't', string.format('%.0f', now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(level * period / limit / 1000) + 1000)
end
return #KEYS
"#;

/// Shared by the budget scripts: releases a cell's expired reservations (at most 64 per
/// call, so a script's run time stays bounded), returns `used, reserved`.
const BUDGET_FUNCTIONS: &str = r#"
local function release_expired(h, z, now)
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 64)
  for _, member in ipairs(expired) do
    local amount = tonumber(string.match(member, ':(%d+)$')) or 0
    redis.call('HINCRBY', h, 'reserved', -amount)
    redis.call('ZREM', z, member)
  end
  local used = tonumber(redis.call('HGET', h, 'used') or '0')
  local reserved = tonumber(redis.call('HGET', h, 'reserved') or '0')
  if reserved < 0 then
    redis.call('HSET', h, 'reserved', 0)
    reserved = 0
  end
  return used, reserved
end
"#;

/// Checks every budget cell and reserves the estimate on all of them, or on none.
///
/// KEYS: `hash₁, reservations₁, …`. ARGV: reservation id, estimate, strict (`1`/`0`),
/// reservation TTL (ms), then `limit, expire-at (ms)` per cell.
/// Returns `{admitted, refusing cell (1-based, 0: none), used₁, reserved₁, …}` (after the
/// reservation when admitted).
const BUDGET_RESERVE_BODY: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, estimate = ARGV[1], tonumber(ARGV[2])
local strict, rttl = ARGV[3] == '1', tonumber(ARGV[4])
local n = #KEYS / 2
local used, reserved = {}, {}
local refused = 0
for i = 1, n do
  used[i], reserved[i] = release_expired(KEYS[2 * i - 1], KEYS[2 * i], now)
  local limit = tonumber(ARGV[3 + 2 * i])
  local taken = used[i] + reserved[i]
  local over
  if strict then over = taken + estimate > limit else over = taken >= limit end
  if over and refused == 0 then refused = i end
end
if refused == 0 then
  for i = 1, n do
    local h, z = KEYS[2 * i - 1], KEYS[2 * i]
    local expire_at = tonumber(ARGV[4 + 2 * i])
    reserved[i] = redis.call('HINCRBY', h, 'reserved', estimate)
    redis.call('ZADD', z, now + rttl, id .. ':' .. estimate)
    redis.call('PEXPIREAT', h, expire_at)
    redis.call('PEXPIREAT', z, expire_at)
  end
end
local out = {refused == 0 and 1 or 0, refused}
for i = 1, n do
  table.insert(out, used[i])
  table.insert(out, reserved[i])
end
return out
"#;

/// Settles a reservation: releases it (if it has not expired) and adds the real usage.
///
/// KEYS: `hash₁, reservations₁, …`. ARGV: reservation id, estimate, actual, then
/// `expire-at (ms)` per cell. Returns the cells' `used`.
const BUDGET_SETTLE_BODY: &str = r#"
local member = ARGV[1] .. ':' .. ARGV[2]
local estimate, actual = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('ZREM', z, member) == 1 then
    redis.call('HINCRBY', h, 'reserved', -estimate)
  end
  table.insert(out, redis.call('HINCRBY', h, 'used', actual))
  redis.call('PEXPIREAT', h, tonumber(ARGV[3 + i]))
end
return out
"#;

/// Reads every budget cell (releasing expired reservations first).
///
/// KEYS: `hash₁, reservations₁, …`. Returns `{used₁, reserved₁, …}`.
const BUDGET_READ_BODY: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS / 2 do
  local used, reserved = release_expired(KEYS[2 * i - 1], KEYS[2 * i], now)
  table.insert(out, used)
  table.insert(out, reserved)
end
return out
"#;

/// Every limits script, digested once.
pub(crate) struct LimitScripts {
    pub(crate) rate_check: LuaScript,
    pub(crate) rate_adjust: LuaScript,
    pub(crate) budget_reserve: LuaScript,
    pub(crate) budget_settle: LuaScript,
    pub(crate) budget_read: LuaScript,
}

impl LimitScripts {
    pub(crate) fn new() -> Self {
        let with_functions = |body: &str| format!("{BUDGET_FUNCTIONS}{body}");
        Self {
            rate_check: LuaScript::new(RATE_CHECK),
            rate_adjust: LuaScript::new(RATE_ADJUST),
            budget_reserve: LuaScript::new(with_functions(BUDGET_RESERVE_BODY)),
            budget_settle: LuaScript::new(BUDGET_SETTLE_BODY),
            budget_read: LuaScript::new(with_functions(BUDGET_READ_BODY)),
        }
    }
}
