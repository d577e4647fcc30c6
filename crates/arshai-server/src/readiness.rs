//! The readiness latch: not ready from the moment draining starts (so that load balancers
//! stop sending traffic before the process stops). Whether the dependencies answer is
//! checked on every probe (`/health/ready`), not latched.

use std::sync::atomic::{AtomicBool, Ordering};

/// Shared readiness state.
#[derive(Debug, Default)]
pub struct Readiness {
    draining: AtomicBool,
}

impl Readiness {
    /// Flips the latch for good: the process is shutting down.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether draining started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
