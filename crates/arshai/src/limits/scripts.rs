//! The Lua scripts of the Redis backends: one script per check, so every replica's check
//! and charge of the same subject is one atomic step on the server. Every key of one check
//! shares the tenant's hash tag, so on Cluster a check is one slot, one node.
//!
//! Time is the server's (`TIME`), never a replica's clock, so replicas with skewed clocks
//! still share one timeline.

use super::redis_link::LuaScript;

/// Shared by the rate scripts: the GCRA steps of [`super::cells`] on cells stored as hashes
/// `{l: level, t: updated µs}`.
const RATE_FUNCTIONS: &str = r#"
local epsilon = 0.000001
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function drained(key, limit, now, period)
  local stored = redis.call('HMGET', key, 'l', 't')
  local level = tonumber(stored[1]) or 0
  local at = tonumber(stored[2]) or now
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  level = level - elapsed * limit / period
  if level < 0 then level = 0 end
  return level
end
local function store(key, level, limit, now, period)
  redis.call('HSET', key, 'l', string.format('%.17g', level), 't', string.format('%.0f', now))
  redis.call('PEXPIRE', key, math.ceil(level * period / limit / 1000) + 1000)
end
-- The first refusing cell (0: none), the longest wait (µs), and each cell's drained level.
local function gcra_check(keys, limits, costs, now, period)
  local refused, wait, levels = 0, 0, {}
  for i = 1, #keys do
    local level = drained(keys[i], limits[i], now, period)
    local over = level + costs[i] - limits[i]
    if over > epsilon then
      if refused == 0 then refused = i end
      local w = over * period / limits[i]
      if w > wait then wait = w end
    end
    levels[i] = level
  end
  return refused, wait, levels
end
-- Charges `charges` (nil: nothing) and appends each cell's `remaining, reset µs` to `out`.
local function gcra_charge(keys, limits, charges, levels, now, period, out)
  for i = 1, #keys do
    local level = levels[i]
    if charges then
      level = level + charges[i]
      store(keys[i], level, limits[i], now, period)
    end
    local remaining = math.floor(limits[i] - level + epsilon)
    if remaining < 0 then remaining = 0 end
    if remaining > limits[i] then remaining = limits[i] end
    table.insert(out, remaining)
    table.insert(out, math.ceil(level * period / limits[i]))
  end
end
"#;

/// GCRA check of every cell, all or nothing ([`super::cells`] has the arithmetic).
///
/// KEYS: the cells. ARGV: period (µs), then `limit, cost` per cell.
/// Returns `{allowed, refusing cell (1-based, 0: none), wait µs, remaining₁, reset µs₁, …}`.
const RATE_CHECK_BODY: &str = r#"
local now = now_us()
local period = tonumber(ARGV[1])
local limits, costs = {}, {}
for i = 1, #KEYS do
  limits[i], costs[i] = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
end
local refused, wait, levels = gcra_check(KEYS, limits, costs, now, period)
local out = {refused == 0 and 1 or 0, refused, math.ceil(wait)}
gcra_charge(KEYS, limits, refused == 0 and costs or nil, levels, now, period, out)
return out
"#;

/// Moves token cells by the difference between the real usage and the estimate, never
/// below empty.
///
/// KEYS: the cells. ARGV: period (µs), then `limit, delta` per cell (delta may be negative).
const RATE_ADJUST_BODY: &str = r#"
local now = now_us()
local period = tonumber(ARGV[1])
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i])
  local level = drained(KEYS[i], limit, now, period) + tonumber(ARGV[2 * i + 1])
  if level < 0 then level = 0 end
  store(KEYS[i], level, limit, now, period)
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
-- Releases expired reservations of every cell (pairs of keys from `first`); returns the
-- first refusing cell (0: none) and each cell's `used`, `reserved`.
local function budget_check(keys, first, n, limits, estimate, strict, now)
  local used, reserved, refused = {}, {}, 0
  for i = 1, n do
    used[i], reserved[i] = release_expired(keys[first + 2 * i - 2], keys[first + 2 * i - 1], now)
    local taken = used[i] + reserved[i]
    local over
    if strict then over = taken + estimate > limits[i] else over = taken >= limits[i] end
    if over and refused == 0 then refused = i end
  end
  return refused, used, reserved
end
local function budget_reserve(keys, first, n, expires, id, estimate, rttl, now, reserved)
  for i = 1, n do
    local h, z = keys[first + 2 * i - 2], keys[first + 2 * i - 1]
    reserved[i] = redis.call('HINCRBY', h, 'reserved', estimate)
    redis.call('ZADD', z, now + rttl, id .. ':' .. estimate)
    redis.call('PEXPIREAT', h, expires[i])
    redis.call('PEXPIREAT', z, expires[i])
  end
end
local function budget_report(refused, n, used, reserved, out)
  table.insert(out, refused == 0 and 1 or 0)
  table.insert(out, refused)
  for i = 1, n do
    table.insert(out, used[i])
    table.insert(out, reserved[i])
  end
end
-- Releases a reservation (if it has not expired) and adds the real usage to one cell.
local function budget_settle(h, z, member, estimate, actual)
  if redis.call('ZREM', z, member) == 1 then
    redis.call('HINCRBY', h, 'reserved', -estimate)
  end
  return redis.call('HINCRBY', h, 'used', actual)
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
local limits, expires = {}, {}
for i = 1, n do
  limits[i], expires[i] = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
end
local refused, used, reserved = budget_check(KEYS, 1, n, limits, estimate, strict, now)
if refused == 0 then
  budget_reserve(KEYS, 1, n, expires, id, estimate, rttl, now, reserved)
end
local out = {}
budget_report(refused, n, used, reserved, out)
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
  table.insert(out, budget_settle(h, z, member, estimate, actual))
  redis.call('PEXPIREAT', h, tonumber(ARGV[3 + i]))
end
return out
"#;

/// A whole admission in one step, for a subject whose rate limits and budgets are both in
/// Redis (they share the tenant's hash tag): the rate check, then — only if it admits —
/// the budget check; the budget reservation and the rate charges are written only if both
/// admit. A call the budget refuses still counts as a request: its rate cells are charged
/// their `refused cost` (1 for request cells, 0 for token cells).
///
/// KEYS: the `nr` rate cells, then `hash₁, reservations₁, …` of the budget cells.
/// ARGV: `nr`, period (µs), `limit, cost, refused cost` per rate cell, then reservation id,
/// estimate, strict (`1`/`0`), reservation TTL (ms), then `limit, expire-at (ms)` per
/// budget cell.
/// Returns the rate reply of [`RATE_CHECK_BODY`] followed by the budget reply of
/// [`BUDGET_RESERVE_BODY`] — or, when the rate check refused, by `{-1, 0}` alone (the
/// budgets were not read).
const ADMIT_BODY: &str = r#"
local nr = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local now = now_us()
local rate_keys, limits, costs, refused_costs = {}, {}, {}, {}
for i = 1, nr do
  rate_keys[i] = KEYS[i]
  limits[i] = tonumber(ARGV[3 * i])
  costs[i], refused_costs[i] = tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
end
local refused, wait, levels = gcra_check(rate_keys, limits, costs, now, period)
local out = {refused == 0 and 1 or 0, refused, math.ceil(wait)}
if refused ~= 0 then
  gcra_charge(rate_keys, limits, nil, levels, now, period, out)
  table.insert(out, -1)
  table.insert(out, 0)
  return out
end
local b = 3 + 3 * nr
local id, estimate = ARGV[b], tonumber(ARGV[b + 1])
local strict, rttl = ARGV[b + 2] == '1', tonumber(ARGV[b + 3])
local nb = (#KEYS - nr) / 2
local blimits, expires = {}, {}
for i = 1, nb do
  blimits[i], expires[i] = tonumber(ARGV[b + 2 + 2 * i]), tonumber(ARGV[b + 3 + 2 * i])
end
local now_ms = math.floor(now / 1000)
local brefused, used, reserved = budget_check(KEYS, nr + 1, nb, blimits, estimate, strict, now_ms)
if brefused == 0 then
  budget_reserve(KEYS, nr + 1, nb, expires, id, estimate, rttl, now_ms, reserved)
  gcra_charge(rate_keys, limits, costs, levels, now, period, out)
else
  gcra_charge(rate_keys, limits, refused_costs, levels, now, period, out)
end
budget_report(brefused, nb, used, reserved, out)
return out
"#;

/// Many settles of one tenant in one step (the settlement queue's batch): the rate cells'
/// net moves, then each reservation released and its real usage added to its cells.
///
/// KEYS: the `nr` rate cells, then `hash₁, reservations₁, …` of the `nb` budget cells.
/// ARGV: `nr`, period (µs), `limit, delta` per rate cell, `expire-at (ms)` per budget cell,
/// the number of reservations `m`, then per reservation: id, estimate, actual, the number
/// of its cells `c`, and its `c` budget cell indices (1-based).
const SETTLE_MANY_BODY: &str = r#"
local nr = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
if nr > 0 then
  local now = now_us()
  for i = 1, nr do
    local limit = tonumber(ARGV[1 + 2 * i])
    local level = drained(KEYS[i], limit, now, period) + tonumber(ARGV[2 + 2 * i])
    if level < 0 then level = 0 end
    store(KEYS[i], level, limit, now, period)
  end
end
local nb = (#KEYS - nr) / 2
local e = 3 + 2 * nr
local p = e + nb
local m = tonumber(ARGV[p])
p = p + 1
for _ = 1, m do
  local member = ARGV[p] .. ':' .. ARGV[p + 1]
  local estimate, actual, c = tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2]), tonumber(ARGV[p + 3])
  p = p + 4
  for _ = 1, c do
    local cell = tonumber(ARGV[p])
    p = p + 1
    budget_settle(KEYS[nr + 2 * cell - 1], KEYS[nr + 2 * cell], member, estimate, actual)
  end
end
for i = 1, nb do
  redis.call('PEXPIREAT', KEYS[nr + 2 * i - 1], tonumber(ARGV[e + i - 1]))
end
return m
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
    pub(crate) admit: LuaScript,
    pub(crate) settle_many: LuaScript,
}

impl LimitScripts {
    pub(crate) fn new() -> Self {
        let rate = |body: &str| LuaScript::new(format!("{RATE_FUNCTIONS}{body}"));
        let budget = |body: &str| LuaScript::new(format!("{BUDGET_FUNCTIONS}{body}"));
        let both = |body: &str| LuaScript::new(format!("{RATE_FUNCTIONS}{BUDGET_FUNCTIONS}{body}"));
        Self {
            rate_check: rate(RATE_CHECK_BODY),
            rate_adjust: rate(RATE_ADJUST_BODY),
            budget_reserve: budget(BUDGET_RESERVE_BODY),
            budget_settle: budget(BUDGET_SETTLE_BODY),
            budget_read: budget(BUDGET_READ_BODY),
            admit: both(ADMIT_BODY),
            settle_many: both(SETTLE_MANY_BODY),
        }
    }
}
