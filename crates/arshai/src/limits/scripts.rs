//! The Lua scripts of the Redis backends: one script per check, so every replica's check
//! and charge of the same subject is one atomic step on the server. Every key of one check
//! shares the tenant's hash tag, so on Cluster a check is one slot, one node.
//!
//! Time is the server's (`TIME`), never a replica's clock, so replicas with skewed clocks
//! still share one timeline.

use super::redis_link::LuaScript;

/// GCRA check of every cell, all or nothing ([`super::cells`] has the arithmetic).
///
/// KEYS: the cells. ARGV: period (µs), then `limit, cost` per cell.
/// Returns `{allowed, refusing cell (1-based, 0: none), wait µs, remaining₁, reset µs₁, …}`.
pub(crate) const RATE_CHECK: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local n = #KEYS
local tats, news, limits = {}, {}, {}
local refused, wait = 0, 0
for i = 1, n do
  local limit = tonumber(ARGV[2 * i])
  local cost = tonumber(ARGV[2 * i + 1])
  local interval = period / limit
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local over = new_tat - now - period
  if over > interval * 0.5 then
    if refused == 0 then refused = i end
    if over > wait then wait = over end
  end
  tats[i], news[i], limits[i] = tat, new_tat, limit
end
local out = {refused == 0 and 1 or 0, refused, math.ceil(wait)}
for i = 1, n do
  local tat = tats[i]
  if refused == 0 then
    tat = news[i]
    local ttl = math.ceil((tat - now) / 1000) + 1000
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', ttl)
  end
  local interval = period / limits[i]
  local ahead = tat - now
  local remaining = math.floor((period - ahead) / interval + 0.000001)
  if remaining < 0 then remaining = 0 end
  if remaining > limits[i] then remaining = limits[i] end
  table.insert(out, remaining)
  table.insert(out, math.ceil(ahead))
end
return out
"#;

/// Moves token cells by the difference between the real usage and the estimate.
///
/// KEYS: the cells. ARGV: period (µs), then `limit, delta` per cell (delta may be negative).
pub(crate) const RATE_ADJUST: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
for i = 1, #KEYS do
  local interval = period / tonumber(ARGV[2 * i])
  local delta = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tat = tat + delta * interval
  if tat < now then tat = now end
  local ttl = math.ceil((tat - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', ttl)
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
