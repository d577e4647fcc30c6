//! The cells of one check (a limit of one key or tenant in one dimension) and the GCRA
//! arithmetic both backends share: the in-process backend runs [`admit`] itself, the Redis
//! backend runs the same steps in Lua ([`super::scripts::RATE_CHECK`]).
//!
//! GCRA (generic cell rate algorithm) keeps one number per cell, the theoretical arrival
//! time `tat`: a call costing `cost` moves it to `max(tat, now) + cost × interval`, where
//! `interval = 60 s / limit`, and is admitted if that is at most one period ahead of now.
//! So a full cell admits a burst of `limit` at once, then refills continuously at
//! `limit` per minute.

use std::time::Duration;

use super::decision::{Quota, Refusal};
use super::settings::RateLimits;
use super::subject::Subject;

/// The period every rate is expressed over, in microseconds.
pub(crate) const PERIOD_US: f64 = 60_000_000.0;

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

/// Whether a call costing `cost` fits a cell whose arrival time is `tat` at `now`, and the
/// new arrival time if it does (all in microseconds).
pub(crate) fn fits(tat: f64, now: f64, limit: u64, cost: u64) -> (bool, f64, f64) {
    let interval = PERIOD_US / limit as f64;
    let new_tat = tat.max(now) + cost as f64 * interval;
    // Half an interval of slack absorbs the rounding of stored times to whole microseconds.
    let over = new_tat - now - PERIOD_US;
    (over <= interval * 0.5, new_tat, over.max(0.0))
}

/// The state of a cell whose arrival time is `tat` at `now`.
pub(crate) fn state(tat: f64, now: f64, limit: u64) -> CellState {
    let interval = PERIOD_US / limit as f64;
    let ahead = (tat - now).max(0.0);
    let remaining = ((PERIOD_US - ahead) / interval + 1e-6).floor().max(0.0) as u64;
    CellState {
        remaining: remaining.min(limit),
        reset_us: ahead,
    }
}

/// Admits a call on every cell or on none. `tats` are the cells' arrival times (updated
/// in place when admitted). Returns the index of the first refusing cell, the wait until
/// the call would fit, and each cell's state.
pub(crate) fn admit(
    cells: &[Cell],
    tats: &mut [f64],
    now: f64,
) -> (Option<usize>, f64, Vec<CellState>) {
    let mut refused = None;
    let mut wait: f64 = 0.0;
    let mut next = Vec::with_capacity(cells.len());
    for (index, cell) in cells.iter().enumerate() {
        let (ok, new_tat, over) = fits(tats[index], now, cell.limit, cell.cost);
        if !ok {
            refused.get_or_insert(index);
            wait = wait.max(over);
        }
        next.push(new_tat);
    }
    if refused.is_none() {
        tats.copy_from_slice(&next);
    }
    let states = cells
        .iter()
        .zip(tats.iter())
        .map(|(cell, tat)| state(*tat, now, cell.limit))
        .collect();
    (refused, wait, states)
}

/// Moves a cell's arrival time by `delta` tokens (negative: a refund), never before now.
pub(crate) fn adjust(tat: f64, now: f64, limit: u64, delta: i64) -> f64 {
    let interval = PERIOD_US / limit as f64;
    (tat.max(now) + delta as f64 * interval).max(now)
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
            let mut tats = [0.0];
            let admitted = (0..limit + 5)
                .filter(|_| admit(&cells, &mut tats, 1e15).0.is_none())
                .count() as u64;
            assert_eq!(admitted, limit, "limit {limit}");
        }
    }

    #[test]
    fn refunds_never_go_before_now() {
        assert_eq!(adjust(10.0, 100.0, 60, -5), 100.0);
    }
}
