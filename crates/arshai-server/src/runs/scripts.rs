//! The Lua scripts that move a run from one state to the next atomically: the record, its
//! tenant's queue entry, counter and indexes, and its event stream change together or not
//! at all, so a crash between two commands never leaves a run half-moved.

use redis::Script;

/// A Lua script and its SHA1 digest (sent by digest, by source when Redis lost it).
#[derive(Debug)]
pub struct LuaScript {
    /// The source.
    pub source: String,
    /// Its SHA1, hex.
    pub sha: String,
}

impl LuaScript {
    fn new(body: &str) -> Self {
        let source = format!("{EVENT}{body}");
        Self {
            sha: Script::new(&source).get_hash().to_owned(),
            source,
        }
    }
}

/// Appends one event (used by every script that changes the status).
const EVENT: &str = r#"
local function event(key, maxlen, retention, kind, data)
  redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'data', data)
  redis.call('EXPIRE', key, retention)
end
"#;

/// Submits a run.
/// KEYS: record, queue, tenants, queued counter, idempotency key, index all, index queued,
/// events. ARGV: run id, tenant, max queued, queue maxlen, group, now ms, retention s,
/// has key (1/0), fingerprint, events maxlen, then field/value pairs.
/// Returns `{"existing", "<id> <fingerprint>"}`, `{"full", waiting}` or `{"queued", entry}`.
const SUBMIT: &str = r#"
if ARGV[8] == '1' then
  local existing = redis.call('GET', KEYS[5])
  if existing then return {'existing', existing} end
end
local waiting = tonumber(redis.call('GET', KEYS[4]) or '0')
if waiting >= tonumber(ARGV[3]) then return {'full', tostring(waiting)} end
redis.pcall('XGROUP', 'CREATE', KEYS[2], ARGV[5], '0', 'MKSTREAM')
local fields = {}
for i = 11, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'run', ARGV[1])
redis.call('HSET', KEYS[1], 'entry', entry, 'status', 'queued', 'attempts', '0',
  'created_ms', ARGV[6], 'cancel', '0')
redis.call('INCR', KEYS[4])
redis.call('SADD', KEYS[3], ARGV[2])
local horizon = tonumber(ARGV[6]) - tonumber(ARGV[7]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', horizon)
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[6], ARGV[1])
if ARGV[8] == '1' then
  redis.call('SET', KEYS[5], ARGV[1] .. ' ' .. ARGV[9], 'EX', ARGV[7])
end
event(KEYS[8], ARGV[10], ARGV[7], 'queued', '{"status":"queued"}')
return {'queued', entry}
"#;

/// A worker takes a run it read from the queue (new, or taken over from a dead worker).
/// KEYS: record, queue, queued counter, index queued, index running, index failed,
/// dead letter, events. ARGV: worker, now ms, max attempts, entry, group, retention s,
/// dead-letter maxlen, run id, events maxlen.
/// Returns `{"run", attempt}` (execute it, fenced by `attempt`), `{"dead", attempts}`,
/// `{"finished", 0}` or `{"gone", 0}` (nothing to do; the entry is acknowledged).
const START: &str = r#"
local status = redis.call('HGET', KEYS[1], 'status')
if (not status) or (status ~= 'queued' and status ~= 'running') then
  redis.call('XACK', KEYS[2], ARGV[5], ARGV[4])
  redis.call('XDEL', KEYS[2], ARGV[4])
  if not status then return {'gone', 0} end
  return {'finished', 0}
end
local created = redis.call('HGET', KEYS[1], 'created_ms')
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if status == 'queued' then
  redis.call('DECR', KEYS[3])
  redis.call('ZREM', KEYS[4], ARGV[8])
  redis.call('ZADD', KEYS[5], created, ARGV[8])
  redis.call('HSET', KEYS[1], 'started_ms', ARGV[2])
end
if attempts > tonumber(ARGV[3]) then
  local err = '{"type":"attempts_exhausted","message":"the run was started ' ..
    (attempts - 1) .. ' times without finishing"}'
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', err, 'finished_ms', ARGV[2],
    'worker', '')
  redis.call('ZREM', KEYS[5], ARGV[8])
  redis.call('ZADD', KEYS[6], created, ARGV[8])
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[7], '*', 'run', ARGV[8],
    'tenant', redis.call('HGET', KEYS[1], 'tenant'), 'attempts', tostring(attempts - 1))
  redis.call('XACK', KEYS[2], ARGV[5], ARGV[4])
  redis.call('XDEL', KEYS[2], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  event(KEYS[8], ARGV[9], ARGV[6], 'failed', '{"status":"failed","error":' .. err .. '}')
  return {'dead', attempts}
end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[1])
return {'run', attempts}
"#;

/// The worker of attempt `fence` records the outcome.
/// KEYS: record, queue, index running, index of the final status, events.
/// ARGV: fence, final status, field (output/error), value, now ms, group, retention s,
/// run id, event data, events maxlen.
/// Returns 1, or 0 when the run is no longer this attempt's (taken over, or finished).
const FINISH: &str = r#"
local status = redis.call('HGET', KEYS[1], 'status')
local attempts = redis.call('HGET', KEYS[1], 'attempts')
if status ~= 'running' or attempts ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], ARGV[3], ARGV[4], 'finished_ms', ARGV[5],
  'worker', '')
local entry = redis.call('HGET', KEYS[1], 'entry')
if entry then
  redis.call('XACK', KEYS[2], ARGV[6], entry)
  redis.call('XDEL', KEYS[2], entry)
end
local created = redis.call('HGET', KEYS[1], 'created_ms')
redis.call('ZREM', KEYS[3], ARGV[8])
local horizon = tonumber(ARGV[5]) - tonumber(ARGV[7]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', horizon)
redis.call('ZADD', KEYS[4], created, ARGV[8])
redis.call('EXPIRE', KEYS[1], ARGV[7])
event(KEYS[5], ARGV[10], ARGV[7], ARGV[2], ARGV[9])
return 1
"#;

/// Cancels a run: a queued run at once, a running one by flagging it for its worker.
/// KEYS: record, queue, queued counter, index queued, index cancelled, events.
/// ARGV: now ms, retention s, run id, events maxlen.
/// Returns `missing`, `cancelled`, `cancelling`, or `finished:<status>` for a run that had
/// already finished.
const CANCEL: &str = r#"
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == 'queued' then
  local err = '{"type":"cancelled","message":"cancelled before it started"}'
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_ms', ARGV[1], 'error', err)
  redis.call('DECR', KEYS[3])
  local created = redis.call('HGET', KEYS[1], 'created_ms')
  redis.call('ZREM', KEYS[4], ARGV[3])
  redis.call('ZADD', KEYS[5], created, ARGV[3])
  local entry = redis.call('HGET', KEYS[1], 'entry')
  if entry then redis.call('XDEL', KEYS[2], entry) end
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  event(KEYS[6], ARGV[4], ARGV[2], 'cancelled',
    '{"status":"cancelled","error":' .. err .. '}')
  return 'cancelled'
end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  return 'cancelling'
end
return 'finished:' .. status
"#;

/// Records one workflow node's checkpoint and renews the run's checkpoints' expiry.
/// KEYS: checkpoints. ARGV: node path, checkpoint JSON, retention s.
const CHECKPOINT: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// Every script of the queue.
#[derive(Debug)]
pub struct RunScripts {
    /// [`SUBMIT`].
    pub submit: LuaScript,
    /// [`START`].
    pub start: LuaScript,
    /// [`FINISH`].
    pub finish: LuaScript,
    /// [`CANCEL`].
    pub cancel: LuaScript,
    /// [`CHECKPOINT`] (shared with each run's checkpoint store).
    pub checkpoint: std::sync::Arc<LuaScript>,
}

impl RunScripts {
    /// Digests every script.
    pub fn new() -> Self {
        Self {
            submit: LuaScript::new(SUBMIT),
            start: LuaScript::new(START),
            finish: LuaScript::new(FINISH),
            cancel: LuaScript::new(CANCEL),
            checkpoint: std::sync::Arc::new(LuaScript::new(CHECKPOINT)),
        }
    }
}

impl Default for RunScripts {
    fn default() -> Self {
        Self::new()
    }
}
