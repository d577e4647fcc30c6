//! The readiness latch: ready once dependencies answered, not ready from the moment draining
//! starts (so that load balancers stop sending traffic before the process stops).

use std::sync::atomic::{AtomicBool, Ordering};

/// Shared readiness state.
#[derive(Debug, Default)]
pub struct Readiness {
    warmed: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// Records that the dependencies answered once.
    pub fn mark_warm(&self) {
        self.warmed.store(true, Ordering::Release);
    }

    /// Whether the dependencies ever answered.
    pub fn is_warm(&self) -> bool {
        self.warmed.load(Ordering::Acquire)
    }

    /// Flips the latch for good: the process is shutting down.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether draining started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
