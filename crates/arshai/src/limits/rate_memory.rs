//! The in-process rate-limit backend: the GCRA cells of [`super::cells`] in one map,
//! on tokio's clock (so tests can run it on paused, virtual time).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio::time::Instant;

use super::cells::{self, Cell, CellState, Level};

/// What the in-process check found.
pub(crate) struct Checked {
    pub(crate) refused: Option<usize>,
    pub(crate) wait_us: f64,
    pub(crate) states: Vec<CellState>,
}

/// GCRA cells of one process, at most `max_subjects` of them.
pub(crate) struct MemoryCells {
    base: Instant,
    tats: Mutex<HashMap<String, Level>>,
    max_cells: usize,
}

impl MemoryCells {
    pub(crate) fn new(max_subjects: usize) -> Self {
        Self {
            base: Instant::now(),
            tats: Mutex::new(HashMap::new()),
            // Up to four cells per subject.
            max_cells: max_subjects.max(1).saturating_mul(4),
        }
    }

    fn now(&self) -> f64 {
        Instant::now().duration_since(self.base).as_micros() as f64
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Level>> {
        // A poisoned map holds plain numbers: still consistent.
        self.tats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks and charges `cells` of `tenant` all at once; `None` when the map is full of
    /// live cells.
    pub(crate) fn check(&self, tenant: &str, cells: &[Cell]) -> Option<Checked> {
        let now = self.now();
        let names: Vec<String> = cells.iter().map(|c| name(tenant, &c.name)).collect();
        let mut map = self.lock();
        let missing = names.iter().filter(|n| !map.contains_key(*n)).count();
        if map.len() + missing > self.max_cells {
            // Drained cells carry no state: drop them before refusing. A cell drains
            // within a period of its last update.
            map.retain(|_, stored| now - stored.at < cells::PERIOD_US);
            if map.len() + missing > self.max_cells {
                return None;
            }
        }
        let mut levels: Vec<Level> = names
            .iter()
            .map(|n| map.get(n).copied().unwrap_or_default())
            .collect();
        let (refused, wait_us, states) = cells::admit(cells, &mut levels, now);
        if refused.is_none() {
            for (name, level) in names.into_iter().zip(levels) {
                map.insert(name, level);
            }
        }
        Some(Checked {
            refused,
            wait_us,
            states,
        })
    }

    /// Moves each `(cell, limit, delta)` by `delta` tokens.
    pub(crate) fn adjust(&self, tenant: &str, moves: &[(String, u64, i64)]) {
        let now = self.now();
        let mut map = self.lock();
        for (cell, limit, delta) in moves {
            let entry = map.entry(name(tenant, cell)).or_default();
            *entry = cells::adjust(*entry, now, *limit, *delta);
        }
    }
}

fn name(tenant: &str, cell: &str) -> String {
    format!("{}|{cell}", super::redis_link::escape(tenant))
}
