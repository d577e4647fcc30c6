//! The Redis budget ledger: one hash (`used`, `reserved`) and one sorted set of in-flight
//! reservations per budget, under the tenant's hash tag; each operation one Lua script.

use std::sync::Arc;
use std::time::Duration;

use super::budget_terms::{BudgetCell, BudgetReservation, BudgetStatus, Reserved};
use super::redis_link::{FleetRedis, LinkError, ScriptLink, escape, integers};
use super::scripts::LimitScripts;

/// Budget keys outlive their period by this much, so a late settle still finds them.
const GRACE_MS: u64 = 3_600_000;

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
        let tag = format!("{{{}:b:{}}}", self.prefix, escape(tenant));
        cells
            .iter()
            .flat_map(|cell| {
                let hash = format!("{tag}:{}", cell.name);
                let reservations = format!("{hash}:z");
                [hash, reservations]
            })
            .collect()
    }

    pub(crate) async fn reserve(
        &self,
        reservation: &BudgetReservation,
        strict: bool,
        ttl: Duration,
    ) -> Result<Reserved, LinkError> {
        let keys = self.keys(&reservation.tenant, &reservation.cells);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut args = vec![
            reservation.id.clone(),
            reservation.estimate.to_string(),
            if strict { "1" } else { "0" }.to_owned(),
            ttl.as_millis().to_string(),
        ];
        for cell in &reservation.cells {
            args.push(cell.limit.to_string());
            args.push((cell.window.end_ms() + GRACE_MS).to_string());
        }
        let reply = integers(
            self.link
                .eval(&self.scripts.budget_reserve, &keys, &args)
                .await?,
        )?;
        if reply.len() != 2 + 2 * reservation.cells.len() {
            return Err(malformed());
        }
        if reply[0] == 1 {
            return Ok(Reserved::Admitted);
        }
        let index = usize::try_from(reply[1] - 1).map_err(|_| malformed())?;
        let cell = reservation.cells.get(index).ok_or_else(malformed)?;
        let used = reply[2 + 2 * index].max(0) as u64;
        let reserved = reply[3 + 2 * index].max(0) as u64;
        Ok(Reserved::Refused(cell.status(used, reserved)))
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
