//! The Redis side of [`super::LimitGate`] when rate limits and budgets both live in Redis:
//! a whole admission (rate check + budget reservation) in one script, and a batch of one
//! tenant's settles in one script. Both work on the tenant's hash tag only, so on Cluster
//! each is one slot, one node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::budget_redis::{GRACE_MS, budget_keys, push_reserve_args, reserved_from};
use super::budget_terms::{BudgetCell, BudgetReservation, Reserved};
use super::cells::{Cell, PERIOD_US};
use super::decision::Refusal;
use super::rate_limiter::moves;
use super::rate_memory::Checked;
use super::rate_redis::{checked_from, rate_key};
use super::redis_link::{FleetRedis, LinkError, ScriptLink, integers};
use super::scripts::LimitScripts;
use super::settlement::Settlement;

/// The combined scripts on the fleet's Redis link.
pub(crate) struct RedisGate {
    link: Arc<ScriptLink>,
    scripts: LimitScripts,
    prefix: String,
}

impl RedisGate {
    pub(crate) fn new(redis: &FleetRedis, prefix: &str) -> Self {
        Self {
            link: redis.link.clone(),
            scripts: LimitScripts::new(),
            prefix: prefix.to_owned(),
        }
    }

    /// Checks `cells` and, if they admit, reserves `reservation` (same tenant) — one
    /// script. Returns the rate check's answer and, when it admitted, the budgets'.
    pub(crate) async fn admit(
        &self,
        tenant: &str,
        cells: &[Cell],
        reservation: &BudgetReservation,
        strict: bool,
        ttl: Duration,
    ) -> Result<(Checked, Option<Reserved>), LinkError> {
        let mut keys: Vec<String> = cells
            .iter()
            .map(|cell| rate_key(&self.prefix, tenant, &cell.name))
            .collect();
        keys.extend(budget_keys(&self.prefix, tenant, &reservation.cells));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut args = Vec::with_capacity(6 + 3 * cells.len() + 2 * reservation.cells.len());
        args.push(cells.len().to_string());
        args.push(format!("{PERIOD_US:.0}"));
        for cell in cells {
            // A call the budget refuses still counts as a request, but spends no tokens.
            let refused_cost = match cell.refusal {
                Refusal::KeyTokens | Refusal::TenantTokens => 0,
                Refusal::KeyRequests | Refusal::TenantRequests => cell.cost,
            };
            args.push(cell.limit.to_string());
            args.push(cell.cost.to_string());
            args.push(refused_cost.to_string());
        }
        push_reserve_args(&mut args, reservation, strict, ttl);
        let reply = integers(self.link.eval(&self.scripts.admit, &keys, &args).await?)?;
        let rate_len = 3 + 2 * cells.len();
        if reply.len() < rate_len + 2 {
            return Err(malformed());
        }
        let checked = checked_from(&reply[..rate_len], cells.len())?;
        let budget = &reply[rate_len..];
        if budget[0] == -1 {
            return Ok((checked, None));
        }
        Ok((checked, Some(reserved_from(budget, &reservation.cells)?)))
    }

    /// Applies `batch` (one tenant's settles) in one script: the net move of each rate
    /// cell, then each reservation released and its usage charged.
    pub(crate) async fn settle_many(
        &self,
        tenant: &str,
        batch: &[Settlement],
    ) -> Result<(), LinkError> {
        let rate = net_moves(batch);
        let mut budget_cells: Vec<&BudgetCell> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut entries: Vec<String> = Vec::new();
        let mut settled = 0usize;
        for settlement in batch {
            let Some(reservation) = &settlement.budget else {
                continue;
            };
            if reservation.cells.is_empty() {
                continue;
            }
            settled += 1;
            entries.push(reservation.id.clone());
            entries.push(reservation.estimate.to_string());
            entries.push(settlement.actual.to_string());
            entries.push(reservation.cells.len().to_string());
            for cell in &reservation.cells {
                let next = budget_cells.len() + 1;
                let at = *index.entry(cell.name.as_str()).or_insert_with(|| {
                    budget_cells.push(cell);
                    next
                });
                entries.push(at.to_string());
            }
        }
        if rate.is_empty() && settled == 0 {
            return Ok(());
        }
        let mut keys: Vec<String> = rate
            .iter()
            .map(|(cell, _, _)| rate_key(&self.prefix, tenant, cell))
            .collect();
        let cells: Vec<BudgetCell> = budget_cells.into_iter().cloned().collect();
        keys.extend(budget_keys(&self.prefix, tenant, &cells));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut args = Vec::with_capacity(4 + 2 * rate.len() + cells.len() + entries.len());
        args.push(rate.len().to_string());
        args.push(format!("{PERIOD_US:.0}"));
        for (_, limit, delta) in &rate {
            args.push(limit.to_string());
            args.push(delta.to_string());
        }
        for cell in &cells {
            args.push((cell.window.end_ms() + GRACE_MS).to_string());
        }
        args.push(settled.to_string());
        args.extend(entries);
        self.link
            .eval(&self.scripts.settle_many, &keys, &args)
            .await?;
        Ok(())
    }
}

/// The net move of each rate cell over `batch`: the deltas of one cell summed (its limit
/// the latest seen), cells that net to zero left out.
fn net_moves(batch: &[Settlement]) -> Vec<(String, u64, i64)> {
    let mut net: Vec<(String, u64, i64)> = Vec::new();
    for settlement in batch {
        let Some(reservation) = &settlement.rate else {
            continue;
        };
        for (cell, limit, delta) in moves(reservation, settlement.actual) {
            match net.iter_mut().find(|(name, _, _)| *name == cell) {
                Some(entry) => {
                    entry.1 = limit;
                    entry.2 = entry.2.saturating_add(delta);
                }
                None => net.push((cell, limit, delta)),
            }
        }
    }
    net.retain(|(_, _, delta)| *delta != 0);
    net
}

fn malformed() -> LinkError {
    LinkError::Redis(redis::RedisError::from((
        redis::ErrorKind::Parse,
        "the admission script answered a reply of the wrong length",
    )))
}
