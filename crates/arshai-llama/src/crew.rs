//! Threads that share the matrix products of one forward pass.
//!
//! A forward pass with more than one thread starts its helpers (scoped threads, joined
//! when the pass ends) and publishes each product as a [`Product`]: the weight rows cut in
//! chunks that every thread, the calling one included, claims from one atomic counter.
//! Nothing is assigned to a thread in advance, so a helper that the OS has not scheduled
//! (the cores busy with other work) costs nothing but its absence: the calling thread
//! takes the chunks it leaves, and a pass is never slower than on one thread by more than
//! the chunk a descheduled helper holds.
//!
//! Between products a helper spins for at most [`SPIN`] (the gaps inside a pass are a few
//! microseconds; a futex wake-up would cost as much as a small product), then sleeps on a
//! condition variable until the next product or the end of the pass. The calling thread
//! waits for claimed chunks the same way, spinning briefly and then yielding its core.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::kernels::{Kernels, TILE_ROWS};
use super::quant::{Activations, QMatrix};

/// How long an idle thread spins before it sleeps or yields.
const SPIN: Duration = Duration::from_micros(50);
/// Chunks per thread in a product (more chunks balance better when a thread is slow).
const CHUNKS_PER_THREAD: usize = 4;

/// What the threads of one forward pass share.
pub(crate) struct Crew<'w> {
    kernels: Kernels,
    threads: usize,
    board: Mutex<Board<'w>>,
    posted: Condvar,
    /// Products published so far (read without the lock while spinning).
    epoch: AtomicU64,
}

struct Board<'w> {
    current: Option<Arc<Product<'w>>>,
    finished: bool,
    sleeping: usize,
}

/// One product in progress.
struct Product<'w> {
    weights: &'w QMatrix,
    x: Activations,
    chunk_rows: usize,
    chunks: usize,
    claimed: AtomicUsize,
    done: AtomicUsize,
    /// `x.rows() × weights.rows`, row-major; each chunk writes its columns.
    out: Mutex<Vec<f32>>,
}

impl<'w> Crew<'w> {
    /// A crew of `threads` (the calling thread and `threads - 1` helpers that run
    /// [`Crew::help`]).
    pub(crate) fn new(kernels: Kernels, threads: usize) -> Self {
        Self {
            kernels,
            threads,
            board: Mutex::new(Board {
                current: None,
                finished: false,
                sleeping: 0,
            }),
            posted: Condvar::new(),
            epoch: AtomicU64::new(0),
        }
    }

    /// `out = x · weightsᵀ` (as [`Kernels::matmul`]), shared with the helpers. `x` is
    /// consumed (the helpers read it while the caller goes on).
    pub(crate) fn matmul(&self, weights: &'w QMatrix, x: Activations, out: &mut Vec<f32>) {
        let tiles = weights.rows.div_ceil(TILE_ROWS);
        let chunk_tiles = tiles.div_ceil(self.threads * CHUNKS_PER_THREAD).max(1);
        let chunk_rows = chunk_tiles * TILE_ROWS;
        let product = Arc::new(Product {
            weights,
            x,
            chunk_rows,
            chunks: weights.rows.div_ceil(chunk_rows),
            claimed: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            out: Mutex::new(std::mem::take(out)),
        });
        {
            let mut board = self.lock();
            board.current = Some(Arc::clone(&product));
            self.epoch.fetch_add(1, Ordering::Release);
            if board.sleeping > 0 {
                self.posted.notify_all();
            }
        }
        let mut scratch = Vec::new();
        product.work(self.kernels, &mut scratch);
        let started = Instant::now();
        while product.done.load(Ordering::Acquire) < product.chunks {
            if started.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        self.lock().current = None;
        *out = std::mem::take(&mut *lock(&product.out));
    }

    /// A helper's loop: works on each product as it is published, until [`Crew::finish`].
    pub(crate) fn help(&self) {
        let mut seen = 0;
        let mut scratch = Vec::new();
        while let Some(product) = self.next(&mut seen) {
            product.work(self.kernels, &mut scratch);
        }
    }

    /// Ends the pass: every helper returns from [`Crew::help`].
    pub(crate) fn finish(&self) {
        self.lock().finished = true;
        self.posted.notify_all();
    }

    /// The next product after the `seen`-th, or `None` once the pass is finished.
    fn next(&self, seen: &mut u64) -> Option<Arc<Product<'w>>> {
        loop {
            let started = Instant::now();
            while self.epoch.load(Ordering::Acquire) == *seen && started.elapsed() < SPIN {
                std::hint::spin_loop();
            }
            let mut board = self.lock();
            while !board.finished && self.epoch.load(Ordering::Acquire) == *seen {
                board.sleeping += 1;
                board = self
                    .posted
                    .wait(board)
                    .unwrap_or_else(PoisonError::into_inner);
                board.sleeping -= 1;
            }
            if board.finished {
                return None;
            }
            *seen = self.epoch.load(Ordering::Acquire);
            // `None`: the caller already finished and collected it; wait for the next.
            if let Some(product) = board.current.clone() {
                return Some(product);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Board<'w>> {
        lock(&self.board)
    }
}

impl Product<'_> {
    /// Claims and computes chunks until none is left.
    fn work(&self, kernels: Kernels, scratch: &mut Vec<f32>) {
        let (n, total) = (self.x.rows(), self.weights.rows);
        loop {
            let chunk = self.claimed.fetch_add(1, Ordering::Relaxed);
            if chunk >= self.chunks {
                return;
            }
            let start = chunk * self.chunk_rows;
            let rows = start..(start + self.chunk_rows).min(total);
            let width = rows.len();
            scratch.clear();
            scratch.resize(n * width, 0.0);
            kernels.matmul_rows(self.weights, rows, &self.x, scratch);
            {
                let mut out = lock(&self.out);
                for (m, values) in scratch.chunks_exact(width).enumerate() {
                    out[m * total + start..m * total + start + width].copy_from_slice(values);
                }
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
