//! Fleet-wide rate limits and token budgets.
//!
//! - [`RateLimiter`]: requests and tokens per minute per API key and per tenant (GCRA),
//!   in process or in Redis, where each check is one Lua script so the fleet admits no more
//!   than the limit whatever the number of replicas. Tokens are reserved at an estimate
//!   and settled with the real usage.
//! - [`Budgets`]: tokens per UTC day and month per key and per tenant, reserved atomically
//!   before a call and settled after it; readable for `GET /v1/usage`.
//! - [`LimitGate`]: both together, as a server uses them: one admission step (one script
//!   when both are in Redis) and settles queued off the response path, applied in
//!   batches.
//! - [`FleetRedis`]: the Redis link both (and the response cache) share, on the memory
//!   store's standalone / Sentinel / Cluster connection.
//!
//! `docs/limits.md` documents each setting and how the server wires the checks in.

mod budget;
mod budget_memory;
mod budget_redis;
mod budget_terms;
mod cells;
mod decision;
mod error;
mod gate;
mod period;
mod rate_limiter;
mod rate_memory;
mod rate_redis;
mod redis_gate;
pub(crate) mod redis_link;
mod scripts;
mod settings;
mod settlement;
mod stats;
mod subject;

pub use budget::{BudgetRefusal, BudgetReservation, BudgetScope, BudgetStatus, Budgets};
pub use decision::{Quota, RateDecision, Refusal, TokenReservation, go_duration};
pub use error::LimitError;
pub use gate::{Admission, GateRefusal, LimitGate};
pub use period::{BudgetPeriod, PeriodWindow};
pub use rate_limiter::RateLimiter;
pub use redis_link::FleetRedis;
pub use settings::{BudgetLimits, FailMode, LimitsBackend, LimitsSettings, RateLimits};
pub use stats::{LimitCounters, LimitStats};
pub use subject::Subject;
