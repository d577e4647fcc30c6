//! The Redis budget ledger: one hash (`used`, `reserved`) and one sorted set of in-flight
//! reservations per budget, under the tenant's hash tag; each operation one Lua script.

use std::sync::Arc;
use std::time::Duration;

use super::budget_terms::{BudgetCell, BudgetReservation, BudgetStatus, Reserved};
use super::redis_link::{FleetRedis, LinkError, ScriptLink, integers, tenant_tag};
use super::scripts::LimitScripts;

/// Budget keys outlive their period by this much, so a late settle still finds them.
pub(crate) const GRACE_MS: u64 = 3_600_000;

pub(crate) struct RedisLedger {
    link: Arc<ScriptLink>,
    scripts: LimitScripts,
    prefix: String,
}

fn malformed() -> LinkError {
    LinkError::Redis(redis::RedisError::from((
        redis::ErrorKind::Parse,
        "a budget script answered a reply of the wrong length",
    )))
}

impl RedisLedger {
    pub(crate) fn new(redis: &FleetRedis, prefix: &str) -> Self {
        Self {
            link: redis.link.clone(),
            scripts: LimitScripts::new(),
            prefix: prefix.to_owned(),
        }
    }

    fn keys(&self, tenant: &str, cells: &[BudgetCell]) -> Vec<String> {
        budget_keys(&self.prefix, tenant, cells)
    }

    pub(crate) async fn reserve(
        &self,
        reservation: &BudgetReservation,
        strict: bool,
        ttl: Duration,
    ) -> Result<Reserved, LinkError> {
        let keys = self.keys(&reservation.tenant, &reservation.cells);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut args = Vec::with_capacity(4 + 2 * reservation.cells.len());
        push_reserve_args(&mut args, reservation, strict, ttl);
        let reply = integers(
            self.link
                .eval(&self.scripts.budget_reserve, &keys, &args)
                .await?,
        )?;
        reserved_from(&reply, &reservation.cells)
    }

    pub(crate) async fn settle(
        &self,
        reservation: &BudgetReservation,
        actual: u64,
    ) -> Result<(), LinkError> {
        let keys = self.keys(&reservation.tenant, &reservation.cells);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut args = vec![
            reservation.id.clone(),
            reservation.estimate.to_string(),
            actual.to_string(),
        ];
        for cell in &reservation.cells {
            args.push((cell.window.end_ms() + GRACE_MS).to_string());
        }
        self.link
            .eval(&self.scripts.budget_settle, &keys, &args)
            .await?;
        Ok(())
    }

    pub(crate) async fn read(
        &self,
        tenant: &str,
        cells: &[BudgetCell],
    ) -> Result<Vec<BudgetStatus>, LinkError> {
        let keys = self.keys(tenant, cells);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let reply = integers(
            self.link
                .eval(&self.scripts.budget_read, &keys, &[])
                .await?,
        )?;
        if reply.len() != 2 * cells.len() {
            return Err(malformed());
        }
        Ok(cells
            .iter()
            .zip(reply.chunks_exact(2))
            .map(|(cell, pair)| cell.status(pair[0].max(0) as u64, pair[1].max(0) as u64))
            .collect())
    }
}

/// `hash, reservations` keys of each of `tenant`'s budget `cells`.
pub(crate) fn budget_keys(prefix: &str, tenant: &str, cells: &[BudgetCell]) -> Vec<String> {
    let tag = tenant_tag(prefix, tenant);
    cells
        .iter()
        .flat_map(|cell| {
            let hash = format!("{tag}:b:{}", cell.name);
            let reservations = format!("{hash}:z");
            [hash, reservations]
        })
        .collect()
}

/// The reserve script's arguments: id, estimate, strict, TTL, then `limit, expire-at` per
/// cell.
pub(crate) fn push_reserve_args(
    args: &mut Vec<String>,
    reservation: &BudgetReservation,
    strict: bool,
    ttl: Duration,
) {
    args.push(reservation.id.clone());
    args.push(reservation.estimate.to_string());
    args.push(if strict { "1" } else { "0" }.to_owned());
    args.push(ttl.as_millis().to_string());
    for cell in &reservation.cells {
        args.push(cell.limit.to_string());
        args.push((cell.window.end_ms() + GRACE_MS).to_string());
    }
}

/// A reserve reply (`{admitted, refusing cell, used₁, reserved₁, …}`) over `cells`.
pub(crate) fn reserved_from(reply: &[i64], cells: &[BudgetCell]) -> Result<Reserved, LinkError> {
    if reply.len() != 2 + 2 * cells.len() {
        return Err(malformed());
    }
    if reply[0] == 1 {
        return Ok(Reserved::Admitted);
    }
    let index = usize::try_from(reply[1] - 1).map_err(|_| malformed())?;
    let cell = cells.get(index).ok_or_else(malformed)?;
    let used = reply[2 + 2 * index].max(0) as u64;
    let reserved = reply[3 + 2 * index].max(0) as u64;
    Ok(Reserved::Refused(cell.status(used, reserved)))
}
