//! The cells of one check (a limit of one key or tenant in one dimension) and the GCRA
//! arithmetic both backends share: the in-process backend runs [`admit`] itself, the Redis
//! backend runs the same steps in Lua ([`super::scripts::RATE_CHECK`]).
//!
//! GCRA (generic cell rate algorithm), in its leaky-bucket form: a cell holds a `level`
//! (the cost admitted and not yet drained) and when it was last updated; the level drains
//! continuously at `limit` per minute. A call costing `cost` is admitted if
//! `drained + cost ≤ limit`. So a full cell admits a burst of `limit` at once, then
//! `limit` per minute. Keeping the level (at most `limit`) rather than a theoretical
//! arrival time (microseconds since the epoch) keeps the arithmetic exact in doubles.

use std::time::Duration;

use super::decision::{Quota, Refusal};
use super::settings::RateLimits;
use super::subject::Subject;

/// The period every rate is expressed over, in microseconds.
pub(crate) const PERIOD_US: f64 = 60_000_000.0;

/// Tolerance on `level ≤ limit` for the drained part's rounding (far below one unit).
pub(crate) const EPSILON: f64 = 1e-6;

/// A cell's stored state: the undrained level at `at` (µs).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Level {
    pub(crate) level: f64,
    pub(crate) at: f64,
}

impl Level {
    /// The level drained to `now`.
    fn drained(self, now: f64, limit: u64) -> f64 {
        let elapsed = (now - self.at).max(0.0);
        (self.level - elapsed * limit as f64 / PERIOD_US).max(0.0)
    }
}

/// One limit a check touches.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cell {
    /// The cell's storage key (relative to the subject's tag on Redis).
    pub(crate) name: String,
    /// The limit per minute.
    pub(crate) limit: u64,
    /// What this call costs (1 for requests, the estimate for tokens).
    pub(crate) cost: u64,
    /// What a refusal by this cell is called.
    pub(crate) refusal: Refusal,
}

/// The cells `subject` has limits for, for a call estimated at `tokens`.
pub(crate) fn cells_of(subject: &Subject, tokens: u64) -> Vec<Cell> {
    let mut cells = Vec::with_capacity(4);
    let mut push = |name: String, limit: Option<u64>, cost: u64, refusal: Refusal| {
        if let Some(limit) = limit {
            cells.push(Cell {
                name,
                limit: limit.max(1),
                cost,
                refusal,
            });
        }
    };
    if let Some(key) = &subject.key_id {
        let RateLimits {
            requests_per_minute,
            tokens_per_minute,
        } = subject.key_limits;
        push(
            key_cell(key, "rpm"),
            requests_per_minute,
            1,
            Refusal::KeyRequests,
        );
        push(
            key_cell(key, "tpm"),
            tokens_per_minute,
            tokens,
            Refusal::KeyTokens,
        );
    }
    let RateLimits {
        requests_per_minute,
        tokens_per_minute,
    } = subject.tenant_limits;
    push(
        "rpm".to_owned(),
        requests_per_minute,
        1,
        Refusal::TenantRequests,
    );
    push(
        "tpm".to_owned(),
        tokens_per_minute,
        tokens,
        Refusal::TenantTokens,
    );
    cells
}

/// The name of a key's cell.
pub(crate) fn key_cell(key_id: &str, dimension: &str) -> String {
    format!("k:{}:{dimension}", super::redis_link::escape(key_id))
}

/// The state of one cell after a check: what is left and when it is full again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CellState {
    pub(crate) remaining: u64,
    pub(crate) reset_us: f64,
}

/// The state of a cell at `level` (drained to now).
pub(crate) fn state(level: f64, limit: u64) -> CellState {
    let remaining = (limit as f64 - level + EPSILON).floor().max(0.0) as u64;
    CellState {
        remaining: remaining.min(limit),
        reset_us: level * PERIOD_US / limit as f64,
    }
}

/// Admits a call on every cell or on none at `now`. `levels` are the cells' stored states
/// (updated in place when admitted). Returns the index of the first refusing cell, the
/// wait (µs) until the call would fit, and each cell's state.
pub(crate) fn admit(
    cells: &[Cell],
    levels: &mut [Level],
    now: f64,
) -> (Option<usize>, f64, Vec<CellState>) {
    let mut refused = None;
    let mut wait: f64 = 0.0;
    let mut drained = Vec::with_capacity(cells.len());
    for (index, cell) in cells.iter().enumerate() {
        let level = levels[index].drained(now, cell.limit);
        let over = level + cell.cost as f64 - cell.limit as f64;
        if over > EPSILON {
            refused.get_or_insert(index);
            wait = wait.max(over * PERIOD_US / cell.limit as f64);
        }
        drained.push(level);
    }
    let mut states = Vec::with_capacity(cells.len());
    for (index, cell) in cells.iter().enumerate() {
        let mut level = drained[index];
        if refused.is_none() {
            level += cell.cost as f64;
            levels[index] = Level { level, at: now };
        }
        states.push(state(level, cell.limit));
    }
    (refused, wait, states)
}

/// Moves a cell by `delta` (negative: a refund), never below empty.
pub(crate) fn adjust(stored: Level, now: f64, limit: u64, delta: i64) -> Level {
    Level {
        level: (stored.drained(now, limit) + delta as f64).max(0.0),
        at: now,
    }
}

/// Folds the cells' states into the requests and tokens quotas (the tightest of each).
pub(crate) fn quotas(cells: &[Cell], states: &[CellState]) -> (Option<Quota>, Option<Quota>) {
    let mut requests: Option<Quota> = None;
    let mut tokens: Option<Quota> = None;
    for (cell, state) in cells.iter().zip(states) {
        let slot = match cell.refusal {
            Refusal::KeyRequests | Refusal::TenantRequests => &mut requests,
            Refusal::KeyTokens | Refusal::TenantTokens => &mut tokens,
        };
        let quota = Quota {
            limit: cell.limit,
            remaining: state.remaining,
            reset: Duration::from_micros(state.reset_us.ceil() as u64),
        };
        let tighter = match slot {
            None => true,
            Some(current) => quota.remaining < current.remaining,
        };
        if tighter {
            *slot = Some(quota);
        }
    }
    (requests, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(limit: u64, cost: u64) -> Cell {
        Cell {
            name: "c".to_owned(),
            limit,
            cost,
            refusal: Refusal::KeyRequests,
        }
    }

    #[test]
    fn a_full_cell_admits_exactly_its_limit_at_once() {
        for limit in [1u64, 7, 60, 1000, 999_983] {
            let cells = [cell(limit, 1)];
            let mut levels = [Level::default()];
            let admitted = (0..limit + 5)
                .filter(|_| admit(&cells, &mut levels, 1.7e15).0.is_none())
                .count() as u64;
            assert_eq!(admitted, limit, "limit {limit}");
        }
    }

    #[test]
    fn partial_refills_are_not_rounded_up() {
        // 90 per minute with 40.5 taken: 49.5 are free, so 49 calls fit.
        let cells = [cell(90, 1)];
        let mut levels = [Level {
            level: 40.5,
            at: 1.7e15,
        }];
        let admitted = (0..60)
            .filter(|_| admit(&cells, &mut levels, 1.7e15).0.is_none())
            .count();
        assert_eq!(admitted, 49);
    }

    #[test]
    fn a_cell_drains_at_its_rate_and_refunds_never_go_below_empty() {
        let full = Level {
            level: 60.0,
            at: 0.0,
        };
        assert_eq!(full.drained(1_000_000.0, 60), 59.0);
        assert_eq!(adjust(full, 0.0, 60, -100).level, 0.0);
    }
}
