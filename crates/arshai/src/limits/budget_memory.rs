//! The in-process budget ledger.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::budget_terms::{BudgetCell, BudgetReservation, BudgetStatus, Reserved};
use super::redis_link::escape;

#[derive(Debug, Default)]
struct Entry {
    used: u64,
    /// Reservation id → (tokens, release deadline).
    reservations: HashMap<String, (u64, Instant)>,
    period_end: Option<SystemTime>,
}

impl Entry {
    fn release_expired(&mut self, now: Instant) {
        self.reservations.retain(|_, (_, deadline)| *deadline > now);
    }

    fn reserved(&self) -> u64 {
        self.reservations.values().map(|(tokens, _)| *tokens).sum()
    }
}

/// Budgets of one process, at most `max_subjects` × 4 cells.
pub(crate) struct MemoryLedger {
    entries: Mutex<HashMap<String, Entry>>,
    max_cells: usize,
}

impl MemoryLedger {
    pub(crate) fn new(max_subjects: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_cells: max_subjects.max(1).saturating_mul(4),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Plain counters: a poisoned map is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn reserve(
        &self,
        reservation: &BudgetReservation,
        strict: bool,
        ttl: Duration,
    ) -> Result<Reserved, String> {
        let now = Instant::now();
        let mut map = self.lock();
        let names: Vec<String> = reservation
            .cells
            .iter()
            .map(|c| name(&reservation.tenant, c))
            .collect();
        let missing = names.iter().filter(|n| !map.contains_key(*n)).count();
        if map.len() + missing > self.max_cells {
            let wall = SystemTime::now();
            map.retain(|_, e| e.period_end.is_none_or(|end| end > wall));
            if map.len() + missing > self.max_cells {
                return Err("the in-process budgets track max_subjects subjects already".into());
            }
        }
        for (cell, name) in reservation.cells.iter().zip(&names) {
            let entry = map.entry(name.clone()).or_default();
            entry.period_end = Some(cell.window.end);
            entry.release_expired(now);
            let taken = entry.used.saturating_add(entry.reserved());
            let over = if strict {
                taken.saturating_add(reservation.estimate) > cell.limit
            } else {
                taken >= cell.limit
            };
            if over {
                return Ok(Reserved::Refused(cell.status(entry.used, entry.reserved())));
            }
        }
        for name in names {
            let entry = map.entry(name).or_default();
            entry
                .reservations
                .insert(reservation.id.clone(), (reservation.estimate, now + ttl));
        }
        Ok(Reserved::Admitted)
    }

    pub(crate) fn settle(&self, reservation: &BudgetReservation, actual: u64) {
        let mut map = self.lock();
        for cell in &reservation.cells {
            let entry = map.entry(name(&reservation.tenant, cell)).or_default();
            entry.period_end = Some(cell.window.end);
            entry.reservations.remove(&reservation.id);
            entry.used = entry.used.saturating_add(actual);
        }
    }

    pub(crate) fn read(&self, tenant: &str, cells: &[BudgetCell]) -> Vec<BudgetStatus> {
        let now = Instant::now();
        let mut map = self.lock();
        cells
            .iter()
            .map(|cell| match map.get_mut(&name(tenant, cell)) {
                Some(entry) => {
                    entry.release_expired(now);
                    cell.status(entry.used, entry.reserved())
                }
                None => cell.status(0, 0),
            })
            .collect()
    }
}

fn name(tenant: &str, cell: &BudgetCell) -> String {
    format!("{}|{}", escape(tenant), cell.name)
}
