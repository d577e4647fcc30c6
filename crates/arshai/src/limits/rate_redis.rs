//! The Redis rate-limit backend: one rate-check script per check, on the tenant's hash
//! tag.

use std::sync::Arc;

use super::cells::{Cell, CellState, PERIOD_US};
use super::rate_memory::Checked;
use super::redis_link::{FleetRedis, LinkError, ScriptLink, integers, tenant_tag};
use super::scripts::LimitScripts;

/// Rate-limit cells in Redis.
pub(crate) struct RedisCells {
    link: Arc<ScriptLink>,
    scripts: LimitScripts,
    prefix: String,
}

impl RedisCells {
    pub(crate) fn new(redis: &FleetRedis, prefix: &str) -> Self {
        Self {
            link: redis.link.clone(),
            scripts: LimitScripts::new(),
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, tenant: &str, cell: &str) -> String {
        rate_key(&self.prefix, tenant, cell)
    }

    pub(crate) async fn check(&self, tenant: &str, cells: &[Cell]) -> Result<Checked, LinkError> {
        let keys: Vec<String> = cells.iter().map(|c| self.key(tenant, &c.name)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut args = Vec::with_capacity(1 + 2 * cells.len());
        args.push(format!("{PERIOD_US:.0}"));
        for cell in cells {
            args.push(cell.limit.to_string());
            args.push(cell.cost.to_string());
        }
        let reply = integers(
            self.link
                .eval(&self.scripts.rate_check, &keys, &args)
                .await?,
        )?;
        checked_from(&reply, cells.len())
    }

    pub(crate) async fn adjust(
        &self,
        tenant: &str,
        moves: &[(String, u64, i64)],
    ) -> Result<(), LinkError> {
        let keys: Vec<String> = moves.iter().map(|(c, _, _)| self.key(tenant, c)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut args = Vec::with_capacity(1 + 2 * moves.len());
        args.push(format!("{PERIOD_US:.0}"));
        for (_, limit, delta) in moves {
            args.push(limit.to_string());
            args.push(delta.to_string());
        }
        self.link
            .eval(&self.scripts.rate_adjust, &keys, &args)
            .await?;
        Ok(())
    }
}

/// The key of `tenant`'s rate cell `cell`.
pub(crate) fn rate_key(prefix: &str, tenant: &str, cell: &str) -> String {
    format!("{}:r:{cell}", tenant_tag(prefix, tenant))
}

/// A rate-check reply (`{allowed, refusing cell, wait µs, remaining₁, reset µs₁, …}`) of
/// `cells` cells.
pub(crate) fn checked_from(reply: &[i64], cells: usize) -> Result<Checked, LinkError> {
    if reply.len() != 3 + 2 * cells {
        return Err(LinkError::Redis(redis::RedisError::from((
            redis::ErrorKind::Parse,
            "the rate-limit script answered a reply of the wrong length",
        ))));
    }
    let refused = usize::try_from(reply[1])
        .ok()
        .filter(|i| *i > 0)
        .map(|i| i - 1);
    let states = reply[3..]
        .chunks_exact(2)
        .map(|pair| CellState {
            remaining: pair[0].max(0) as u64,
            reset_us: pair[1].max(0) as f64,
        })
        .collect();
    Ok(Checked {
        refused,
        wait_us: reply[2].max(0) as f64,
        states,
    })
}
